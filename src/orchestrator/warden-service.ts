// The orchestrator: what each request does, read top to bottom — find the
// container, check its state, take resources, have the backend (in workers) do
// the host work, snapshot, answer. WardenService puts the parts together (one
// file each: lifecycle, info, limit, network and copy requests, container
// deaths, grace timers; jobs here) and is what the server dispatches to. It
// owns the registry, the pools, the job ids and the grace timers; it knows
// nothing of sockets or of Linux.
import type { Logger } from 'pino';
import { join } from 'node:path';
import type { Backend } from '../backends/backend.ts';
import type { WardenConfig } from '../config/types.ts';
import { SnapshotWriter } from '../depot/snapshot-writer.ts';
import type { Container } from '../model/container.ts';
import type { JobRecord } from '../model/records.ts';
import { ContainerRegistry } from '../model/registry.ts';
import { NoSuchJobError, WardenError, describeError } from '../model/errors.ts';
import { Job } from '../jobs/job.ts';
import { JobIdAllocator } from '../jobs/job-ids.ts';
import { followJob } from '../jobs/job-output.ts';
import { effectiveRlimits } from '../jobs/rlimits.ts';
import type { Pools } from '../pools/pools.ts';
import type * as M from '../protocol/types.ts';
import type { TaskRunner } from '../workers/pool.ts';
import { ContainerDeaths } from './container-deaths.ts';
import { copyIn, copyOut } from './copy-requests.ts';
import { OUTPUT_EXCEEDED_EVENT, type Core, type RequestContext, type ServiceObserver } from './core.ts';
import { GraceTimers } from './grace-timers.ts';
import { baseInfo, bulkInfo, containerInfo, infoRequest, type BulkInfoEntry } from './info.ts';
import { create, destroyContainer, stop } from './lifecycle.ts';
import { limitBandwidth, limitCpu, limitDisk, limitMemory } from './limit-requests.ts';
import { netIn, netOut } from './network-requests.ts';
import { JOB_IDS_FILE, type RecoveryTarget } from './recovery.ts';

export type { RequestContext, RequestOutcome, ServiceObserver } from './core.ts';
export { INIT_EXITED_EVENT, OUTPUT_EXCEEDED_EVENT } from './core.ts';
export type { BulkInfoEntry } from './info.ts';

export interface ServiceOptions {
  config: WardenConfig;
  pool: TaskRunner;
  backend: Backend;
  pools: Pools;
  logger: Logger;
  /** The daemon's own hard rlimits (jobs cannot get more). */
  hardLimits: Record<string, number>;
  /** Environment variables passed to every job (LANG). */
  jobEnv: Record<string, string>;
  observer?: ServiceObserver;
}

export { JOB_IDS_FILE } from './recovery.ts';

export class WardenService implements Core, RecoveryTarget {
  readonly registry = new ContainerRegistry();
  readonly config: WardenConfig;
  readonly pools: Pools;
  readonly pool: TaskRunner;
  readonly backend: Backend;
  readonly log: Logger;
  readonly snapshots: SnapshotWriter;
  readonly grace: GraceTimers;
  /** Metrics hooks (set by the daemon). */
  observer: ServiceObserver;
  /**
   * Set by a draining daemon before its workers end: the job and OOM watchers end
   * with them (the next daemon starts them again), which is no failure to report.
   */
  stopping = false;
  private readonly deaths: ContainerDeaths;
  private readonly hardLimits: Record<string, number>;
  private readonly jobEnv: Record<string, string>;
  private jobIds: JobIdAllocator;
  /** Job watchers (exit and output limit) still running. */
  private readonly guards = new Set<Promise<void>>();
  /** Aborted when the daemon drains: the job watchers stop. */
  private readonly guardsStop = new AbortController();

  constructor(o: ServiceOptions) {
    this.config = o.config;
    this.pool = o.pool;
    this.backend = o.backend;
    this.pools = o.pools;
    this.log = o.logger;
    this.hardLimits = o.hardLimits;
    this.jobEnv = o.jobEnv;
    this.observer = o.observer ?? {};
    this.snapshots = new SnapshotWriter(o.pool);
    this.grace = new GraceTimers(this.registry, this.log, (c) => destroyContainer(this, c));
    this.deaths = new ContainerDeaths(this, () => this.stopping);
    this.jobIds = new JobIdAllocator(1, (ceiling) => this.persistJobCeiling(ceiling));
  }

  get depot(): string {
    return this.config.server.container_depot_path;
  }

  /** Continue job ids above every id seen or reserved before (recovery). */
  startJobIdsAt(next: number): void {
    this.jobIds = new JobIdAllocator(next, (ceiling) => this.persistJobCeiling(ceiling));
  }

  private persistJobCeiling(ceiling: number): Promise<void> {
    return this.pool.run('state.writeText', { path: join(this.depot, JOB_IDS_FILE), text: `${ceiling}\n` });
  }

  /** The container named by a request; the connection now references it. */
  lookup(handle: string, ctx: RequestContext): Container {
    const c = this.registry.get(handle);
    this.grace.reference(c, ctx.connectionId);
    ctx.references.add(c);
    return c;
  }

  /** A connection opened: it references every container (see GraceTimers.connected). */
  connected(connectionId: number, references: Set<Container>): void {
    this.grace.connected(connectionId, references);
  }

  /** A connection closed: containers it alone referenced start their grace time. */
  release(connectionId: number, containers: Iterable<Container>): void {
    this.grace.release(connectionId, containers);
  }

  snapshotAll(): Promise<void> {
    return this.snapshots.writeAll(this.registry.all());
  }

  // ---- recovery (RecoveryTarget) ----------------------------------------------------

  /** Before any container is adopted: deaths reported meanwhile are not lost. */
  watchContainerEvents(): void {
    this.deaths.watch();
  }

  /** c is listed again after a restart: its job watchers, grace timer, deaths meanwhile, snapshot. */
  adopt(c: Container): Promise<void> {
    // Jobs with a log_tag that ended while no daemon ran still have their last
    // lines to forward to syslog: their watcher does that and ends at once.
    for (const job of c.jobs.values()) if (job.running || job.record.log_tag) this.guard(c, job);
    this.grace.arm(c);
    return Promise.all([this.deaths.adopted(c), this.snapshots.write(c).catch(() => {})]).then(() => {});
  }

  // ---- requests ----------------------------------------------------------------------

  ping(): M.PingResponse {
    return {};
  }

  echo(req: M.EchoRequest): M.EchoResponse {
    return { message: req.message };
  }

  list(): M.ListResponse {
    return { handles: this.registry.handles() };
  }

  create(req: M.CreateRequest, ctx: RequestContext): Promise<M.CreateResponse> {
    return create(this, req, ctx);
  }

  stop(req: M.StopRequest, ctx: RequestContext): Promise<M.StopResponse> {
    return stop(this, req, ctx);
  }

  async destroy(req: M.DestroyRequest, ctx: RequestContext): Promise<M.DestroyResponse> {
    await destroyContainer(this, this.lookup(req.handle, ctx));
    return {};
  }

  infoRequest(req: M.InfoRequest, ctx: RequestContext): Promise<M.InfoResponse> {
    return infoRequest(this, req, ctx);
  }

  /** Info of many containers for dashboards (GET /containers); references none. */
  bulkInfo(handles?: string[]): Promise<Record<string, BulkInfoEntry>> {
    return bulkInfo(this, handles);
  }

  netIn(req: M.NetInRequest, ctx: RequestContext): Promise<M.NetInResponse> {
    return netIn(this, req, ctx);
  }

  netOut(req: M.NetOutRequest, ctx: RequestContext): Promise<M.NetOutResponse> {
    return netOut(this, req, ctx);
  }

  copyIn(req: M.CopyInRequest, ctx: RequestContext): Promise<M.CopyInResponse> {
    return copyIn(this, req, ctx);
  }

  copyOut(req: M.CopyOutRequest, ctx: RequestContext): Promise<M.CopyOutResponse> {
    return copyOut(this, req, ctx);
  }

  limitMemory(req: M.LimitMemoryRequest, ctx: RequestContext): Promise<M.LimitMemoryResponse> {
    return limitMemory(this, req, ctx);
  }

  limitCpu(req: M.LimitCpuRequest, ctx: RequestContext): Promise<M.LimitCpuResponse> {
    return limitCpu(this, req, ctx);
  }

  limitBandwidth(req: M.LimitBandwidthRequest, ctx: RequestContext): Promise<M.LimitBandwidthResponse> {
    return limitBandwidth(this, req, ctx);
  }

  limitDisk(req: M.LimitDiskRequest, ctx: RequestContext): Promise<M.LimitDiskResponse> {
    return limitDisk(this, req, ctx);
  }

  // ---- jobs ----------------------------------------------------------------------------

  private snapshot(c: Container): Promise<void> {
    return this.snapshots.write(c);
  }

  private info(c: Container): Promise<M.InfoResponse> {
    return containerInfo(this, c);
  }

  private baseInfo(c: Container): M.InfoResponse {
    return baseInfo(c);
  }

  private outOfMemory(c: Container): void {
    this.deaths.outOfMemory(c);
  }

  async spawn(req: M.SpawnRequest, ctx: RequestContext): Promise<M.SpawnResponse> {
    const c = this.lookup(req.handle, ctx);
    const job = await this.startJob(c, req);
    return { job_id: job.id };
  }

  /** Start a job in c (Spawn, Run). */
  private async startJob(c: Container, req: M.SpawnRequest): Promise<Job> {
    c.assertState('active');
    const rlimits = effectiveRlimits(this.config.server.container_rlimits, req.rlimits, this.hardLimits);
    const id = await this.jobIds.allocate();
    c.assertState('active');
    // Checked right before the job is added (no await in between), so concurrent spawns cannot pass it together.
    const maxJobs = this.config.server.container_max_jobs;
    if (c.runningJobIds().length >= maxJobs) {
      throw new WardenError(`cannot spawn job: the container runs its maximum of ${maxJobs} jobs (server.container_max_jobs)`, { code: 'exhausted' });
    }
    const dir = c.jobDir(id);
    const launch = this.backend.jobLaunch(c.record, {
      id,
      dir,
      privileged: !!req.privileged,
      rlimits,
      env: { ...this.jobEnv },
    });
    const record: JobRecord = {
      id,
      state: 'running',
      privileged: !!req.privileged,
      discard_output: !!req.discard_output,
      ...(req.log_tag ? { log_tag: req.log_tag } : {}),
    };
    const job = new Job(record, dir);
    c.addJob(job);
    try {
      await this.pool.run('job.start', {
        dir,
        script: req.script,
        argv: launch.argv,
        env: launch.env,
        cwd: launch.cwd,
        ...(launch.cgroupProcs ? { cgroupProcs: launch.cgroupProcs } : {}),
        discardOutput: !!req.discard_output,
      });
    } catch (err) {
      c.forgetJob(job);
      this.pool.run('state.removeTree', { path: dir }).catch(() => {});
      throw new WardenError('cannot spawn job', { cause: err });
    }
    this.guard(c, job);
    return job;
  }

  /**
   * The status a job's Link/Stream report, from the one its supervisor recorded:
   * 255 after the output limit killed it; and a job killed by SIGKILL (255 or
   * 137, its bash's status when the kernel killed a child) may be an OOM kill:
   * the container's counter is read, and an OOM stops the container, before the
   * exit is reported. Settled once per job.
   */
  private settleExit(c: Container, job: Job, recorded: number): Promise<number> {
    job.settled ??= (async () => {
      if (job.outputExceeded) return 255;
      if (recorded !== 255 && recorded !== 137) return recorded;
      if (c.state === 'active' && this.backend.oomKilled && (await this.backend.oomKilled(c.record).catch(() => false))) {
        this.outOfMemory(c);
      }
      return c.record.events.includes('out of memory') ? 255 : recorded;
    })();
    return job.settled;
  }

  /** Watch a running job until it exits: enforce the output limit, record the exit. */
  guard(c: Container, job: Job): void {
    const limit = this.config.server.job_output_limit;
    const socket = this.config.server.syslog_socket;
    const syslog = socket && job.record.log_tag ? { socket, tag: job.record.log_tag } : undefined;
    const watch = async (): Promise<void> => {
      let r = await followJob(this.pool, { dir: job.dir, limit, syslog, signal: this.guardsStop.signal });
      // The daemon drains: the next one's watcher goes on where this one stopped.
      if (r.outcome === 'cancelled') return;
      if (r.outcome === 'limit') {
        this.log.info({ handle: c.handle, job: job.id, limit }, 'job output limit exceeded, killing job');
        // The original's words; the job then reports 255.
        if (!c.record.events.includes(OUTPUT_EXCEEDED_EVENT)) c.record.events.push(OUTPUT_EXCEEDED_EVENT);
        job.outputExceeded = true;
        await this.backend.killJob(c.record, { id: job.id, dir: job.dir, pid: job.record.pid }).catch(() => {});
        r = await followJob(this.pool, { dir: job.dir, limit: Infinity });
      }
      job.markExited(await this.settleExit(c, job, r.status ?? 255));
      if (this.registry.find(c.handle) === c) await this.snapshot(c).catch(() => {});
    };
    const p = watch()
      .catch((err) => {
        if (this.stopping) return;
        this.log.error({ handle: c.handle, job: job.id, err: describeError(err) }, 'job watcher failed');
        job.markExited(255);
      })
      .finally(() => this.guards.delete(p));
    this.guards.add(p);
    job.guarded = p;
  }

  private findJob(c: Container, jobId: number): Job {
    const job = c.jobs.get(jobId);
    if (!job || job.forgotten) throw new NoSuchJobError();
    return job;
  }

  /** Read a job's output to its end; then the job is forgotten. */
  private async readJob(
    c: Container,
    job: Job,
    ctx: RequestContext,
    onData: (name: 'stdout' | 'stderr', data: Buffer) => void | Promise<void>,
  ): Promise<{ status: number; info: M.InfoResponse }> {
    job.readers++;
    try {
      const r = await followJob(this.pool, {
        dir: job.dir,
        limit: this.config.server.job_output_limit,
        onData,
        signal: ctx.signal,
      });
      if (r.outcome === 'cancelled') throw new WardenError('connection closed');
      if (r.outcome === 'gone' && !c.obituary) throw new WardenError('job vanished: its container is gone');
      const status = await this.settleExit(c, job, r.status ?? (await job.exited));
      job.markExited(status);
      const info = await this.info(c).catch(() => this.baseInfo(c));
      if (!job.forgotten) c.forgetJob(job);
      return { status, info };
    } finally {
      job.readers--;
      if (job.forgotten && job.readers === 0 && c.state !== 'destroyed') {
        // The guard may still be forwarding the tail to syslog: remove the folder after it.
        job.guarded
          .then(() => (c.state === 'destroyed' ? undefined : this.pool.run('state.removeTree', { path: job.dir })))
          .catch(() => {});
        this.snapshot(c).catch(() => {});
      }
    }
  }

  async link(req: M.LinkRequest, ctx: RequestContext): Promise<M.LinkResponse> {
    const c = this.lookup(req.handle, ctx);
    c.assertState('active', 'stopped');
    const job = this.findJob(c, req.job_id);
    return this.collect(c, job, ctx);
  }

  private async collect(c: Container, job: Job, ctx: RequestContext): Promise<M.LinkResponse> {
    const out: Buffer[] = [];
    const err: Buffer[] = [];
    const { status, info } = await this.readJob(c, job, ctx, (name, data) => {
      (name === 'stdout' ? out : err).push(data);
    });
    return { exit_status: status, stdout: Buffer.concat(out), stderr: Buffer.concat(err), info };
  }

  async stream(req: M.StreamRequest, ctx: RequestContext): Promise<M.StreamResponse> {
    const c = this.lookup(req.handle, ctx);
    c.assertState('active', 'stopped');
    const job = this.findJob(c, req.job_id);
    const { status, info } = await this.readJob(c, job, ctx, (name, data) => ctx.send('Stream', { name, data }));
    return { exit_status: status, info };
  }

  async run(req: M.RunRequest, ctx: RequestContext): Promise<M.RunResponse> {
    // One lookup: a Destroy from another connection while the job starts removes
    // the handle, and the Run must still answer with the container's obituary.
    const c = this.lookup(req.handle, ctx);
    let job: Job;
    try {
      job = await this.startJob(c, req);
    } catch (err) {
      // Destroyed while the job was being started: the job was killed with it.
      if (c.obituary) await c.lock.run(async () => {});
      if (c.state === 'destroyed' && c.obituary) {
        return { exit_status: 255, stdout: Buffer.alloc(0), stderr: Buffer.alloc(0), info: c.obituary };
      }
      throw err;
    }
    return this.collect(c, job, ctx);
  }

  /**
   * Drain: stop the job watchers at a clean point (a watcher forwarding to syslog
   * has recorded how far it got, and its logger processes have sent what they
   * took), so that the next daemon forwards each line once. Waits at most
   * `timeoutMs`.
   */
  async stopGuards(timeoutMs = 3000): Promise<void> {
    this.guardsStop.abort();
    let timer: NodeJS.Timeout | undefined;
    await Promise.race([
      Promise.allSettled([...this.guards]),
      new Promise((r) => (timer = setTimeout(r, timeoutMs))),
    ]);
    clearTimeout(timer);
  }

  /** Wait for job watchers to settle (shutdown). */
  async settle(): Promise<void> {
    await Promise.race([Promise.allSettled([...this.guards]), new Promise((r) => setTimeout(r, 100))]);
  }
}
