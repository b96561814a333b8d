// The Linux backend: real containers with runc, overlayfs, btrfs and the network
// module. Every method is one worker task (src/backends/linux/tasks.ts); the only
// main-thread work is jobLaunch, which builds an argv without I/O.
import { MessageChannel, type MessagePort } from 'node:worker_threads';
import type { Backend, ContainerDeathEvent, JobLaunch, JobSpec, RecoverOutcome } from '../backend.ts';
import type { WardenConfig } from '../../config/types.ts';
import type { ContainerRecord, NetOutRule } from '../../model/records.ts';
import type { CopyInRequest, CopyOutRequest, DiskLimits, InfoResponse, U64 } from '../../protocol/types.ts';
import type { WorkerPool } from '../../workers/pool.ts';
import { hostSettings, type LinuxBackendOptions, type LinuxHostSettings } from './settings.ts';
import { jobLaunch, type HardLimits } from './jobs/launch.ts';
import { liveFacts, runtimeOf } from './container/facts.ts';
import { diskLimitsInForce } from './limits.ts';
import type { ContainerEvent, ContainerEventsRequest } from './container-events.ts';
import { InfoBatch } from './info-batch.ts';

/** Most records one linux.recoverMany task takes (bounds the task's size and its iptables batch). */
const RECOVER_BATCH = 250;

export class LinuxBackend implements Backend {
  readonly name = 'linux' as const;
  readonly settings: LinuxHostSettings;
  private readonly pool: WorkerPool;
  private hardLimits: HardLimits = {};
  private supervisorCgroupProcs: string | undefined;
  /** The main thread's end of the linux.containerEvents task (started by setupHost). */
  private events: MessagePort | undefined;
  private listener: ((e: ContainerDeathEvent) => void) | undefined;
  /** Events that came before anyone listened (during recovery). */
  private backlog: ContainerDeathEvent[] = [];

  private readonly infos: InfoBatch;

  constructor(config: WardenConfig, pool: WorkerPool, opts: LinuxBackendOptions = {}) {
    this.settings = hostSettings(config, opts);
    this.pool = pool;
    this.infos = new InfoBatch(
      (c) => pool.run('linux.info', { c }),
      (cs) => pool.run('linux.infoMany', { cs }),
    );
  }

  async setupHost(): Promise<void> {
    const facts = await this.pool.run('linux.setupHost', { host: this.settings });
    this.hardLimits = facts.hardLimits;
    this.supervisorCgroupProcs = facts.supervisorCgroupProcs;
    this.startEvents();
  }

  /** At exit: the daemon leaves its own cgroup and removes it; containers and jobs are untouched. */
  async close(): Promise<void> {
    await this.pool.run('linux.leaveHost', { host: this.settings });
  }

  /** One long-lived task reports OOM kills and init deaths of every container (container-events.ts). */
  private startEvents(): void {
    if (this.events) return;
    const { port1, port2 } = new MessageChannel();
    this.events = port1;
    port1.on('message', (e: ContainerEvent) => {
      if (this.listener) this.listener(e);
      else this.backlog.push(e);
    });
    // The port keeps no event loop alive: the daemon's listener does.
    port1.unref();
    this.pool.run('linux.containerEvents', { port: port2 }, [port2]).catch((err: Error) => {
      this.listener?.({ kind: 'warning', message: `container events task ended: ${err.message}` });
    });
  }

  onContainerEvent(listener: (e: ContainerDeathEvent) => void): void {
    this.listener = listener;
    const early = this.backlog;
    this.backlog = [];
    for (const e of early) listener(e);
  }

  private follow(c: ContainerRecord): void {
    const f = liveFacts(c);
    this.events?.postMessage({
      follow: { id: c.id, cgroups: f.cgroups, initPid: f.initPid, initStartTime: f.initStartTime },
    } satisfies ContainerEventsRequest);
  }

  private unfollow(id: string): void {
    this.events?.postMessage({ unfollow: id } satisfies ContainerEventsRequest);
  }

  oomKilled(c: ContainerRecord): Promise<boolean> {
    return this.pool.run('linux.oomKilled', { cgroups: liveFacts(c).cgroups });
  }

  async releaseHost(): Promise<void> {
    await this.pool.run('linux.teardownHost', { host: this.settings });
  }

  async sweep(claimedIds: Set<string>): Promise<void> {
    await this.pool.run('linux.sweep', { host: this.settings, claimed: [...claimedIds] });
  }

  /** On success c.backend holds the LinuxFacts (init pid + start time, cgroups, subvolume, runtime): snapshot it. */
  async create(c: ContainerRecord): Promise<void> {
    applyDefaultLimits(c, this.settings);
    c.backend = { ...(await this.pool.run('linux.create', { host: this.settings, c: slim(c) })) };
    this.follow(c);
  }

  /** linux.recoverMany tasks of at most RECOVER_BATCH records, run at once; the live ones are followed. */
  async recoverAll(cs: ContainerRecord[]): Promise<RecoverOutcome[]> {
    const batches: ContainerRecord[][] = [];
    for (let i = 0; i < cs.length; i += RECOVER_BATCH) batches.push(cs.slice(i, i + RECOVER_BATCH));
    const outcomes = (
      await Promise.all(
        batches.map((batch) =>
          this.pool.run('linux.recoverMany', { host: this.settings, cs: batch.map(slim) }).catch((err: Error) => batch.map(() => ({ error: err.message }))),
        ),
      )
    ).flat();
    cs.forEach((c, i) => {
      const o = outcomes[i]!;
      if ('alive' in o && o.alive) this.follow(c);
    });
    return outcomes;
  }

  stop(c: ContainerRecord, kill: boolean): Promise<void> {
    return this.pool.run('linux.stop', { c: slim(c), kill });
  }

  destroy(c: ContainerRecord): Promise<void> {
    this.unfollow(c.id);
    return this.pool.run('linux.destroy', { host: this.settings, c: slim(c) });
  }

  jobLaunch(c: ContainerRecord, job: JobSpec): JobLaunch {
    return jobLaunch(runtimeOf(c, this.settings), c, job, this.hardLimits, this.supervisorCgroupProcs);
  }

  killJob(c: ContainerRecord, job: { id: number; dir: string }): Promise<void> {
    return this.pool.run('linux.killJob', { c: slim(c), job });
  }

  info(c: ContainerRecord): Promise<InfoResponse> {
    // In a worker, with blocking reads: Info is a few small kernel files (cgroups,
    // btrfs sysfs), which a worker reads in a row in microseconds, where async reads
    // from this thread cost a threadpool trip each (open, read, close per file).
    // Measured with 100 containers and 16 connections asking Info: 1,400-2,200
    // Infos/s (p50 6-10 ms) from this thread, 5,700-9,800/s (p50 1.5-2.3 ms) so.
    // The Infos of one turn of the event loop share a task (info-batch.ts).
    return this.infos.read(slim(c));
  }

  netIn(c: ContainerRecord, hostPort: number, containerPort: number): Promise<void> {
    return this.pool.run('linux.netIn', { host: this.settings, c: slim(c), hostPort, containerPort });
  }

  netOut(c: ContainerRecord, rule: NetOutRule): Promise<void> {
    return this.pool.run('linux.netOut', { host: this.settings, c: slim(c), rule });
  }

  copyIn(c: ContainerRecord, req: CopyInRequest): Promise<void> {
    return this.pool.run('linux.copyIn', { c: slim(c), src: req.src_path, dst: req.dst_path });
  }

  copyOut(c: ContainerRecord, req: CopyOutRequest): Promise<void> {
    return this.pool.run('linux.copyOut', { c: slim(c), src: req.src_path, dst: req.dst_path, owner: req.owner });
  }

  // Limits, like Info, are a few small cgroup files: blocking calls in a worker.
  limitMemory(c: ContainerRecord, bytes: U64 | undefined): Promise<U64> {
    return this.pool.run('linux.limitMemory', { c: slim(c), ...(bytes === undefined ? {} : { bytes }) });
  }

  limitCpu(c: ContainerRecord, shares: U64 | undefined): Promise<U64> {
    return this.pool.run('linux.limitCpu', { c: slim(c), ...(shares === undefined ? {} : { shares }) });
  }

  limitBandwidth(c: ContainerRecord, rate: number, burst: number): Promise<void> {
    return this.pool.run('linux.limitBandwidth', { c: slim(c), rate, burst });
  }

  limitDisk(c: ContainerRecord, limits: DiskLimits): Promise<DiskLimits> {
    return this.pool.run('linux.limitDisk', { c: slim(c), limits });
  }

}

/**
 * A new container's limits: what it was given, else the configured defaults, so that
 * no container starts unbounded (server.container_memory_limit, container_disk_limit).
 * Recorded in the container's limits, as if a Limit* request had set them; a later
 * LimitMemory or LimitDisk replaces them, larger or smaller.
 */
export function applyDefaultLimits(c: ContainerRecord, s: LinuxHostSettings): void {
  if (c.limits.memory_limit_in_bytes === undefined && s.defaultMemoryLimit != null) {
    c.limits.memory_limit_in_bytes = s.defaultMemoryLimit;
  }
  if (c.limits.disk === undefined && s.defaultDiskLimit != null && s.diskQuota) {
    c.limits.disk = diskLimitsInForce(s.defaultDiskLimit);
  }
}

/**
 * A record as the Linux tasks get it: without its jobs, which none of them reads.
 * A container may list hundreds of finished, unlinked jobs, and every task's
 * arguments are copied into the worker: with 400 of them an Info's copy cost the
 * main thread more than the Info's reads cost the worker.
 */
function slim(c: ContainerRecord): ContainerRecord {
  return c.jobs.length === 0 ? c : { ...c, jobs: [] };
}
