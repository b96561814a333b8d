// renumberOwner (src/backends/linux/rootfs/renumber.ts): at create, vcap's files
// from the base rootfs go to the container's pooled uid, as `chown -R -h --from`
// did: only what the old uid owns, owner and group both, symlinks themselves and
// never what they point to, and no walk through a symlinked directory.
import { afterEach, describe, expect, it } from 'vitest';
import { lchown, lstat, mkdir, mkdtemp, rm, symlink, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { renumberOwner } from '../../src/backends/linux/rootfs/renumber.ts';

const OLD = 1234;
const NEW = 23456;
const dirs: string[] = [];
afterEach(async () => {
  for (const d of dirs.splice(0)) await rm(d, { recursive: true, force: true });
});

async function owner(path: string): Promise<[number, number]> {
  const st = await lstat(path);
  return [st.uid, st.gid];
}

describe('renumberOwner', () => {
  it('gives what the old uid owns to the new one, and leaves everything else', async () => {
    const base = await mkdtemp(join(tmpdir(), 'renumber-'));
    dirs.push(base);
    const home = join(base, 'home');
    const outside = join(base, 'outside');
    await mkdir(join(home, 'deep', 'er'), { recursive: true });
    await mkdir(outside);
    await writeFile(join(home, '.bashrc'), 'x');
    await writeFile(join(home, 'deep', 'er', 'file'), 'x');
    await writeFile(join(home, 'roots'), 'x');
    await writeFile(join(outside, 'secret'), 'x');
    await symlink(join(outside, 'secret'), join(home, 'link-to-file'));
    await symlink(outside, join(home, 'link-to-dir'));
    for (const p of [home, join(home, '.bashrc'), join(home, 'deep'), join(home, 'deep', 'er'), join(home, 'deep', 'er', 'file'),
      join(home, 'link-to-file'), join(home, 'link-to-dir'), outside, join(outside, 'secret')]) {
      await lchown(p, OLD, 50);
    }
    // Owned by root: not the old uid's.
    await lchown(join(home, 'roots'), 0, 0);

    expect(await renumberOwner(home, OLD, NEW)).toBe(7);
    for (const p of [home, join(home, '.bashrc'), join(home, 'deep'), join(home, 'deep', 'er'), join(home, 'deep', 'er', 'file'),
      join(home, 'link-to-file'), join(home, 'link-to-dir')]) {
      expect(await owner(p), p).toEqual([NEW, NEW]);
    }
    expect(await owner(join(home, 'roots'))).toEqual([0, 0]);
    // What the links point to is not the container's: untouched.
    expect(await owner(outside)).toEqual([OLD, 50]);
    expect(await owner(join(outside, 'secret'))).toEqual([OLD, 50]);
  });

  it('changes nothing when nothing has the old uid, and fails on a missing folder', async () => {
    const base = await mkdtemp(join(tmpdir(), 'renumber-'));
    dirs.push(base);
    await writeFile(join(base, 'f'), 'x');
    await lchown(join(base, 'f'), 0, 0);
    expect(await renumberOwner(base, OLD, NEW)).toBe(0);
    await expect(renumberOwner(join(base, 'missing'), OLD, NEW)).rejects.toThrow(/ENOENT/);
  });
});
