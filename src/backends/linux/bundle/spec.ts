// The OCI bundle's config.json for a container: namespaces, a reaping init as
// PID 1, a minimal /dev (with the original's /dev/fuse), masked and read-only
// /proc paths, a devices allow-list, the container-wide seccomp profile, no
// capabilities for the init, bind mounts from the create request and cgroup
// resources.
import { readFile } from '../../../host/thread-fs.ts';
import type { BindMount, U64 } from '../../../protocol/types.ts';

/** Capabilities a privileged (root) job gets: Docker's default set, no CAP_SYS_ADMIN. */
export const DEFAULT_ROOT_CAPS = [
  'CAP_CHOWN', 'CAP_DAC_OVERRIDE', 'CAP_FSETID', 'CAP_FOWNER', 'CAP_MKNOD', 'CAP_NET_RAW',
  'CAP_SETGID', 'CAP_SETUID', 'CAP_SETFCAP', 'CAP_SETPCAP', 'CAP_NET_BIND_SERVICE',
  'CAP_SYS_CHROOT', 'CAP_KILL', 'CAP_AUDIT_WRITE',
];

/** /dev/fuse, as the original's setup.sh made it: c 10:229, mode 0666, owner root, group fuse. */
export const FUSE_DEVICE = { major: 10, minor: 229, mode: 0o666 } as const;

export const PATH_ENV = 'PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin';

/**
 * PID 1: reaps every orphan and never exits on its own. bash's `wait` collects any
 * child with waitpid(-1), not only its own jobs, so orphans re-parented to the init
 * are reaped as they die. Its one helper (the sleep) lives in the init's session,
 * which no job can join: stop and killJob tell the init's processes apart by session.
 */
export const INIT_ARGS = [
  '/bin/bash', '-c',
  'trap "" TERM INT HUP QUIT USR1 USR2; while :; do sleep 86400 & wait $!; done',
];

export interface BundleSpec {
  root: string;
  hostname: string;
  cgroupsPath: string;
  bindMounts: BindMount[];
  memoryLimit?: U64;
  cpuShares?: U64;
  /** Most pids the container may hold (server.container_pids_limit): a fork bomb stays inside. */
  pidsLimit: number;
  /** Gid of the rootfs's `fuse` group, owner group of /dev/fuse (see rootfs/etc-files.ts). */
  fuseGid: number;
}

let seccompCache: Promise<unknown> | undefined;

/** The seccomp profile stored beside this module (src/backends/linux/seccomp.json). */
export function seccompProfile(): Promise<unknown> {
  seccompCache ??= readFile(new URL('../seccomp.json', import.meta.url), 'utf8').then((t) => {
    const { _comment, ...profile } = JSON.parse(t) as Record<string, unknown>;
    void _comment;
    return profile;
  });
  return seccompCache;
}

const noCaps = { bounding: [], effective: [], permitted: [], inheritable: [], ambient: [] };

export async function buildConfig(s: BundleSpec): Promise<Record<string, unknown>> {
  const resources: Record<string, unknown> = {
    devices: [
      { allow: false, access: 'rwm' },
      ...[[1, 3], [1, 5], [1, 7], [1, 8], [1, 9], [5, 0], [5, 2]].map(([major, minor]) => ({
        allow: true, type: 'c', major, minor, access: 'rwm',
      })),
      { allow: true, type: 'c', major: 136, access: 'rwm' }, // /dev/pts/*
      { allow: true, type: 'c', major: FUSE_DEVICE.major, minor: FUSE_DEVICE.minor, access: 'rwm' }, // /dev/fuse
    ],
    pids: { limit: s.pidsLimit },
  };
  if (s.memoryLimit) resources.memory = { limit: s.memoryLimit, swap: s.memoryLimit };
  if (s.cpuShares) resources.cpu = { shares: s.cpuShares };

  return {
    ociVersion: '1.0.2',
    process: {
      terminal: false,
      user: { uid: 0, gid: 0 },
      args: INIT_ARGS,
      env: [PATH_ENV],
      cwd: '/',
      capabilities: noCaps,
      noNewPrivileges: true,
    },
    root: { path: s.root, readonly: false },
    hostname: s.hostname,
    mounts: [
      { destination: '/proc', type: 'proc', source: 'proc', options: ['nosuid', 'noexec', 'nodev'] },
      { destination: '/dev', type: 'tmpfs', source: 'tmpfs', options: ['nosuid', 'strictatime', 'mode=755', 'size=65536k'] },
      { destination: '/dev/pts', type: 'devpts', source: 'devpts', options: ['nosuid', 'noexec', 'newinstance', 'ptmxmode=0666', 'mode=0620', 'gid=5'] },
      // No size: as the original's, /dev/shm is bounded by the container's memory
      // limit alone (its pages are charged to the container's memory cgroup).
      { destination: '/dev/shm', type: 'tmpfs', source: 'shm', options: ['nosuid', 'noexec', 'nodev', 'mode=1777'] },
      { destination: '/dev/mqueue', type: 'mqueue', source: 'mqueue', options: ['nosuid', 'noexec', 'nodev'] },
      { destination: '/sys', type: 'sysfs', source: 'sysfs', options: ['nosuid', 'noexec', 'nodev', 'ro'] },
      ...s.bindMounts.map((b) => ({
        destination: b.dst_path,
        type: 'bind',
        source: b.src_path,
        options: ['rbind', b.mode === 1 ? 'rw' : 'ro', 'nosuid', 'nodev'],
      })),
    ],
    linux: {
      namespaces: [{ type: 'pid' }, { type: 'network' }, { type: 'ipc' }, { type: 'uts' }, { type: 'mount' }],
      devices: [{
        path: '/dev/fuse', type: 'c', major: FUSE_DEVICE.major, minor: FUSE_DEVICE.minor,
        fileMode: FUSE_DEVICE.mode, uid: 0, gid: s.fuseGid,
      }],
      cgroupsPath: s.cgroupsPath,
      resources,
      // Unprivileged ping (ICMP echo sockets, no CAP_NET_RAW): jobs run as vcap with
      // no_new_privs, so a setuid or file-capability ping cannot raise privileges.
      sysctl: { 'net.ipv4.ping_group_range': '0 2147483647' },
      seccomp: await seccompProfile(),
      maskedPaths: [
        '/proc/acpi', '/proc/asound', '/proc/kcore', '/proc/keys', '/proc/latency_stats', '/proc/timer_list',
        '/proc/timer_stats', '/proc/sched_debug', '/proc/scsi', '/sys/firmware', '/sys/devices/virtual/powercap',
      ],
      readonlyPaths: ['/proc/bus', '/proc/fs', '/proc/irq', '/proc/sys', '/proc/sysrq-trigger'],
    },
  };
}
