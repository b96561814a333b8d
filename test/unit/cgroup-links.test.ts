// The /tmp/warden/cgroup view (src/backends/linux/cgroups/links.ts), in a temp
// folder: one link per v1 controller to the container's group, left alone when
// already right, replaced when wrong, and never made over something that is not
// a link.
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

describe('cgroup links', () => {
  it('links each v1 controller\'s group, and leaves right links as they are', async () => {
    await linkContainerCgroups(root, 'aaa', paths('aaa'));
    expect(readdirSync(root).sort()).toEqual(['cpu', 'memory']);
    expect(readlinkSync(join(root, 'memory/instance-aaa'))).toBe(paths('aaa').memory);
    expect(readlinkSync(join(root, 'cpu/instance-aaa'))).toBe(paths('aaa').cpu);
    const inode = lstatSync(join(root, 'memory/instance-aaa')).ino;
    await linkContainerCgroups(root, 'aaa', paths('aaa'));
    expect(lstatSync(join(root, 'memory/instance-aaa')).ino).toBe(inode);
  });

  it('replaces a link to somewhere else, and makes a controller folder again when it went', async () => {
    symlinkSync('/elsewhere', join(root, 'memory/instance-bbb'));
    rmSync(join(root, 'cpu'), { recursive: true });
    await linkContainerCgroups(root, 'bbb', paths('bbb'));
    expect(readlinkSync(join(root, 'memory/instance-bbb'))).toBe(paths('bbb').memory);
    expect(readlinkSync(join(root, 'cpu/instance-bbb'))).toBe(paths('bbb').cpu);
  });

  it('refuses to replace what is not a link', async () => {
    mkdirSync(join(root, 'memory'), { recursive: true });
    writeFileSync(join(root, 'memory/instance-ccc'), 'planted');
    await expect(linkContainerCgroups(root, 'ccc', paths('ccc'))).rejects.toThrow(/instance-ccc exists and is not a symlink/);
    expect(existsSync(join(root, 'memory/instance-ccc'))).toBe(true);
    expect(lstatSync(join(root, 'memory/instance-ccc')).isFile()).toBe(true);
  });
});
