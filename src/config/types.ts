// The daemon's configuration, as read from the original Warden YAML format
// (see config.ts for parsing and defaults). Keys keep the original names.
import type { U64 } from '../protocol/types.ts';

export type ContainerKlass = 'Warden::Container::Linux' | 'Warden::Container::Insecure';

export interface ServerConfig {
  unix_domain_path: string;
  /** File mode of the socket (YAML gives it as an octal-looking integer, e.g. 0777). */
  unix_domain_permissions: number;
  container_klass: ContainerKlass;
  container_rootfs_path: string;
  container_depot_path: string;
  /** Seconds of idle time before an unreferenced container is destroyed; null never reaps. */
  container_grace_time: number | null;
  /** Default rlimits for jobs, by rlimit name (as, nofile, nproc, ...). */
  container_rlimits: Record<string, U64>;
  job_output_limit: number;
  pidfile: string | null;
  quota: { disk_quota_enabled: boolean };
  allow_nested_warden: boolean;
  /** OCI runtime binary for the Linux backend: runc (default) or crun. */
  container_runtime: string;
  /** Piscina worker threads; default the number of cores. */
  worker_threads: number;
  /** Largest accepted frame, in bytes. */
  max_frame_bytes: number;
  /** When set, job output with a log_tag is also sent to this syslog socket. */
  syslog_socket: string | null;
  /**
   * Most containers at once; a Create past it is refused. Default (and ceiling):
   * what the pools allow, the smaller of network.pool_size and user.pool_size.
   */
  max_containers: number;
  /** pids.max of each new container; default 1/32 of the host's pid_max. */
  container_pids_limit: number;
  /** cpu.shares of each new container (LimitCpu changes it), below the daemon's. */
  container_cpu_shares: number;
  /** cpu.shares of the daemon's own cgroup (Linux backend), beside its containers' parent; 0: no cgroup of its own. */
  daemon_cpu_shares: number;
  /** Memory limit (bytes) of a new Linux container until LimitMemory sets one; null: none. */
  container_memory_limit: number | null;
  /** Disk limit (bytes) of a new Linux container until LimitDisk sets one; null: none. */
  container_disk_limit: number | null;
  /** Depot bytes containers may never take (kept for snapshots, job output); null: derived from the depot's size. */
  container_depot_reserve: number | null;
  /** Most running jobs per container; a Spawn past it is refused. */
  container_max_jobs: number;
  /** Most bytes of unfinished frames held across all connections; past it the connection is closed. */
  max_buffered_bytes: number;
  /** Seconds a connection may hold an unfinished frame without sending more of it; null: forever. */
  frame_idle_timeout: number | null;
  /** Allow rootfs `/` and read-write bind mounts of `/` (a privileged job would own the host). */
  allow_host_root: boolean;
}

export interface NetworkConfig {
  /** CIDR of the /30 pool, e.g. 10.254.0.0/24 (derived from pool_start_address + pool_size when given:
   *  then the smallest block covering them, for display). */
  pool_network: string;
  /** The exact pool: first /30 network address and number of /30 networks (derived from
   *  pool_network when that was given). The network pool is built from these two. */
  pool_start_address: string;
  pool_size: number;
  /** Seconds a released network waits before it is handed out again. */
  release_delay: number;
  deny_networks: string[];
  allow_networks: string[];
  allow_host_access: boolean;
  mtu: number;
  dns_servers: string[];
  /** The host's resolv.conf that containers' DNS follows when dns_servers is empty (not an original key). */
  host_resolv_conf: string;
}

export interface WardenConfig {
  server: ServerConfig;
  health_check_server: {
    port: number;
    /** Unix socket (mode 0600) serving /healthz, /metrics and /containers; null: none. */
    unix_domain_path: string | null;
    /** Also serve /containers on the TCP port (readable by every local user). */
    containers_on_tcp: boolean;
  };
  logging: { level: string; file: string | null; syslog: string | null };
  network: NetworkConfig;
  port: { pool_start_port: number; pool_size: number };
  user: { pool_start_uid: number; pool_size: number };
  /** The file this config was read from, if any. */
  source?: string;
  /** Things worth logging at start: unknown keys (ignored), values that were adjusted. */
  warnings?: string[];
}
