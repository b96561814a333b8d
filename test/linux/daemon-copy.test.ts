// Through the real daemon (Linux backend): CopyIn and CopyOut. Ownership (vcap inside,
// root or `owner` outside), the trailing-slash rule, modes and symlinks kept, hard links
// materialised, and symlinks that point at host-sensitive paths never followed onto the
// host. Pool 10.245.4.0/24.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { chmod, link, lstat, mkdir, mkdtemp, readFile, readlink, readdir, rm, stat, symlink, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { LinuxDaemon } from '../support/linux/linux-daemon.ts';
import type { WardenClient } from '../../src/client/client.ts';

let d: LinuxDaemon;
let client: WardenClient;
let handle: string;
let path: string; // container_path
let uid: number;
let work: string; // host scratch folder
let src: string;

const upper = (p: string) => join(path, 'tmp', 'rootfs', p);

beforeAll(async () => {
  d = await LinuxDaemon.start({ pool: '10.245.4.0/24', portStart: 24400, uidStart: 34000 });
  client = await d.client();
  const c = await d.create(client);
  handle = c.handle;
  path = c.info.container_path!;
  uid = Number((await d.run(client, handle, 'id -u')).stdout.trim());
  work = await mkdtemp(join(tmpdir(), 'warden-copy-'));
  // src/ a.txt (0640), run.sh (0755), sub/b.txt, link -> a.txt, hard1 + hard2 (one inode), shadow -> /etc/shadow
  src = join(work, 'src');
  await mkdir(join(src, 'sub'), { recursive: true });
  await writeFile(join(src, 'a.txt'), 'alpha\n');
  await chmod(join(src, 'a.txt'), 0o640);
  await writeFile(join(src, 'run.sh'), '#!/bin/sh\necho ran\n');
  await chmod(join(src, 'run.sh'), 0o755);
  await writeFile(join(src, 'sub', 'b.txt'), 'beta\n');
  await symlink('a.txt', join(src, 'link'));
  await writeFile(join(src, 'hard1'), 'same inode\n');
  await link(join(src, 'hard1'), join(src, 'hard2'));
  await symlink('/etc/shadow', join(src, 'shadow'));
});

afterAll(async () => {
  const problems = d ? await d.cleanup() : [];
  if (work) await rm(work, { recursive: true, force: true });
  expect(problems).toEqual([]);
});

describe('CopyIn', () => {
  it('copies a folder (no trailing slash) into dst, owned by vcap, modes, symlinks kept, hard links materialised', async () => {
    await client.copyIn({ handle, src_path: src, dst_path: '/home/vcap/in' });
    const r = await d.run(client, handle, [
      'cd /home/vcap/in/src',
      'stat -c "%n %U %a" sub',
      'for f in a.txt run.sh sub/b.txt hard1 hard2; do stat -c "%n %U %a %h" $f; done',
      'readlink link; readlink shadow',
      'cat link; ./run.sh',
      'echo more >> hard1; cat hard2',
    ].join('\n'));
    expect(r.stderr).toBe('');
    expect(r.stdout.trim().split('\n')).toEqual([
      'sub vcap 755',
      'a.txt vcap 640 1',
      'run.sh vcap 755 1',
      'sub/b.txt vcap 644 1',
      'hard1 vcap 644 1',
      'hard2 vcap 644 1',
      'a.txt',
      '/etc/shadow',
      'alpha',
      'ran',
      'same inode', // two files now: writing one leaves the other
    ]);
    // From the host (DEA layout): the files belong to the container's uid.
    expect((await stat(upper('home/vcap/in/src/a.txt'))).uid).toBe(uid);
    expect((await lstat(upper('home/vcap/in/src/shadow'))).isSymbolicLink()).toBe(true);
  });

  it('copies only the contents with a trailing slash', async () => {
    await client.copyIn({ handle, src_path: `${src}/`, dst_path: '/home/vcap/contents' });
    const r = await d.run(client, handle, 'ls -A /home/vcap/contents | sort | tr "\\n" " "');
    expect(r.stdout.trim()).toBe('a.txt hard1 hard2 link run.sh shadow sub');
  });

  it('copies a single file', async () => {
    await client.copyIn({ handle, src_path: join(src, 'a.txt'), dst_path: '/home/vcap/single' });
    expect((await d.run(client, handle, 'cat /home/vcap/single/a.txt')).stdout).toBe('alpha\n');
  });

  it('resolves dst inside the container: a symlink there cannot lead onto the host', async () => {
    const marker = `warden-copy-escape-${process.pid}`;
    await d.run(client, handle, 'ln -s / /home/vcap/escape');
    await client.copyIn({ handle, src_path: join(src, 'a.txt'), dst_path: `/home/vcap/escape/tmp/${marker}` });
    expect(await stat(`/tmp/${marker}`).catch(() => undefined)).toBeUndefined();
    expect((await d.run(client, handle, `cat /tmp/${marker}/a.txt`)).stdout).toBe('alpha\n');
    // Through a link to a folder that exists on the host too: the host folder is
    // unchanged; the container's folder of that name got the copy.
    const hostDir = join(work, `host-dir-${marker}`);
    await mkdir(hostDir);
    await writeFile(join(hostDir, 'keep'), 'host\n');
    await d.run(client, handle, `mkdir -p ${hostDir} && chown vcap ${hostDir} && ln -s ${hostDir} /home/vcap/hostlink`, true);
    await client.copyIn({ handle, src_path: join(src, 'a.txt'), dst_path: '/home/vcap/hostlink' });
    expect(await readdir(hostDir)).toEqual(['keep']);
    expect(await readFile(join(hostDir, 'keep'), 'utf8')).toBe('host\n');
    expect((await d.run(client, handle, `cat ${hostDir}/a.txt`)).stdout).toBe('alpha\n');
  });

  it('fails for a missing source or an unwritable destination', async () => {
    await expect(client.copyIn({ handle, src_path: join(work, 'nope'), dst_path: '/home/vcap/x' })).rejects.toThrow(/nope.*does not exist/);
    // vcap cannot write the container's /etc.
    await expect(client.copyIn({ handle, src_path: join(src, 'a.txt'), dst_path: '/etc' })).rejects.toThrow(/copy_in.*(denied|Cannot)/i);
  });
});

describe('CopyOut', () => {
  beforeAll(async () => {
    // In the container: a folder with a file, a symlink to the container's /etc/shadow
    // (root-only, with a known content) and a hard-linked pair.
    const r = await d.run(client, handle, [
      'echo container-secret > /etc/shadow && chmod 600 /etc/shadow',
      'mkdir -p /home/vcap/out/deep && echo out-data > /home/vcap/out/deep/f.txt',
      'ln -s /etc/shadow /home/vcap/out/shadow-link',
      'ln -s /etc/shadow /home/vcap/evil',
      'echo linked > /home/vcap/out/h1 && ln /home/vcap/out/h1 /home/vcap/out/h2',
      'chown -R vcap:vcap /home/vcap/out /home/vcap/evil',
    ].join('\n'), true);
    expect(r.exit_status).toBe(0);
  });

  it('copies a folder to the host, owned by root, with symlinks kept as links and hard links materialised', async () => {
    const dst = join(work, 'out1');
    await client.copyOut({ handle, src_path: '/home/vcap/out', dst_path: dst });
    const f = join(dst, 'out', 'deep', 'f.txt');
    expect(await readFile(f, 'utf8')).toBe('out-data\n');
    expect((await stat(f)).uid).toBe(0);
    const l = join(dst, 'out', 'shadow-link');
    expect((await lstat(l)).isSymbolicLink()).toBe(true);
    expect(await readlink(l)).toBe('/etc/shadow');
    const [h1, h2] = await Promise.all([stat(join(dst, 'out', 'h1')), stat(join(dst, 'out', 'h2'))]);
    expect(h1.ino).not.toBe(h2.ino);
    expect(await readFile(join(dst, 'out', 'h2'), 'utf8')).toBe('linked\n');
  });

  it('honours the trailing slash and chowns to owner', async () => {
    const dst = join(work, 'out2');
    await client.copyOut({ handle, src_path: '/home/vcap/out/', dst_path: dst, owner: 'nobody:nogroup' });
    expect((await readdir(dst)).sort()).toEqual(['deep', 'h1', 'h2', 'shadow-link']);
    const st = await stat(join(dst, 'deep', 'f.txt'));
    expect([st.uid, st.gid]).toEqual([65534, 65534]);
    expect((await lstat(join(dst, 'shadow-link'))).uid).toBe(65534);
  });

  it('a symlink to /etc/shadow comes out as a link, never with the host file or the container secret', async () => {
    const dst = join(work, 'out3');
    await client.copyOut({ handle, src_path: '/home/vcap/evil', dst_path: dst });
    // Copied as a link (it is not followed): never content.
    expect(await readdir(dst)).toEqual(['evil']);
    const out = join(dst, 'evil');
    expect((await lstat(out)).isSymbolicLink()).toBe(true);
    expect(await readlink(out)).toBe('/etc/shadow');
    // Reading the container's root-only file itself is refused (the copy runs as vcap).
    await expect(client.copyOut({ handle, src_path: '/etc/shadow', dst_path: join(work, 'out4') })).rejects.toThrow(/Permission denied|Cannot open/i);
  });

  it('runs the container end inside the container sandbox, even a tar a privileged job planted', async () => {
    // First in PATH inside the container: records what it runs with, then does the copy.
    const planted = await d.run(client, handle, [
      'mkdir -p /usr/local/sbin',
      `printf '#!/bin/bash\\ngrep -E "^(Uid|CapEff|CapBnd|NoNewPrivs|Seccomp):" /proc/self/status > /tmp/copy-proc; grep -E ":(devices|memory):" /proc/self/cgroup >> /tmp/copy-proc; exec /bin/tar "$@"\\n' > /usr/local/sbin/tar`,
      'chmod 755 /usr/local/sbin/tar',
    ].join('\n'), true);
    expect(planted.exit_status).toBe(0);
    try {
      const dst = join(work, 'out-sandbox');
      await client.copyOut({ handle, src_path: '/home/vcap/out/deep/f.txt', dst_path: dst });
      expect(await readFile(join(dst, 'f.txt'), 'utf8')).toBe('out-data\n');
      const seen = (await d.run(client, handle, 'cat /tmp/copy-proc')).stdout;
      expect(seen).toMatch(new RegExp(`^Uid:\\t${uid}\\t`, 'm'));
      expect(seen).toContain('CapEff:\t0000000000000000');
      expect(seen).toContain('CapBnd:\t0000000000000000'); // a setuid binary would gain nothing
      expect(seen).toContain('NoNewPrivs:\t1');
      expect(seen).toContain('Seccomp:\t2');
      expect(seen).toMatch(/:devices:.*instance-/); // the container's device allow-list applies
      expect(seen).toMatch(/:memory:.*instance-/);
    } finally {
      await d.run(client, handle, 'rm -f /usr/local/sbin/tar', true);
    }
  });

  it('works on a stopped container', async () => {
    await client.stop({ handle, kill: true });
    const dst = join(work, 'out5');
    await client.copyOut({ handle, src_path: '/home/vcap/out/deep/f.txt', dst_path: dst });
    expect(await readFile(join(dst, 'f.txt'), 'utf8')).toBe('out-data\n');
    await expect(client.copyIn({ handle, src_path: src, dst_path: '/home/vcap/x' })).rejects.toThrow(/stopped/);
  });
});
