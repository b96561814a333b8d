// The /tmp/warden/cgroup view (src/backends/linux/cgroups/links.ts), in a temp
// folder: one link per v1 controller to the container's group, left alone when
// already right, replaced when wrong, and never made over something that is not
// a link; the same whether the container is new (`fresh`: the link is tried first)
// or recovered (looked at first).
import { lstatSync, mkdtempSync, readlinkSync, readdirSync, rmSync, symlinkSync, writeFileSync, mkdirSync, existsSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { linkContainerCgroups } from '../../src/backends/linux/cgroups/links.ts';

const root = mkdtempSync(join(tmpdir(), 'warden-links-'));
afterAll(() => rmSync(root, { recursive: true, force: true }));

const paths = (id: string) => ({
  memory: `/sys/fs/cgroup/memory/warden-x/instance-${id}`,
  cpu: `/sys/fs/cgroup/cpu,cpuacct/warden-x/instance-${id}`,
  unified: `/sys/fs/cgroup/unified/warden-x/instance-${id}`,
  'name=systemd': `/sys/fs/cgroup/systemd/warden-x/instance-${id}`,
});

describe.each([{ fresh: false }, { fresh: true }])('cgroup links, %o', (opts) => {
  const id = (base: string) => `${base}${opts.fresh ? '-fresh' : ''}`;
  it('links each v1 controller\'s group, and leaves right links as they are', async () => {
    const a = id('aaa');
    await linkContainerCgroups(root, a, paths(a), opts);
    expect(readdirSync(root).sort()).toEqual(['cpu', 'memory']);
    expect(readlinkSync(join(root, `memory/instance-${a}`))).toBe(paths(a).memory);
    expect(readlinkSync(join(root, `cpu/instance-${a}`))).toBe(paths(a).cpu);
    const inode = lstatSync(join(root, `memory/instance-${a}`)).ino;
    await linkContainerCgroups(root, a, paths(a), opts);
    expect(lstatSync(join(root, `memory/instance-${a}`)).ino).toBe(inode);
  });

  it('replaces a link to somewhere else, and makes a controller folder again when it went', async () => {
    const b = id('bbb');
    symlinkSync('/elsewhere', join(root, `memory/instance-${b}`));
    rmSync(join(root, 'cpu'), { recursive: true });
    await linkContainerCgroups(root, b, paths(b), opts);
    expect(readlinkSync(join(root, `memory/instance-${b}`))).toBe(paths(b).memory);
    expect(readlinkSync(join(root, `cpu/instance-${b}`))).toBe(paths(b).cpu);
  });

  it('refuses to replace what is not a link', async () => {
    const c = id('ccc');
    mkdirSync(join(root, 'memory'), { recursive: true });
    writeFileSync(join(root, `memory/instance-${c}`), 'planted');
    await expect(linkContainerCgroups(root, c, paths(c), opts)).rejects.toThrow(new RegExp(`instance-${c} exists and is not a symlink`));
    expect(existsSync(join(root, `memory/instance-${c}`))).toBe(true);
    expect(lstatSync(join(root, `memory/instance-${c}`)).isFile()).toBe(true);
  });
});
