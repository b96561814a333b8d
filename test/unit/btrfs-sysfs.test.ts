// The depot's btrfs facts without a command: its UUID from mountinfo and sysfs
// (findmnt only when they do not tell), whether quotas are on, the containers'
// qgroup limit. Against copies of /proc/self/mountinfo and /sys/fs/btrfs in a
// temp folder, and the fake host for findmnt. No root; the real btrfs is
// test/linux/host-setup-again.test.ts.
import { mkdir, mkdtemp, rm, symlink, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  btrfsUuidFromSysfs,
  mountContaining,
  parseMounts,
  quotaEnabled,
  referencedLimit,
  type BtrfsSysfsPaths,
} from '../../src/backends/linux/disk/btrfs-sysfs.ts';
import { filesystemId } from '../../src/backends/linux/disk/subvolume.ts';
import { useFakeHostRunner } from '../support/fake-host-runner.ts';

const UUID = 'fb71b3f3-fa95-4cab-a80a-345b776ae509';
const OTHER = 'e3e74253-1a0f-4ed6-8e5d-81d6fcddc346';

let tmp: string;
let where: BtrfsSysfsPaths;

beforeAll(async () => {
  tmp = await mkdtemp(join(tmpdir(), 'warden-btrfs-sysfs-'));
  where = { mountinfo: join(tmp, 'mountinfo'), btrfs: join(tmp, 'sys-fs-btrfs') };
  // Two filesystems: the depot's on loop3, another on dm-0 (reached as /dev/mapper/vg-x).
  await mkdir(join(where.btrfs, UUID, 'devices', 'loop3'), { recursive: true });
  await mkdir(join(where.btrfs, OTHER, 'devices', 'dm-0'), { recursive: true });
  await mkdir(join(where.btrfs, 'features'), { recursive: true });
  await mkdir(join(tmp, 'dev', 'mapper'), { recursive: true });
  await writeFile(join(tmp, 'dev', 'loop3'), '');
  await writeFile(join(tmp, 'dev', 'dm-0'), '');
  await symlink('../dm-0', join(tmp, 'dev', 'mapper', 'vg-x'));
  await mkdir(join(tmp, 'srv', 'my depot', 'c1'), { recursive: true });
  await mkdir(join(tmp, 'srv', 'other'), { recursive: true });
  await symlink(join(tmp, 'srv', 'my depot'), join(tmp, 'depot-link'));
});
afterAll(async () => {
  await rm(tmp, { recursive: true, force: true });
});

function mountinfoLine(id: number, point: string, fstype: string, source: string): string {
  const esc = (s: string) => s.replaceAll(' ', '\\040');
  return `${id} 1 0:${id} / ${esc(point)} rw,noatime shared:${id} - ${fstype} ${esc(source)} rw`;
}

describe('mountinfo', () => {
  const text = [
    mountinfoLine(20, '/', 'ext4', '/dev/vda1'),
    mountinfoLine(21, '/srv', 'tmpfs', 'tmpfs'),
    mountinfoLine(22, '/srv/my depot', 'btrfs', '/dev/loop3'),
    mountinfoLine(23, '/srv/my depot', 'btrfs', '/dev/loop4'),
    mountinfoLine(24, '/srv/my', 'ext4', '/dev/vdb'),
    '',
  ].join('\n');

  it('reads the point, type and source of each mount, escapes undone', () => {
    expect(parseMounts(text)[2]).toEqual({ point: '/srv/my depot', fstype: 'btrfs', source: '/dev/loop3' });
    expect(parseMounts(text)).toHaveLength(5);
  });

  it('the mount holding a path: the longest point it is in, the one on top of equal points', () => {
    const mounts = parseMounts(text);
    expect(mountContaining(mounts, '/srv/my depot/c1/tmp')?.source).toBe('/dev/loop4');
    expect(mountContaining(mounts, '/srv/my depot')?.source).toBe('/dev/loop4');
    // A point that is a prefix of the name, not of the path: not it.
    expect(mountContaining(mounts, '/srv/mydepot')?.fstype).toBe('tmpfs');
    expect(mountContaining(mounts, '/etc')?.point).toBe('/');
  });
});

describe('the btrfs UUID from sysfs', () => {
  async function mounted(...lines: string[]): Promise<void> {
    await writeFile(where.mountinfo, `${lines.join('\n')}\n`);
  }

  it('the mount\'s device names the /sys/fs/btrfs directory; the path may be a symlink', async () => {
    await mounted(mountinfoLine(20, '/', 'ext4', '/dev/vda1'), mountinfoLine(22, join(tmp, 'srv', 'my depot'), 'btrfs', join(tmp, 'dev', 'loop3')));
    expect(await btrfsUuidFromSysfs(join(tmp, 'depot-link', 'c1'), where)).toBe(UUID);
  });

  it('a source that is a symlink (device mapper) is followed to its device', async () => {
    await mounted(mountinfoLine(20, '/', 'ext4', '/dev/vda1'), mountinfoLine(25, join(tmp, 'srv', 'other'), 'btrfs', join(tmp, 'dev', 'mapper', 'vg-x')));
    expect(await btrfsUuidFromSysfs(join(tmp, 'srv', 'other'), where)).toBe(OTHER);
  });

  it('undefined when they do not tell: not btrfs, a device no filesystem lists, a source that is no path', async () => {
    await mounted(mountinfoLine(20, '/', 'ext4', '/dev/vda1'));
    expect(await btrfsUuidFromSysfs(join(tmp, 'srv'), where)).toBeUndefined();
    await mounted(mountinfoLine(22, join(tmp, 'srv'), 'btrfs', join(tmp, 'dev', 'dm-0-gone')));
    expect(await btrfsUuidFromSysfs(join(tmp, 'srv'), where)).toBeUndefined();
    await mounted(mountinfoLine(22, join(tmp, 'srv'), 'btrfs', 'none'));
    expect(await btrfsUuidFromSysfs(join(tmp, 'srv'), where)).toBeUndefined();
  });
});

describe('quota and limit from sysfs', () => {
  const qgroups = () => join(where.btrfs, UUID, 'qgroups');

  it('quota is on while the qgroups directory is there', async () => {
    expect(await quotaEnabled(UUID, where)).toBe(false);
    await mkdir(qgroups(), { recursive: true });
    expect(await quotaEnabled(UUID, where)).toBe(true);
  });

  it('the referenced limit when its flag is set; none without the flag or without the qgroup', async () => {
    await mkdir(join(qgroups(), '1_1'), { recursive: true });
    await writeFile(join(qgroups(), '1_1', 'max_referenced'), '1020054733\n');
    await writeFile(join(qgroups(), '1_1', 'limit_flags'), '1\n');
    expect(await referencedLimit(UUID, '1/1', where)).toBe('1020054733');
    // An exclusive limit as well: flags 3.
    await writeFile(join(qgroups(), '1_1', 'limit_flags'), '3\n');
    expect(await referencedLimit(UUID, '1/1', where)).toBe('1020054733');
    // `btrfs qgroup limit none`: flag cleared, max 0.
    await writeFile(join(qgroups(), '1_1', 'limit_flags'), '0\n');
    await writeFile(join(qgroups(), '1_1', 'max_referenced'), '0\n');
    expect(await referencedLimit(UUID, '1/1', where)).toBeUndefined();
    expect(await referencedLimit(UUID, '1/2', where)).toBeUndefined();
  });
});

describe('filesystemId', () => {
  const host = useFakeHostRunner();

  it('falls back to findmnt where mountinfo and sysfs do not tell (here: /proc is no btrfs), and remembers the answer', async () => {
    host.on('findmnt', { stdout: `${UUID}\n` });
    expect(await filesystemId('/proc')).toBe(UUID);
    expect(await filesystemId('/proc')).toBe(UUID);
    expect(host.lines()).toEqual(['findmnt -n -o UUID -T /proc']);
    // fresh: looked at again.
    host.on('findmnt', { stdout: `${OTHER}\n` });
    expect(await filesystemId('/proc', { fresh: true })).toBe(OTHER);
    expect(host.lines()).toHaveLength(2);
  });

  it('a findmnt answer without a UUID: an error naming the path', async () => {
    host.on('findmnt', { stdout: '\n' });
    await expect(filesystemId('/proc/self', { fresh: true })).rejects.toThrow('cannot find the btrfs uuid of /proc/self in: ');
  });
});
