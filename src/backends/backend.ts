// What a container backend does. The daemon (main thread) owns the registry,
// pools and state machine; a backend turns a prepared ContainerRecord into real
// host state. Implementations do their blocking work in workers.
// Layer: a backend owns the host state of containers (processes, mounts,
// cgroups, network); it never sees a connection, the registry or the pools.
import type {
  CopyInRequest,
  CopyOutRequest,
  DiskLimits,
  InfoResponse,
  U64,
} from '../protocol/types.ts';
import type { ContainerRecord, NetOutRule } from '../model/records.ts';

/** How the job supervisor starts a job's script for a container. */
export interface JobLaunch {
  /** argv of the process that runs the script read from stdin (e.g. /bin/bash, or runc exec ... /bin/bash). */
  argv: string[];
  env: Record<string, string>;
  cwd: string;
  /**
   * cgroup.procs files the job's supervisor joins before it starts, so that the
   * supervisor and what it runs (runc exec) are charged to the container, not the host.
   */
  cgroupProcs?: string[];
  /** Files written into the job's folder before its supervisor starts (plain name → content), e.g. runc's process spec. */
  files?: Record<string, string>;
  /** A plain file name in the job's folder the command gets as fd 3 (created empty or truncated). */
  fd3?: string;
}

export interface JobSpec {
  id: number;
  /** The job's folder on the host (<container_path>/jobs/<id>); a backend may put files there (pid files). */
  dir: string;
  privileged: boolean;
  rlimits: Record<string, U64>;
  env: Record<string, string>;
}

/** What recoverAll found of one container. */
export type RecoverOutcome = { alive: boolean } | { error: string };

/** id is the container's id (not its handle); a warning is for the log. */
export type ContainerDeathEvent = { kind: 'oom' | 'init-exited'; id: string } | { kind: 'warning'; message: string };

export class UnsupportedError extends Error {
  override name = 'UnsupportedError';
  /** The request asks for what cannot be (see ErrorCode in src/model/errors.ts). */
  readonly code = 'invalid';
}

export interface Backend {
  readonly name: 'linux' | 'insecure';
  /** Idempotent host preparation at daemon start. */
  setupHost(): Promise<void>;
  /** At daemon exit, after the drain: undo what setupHost did to the daemon process itself. */
  close?(): Promise<void>;
  /** At a drain that leaves no container: undo setupHost (pool rules, cgroup parents, runtime root, depot mount). */
  releaseHost?(): Promise<void>;
  /** Remove host resources of ours (by naming prefix) that no live container claims. */
  sweep(claimedIds: Set<string>): Promise<void>;
  /** Create host state for c (folder already reserved). Must undo everything it did on failure. */
  create(c: ContainerRecord): Promise<void>;
  /**
   * Re-adopt containers after a restart, all at once (a few host commands for
   * all rather than several each: the daemon is down until recovery is done).
   * One outcome per record, in order: alive, gone (to be destroyed), or an error.
   */
  recoverAll(cs: ContainerRecord[]): Promise<RecoverOutcome[]>;
  /** Signal every process of the container: TERM then KILL after the timeout, or KILL at once. */
  stop(c: ContainerRecord, kill: boolean): Promise<void>;
  /** Release every host resource; idempotent. */
  destroy(c: ContainerRecord): Promise<void>;
  /** The command line a job supervisor runs for this container and job. */
  jobLaunch(c: ContainerRecord, job: JobSpec): JobLaunch;
  /** Kill a job's processes at once (output limit exceeded). pid is the supervisor's child (argv[0] of jobLaunch). */
  killJob(c: ContainerRecord, job: { id: number; dir: string }): Promise<void>;
  info(c: ContainerRecord): Promise<InfoResponse>;
  netIn(c: ContainerRecord, hostPort: number, containerPort: number): Promise<void>;
  netOut(c: ContainerRecord, rule: NetOutRule): Promise<void>;
  copyIn(c: ContainerRecord, req: CopyInRequest): Promise<void>;
  copyOut(c: ContainerRecord, req: CopyOutRequest): Promise<void>;
  /** Sets the limit when bytes is given; resolves with the limit in force (memory.limit_in_bytes). */
  limitMemory(c: ContainerRecord, bytes: U64 | undefined): Promise<U64>;
  /** Sets the shares when given; resolves with the shares in force. */
  limitCpu(c: ContainerRecord, shares: U64 | undefined): Promise<U64>;
  limitBandwidth(c: ContainerRecord, rate: number, burst: number): Promise<void>;
  limitDisk(c: ContainerRecord, limits: DiskLimits): Promise<DiskLimits>;
  /**
   * Deaths the kernel reports, for every container at once and event-driven: an
   * OOM kill in a container ('oom') or the end of its init ('init-exited').
   * The backend follows each container from create or recover to destroy.
   * Backends without memory limits or an init leave it out.
   */
  onContainerEvent?(listener: (e: ContainerDeathEvent) => void): void;
  /** Whether the kernel has OOM-killed a process of c (at any time since its create). */
  oomKilled?(c: ContainerRecord): Promise<boolean>;
}
