// A hostile container against the host side of copies, through the real daemon (Linux
// backend, real runc). The attacker controls code inside the container, as vcap and in
// privileged jobs, and so also the container's tar: a privileged job plants one that
// sends whatever archive it likes. Whatever comes, the host gets only regular files,
// folders and symlinks, inside the destination, without setuid/setgid bits, and no
// symlink that was there before is written through. Pool 10.247.1.0/24.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { chmod, link, lstat, mkdir, mkdtemp, readFile, readdir, readlink, rm, stat, symlink, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { execa } from 'execa';
import { LinuxDaemon } from '../support/linux/linux-daemon.ts';
import type { WardenClient } from '../../src/client/client.ts';

let d: LinuxDaemon;
let client: WardenClient;
let handle: string;
let work: string; // host scratch folder
let victim: string; // a host folder the container must never write into

/** Entries of a folder, sorted; the copy's staging folders must never be among them. */
const entries = async (dir: string): Promise<string[]> => (await readdir(dir)).sort();

beforeAll(async () => {
  d = await LinuxDaemon.start({ pool: '10.247.1.0/24', portStart: 31000, uidStart: 41000 });
  client = await d.client();
  ({ handle } = await d.create(client));
  work = await mkdtemp(join(tmpdir(), 'warden-copy-attack-'));
  victim = join(work, 'victim');
  await mkdir(victim);

  // Archives a planted tar sends instead of what was asked for, made here as root.
  const make = join(work, 'make');
  const archives = join(work, 'archives');
  await mkdir(archives);
  // one: a symlink to a host folder; two: a file below that name (no folder entry for it).
  await mkdir(join(make, 'one'), { recursive: true });
  await symlink(victim, join(make, 'one', 'link'));
  await mkdir(join(make, 'two', 'link'), { recursive: true });
  await writeFile(join(make, 'two', 'link', 'pwned'), 'written through\n');
  // dev: a world-writable block device of the host's first disk, a FIFO, a plain file.
  await mkdir(join(make, 'dev'), { recursive: true });
  await execa('mknod', ['-m', '0666', join(make, 'dev', 'disk'), 'b', '8', '0']);
  await execa('mkfifo', [join(make, 'dev', 'fifo')]);
  await writeFile(join(make, 'dev', 'ok.txt'), 'ok\n');
  // suid: a setuid-root file and a setgid folder; hard: two names of one inode.
  await mkdir(join(make, 'suid', 'sgid-dir'), { recursive: true });
  await writeFile(join(make, 'suid', 'rootsh'), '#!/bin/sh\nid\n');
  await chmod(join(make, 'suid', 'rootsh'), 0o4755);
  await chmod(join(make, 'suid', 'sgid-dir'), 0o2775);
  await mkdir(join(make, 'hard'), { recursive: true });
  await writeFile(join(make, 'hard', 'f'), 'one inode\n');
  await link(join(make, 'hard', 'f'), join(make, 'hard', 'h'));
  const tar = (name: string, ...members: string[]) =>
    execa('tar', ['-c', '-f', join(archives, `${name}.tar`), '-C', join(make, name), '--no-recursion', '--', ...members]);
  await tar('one', 'link');
  await tar('two', 'link/pwned');
  await tar('dev', 'disk', 'fifo', 'ok.txt');
  await tar('suid', 'rootsh', 'sgid-dir');
  await tar('hard', 'f', 'h');
  await writeFile(join(archives, 'garbage.tar'), 'this is not a tar archive\n'.repeat(100));
  await client.copyIn({ handle, src_path: `${archives}/`, dst_path: '/tmp/evil' });
});

afterAll(async () => {
  const problems = d ? await d.cleanup() : [];
  if (work) await rm(work, { recursive: true, force: true });
  expect(problems).toEqual([]);
});

/** Plants a tar, first in the container's PATH, that sends /tmp/evil/<last argument>.tar when there is one. */
async function plantTar(): Promise<void> {
  const r = await d.run(client, handle, [
    'mkdir -p /usr/local/sbin',
    `printf '#!/bin/sh\\nfor a; do n="$a"; done\\n[ -f "/tmp/evil/$n.tar" ] && exec cat "/tmp/evil/$n.tar"\\nexec /bin/tar "$@"\\n' > /usr/local/sbin/tar`,
    'chmod 755 /usr/local/sbin/tar',
  ].join('\n'), true);
  expect(r.exit_status).toBe(0);
}

describe('copy_out of what vcap and privileged jobs made', () => {
  it('a setuid file (and a setgid folder) vcap made comes out without setuid/setgid bits, owned by root', async () => {
    const made = await d.run(client, handle, [
      'mkdir -p /home/vcap/suid/sgid-dir /home/vcap/suid/plain',
      'printf "#!/bin/sh\\nid\\n" > /home/vcap/suid/sh && chmod 4755 /home/vcap/suid/sh',
      'chmod 2775 /home/vcap/suid/sgid-dir',
      'echo x > /home/vcap/suid/plain/run && chmod 755 /home/vcap/suid/plain/run',
      'stat -c "%a %U" /home/vcap/suid/sh /home/vcap/suid/sgid-dir',
    ].join('\n'));
    expect(made.stdout.trim().split('\n')).toEqual(['4755 vcap', '2775 vcap']);
    const dst = join(work, 'suid-real');
    await client.copyOut({ handle, src_path: '/home/vcap/suid', dst_path: dst });
    const sh = await stat(join(dst, 'suid', 'sh'));
    expect(sh.mode).toBe(0o100755);
    expect([sh.uid, sh.gid]).toEqual([0, 0]);
    expect((await stat(join(dst, 'suid', 'sgid-dir'))).mode).toBe(0o40775);
    // Plain permissions are kept exactly (the original's "preserves file permissions").
    expect((await stat(join(dst, 'suid', 'plain', 'run'))).mode).toBe(0o100755);
    expect(await entries(dst)).toEqual(['suid']);
  });

  it('device nodes and FIFOs a privileged job made are not created on the host; the rest is copied', async () => {
    const made = await d.run(client, handle, [
      'mkdir -p /home/vcap/devs',
      'mknod -m 666 /home/vcap/devs/zero c 1 5',
      'mkfifo -m 666 /home/vcap/devs/fifo',
      'echo ok > /home/vcap/devs/ok.txt',
      'chmod 755 /home/vcap/devs',
      'ls /home/vcap/devs | sort | tr "\\n" " "',
    ].join('\n'), true);
    expect(made.exit_status).toBe(0);
    expect(made.stdout.trim()).toBe('fifo ok.txt zero');
    const dst = join(work, 'devs-real');
    await client.copyOut({ handle, src_path: '/home/vcap/devs', dst_path: dst });
    expect(await entries(join(dst, 'devs'))).toEqual(['ok.txt']);
    expect(await readFile(join(dst, 'devs', 'ok.txt'), 'utf8')).toBe('ok\n');
  });
});

describe('copy_out when the container sends its own archive (a planted tar)', () => {
  beforeAll(plantTar);
  afterAll(async () => {
    await d.run(client, handle, 'rm -f /usr/local/sbin/tar', true);
  });

  it('a block device of the host disk and a FIFO in the stream are skipped', async () => {
    const dst = join(work, 'devs-crafted');
    await client.copyOut({ handle, src_path: '/x/dev', dst_path: dst });
    expect(await entries(dst)).toEqual(['ok.txt']);
  });

  it('a setuid-root file in the stream comes out as a plain root file', async () => {
    const dst = join(work, 'suid-crafted');
    await client.copyOut({ handle, src_path: '/x/suid', dst_path: dst });
    expect((await stat(join(dst, 'rootsh'))).mode).toBe(0o100755);
    expect((await stat(join(dst, 'sgid-dir'))).mode).toBe(0o40775);
  });

  it('two copies into one destination never write through the symlink the first one left', async () => {
    const dst = join(work, 'twice');
    await client.copyOut({ handle, src_path: '/x/one', dst_path: dst });
    expect(await readlink(join(dst, 'link'))).toBe(victim); // symlinks are kept as links
    await client.copyOut({ handle, src_path: '/x/two', dst_path: dst });
    expect(await entries(victim)).toEqual([]);
    // The folder the second copy brought replaced the link.
    expect((await lstat(join(dst, 'link'))).isDirectory()).toBe(true);
    expect(await readFile(join(dst, 'link', 'pwned'), 'utf8')).toBe('written through\n');
    expect(await entries(dst)).toEqual(['link']);
  });

  it('a copy whose destination goes through a symlink is refused', async () => {
    const dst = join(work, 'twice', 'link-again', 'sub');
    await symlink(victim, join(work, 'twice', 'link-again'));
    await expect(client.copyOut({ handle, src_path: '/x/one', dst_path: dst })).rejects.toThrow(/link-again is a symbolic link/);
    expect(await entries(victim)).toEqual([]);
  });

  it('hard links in the stream become files of their own', async () => {
    const dst = join(work, 'hard');
    await client.copyOut({ handle, src_path: '/x/hard', dst_path: dst });
    const [f, h] = await Promise.all([stat(join(dst, 'f')), stat(join(dst, 'h'))]);
    expect([f.nlink, h.nlink]).toEqual([1, 1]);
    expect(f.ino).not.toBe(h.ino);
    expect(await readFile(join(dst, 'h'), 'utf8')).toBe('one inode\n');
  });

  it('a stream that is not an archive fails the copy and leaves no staging folder behind', async () => {
    const dst = join(work, 'garbage');
    await mkdir(dst);
    await expect(client.copyOut({ handle, src_path: '/x/garbage', dst_path: dst })).rejects.toThrow(/copy_out.*does not look like a tar archive/);
    expect(await entries(dst)).toEqual([]);
  });
});

describe('copy_out with owner', () => {
  it('chowns dst itself (here made by root beforehand) and everything below it', async () => {
    const dst = join(work, 'owned');
    await mkdir(dst);
    await writeFile(join(dst, 'before'), 'was here\n');
    await client.copyOut({ handle, src_path: '/home/vcap/suid', dst_path: dst, owner: 'nobody:nogroup' });
    for (const p of [dst, join(dst, 'before'), join(dst, 'suid'), join(dst, 'suid', 'sh'), join(dst, 'suid', 'plain', 'run')]) {
      const st = await lstat(p);
      expect([p, st.uid, st.gid]).toEqual([p, 65534, 65534]);
    }
    expect((await stat(join(dst, 'suid', 'sh'))).mode).toBe(0o100755);
  });
});

describe('copy_in reads the host path as given', () => {
  it('a name that looks like a tar option is copied as a name, never read as an option', async () => {
    const name = `--index-file=warden-h1-pwned-${process.pid}`;
    const src = join(work, 'in', name);
    await mkdir(src, { recursive: true });
    await writeFile(join(src, 'data'), 'named like an option\n');
    const daemonCwd = await readlink(`/proc/${d.daemon.pid}/cwd`);
    await client.copyIn({ handle, src_path: src, dst_path: '/home/vcap/idx' });
    const r = await d.run(client, handle, `cat "/home/vcap/idx/${name}/data"`);
    expect(r.stdout).toBe('named like an option\n');
    expect(await lstat(join(daemonCwd, `warden-h1-pwned-${process.pid}`)).catch((e: NodeJS.ErrnoException) => e.code)).toBe('ENOENT');
  });

  it('a source that goes through a symlink is refused', async () => {
    await mkdir(join(work, 'real-src'));
    await writeFile(join(work, 'real-src', 'secret'), 'secret\n');
    await symlink(join(work, 'real-src'), join(work, 'src-link'));
    await expect(client.copyIn({ handle, src_path: `${join(work, 'src-link')}/`, dst_path: '/home/vcap/redirected' })).rejects.toThrow(/src-link is a symbolic link/);
    await expect(client.copyIn({ handle, src_path: join(work, 'src-link', 'secret'), dst_path: '/home/vcap/redirected' })).rejects.toThrow(/src-link is a symbolic link/);
    const r = await d.run(client, handle, 'ls -A /home/vcap/redirected 2>/dev/null | wc -l');
    expect(r.stdout.trim()).toBe('0');
  });
});
