// TypeScript shapes of the Warden messages (see warden.proto). uint64 fields are
// U64: a number while the value is a safe integer, a bigint above 2^53, so that
// values like a cgroup's "unlimited" 9223372036854771712 or RLIM_INFINITY
// travel exactly (the codec decodes them so and encodes both forms).

/** A uint64 field: a number up to Number.MAX_SAFE_INTEGER, a bigint above it. */
export type U64 = number | bigint;

export const MessageType = {
  Error: 1,
  Create: 11,
  Stop: 12,
  Destroy: 13,
  Info: 14,
  Spawn: 21,
  Link: 22,
  Run: 23,
  Stream: 24,
  NetIn: 31,
  NetOut: 32,
  CopyIn: 41,
  CopyOut: 42,
  LimitMemory: 51,
  LimitDisk: 52,
  LimitBandwidth: 53,
  LimitCpu: 54,
  Ping: 91,
  List: 92,
  Echo: 93,
} as const;
export type MessageTypeName = keyof typeof MessageType;
export type MessageTypeId = (typeof MessageType)[MessageTypeName];

export const BindMountMode = { RO: 0, RW: 1 } as const;
export type BindMountModeId = (typeof BindMountMode)[keyof typeof BindMountMode];

export const NetOutProtocol = { TCP: 0, UDP: 1, ICMP: 2, ALL: 3 } as const;
export type NetOutProtocolId = (typeof NetOutProtocol)[keyof typeof NetOutProtocol];

export interface ErrorResponse { message?: string; data?: string; backtrace?: string[] }
export type PingRequest = Record<string, never>;
export type PingResponse = Record<string, never>;
export interface EchoRequest { message: string }
export interface EchoResponse { message: string }
export type ListRequest = Record<string, never>;
export interface ListResponse { handles?: string[] }

export interface BindMount { src_path: string; dst_path: string; mode: BindMountModeId }
export interface CreateRequest {
  bind_mounts?: BindMount[];
  grace_time?: number;
  handle?: string;
  network?: string;
  rootfs?: string;
}
export interface CreateResponse { handle: string }
export interface StopRequest { handle: string; background?: boolean; kill?: boolean }
export type StopResponse = Record<string, never>;
export interface DestroyRequest { handle: string }
export type DestroyResponse = Record<string, never>;
export interface InfoRequest { handle: string }

export const MEMORY_STAT_FIELDS = [
  'cache', 'rss', 'mapped_file', 'pgpgin', 'pgpgout', 'swap', 'pgfault', 'pgmajfault',
  'inactive_anon', 'active_anon', 'inactive_file', 'active_file', 'unevictable',
  'hierarchical_memory_limit', 'hierarchical_memsw_limit', 'total_cache', 'total_rss',
  'total_mapped_file', 'total_pgpgin', 'total_pgpgout', 'total_swap', 'total_pgfault',
  'total_pgmajfault', 'total_inactive_anon', 'total_active_anon', 'total_inactive_file',
  'total_active_file', 'total_unevictable',
] as const;
export type MemoryStat = Partial<Record<(typeof MEMORY_STAT_FIELDS)[number], U64>>;
export interface CpuStat { usage?: U64; user?: U64; system?: U64 }
export interface DiskStat { bytes_used?: U64; inodes_used?: U64 }
export interface BandwidthStat { in_rate?: number; in_burst?: number; out_rate?: number; out_burst?: number }
export interface InfoResponse {
  state?: string;
  events?: string[];
  host_ip?: string;
  container_ip?: string;
  container_path?: string;
  memory_stat?: MemoryStat;
  cpu_stat?: CpuStat;
  disk_stat?: DiskStat;
  bandwidth_stat?: BandwidthStat;
  job_ids?: number[];
}

export const RLIMIT_NAMES = [
  'as', 'core', 'cpu', 'data', 'fsize', 'locks', 'memlock', 'msgqueue', 'nice', 'nofile',
  'nproc', 'rss', 'rtprio', 'sigpending', 'stack',
] as const;
export type RlimitName = (typeof RLIMIT_NAMES)[number];
export type ResourceLimits = Partial<Record<RlimitName, U64>>;

export interface SpawnRequest {
  handle: string;
  script: string;
  privileged?: boolean;
  rlimits?: ResourceLimits;
  discard_output?: boolean;
  log_tag?: string;
}
export interface SpawnResponse { job_id: number }
export interface LinkRequest { handle: string; job_id: number }
/** Job output is bytes on our side (see warden.proto); clients may pass strings. */
export interface LinkResponse {
  exit_status?: number;
  stdout?: Uint8Array | string;
  stderr?: Uint8Array | string;
  info?: InfoResponse;
}
export type RunRequest = SpawnRequest;
export type RunResponse = LinkResponse;
export interface StreamRequest { handle: string; job_id: number }
export interface StreamResponse {
  name?: string;
  data?: Uint8Array | string;
  exit_status?: number;
  info?: InfoResponse;
}
export interface NetInRequest { handle: string; host_port?: number; container_port?: number }
export interface NetInResponse { host_port: number; container_port: number }
export interface NetOutRequest {
  handle: string;
  network?: string;
  port?: number;
  port_range?: string;
  protocol?: NetOutProtocolId;
  icmp_type?: number;
  icmp_code?: number;
  log?: boolean;
}
export type NetOutResponse = Record<string, never>;
export interface CopyInRequest { handle: string; src_path: string; dst_path: string }
export type CopyInResponse = Record<string, never>;
export interface CopyOutRequest { handle: string; src_path: string; dst_path: string; owner?: string }
export type CopyOutResponse = Record<string, never>;
export interface LimitMemoryRequest { handle: string; limit_in_bytes?: U64 }
export interface LimitMemoryResponse { limit_in_bytes?: U64 }

export const DISK_LIMIT_FIELDS = [
  'block_limit', 'block', 'block_soft', 'block_hard',
  'inode_limit', 'inode', 'inode_soft', 'inode_hard',
  'byte_limit', 'byte', 'byte_soft', 'byte_hard',
] as const;
export type DiskLimits = Partial<Record<(typeof DISK_LIMIT_FIELDS)[number], U64>>;
export type LimitDiskRequest = { handle: string } & DiskLimits;
export type LimitDiskResponse = DiskLimits;
export interface LimitBandwidthRequest { handle: string; rate: U64; burst: U64 }
export interface LimitBandwidthResponse { rate: U64; burst: U64 }
export interface LimitCpuRequest { handle: string; limit_in_shares?: U64 }
export interface LimitCpuResponse { limit_in_shares?: U64 }

/** Request and response shapes by message type, for typed dispatch and clients. */
export interface RequestMap {
  Create: CreateRequest; Stop: StopRequest; Destroy: DestroyRequest; Info: InfoRequest;
  Spawn: SpawnRequest; Link: LinkRequest; Run: RunRequest; Stream: StreamRequest;
  NetIn: NetInRequest; NetOut: NetOutRequest; CopyIn: CopyInRequest; CopyOut: CopyOutRequest;
  LimitMemory: LimitMemoryRequest; LimitDisk: LimitDiskRequest;
  LimitBandwidth: LimitBandwidthRequest; LimitCpu: LimitCpuRequest;
  Ping: PingRequest; List: ListRequest; Echo: EchoRequest;
}
export interface ResponseMap {
  Create: CreateResponse; Stop: StopResponse; Destroy: DestroyResponse; Info: InfoResponse;
  Spawn: SpawnResponse; Link: LinkResponse; Run: RunResponse; Stream: StreamResponse;
  NetIn: NetInResponse; NetOut: NetOutResponse; CopyIn: CopyInResponse; CopyOut: CopyOutResponse;
  LimitMemory: LimitMemoryResponse; LimitDisk: LimitDiskResponse;
  LimitBandwidth: LimitBandwidthResponse; LimitCpu: LimitCpuResponse;
  Ping: PingResponse; List: ListResponse; Echo: EchoResponse;
}
export type RequestName = keyof RequestMap;
export const REQUEST_NAMES = Object.keys(MessageType).filter((n) => n !== 'Error') as RequestName[];
