// The orchestrator: what each request does, read top to bottom — find the
// container, check its state, take resources, have the backend (in workers) do
// the host work, snapshot, answer. WardenService puts the parts together (one
// file each: lifecycle, info, limit, network and copy requests, jobs, container
// deaths, grace timers) and is what the server dispatches to. It
// owns the registry, the pools, the job ids and the grace timers; it knows
// nothing of sockets or of Linux.
import type { Logger } from 'pino';
import type { Backend } from '../backends/backend.ts';
import type { WardenConfig } from '../config/types.ts';
import { SnapshotWriter } from '../depot/snapshot-writer.ts';
import type { Container } from '../model/container.ts';
import { ContainerRegistry } from '../model/registry.ts';
import type { Pools } from '../pools/pools.ts';
import type * as M from '../protocol/types.ts';
import type { TaskRunner } from '../workers/pool.ts';
import { ContainerDeaths } from './container-deaths.ts';
import { copyIn, copyOut } from './copy-requests.ts';
import type { Core, RequestContext, ServiceObserver } from './core.ts';
import { GraceTimers } from './grace-timers.ts';
import { baseInfo, bulkInfo, containerInfo, infoRequest, type BulkInfoEntry } from './info.ts';
import { JobRequests } from './jobs.ts';
import { create, destroyContainer, stop } from './lifecycle.ts';
import { limitBandwidth, limitCpu, limitDisk, limitMemory } from './limit-requests.ts';
import { netIn, netOut } from './network-requests.ts';
import type { RecoveryTarget } from './recovery.ts';

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

export { JOB_IDS_FILE } from './jobs.ts';

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
  /** Set while recovery still destroys and sweeps leftovers: Creates wait for it. */
  createsHeld: Promise<void> | undefined;
  private readonly deaths: ContainerDeaths;
  /** Spawn, Link, Stream, Run and the jobs' guards. */
  private readonly jobs: JobRequests;

  constructor(o: ServiceOptions) {
    this.config = o.config;
    this.pool = o.pool;
    this.backend = o.backend;
    this.pools = o.pools;
    this.log = o.logger;
    this.observer = o.observer ?? {};
    this.snapshots = new SnapshotWriter(o.pool);
    this.grace = new GraceTimers(this.registry, this.log, (c) => destroyContainer(this, c));
    this.deaths = new ContainerDeaths(this, () => this.stopping);
    const service = this;
    this.jobs = new JobRequests({
      config: o.config,
      pool: o.pool,
      backend: o.backend,
      log: o.logger,
      hardLimits: o.hardLimits,
      jobEnv: o.jobEnv,
      lookup: (handle, ctx) => this.lookup(handle, ctx),
      listed: (c) => this.registry.find(c.handle) === c,
      snapshot: (c) => this.snapshots.write(c),
      answerInfo: (c) => containerInfo(this, c).catch(() => baseInfo(c)),
      outOfMemory: (c) => this.deaths.outOfMemory(c),
      get stopping() {
        return service.stopping;
      },
    });
  }

  get depot(): string {
    return this.config.server.container_depot_path;
  }

  /** Continue job ids above every id seen or reserved before (recovery). */
  startJobIdsAt(next: number): void {
    this.jobs.startJobIdsAt(next);
  }

  removeLeftoverJobFolders(folders: readonly string[], lists: readonly string[]): Promise<void> {
    return this.jobs.removeLeftovers(folders, lists);
  }

  /** Creates wait until done settles (recovery's cleanup; see recovery.ts). */
  holdCreatesUntil(done: Promise<void>): void {
    const held: Promise<void> = done.then(
      () => {},
      () => {},
    ).then(() => {
      if (this.createsHeld === held) this.createsHeld = undefined;
    });
    this.createsHeld = held;
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
    for (const job of c.jobs.values()) if (job.running || job.record.log_tag) this.jobs.guard(c, job);
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

  // ---- jobs (src/orchestrator/jobs.ts) ------------------------------------------------

  spawn(req: M.SpawnRequest, ctx: RequestContext): Promise<M.SpawnResponse> {
    return this.jobs.spawn(req, ctx);
  }

  link(req: M.LinkRequest, ctx: RequestContext): Promise<M.LinkResponse> {
    return this.jobs.link(req, ctx);
  }

  stream(req: M.StreamRequest, ctx: RequestContext): Promise<M.StreamResponse> {
    return this.jobs.stream(req, ctx);
  }

  run(req: M.RunRequest, ctx: RequestContext): Promise<M.RunResponse> {
    return this.jobs.run(req, ctx);
  }

  /** Drain: stop the job watchers at a clean point (see JobRequests.stopGuards). */
  stopGuards(timeoutMs = 3000): Promise<void> {
    return this.jobs.stopGuards(timeoutMs);
  }

  /** Wait for job watchers to settle (shutdown). */
  settle(): Promise<void> {
    return this.jobs.settle();
  }
}
