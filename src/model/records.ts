// The container record: everything the daemon knows about one container. It is
// plain data so that it can be snapshotted as JSON and handed to workers.
// Layer: src/model/ is plain data and pure rules shared by both sides of the
// worker boundary; it does no I/O and knows neither threads nor the host.
import type { BindMount, DiskLimits, NetOutRequest, U64 } from '../protocol/types.ts';

export type ContainerState = 'born' | 'active' | 'stopped' | 'destroyed';

export interface NetInRule {
  host_port: number;
  container_port: number;
}

export type NetOutRule = Omit<NetOutRequest, 'handle'>;

export interface Limits {
  memory_limit_in_bytes?: U64;
  cpu_limit_in_shares?: U64;
  bandwidth?: { rate: number; burst: number };
  disk?: DiskLimits;
}

export type JobState = 'running' | 'exited';

export interface JobRecord {
  id: number;
  state: JobState;
  exit_status?: number;
  privileged: boolean;
  discard_output: boolean;
  log_tag?: string;
  /** Pid of the job's process group leader (the script's shell), and its start time in clock ticks. */
  pid?: number;
  pid_start_time?: number;
}

export interface ContainerRecord {
  /** Internal id: 11 base-32 characters; names the folder and host resources. */
  id: string;
  /** Client-visible name; equals id when the client gave none. Never used in a path. */
  handle: string;
  state: ContainerState;
  /** The container's folder: <depot>/<id>. */
  path: string;
  /** Network address of the container's /30 (e.g. 10.254.0.0); host .1, container .2. */
  network: string;
  host_ip: string;
  container_ip: string;
  uid: number;
  /** Host ports taken from the port pool (released on destroy). */
  ports: number[];
  grace_time: number | null;
  bind_mounts: BindMount[];
  rootfs: string;
  /** The rootfs came from the Create request (it must exist) rather than the config. */
  rootfs_requested?: boolean;
  events: string[];
  net_in: NetInRule[];
  net_out: NetOutRule[];
  limits: Limits;
  jobs: JobRecord[];
  created_at: number;
  /** Backend-specific facts needed to tear down or re-adopt (e.g. init pid and start time). */
  backend: Record<string, unknown>;
}

/** The fields every record is made with; the rest start empty. */
export type RecordBasics = Pick<ContainerRecord, 'id' | 'handle' | 'state' | 'path'> & Partial<ContainerRecord>;

/** One way to make a record: what is not given starts empty (no network, uid -1, no rules, jobs or limits). */
export function newContainerRecord(basics: RecordBasics): ContainerRecord {
  return {
    network: '',
    host_ip: '',
    container_ip: '',
    uid: -1,
    ports: [],
    grace_time: null,
    bind_mounts: [],
    rootfs: '',
    events: [],
    net_in: [],
    net_out: [],
    limits: {},
    jobs: [],
    created_at: 0,
    backend: {},
    ...basics,
  };
}
