// unpackUntrusted on its own: how what comes merges with what is in the destination,
// and that a failed copy leaves nothing behind and never leaves its source blocked.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { chown, lstat, mkdir, mkdtemp, readFile, readdir, readlink, rm, stat, symlink, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { execa } from 'execa';
import { numericOwner, unpackUntrusted } from '../../src/host/untrusted-unpack.ts';

let work: string;
const UID = 65534;

beforeAll(async () => {
  work = await mkdtemp(join(tmpdir(), 'warden-unpack-'));
});

afterAll(async () => {
  await rm(work, { recursive: true, force: true });
});

/** A tar of the given tree (paths → content; a trailing '/' makes a folder). */
async function archive(name: string, tree: Record<string, string>): Promise<string> {
  const dir = join(work, 'trees', name);
  for (const [p, content] of Object.entries(tree)) {
    if (p.endsWith('/')) await mkdir(join(dir, p), { recursive: true });
    else {
      await mkdir(join(dir, p, '..'), { recursive: true });
      await writeFile(join(dir, p), content);
    }
  }
  const file = join(work, `${name}.tar`);
  await execa('tar', ['-c', '-f', file, '-C', dir, '.']);
  return file;
}

const cat = (file: string) => ({ file: 'cat', args: [file] });
/** No process runs with this exact command line any more. */
async function gone(cmdline: string): Promise<boolean> {
  const r = await execa('pgrep', ['-f', '-x', cmdline], { reject: false });
  return r.exitCode === 1;
}
const opts = (dst: string, more: Record<string, unknown> = {}) => ({ context: 'test copy', dst, uid: UID, timeoutMs: 30_000, ...more });

describe('unpackUntrusted', () => {
  it('merges into the destination: folders merge, other entries replace, symlinks there are replaced and not followed', async () => {
    const dst = join(work, 'merge');
    const victim = join(work, 'victim.txt');
    await writeFile(victim, 'untouched\n');
    await mkdir(join(dst, 'c'), { recursive: true });
    await writeFile(join(dst, 'a'), 'old file\n');
    await symlink(victim, join(dst, 'b'));
    await symlink(join(work), join(dst, 'd'));
    await writeFile(join(dst, 'c', 'old'), 'old\n');
    const tar = await archive('merge', { 'a/x': 'x\n', b: 'new b\n', 'c/new': 'new\n', 'd/y': 'y\n' });
    await unpackUntrusted(cat(tar), opts(dst));
    expect((await lstat(join(dst, 'a'))).isDirectory()).toBe(true);
    expect(await readFile(join(dst, 'b'), 'utf8')).toBe('new b\n');
    expect((await lstat(join(dst, 'b'))).isFile()).toBe(true);
    expect(await readFile(victim, 'utf8')).toBe('untouched\n');
    expect((await readdir(join(dst, 'c'))).sort()).toEqual(['new', 'old']);
    expect((await lstat(join(dst, 'd'))).isDirectory()).toBe(true);
    expect(await lstat(join(work, 'y')).catch((e: NodeJS.ErrnoException) => e.code)).toBe('ENOENT');
    expect((await readdir(dst)).sort()).toEqual(['a', 'b', 'c', 'd']);
  });

  it('gives every entry the owner (root by default), links themselves, never what they point at', async () => {
    // As root (the suite runs as root). A host file the archive's symlink points at: its owner must stay.
    const target = join(work, 'owned-target.txt');
    await writeFile(target, 'host\n');
    await chown(target, 4242, 4242);
    const tree = join(work, 'trees', 'owners');
    await mkdir(join(tree, 'dir'), { recursive: true });
    await writeFile(join(tree, 'dir', 'file'), 'f\n');
    await symlink(target, join(tree, 'dir', 'link'));
    const tar = join(work, 'owners.tar');
    await execa('tar', ['-c', '-f', tar, '-C', tree, '.']);
    const owners = async (dst: string) =>
      Promise.all(['dir', 'dir/file', 'dir/link'].map(async (p) => {
        const st = await lstat(join(dst, p));
        return `${p} ${st.uid}:${st.gid}`;
      }));

    const byDefault = join(work, 'owners-default');
    await unpackUntrusted(cat(tar), opts(byDefault));
    // The unprivileged tar made them as uid 65534; root gets them, as the original's rsync left them.
    expect(await owners(byDefault)).toEqual(['dir 0:0', 'dir/file 0:0', 'dir/link 0:0']);

    const numeric = join(work, 'owners-numeric');
    await unpackUntrusted(cat(tar), opts(numeric, { owner: '1234:4321' }));
    expect(await owners(numeric)).toEqual(['dir 1234:4321', 'dir/file 1234:4321', 'dir/link 1234:4321']);
    // dst itself too, as the original's chown -R of dst_path.
    expect((await stat(numeric)).uid).toBe(1234);

    const named = join(work, 'owners-named');
    await unpackUntrusted(cat(tar), opts(named, { owner: 'nobody' }));
    expect((await owners(named)).map((l) => l.split(' ')[1].split(':')[0])).toEqual(['65534', '65534', '65534']);

    const st = await stat(target);
    expect(`${st.uid}:${st.gid}`).toBe('4242:4242');
    expect(await readFile(target, 'utf8')).toBe('host\n');
  });

  it('reads numeric owners as chown does, and leaves names to chown', () => {
    expect(numericOwner('0:0')).toEqual({ uid: 0, gid: 0 });
    expect(numericOwner('1234')).toEqual({ uid: 1234, gid: -1 });
    expect(numericOwner('1234:')).toBeUndefined();
    expect(numericOwner('nobody:nogroup')).toBeUndefined();
    expect(numericOwner('4294967295')).toBeUndefined();
    expect(numericOwner('-1:0')).toBeUndefined();
  });

  it('refuses to replace a folder with a file, and removes its staging folder', async () => {
    const dst = join(work, 'dir-kept');
    await mkdir(join(dst, 'f', 'inside'), { recursive: true });
    const tar = await archive('file-over-dir', { f: 'file\n' });
    await expect(unpackUntrusted(cat(tar), opts(dst))).rejects.toThrow(/test copy: cannot replace the folder .*\/f with a file/);
    expect(await readdir(dst)).toEqual(['f']);
  });

  it('places the one entry under another name with `as`', async () => {
    const dst = join(work, 'renamed');
    const tar = await archive('single', { 'one.txt': 'one\n' });
    await unpackUntrusted(cat(tar), opts(dst, { as: 'other.txt' }));
    expect(await readdir(dst)).toEqual(['other.txt']);
    expect(await readFile(join(dst, 'other.txt'), 'utf8')).toBe('one\n');
  });

  it('a destination through a symlink fails at once, before the source is started', async () => {
    await mkdir(join(work, 'real'));
    await symlink(join(work, 'real'), join(work, 'via-link'));
    const marker = join(work, 'source-started');
    const source = { file: 'sh', args: ['-c', 'touch "$1"; exec yes', 'src', marker] };
    await expect(unpackUntrusted(source, opts(join(work, 'via-link', 'x')))).rejects.toThrow(/via-link is a symbolic link/);
    expect(await lstat(marker).catch((e: NodeJS.ErrnoException) => e.code)).toBe('ENOENT');
    expect(await readdir(join(work, 'real'))).toEqual([]);
    expect(await readlink(join(work, 'via-link'))).toBe(join(work, 'real'));
  });

  it('a source that goes on writing after the archive is stopped and the copy fails, leaving nothing', async () => {
    const dst = join(work, 'endless-tail');
    const tar = await archive('tail', { 'f.txt': 'f\n' });
    const tag = `warden-unpack-tail-${process.pid}`;
    const source = { file: 'bash', args: ['-c', 'cat "$1"; exec yes "$2"', 'tail', tar, tag] };
    await expect(unpackUntrusted(source, opts(dst))).rejects.toThrow(/went on writing after the end of the archive/);
    expect(await gone(`yes ${tag}`)).toBe(true);
    expect(await readdir(dst)).toEqual([]);
  }, 30_000);

  it('an endless stream that is no tar (tar skips on, looking for a header) ends at the timeout, both ends killed', async () => {
    const dst = join(work, 'not-a-tar');
    const tag = `warden-unpack-garbage-${process.pid}`;
    await expect(unpackUntrusted({ file: 'yes', args: [tag] }, opts(dst, { timeoutMs: 2_000 }))).rejects.toThrow(
      /test copy: destination: timed out after 2000 ms/,
    );
    expect(await gone(`yes ${tag}`)).toBe(true);
    expect(await readdir(dst)).toEqual([]);
  }, 30_000);
});
