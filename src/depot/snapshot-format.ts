// snapshot.json in the original Warden's shape (operators' tools read it):
//
//   { "events": [...], "grace_time": 300, "state": "active",
//     "jobs": { "<id>": { "discard_output": false, "log_tag": null, "status": [2, "", ""] } },
//     "limits": {},
//     "resources": { "handle", "container_id", "network": "10.254.0.0", "uid",
//                    "ports": [...], "net_in": [[host_port, container_port]],
//                    "net_out": [[network, port_range, protocol, icmp_type, icmp_code, log]],
//                    "limit_memory", "limit_cpu" } }
//
// Fields the original has no place for sit beside its own: in `resources` the
// addresses, bind mounts, rootfs, our net_out rules whole (`net_out_rules`; the
// original's arrays cannot say port from port_range) and the backend's facts; in
// `limits` bandwidth and disk; in each job its privilege and pids; `created_at`.
// The container's path is where its folder is found (a folder moved in the depot
// is recovered under its new path). Snapshots written by builds before this one
// (our record as it was) are read too.
import type { DiskLimits, U64 } from '../protocol/types.ts';
import { NetOutProtocol } from '../protocol/types.ts';
import type { BindMount } from '../protocol/types.ts';
import type { ContainerRecord, ContainerState, JobRecord, Limits, NetOutRule } from '../model/records.ts';

type NetOutTuple = [string | null, string | null, string, number | null, number | null, boolean | null];

export interface SnapshotJob {
  discard_output: boolean;
  log_tag: string | null;
  /** Present once the job ended: [exit status, stdout, stderr] (output is never kept here). */
  status?: [number, string, string];
  privileged: boolean;
  pid?: number;
  pid_start_time?: number;
}

export interface OriginalSnapshot {
  events: string[];
  grace_time: number | null;
  jobs: Record<string, SnapshotJob>;
  limits: { bandwidth?: { rate: number; burst: number }; disk?: DiskLimits };
  resources: {
    handle: string;
    container_id: string;
    network: string;
    uid: number;
    ports: number[];
    net_in: [number, number][];
    net_out: NetOutTuple[];
    limit_memory?: U64;
    limit_cpu?: U64;
    // Ours:
    host_ip: string;
    container_ip: string;
    net_out_rules: NetOutRule[];
    bind_mounts: BindMount[];
    rootfs: string;
    rootfs_requested?: boolean;
    backend: Record<string, unknown>;
  };
  state: ContainerState;
  created_at: number;
}

const PROTOCOL_NAMES: Record<number, string> = {
  [NetOutProtocol.TCP]: 'tcp',
  [NetOutProtocol.UDP]: 'udp',
  [NetOutProtocol.ICMP]: 'icmp',
  [NetOutProtocol.ALL]: 'all',
};
const PROTOCOL_IDS: Record<string, NetOutRule['protocol']> = { tcp: 0, udp: 1, icmp: 2, all: 3 };

/** A rule as the original recorded it (its net.rb: port_range wins over port; -1 is "any"). */
function netOutTuple(r: NetOutRule): NetOutTuple {
  const portRange = r.port_range ?? (r.port !== undefined ? String(r.port) : null);
  const icmp = (v: number | undefined) => (v === undefined || v === -1 ? null : v);
  return [r.network ?? null, portRange, PROTOCOL_NAMES[r.protocol ?? 0] ?? 'tcp', icmp(r.icmp_type), icmp(r.icmp_code), r.log ?? null];
}

/** A rule back from the original's array (for snapshots the original wrote, which have no net_out_rules). */
function netOutRule(t: NetOutTuple): NetOutRule {
  const [network, portRange, protocol, icmpType, icmpCode, log] = t;
  const rule: NetOutRule = { protocol: PROTOCOL_IDS[protocol] ?? NetOutProtocol.TCP };
  if (network) rule.network = network;
  if (portRange) {
    if (portRange.includes(':')) rule.port_range = portRange;
    else rule.port = Number(portRange);
  }
  if (icmpType !== null && icmpType !== undefined) rule.icmp_type = icmpType;
  if (icmpCode !== null && icmpCode !== undefined) rule.icmp_code = icmpCode;
  if (log) rule.log = true;
  return rule;
}

export function toSnapshot(r: ContainerRecord): OriginalSnapshot {
  const jobs: Record<string, SnapshotJob> = {};
  for (const j of r.jobs) {
    jobs[String(j.id)] = {
      discard_output: j.discard_output,
      log_tag: j.log_tag ?? null,
      ...(j.state === 'exited' ? { status: [j.exit_status ?? 0, '', ''] as [number, string, string] } : {}),
      privileged: j.privileged,
      ...(j.pid !== undefined ? { pid: j.pid } : {}),
      ...(j.pid_start_time !== undefined ? { pid_start_time: j.pid_start_time } : {}),
    };
  }
  const { memory_limit_in_bytes, cpu_limit_in_shares, bandwidth, disk } = r.limits;
  return {
    events: r.events,
    grace_time: r.grace_time,
    jobs,
    limits: { ...(bandwidth ? { bandwidth } : {}), ...(disk ? { disk } : {}) },
    resources: {
      handle: r.handle,
      container_id: r.id,
      network: r.network,
      uid: r.uid,
      ports: r.ports,
      net_in: r.net_in.map((n) => [n.host_port, n.container_port]),
      net_out: r.net_out.map(netOutTuple),
      ...(memory_limit_in_bytes !== undefined ? { limit_memory: memory_limit_in_bytes } : {}),
      ...(cpu_limit_in_shares !== undefined ? { limit_cpu: cpu_limit_in_shares } : {}),
      host_ip: r.host_ip,
      container_ip: r.container_ip,
      net_out_rules: r.net_out,
      bind_mounts: r.bind_mounts,
      rootfs: r.rootfs,
      ...(r.rootfs_requested ? { rootfs_requested: true } : {}),
      backend: r.backend,
    },
    state: r.state,
    created_at: r.created_at,
  };
}

const isObject = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v);
const STATES: readonly string[] = ['born', 'active', 'stopped', 'destroyed'];

/** The address `n` above a dotted IPv4 address (host .1, container .2 of a /30). */
function plus(address: string, n: number): string {
  const v = address.split('.').reduce((a, o) => a * 256 + Number(o), 0) + n;
  return [24, 16, 8, 0].map((s) => Math.floor(v / 2 ** s) % 256).join('.');
}

/**
 * The record in a parsed snapshot.json found in the folder `path`, in either
 * shape; undefined when it is neither. The path is the folder's, wherever the
 * snapshot says it was.
 */
export function fromSnapshot(raw: unknown, path: string): ContainerRecord | undefined {
  if (!isObject(raw) || typeof raw.state !== 'string' || !STATES.includes(raw.state)) return undefined;
  if (isObject(raw.resources)) return fromOriginalShape(raw, raw.resources, path);
  // The shape of earlier builds: our record itself.
  const r = raw as unknown as ContainerRecord;
  if (typeof r.id !== 'string' || typeof r.handle !== 'string' || !Array.isArray(r.jobs)) return undefined;
  return { ...r, path };
}

function fromOriginalShape(raw: Record<string, unknown>, res: Record<string, unknown>, path: string): ContainerRecord | undefined {
  const id = res.container_id;
  const network = res.network;
  if (typeof id !== 'string' || typeof network !== 'string') return undefined;
  const handle = typeof res.handle === 'string' ? res.handle : id;
  const jobs: JobRecord[] = [];
  for (const [key, j] of Object.entries(isObject(raw.jobs) ? raw.jobs : {})) {
    const jobId = Number(key);
    if (!Number.isInteger(jobId) || jobId <= 0 || !isObject(j)) continue;
    const status = Array.isArray(j.status) ? Number(j.status[0]) : undefined;
    jobs.push({
      id: jobId,
      state: status === undefined ? 'running' : 'exited',
      ...(status !== undefined ? { exit_status: status } : {}),
      privileged: j.privileged === true,
      discard_output: j.discard_output === true,
      ...(typeof j.log_tag === 'string' ? { log_tag: j.log_tag } : {}),
      ...(typeof j.pid === 'number' ? { pid: j.pid } : {}),
      ...(typeof j.pid_start_time === 'number' ? { pid_start_time: j.pid_start_time } : {}),
    });
  }
  const stored = isObject(raw.limits) ? raw.limits : {};
  const limits: Limits = {
    ...(isU64(res.limit_memory) ? { memory_limit_in_bytes: res.limit_memory } : {}),
    ...(isU64(res.limit_cpu) ? { cpu_limit_in_shares: res.limit_cpu } : {}),
    ...(isObject(stored.bandwidth) ? { bandwidth: stored.bandwidth as Limits['bandwidth'] } : {}),
    ...(isObject(stored.disk) ? { disk: stored.disk as DiskLimits } : {}),
  };
  const netIn = Array.isArray(res.net_in) ? (res.net_in as [number, number][]) : [];
  const netOut = Array.isArray(res.net_out_rules)
    ? (res.net_out_rules as NetOutRule[])
    : Array.isArray(res.net_out)
      ? (res.net_out as NetOutTuple[]).map(netOutRule)
      : [];
  return {
    id,
    handle,
    state: raw.state as ContainerState,
    path,
    network,
    host_ip: typeof res.host_ip === 'string' ? res.host_ip : plus(network, 1),
    container_ip: typeof res.container_ip === 'string' ? res.container_ip : plus(network, 2),
    uid: typeof res.uid === 'number' ? res.uid : -1,
    ports: Array.isArray(res.ports) ? (res.ports as number[]) : [],
    grace_time: typeof raw.grace_time === 'number' ? raw.grace_time : null,
    bind_mounts: Array.isArray(res.bind_mounts) ? (res.bind_mounts as BindMount[]) : [],
    rootfs: typeof res.rootfs === 'string' ? res.rootfs : '',
    ...(res.rootfs_requested === true ? { rootfs_requested: true } : {}),
    events: Array.isArray(raw.events) ? (raw.events as string[]) : [],
    net_in: netIn.map(([host_port, container_port]) => ({ host_port, container_port })),
    net_out: netOut,
    limits,
    jobs,
    created_at: typeof raw.created_at === 'number' ? raw.created_at : 0,
    backend: isObject(res.backend) ? res.backend : {},
  };
}

/** A 64-bit value as parse64 reads it: a number, or a bigint above 2^53. */
function isU64(v: unknown): v is U64 {
  return typeof v === 'number' || typeof v === 'bigint';
}
