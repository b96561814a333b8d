// Pure parts behind the container's devices and cgroups: the rootfs's `fuse` group,
// the bundle's /dev/fuse, /dev/shm and resources, and how a worker finds the cgroup
// the daemon started in after it moved into its own.
import { describe, expect, it } from 'vitest';
import { withFuseGroup } from '../../src/backends/linux/rootfs/etc-files.ts';
import { buildConfig } from '../../src/backends/linux/bundle/spec.ts';
import { daemonGroupName, outsideDaemonGroup } from '../../src/backends/linux/cgroups/cgroups.ts';

describe('the fuse group', () => {
  it('keeps the rootfs\'s own fuse group', () => {
    const group = 'root:x:0:\nfuse:x:107:\nvcap:x:10001:\n';
    expect(withFuseGroup(group)).toEqual({ group, gid: 107 });
  });

  it('adds a system group with the first free gid from 100 on, as addgroup --system did', () => {
    expect(withFuseGroup('root:x:0:\nnogroup:x:65534:\n')).toEqual({ group: 'root:x:0:\nnogroup:x:65534:\nfuse:x:100:\n', gid: 100 });
    expect(withFuseGroup('root:x:0:\nusers:x:100:\nsys:x:101:\n').gid).toBe(102);
  });
});

describe('the bundle', () => {
  it('has /dev/fuse (10:229, 0666, root:fuse) allowed, /dev/shm without a size, and the given pids and cpu limits', async () => {
    const config = (await buildConfig({
      root: '/r', hostname: 'h', cgroupsPath: 'warden-x/instance-y', bindMounts: [], pidsLimit: 300, cpuShares: 512, fuseGid: 100,
    })) as { linux: { devices: unknown[]; resources: { devices: unknown[]; pids: unknown; cpu: unknown } }; mounts: Array<{ destination: string; options: string[] }> };
    expect(config.linux.devices).toEqual([{ path: '/dev/fuse', type: 'c', major: 10, minor: 229, fileMode: 0o666, uid: 0, gid: 100 }]);
    expect(config.linux.resources.devices).toContainEqual({ allow: true, type: 'c', major: 10, minor: 229, access: 'rwm' });
    expect(config.linux.resources.pids).toEqual({ limit: 300 });
    expect(config.linux.resources.cpu).toEqual({ shares: 512 });
    const shm = config.mounts.find((m) => m.destination === '/dev/shm')!;
    expect(shm.options.some((o) => o.startsWith('size='))).toBe(false);
  });
});

describe('the cgroup the daemon started in', () => {
  it('is the parent of the daemon\'s own group, and any other group itself', () => {
    const own = `/sys/fs/cgroup/cpu/system.slice/warden.service/${daemonGroupName('warden-0123abcd')}`;
    expect(outsideDaemonGroup(own)).toBe('/sys/fs/cgroup/cpu/system.slice/warden.service');
    expect(outsideDaemonGroup('/sys/fs/cgroup/cpu/system.slice/warden.service')).toBe('/sys/fs/cgroup/cpu/system.slice/warden.service');
    expect(outsideDaemonGroup('/sys/fs/cgroup/cpu/warden-0123abcd')).toBe('/sys/fs/cgroup/cpu/warden-0123abcd');
    expect(outsideDaemonGroup(`/${daemonGroupName('warden-test-ff00')}`)).toBe('/');
  });
});
