// What every Linux task needs to know about the host, derived once from the
// WardenConfig on the main thread and passed (plain data) with each task.
import { createHash } from 'node:crypto';
import { dirname, join, resolve } from 'node:path';
import type { WardenConfig } from '../../config/types.ts';
import type { NetworkHostConfig } from './network/types.ts';

export interface LinuxHostSettings {
  /** OCI runtime binary (runc; crun on pure cgroup v2 hosts). */
  runtime: string;
  /** The runtime's state directory (`runc --root`); only our containers live there. */
  runtimeRoot: string;
  /** Name of the cgroup, under the daemon's own cgroup in each controller, that holds instance-<id> groups. */
  cgroupParent: string;
  /** Container folders live here (<depot>/<id>). */
  depot: string;
  /** Disk limits on (btrfs qgroups); off: plain directories, limit_disk is refused. */
  diskQuota: boolean;
  /** Backing image loop-mounted at the depot when the depot's filesystem is not btrfs. */
  depotImage: string;
  /** Size of that image when it has to be created (sparse); 0 picks half the free space, at most 256 GiB. */
  depotImageBytes: number;
  /** Bytes of the depot no container may take (server.container_depot_reserve); null: derived from its size. */
  depotReserve?: number | null;
  /** Limits a new container gets until a Limit* request sets its own (server.container_memory_limit, container_disk_limit). */
  defaultMemoryLimit?: number | null;
  defaultDiskLimit?: number | null;
  /** Default lower dir of the overlay. */
  baseRootfs: string;
  /** Written into /etc/resolv.conf; empty copies the host's nameservers. */
  dnsServers: string[];
  /** The host's resolv.conf (network.host_resolv_conf; default /etc/resolv.conf). */
  hostResolvConf?: string;
  mtu: number;
  network: NetworkHostConfig;
  /** pids.max of new containers (server.container_pids_limit); default DEFAULT_PIDS_LIMIT. */
  pidsLimit?: number;
  /** cpu.shares of new containers (server.container_cpu_shares); default the kernel's. */
  cpuShares?: number;
  /** cpu.shares of the daemon's own cgroup (server.daemon_cpu_shares); 0 or absent: none. */
  daemonCpuShares?: number;
  /** Where each container's cgroups are linked as <controller>/instance-<id>; default /tmp/warden/cgroup (cgroups/links.ts). */
  cgroupLinkRoot?: string;
  /** Let a container have the host's `/` as rootfs or as a read-write bind mount (server.allow_host_root). */
  allowHostRoot?: boolean;
}

/** pids.max of a container when the settings give none (tests' hand-made settings). */
export const DEFAULT_PIDS_LIMIT = 1024;

export interface LinuxBackendOptions {
  runtimeRoot?: string;
  cgroupParent?: string;
  depotImage?: string;
  depotImageBytes?: number;
}

/**
 * A daemon owns its depot: the runtime state root and the cgroup parent are
 * named after it, so daemons (or test suites) with different depots on one
 * host never see, recover or sweep each other's containers, and a restart on
 * the same depot finds its own again.
 */
export function depotTag(depot: string): string {
  return createHash('sha256').update(depot).digest('hex').slice(0, 8);
}

export function hostSettings(config: WardenConfig, opts: LinuxBackendOptions = {}): LinuxHostSettings {
  const depot = resolve(config.server.container_depot_path);
  const tag = depotTag(depot);
  return {
    runtime: config.server.container_runtime || 'runc',
    runtimeRoot: opts.runtimeRoot ?? `/run/warden/runc-${tag}`,
    cgroupParent: opts.cgroupParent ?? `warden-${tag}`,
    depot,
    diskQuota: config.server.quota?.disk_quota_enabled ?? true,
    depotImage: opts.depotImage ?? join(dirname(depot), 'warden-depot.img'),
    depotImageBytes: opts.depotImageBytes ?? 0,
    depotReserve: config.server.container_depot_reserve ?? null,
    defaultMemoryLimit: config.server.container_memory_limit ?? null,
    defaultDiskLimit: config.server.container_disk_limit ?? null,
    baseRootfs: resolve(config.server.container_rootfs_path),
    dnsServers: config.network.dns_servers ?? [],
    hostResolvConf: config.network.host_resolv_conf,
    mtu: config.network.mtu,
    network: {
      poolNetwork: config.network.pool_network,
      allowNetworks: config.network.allow_networks ?? [],
      denyNetworks: config.network.deny_networks ?? [],
      allowHostAccess: config.network.allow_host_access,
      tag,
    },
    pidsLimit: config.server.container_pids_limit,
    cpuShares: config.server.container_cpu_shares,
    daemonCpuShares: config.server.daemon_cpu_shares,
    allowHostRoot: config.server.allow_host_root ?? false,
  };
}
