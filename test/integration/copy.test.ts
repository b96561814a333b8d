// CopyIn and CopyOut through the real daemon, insecure backend: the container's root is
// <container_path>/root (the original's layout), the checks of the original's file
// transfer examples, and the host-side guarantees every backend gives (no setuid bits
// or special files come out, no symlink redirects a copy, owner covers dst itself).
import { chmod, link, lstat, mkdir, mkdtemp, readFile, readdir, readlink, rename, rm, stat, symlink, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { WardenClient } from '../../src/client/client.ts';
import { TestDaemon } from '../support/daemon.ts';

let d: TestDaemon;
let c: WardenClient;
let work: string;
let handle: string;
let root: string; // the container's root on the host
let sentinelDir: string;

const text = (b: unknown) => Buffer.from((b as Uint8Array) ?? []).toString('utf8');

async function run(script: string): Promise<{ status: number; stdout: string }> {
  const r = await c.run({ handle, script });
  return { status: r.exit_status ?? -1, stdout: text(r.stdout) };
}

beforeAll(async () => {
  d = await TestDaemon.start({});
  c = await d.client();
  work = await mkdtemp(join(tmpdir(), 'warden-copy-'));
  ({ handle } = await c.create({}));
  root = join((await c.info({ handle })).container_path!, 'root');
  // sentinel_root/: sentinel (0755), a symlink to it and a hard link of it.
  sentinelDir = join(work, 'sentinel_root');
  await mkdir(sentinelDir);
  await writeFile(join(sentinelDir, 'sentinel'), 'testing123');
  await chmod(join(sentinelDir, 'sentinel'), 0o755);
  await symlink(join(sentinelDir, 'sentinel'), join(sentinelDir, 'sentinel_sym_link'));
  await link(join(sentinelDir, 'sentinel'), join(sentinelDir, 'sentinel_hard_link'));
});

afterAll(async () => {
  await c?.destroy({ handle }).catch(() => undefined);
  await c?.close();
  await d?.cleanup();
  if (work) await rm(work, { recursive: true, force: true });
});

describe('the container root', () => {
  it('is <container_path>/root: jobs start there and copy paths resolve there', async () => {
    const r = await run('pwd');
    expect(r.stdout.trim()).toBe(root);
    await c.copyIn({ handle, src_path: sentinelDir, dst_path: '/tmp' });
    expect(await readFile(join(root, 'tmp', 'sentinel_root', 'sentinel'), 'utf8')).toBe('testing123');
  });
});

describe('a container from an older build (root at tmp/rootfs)', () => {
  it('gets its root moved to root/ when the next daemon recovers it', async () => {
    const d1 = await TestDaemon.start({});
    let d2: TestDaemon | undefined;
    try {
      const c1 = await d1.client();
      const { handle: h } = await c1.create({});
      const path = (await c1.info({ handle: h })).container_path!;
      await c1.close();
      expect(await d1.drain()).toBe(0);
      // What an older build left: the root at tmp/rootfs, with a file in it.
      await mkdir(join(path, 'tmp'), { recursive: true });
      await rename(join(path, 'root'), join(path, 'tmp', 'rootfs'));
      await writeFile(join(path, 'tmp', 'rootfs', 'kept'), 'kept\n');
      d2 = await TestDaemon.start({ dir: d1.dir });
      const c2 = await d2.client();
      const r = await c2.run({ handle: h, script: 'pwd; cat kept' });
      expect(text(r.stdout)).toBe(`${join(path, 'root')}\nkept\n`);
      await c2.close();
    } finally {
      await (d2 ?? d1).cleanup();
    }
  });
});

describe('file transfer (the original examples)', () => {
  it('copies files in', async () => {
    await c.copyIn({ handle, src_path: sentinelDir, dst_path: '/in' });
    const r = await run('cat in/sentinel_root/sentinel');
    expect(r).toEqual({ status: 0, stdout: 'testing123' });
  });

  it('copies files out', async () => {
    expect((await run('mkdir -p out-src/sentinel_root && printf testing123 > out-src/sentinel_root/sentinel')).status).toBe(0);
    const dst = join(work, 'out');
    await c.copyOut({ handle, src_path: '/out-src/sentinel_root', dst_path: dst });
    expect(await readFile(join(dst, 'sentinel_root', 'sentinel'), 'utf8')).toBe('testing123');
  });

  it('keeps file permissions both ways', async () => {
    await c.copyIn({ handle, src_path: sentinelDir, dst_path: '/perm' });
    expect((await run('stat -c %a perm/sentinel_root/sentinel')).stdout.trim()).toBe('755');
    const dst = join(work, 'perm-out');
    await c.copyOut({ handle, src_path: '/perm/sentinel_root', dst_path: dst });
    expect((await stat(join(dst, 'sentinel_root', 'sentinel'))).mode).toBe(0o100755);
  });

  it('keeps symlinks as symlinks', async () => {
    await c.copyIn({ handle, src_path: sentinelDir, dst_path: '/links' });
    expect((await run('stat -c %F links/sentinel_root/sentinel_sym_link')).stdout.trim()).toBe('symbolic link');
    expect(await readlink(join(root, 'links', 'sentinel_root', 'sentinel_sym_link'))).toBe(join(sentinelDir, 'sentinel'));
  });

  it('materialises hard links', async () => {
    await c.copyIn({ handle, src_path: sentinelDir, dst_path: '/hard' });
    const dir = join(root, 'hard', 'sentinel_root');
    const [a, b] = await Promise.all([stat(join(dir, 'sentinel')), stat(join(dir, 'sentinel_hard_link'))]);
    expect(a.ino).not.toBe(b.ino);
    expect(await readFile(join(dir, 'sentinel_hard_link'), 'utf8')).toBe('testing123');
  });
});

describe('what comes out of the container', () => {
  it('no setuid/setgid bits and no FIFOs; owned by the daemon (root)', async () => {
    const made = await run([
      'mkdir -p bits/sgid && printf x > bits/suid && chmod 4755 bits/suid && chmod 2775 bits/sgid',
      'mkfifo bits/fifo && stat -c %a bits/suid bits/sgid',
    ].join('\n'));
    expect(made.stdout.trim().split('\n')).toEqual(['4755', '2775']);
    const dst = join(work, 'bits');
    await c.copyOut({ handle, src_path: '/bits/', dst_path: dst });
    expect((await readdir(dst)).sort()).toEqual(['sgid', 'suid']);
    const suid = await stat(join(dst, 'suid'));
    expect(suid.mode).toBe(0o100755);
    expect(suid.uid).toBe(process.getuid!());
    expect((await stat(join(dst, 'sgid'))).mode).toBe(0o40775);
  });

  it('with owner, dst itself and everything below it are chowned, as the original did', async () => {
    const dst = join(work, 'owned');
    await mkdir(dst);
    await writeFile(join(dst, 'before'), 'x');
    await c.copyOut({ handle, src_path: '/out-src/sentinel_root', dst_path: dst, owner: 'nobody:nogroup' });
    for (const p of [dst, join(dst, 'before'), join(dst, 'sentinel_root'), join(dst, 'sentinel_root', 'sentinel')]) {
      const st = await lstat(p);
      expect([p, st.uid, st.gid]).toEqual([p, 65534, 65534]);
    }
  });

  it('a destination that goes through a symlink is refused', async () => {
    const victim = join(work, 'victim');
    await mkdir(victim);
    await symlink(victim, join(work, 'to-victim'));
    await expect(c.copyOut({ handle, src_path: '/out-src/sentinel_root', dst_path: join(work, 'to-victim', 'x') })).rejects.toThrow(/to-victim is a symbolic link/);
    expect(await readdir(victim)).toEqual([]);
  });
});

describe('what goes in', () => {
  it('a source that goes through a symlink is refused', async () => {
    await symlink(sentinelDir, join(work, 'to-sentinel'));
    await expect(c.copyIn({ handle, src_path: `${join(work, 'to-sentinel')}/`, dst_path: '/redirected' })).rejects.toThrow(/to-sentinel is a symbolic link/);
    expect(await lstat(join(root, 'redirected')).catch((e: NodeJS.ErrnoException) => e.code)).toBe('ENOENT');
  });

  it('a symlink a job left in the destination is replaced, never written through', async () => {
    const victim = join(work, 'victim-in');
    await mkdir(victim);
    expect((await run(`mkdir -p drop && ln -s ${victim} drop/sentinel_root`)).status).toBe(0);
    await c.copyIn({ handle, src_path: sentinelDir, dst_path: '/drop' });
    expect(await readdir(victim)).toEqual([]);
    expect((await lstat(join(root, 'drop', 'sentinel_root'))).isDirectory()).toBe(true);
    expect(await readFile(join(root, 'drop', 'sentinel_root', 'sentinel'), 'utf8')).toBe('testing123');
  });
});
