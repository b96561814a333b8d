// The orchestrator: what each request does, read top to bottom — find the
// container, check its state, take resources, have the backend (in workers) do
// the host work, snapshot, answer. It owns the registry, the pools and the grace
// timers; the job requests live in jobs.ts. It knows nothing of sockets or of Linux.
import { join } from 'node:path';
import type { Logger } from 'pino';
import type { Backend } from '../backends/backend.ts';
import type { WardenConfig } from '../config/types.ts';
import { Container } from '../model/container.ts';
import type { ContainerRecord } from '../model/records.ts';
import { ContainerRegistry, validateHandle } from '../model/registry.ts';
import { toSnapshot } from '../depot/snapshot-format.ts';
import { HandleExistsError, NotImplementedError, WardenError, describeError } from '../model/errors.ts';
import type { Pools } from '../pools/pools.ts';
import { safeNumber } from '../protocol/u64.ts';
import { maxContainersError, takeNetwork, takePort, takeUid } from './pool-answers.ts';
import type * as M from '../protocol/types.ts';
import { DISK_LIMIT_FIELDS } from '../protocol/types.ts';
import type { WorkerPool } from '../workers/pool.ts';
import { validateNetOut } from '../model/net-out.ts';
import type { Job } from '../jobs/job.ts';
import { JobRequests } from './jobs.ts';

/** What a request handler knows of the connection it serves. */
export interface RequestContext {
  readonly connectionId: number;
  /** Containers this connection referenced (released when it closes). */
  readonly references: Set<Container>;
  /** Aborted when the connection goes away (or the daemon drains). */
  readonly signal: AbortSignal;
  /** Send one more response frame (Stream); resolves when the socket can take more. */
  send(type: 'Stream', body: M.StreamResponse): Promise<void>;
}

/** How a request ended: answered, refused with an ErrorResponse, or an internal failure. */
export type RequestOutcome = 'ok' | 'error' | 'internal';

/**
 * Hooks for the daemon's metrics (src/metrics/); every one optional, none may
 * throw or block. The service calls the container ones, Connection requestDone.
 */
export interface ServiceObserver {
  requestDone?(type: string, outcome: RequestOutcome, seconds: number): void;
  oom?(handle: string): void;
  destroyFailed?(handle: string): void;
  createRefused?(reason: 'max_containers'): void;
}

/** One entry of bulkInfo(), shaped like Garden's BulkInfo entries. */
export interface BulkInfoEntry {
  info?: M.InfoResponse;
  error?: string;
}

/** Containers whose Info bulkInfo() reads at once. */
const BULK_INFO_CONCURRENCY = 16;

export interface ServiceOptions {
  config: WardenConfig;
  pool: WorkerPool;
  backend: Backend;
  pools: Pools;
  logger: Logger;
  /** The daemon's own hard rlimits (jobs cannot get more). */
  hardLimits: Record<string, number>;
  /** Environment variables passed to every job (LANG). */
  jobEnv: Record<string, string>;
  observer?: ServiceObserver;
}

export { JOB_IDS_FILE, OUTPUT_EXCEEDED_EVENT } from './jobs.ts';
/** Container events (Info.events): the original's words where it had them. */
export const INIT_EXITED_EVENT = 'container init exited';

export class WardenService {
  readonly registry = new ContainerRegistry();
  readonly config: WardenConfig;
  readonly pools: Pools;
  /** Metrics hooks (set by the daemon). */
  observer: ServiceObserver;
  /**
   * Set by a draining daemon before its workers end: the job and OOM watchers end
   * with them (the next daemon starts them again), which is no failure to report.
   */
  stopping = false;
  private readonly pool: WorkerPool;
  private readonly backend: Backend;
  private readonly log: Logger;
  /** Spawn, Link, Stream, Run and the jobs' guards (src/orchestrator/jobs.ts). */
  private readonly jobs: JobRequests;
  /** Init deaths reported while recovery had not yet listed the container (see adopted()). */
  private readonly unclaimedInitExits = new Set<string>();

  constructor(o: ServiceOptions) {
    this.config = o.config;
    this.pool = o.pool;
    this.backend = o.backend;
    this.pools = o.pools;
    this.log = o.logger;
    this.observer = o.observer ?? {};
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
      snapshot: (c) => this.snapshot(c),
      answerInfo: (c) => this.info(c).catch(() => this.baseInfo(c)),
      outOfMemory: (c) => this.outOfMemory(c),
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

  // ---- references and grace time ------------------------------------------------

  /** The container named by a request; the connection now references it. */
  lookup(handle: string, ctx: RequestContext): Container {
    const c = this.registry.get(handle);
    this.reference(c, ctx.connectionId);
    ctx.references.add(c);
    return c;
  }

  reference(c: Container, connectionId: number): void {
    c.references.add(connectionId);
    if (c.graceTimer) {
      clearTimeout(c.graceTimer);
      c.graceTimer = undefined;
    }
  }

  /**
   * A new connection references every container there is, as the original's did
   * (its post_init): a client that reconnects (after a restart too) holds off
   * their grace time without naming them first. Containers that never expire
   * (grace_time null) need no reference, and are skipped.
   */
  connected(connectionId: number, references: Set<Container>): void {
    for (const c of this.registry.all()) {
      if (c.record.grace_time === null || (c.state !== 'active' && c.state !== 'stopped')) continue;
      this.reference(c, connectionId);
      references.add(c);
    }
  }

  /** A connection closed: containers it alone referenced start their grace time. */
  release(connectionId: number, containers: Iterable<Container>): void {
    for (const c of containers) {
      c.references.delete(connectionId);
      if (c.references.size === 0) this.armGraceTimer(c);
    }
  }

  armGraceTimer(c: Container): void {
    const grace = c.record.grace_time;
    // Not while born: Create arms it when it is done (a reaper racing a create
    // would destroy a container the create then goes on to finish).
    if (grace === null || c.graceTimer || c.state === 'destroyed' || c.state === 'born') return;
    c.graceTimer = setTimeout(() => {
      c.graceTimer = undefined;
      if (c.references.size > 0 || this.registry.find(c.handle) !== c) return;
      this.log.info({ handle: c.handle }, 'grace time expired, destroying container');
      this.destroyContainer(c).catch((err) =>
        this.log.error({ handle: c.handle, err: describeError(err) }, 'destroy after grace time failed'),
      );
    }, grace * 1000);
    c.graceTimer.unref();
  }

  // ---- snapshots -------------------------------------------------------------------

  /** Write c's snapshot; concurrent calls coalesce into at most one more write. */
  snapshot(c: Container): Promise<void> {
    if (c.state === 'destroyed' || c.destroying) return Promise.resolve();
    if (c.snapshotQueued) return c.snapshotQueued;
    const write = async (): Promise<void> => {
      c.snapshotQueued = undefined;
      try {
        await this.pool.run('state.writeJson', { path: c.snapshotPath, value: toSnapshot(c.record) });
      } finally {
        c.snapshotting = undefined;
      }
    };
    if (!c.snapshotting) {
      c.snapshotting = write();
      return c.snapshotting;
    }
    c.snapshotQueued = c.snapshotting.catch(() => {}).then(() => {
      c.snapshotting = write();
      return c.snapshotting;
    });
    return c.snapshotQueued;
  }

  async snapshotAll(): Promise<void> {
    await Promise.all(this.registry.all().map((c) => this.snapshot(c).catch(() => {})));
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

  async create(req: M.CreateRequest, ctx: RequestContext): Promise<M.CreateResponse> {
    // Reserve everything synchronously, before the first await.
    const max = this.config.server.max_containers;
    if (this.registry.size >= max) {
      this.observer.createRefused?.('max_containers');
      throw maxContainersError(this.pools, max, req.network);
    }
    if (req.handle !== undefined && req.handle !== null && Object.hasOwn(req, 'handle')) {
      validateHandle(req.handle);
      if (this.registry.has(req.handle)) throw new HandleExistsError(req.handle);
    }
    for (const m of req.bind_mounts ?? []) {
      if (!m.src_path.startsWith('/') || !m.dst_path.startsWith('/')) {
        throw new WardenError(`bind mount paths must be absolute: ${m.src_path} -> ${m.dst_path}`);
      }
    }
    const id = this.registry.newId();
    const handle = Object.hasOwn(req, 'handle') ? req.handle! : id;
    const subnet = takeNetwork(this.pools, req.network, this.log);
    let uid: number;
    try {
      uid = takeUid(this.pools, this.log);
    } catch (err) {
      this.pools.network.release(subnet);
      throw err;
    }
    const record: ContainerRecord = {
      id,
      handle,
      state: 'born',
      path: join(this.depot, id),
      network: subnet.network,
      host_ip: subnet.hostIp,
      container_ip: subnet.containerIp,
      uid,
      ports: [],
      grace_time: Object.hasOwn(req, 'grace_time') ? req.grace_time! : this.config.server.container_grace_time,
      bind_mounts: (req.bind_mounts ?? []).map((m) => ({ src_path: m.src_path, dst_path: m.dst_path, mode: m.mode })),
      rootfs: req.rootfs || this.config.server.container_rootfs_path,
      rootfs_requested: !!req.rootfs,
      events: [],
      net_in: [],
      net_out: [],
      limits: {},
      jobs: [],
      created_at: Date.now(),
      backend: {},
    };
    const c = new Container(record);
    this.registry.add(c);
    this.reference(c, ctx.connectionId);
    ctx.references.add(c);
    // Under the container's lock: a Destroy that arrives meanwhile (the handle
    // is listed from the start) waits for the create or its undo to finish,
    // instead of removing the folder the create then writes into again.
    await c.lock.run(async () => {
      try {
        await this.pool.run('state.mkdir', { path: record.path, mode: 0o755 });
        // A snapshot in state born first: a crash during the backend's work then
        // leaves a record that recovery destroys with everything it names.
        await this.snapshot(c);
        await this.checkCreatePaths(req);
        await this.backend.create(record);
        c.state = 'active';
        await this.snapshot(c);
      } catch (err) {
        await this.undoCreate(c);
        // The original's own messages (rootfs, bind mount source) go out as they are.
        throw err instanceof WardenError ? err : new WardenError('cannot create container', { cause: err });
      }
    });
    if (c.references.size === 0) this.armGraceTimer(c);
    this.log.info({ handle, id }, 'container created');
    return { handle };
  }

  /** The original's checks of Create's paths, with its messages: rootfs a folder, bind mount sources present. */
  private async checkCreatePaths(req: M.CreateRequest): Promise<void> {
    const sources = (req.bind_mounts ?? []).map((m) => m.src_path);
    if (!req.rootfs && sources.length === 0) return;
    const paths = req.rootfs ? [req.rootfs, ...sources] : sources;
    const kinds = await this.pool.run('state.pathKinds', { paths });
    if (req.rootfs && kinds[0] !== 'directory') throw new WardenError(`rootfs ${req.rootfs} not found`);
    const offset = req.rootfs ? 1 : 0;
    sources.forEach((src, i) => {
      if (kinds[offset + i] === 'missing') throw new WardenError(`Source path for bind mount does not exist: ${src}`);
    });
  }

  private async undoCreate(c: Container): Promise<void> {
    try {
      await this.backend.destroy(c.record);
      await this.pool.run('state.removeTree', { path: c.record.path });
    } catch (err) {
      // Leave the folder and its born snapshot for the next start's recovery to finish.
      this.log.error({ id: c.id, err: describeError(err) }, 'undoing a failed create failed');
    }
    this.releaseResources(c);
    this.registry.remove(c);
    c.state = 'destroyed';
  }

  private releaseResources(c: Container): void {
    this.pools.network.release(c.record.network);
    this.pools.uid.release(c.record.uid);
    for (const p of c.record.ports) this.pools.port.release(p);
  }

  async stop(req: M.StopRequest, ctx: RequestContext): Promise<M.StopResponse> {
    const c = this.lookup(req.handle, ctx);
    c.assertState('active', 'stopped');
    const work = c.lock.run(async () => {
      if (c.state === 'destroyed') return;
      c.state = 'stopped';
      await this.snapshot(c);
      await this.backend.stop(c.record, !!req.kill);
    });
    if (req.background) {
      work.catch((err) => this.log.error({ handle: c.handle, err: describeError(err) }, 'background stop failed'));
    } else {
      await work;
    }
    return {};
  }

  async destroy(req: M.DestroyRequest, ctx: RequestContext): Promise<M.DestroyResponse> {
    const c = this.lookup(req.handle, ctx);
    await this.destroyContainer(c);
    return {};
  }

  /** Stop and release everything; on failure the container stays listed with the error in its events. */
  async destroyContainer(c: Container): Promise<void> {
    if (c.state === 'destroyed') return;
    // A daemon that dies from here on finishes this destroy at its next start: recovery
    // destroys a container without a snapshot. A cut Destroy never leaves one half
    // done (its jobs killed, its files half removed) and listed as if whole.
    if (!c.destroying) {
      c.destroying = true;
      await c.snapshotting?.catch(() => {});
      await c.snapshotQueued?.catch(() => {});
      await this.pool.run('state.removeTree', { path: c.snapshotPath });
    }
    // Kill first, outside the lock: a graceful Stop holding the lock (waiting out
    // its TERM timeout) then ends at once instead of delaying the destroy.
    if (c.state === 'active' || c.state === 'stopped') {
      await this.backend.stop(c.record, true).catch(() => {});
    }
    await c.lock.run(async () => {
      if (c.state === 'destroyed') return;
      if (c.graceTimer) clearTimeout(c.graceTimer);
      c.graceTimer = undefined;
      c.obituary = await this.info(c).catch(() => this.baseInfo(c));
      try {
        await this.backend.destroy(c.record);
        await this.pool.run('state.removeTree', { path: c.record.path });
      } catch (err) {
        const message = `destroy failed: ${describeError(err)}`;
        this.observer.destroyFailed?.(c.handle);
        c.record.events.push(message);
        // Still listed: it needs its snapshot again (a Destroy may be retried).
        c.destroying = false;
        await this.snapshot(c).catch(() => {});
        throw new WardenError(message);
      }
      this.releaseResources(c);
      this.registry.remove(c);
      c.state = 'destroyed';
      c.obituary.state = 'destroyed';
      this.log.info({ handle: c.handle, id: c.id }, 'container destroyed');
    });
  }

  private baseInfo(c: Container): M.InfoResponse {
    return {
      state: c.state,
      events: [...c.record.events],
      host_ip: c.record.host_ip,
      container_ip: c.record.container_ip,
      container_path: c.record.path,
      job_ids: c.runningJobIds(),
    };
  }

  private async info(c: Container): Promise<M.InfoResponse> {
    if (c.state === 'destroyed') return c.obituary ?? this.baseInfo(c);
    const extra = await this.backend.info(c.record);
    return { ...this.baseInfo(c), ...extra };
  }

  /**
   * Info of many containers (default: all) for dashboards (GET /containers). It
   * references none of them, so polling never holds off a grace time.
   */
  async bulkInfo(handles: string[] = this.registry.handles()): Promise<Record<string, BulkInfoEntry>> {
    // A Map, then fromEntries: handles are the client's strings ("__proto__" too).
    const out = new Map<string, BulkInfoEntry>();
    const queue = [...new Set(handles)];
    for (const h of queue) out.set(h, {});
    const one = async (handle: string): Promise<BulkInfoEntry> => {
      const c = this.registry.find(handle);
      if (!c) return { error: 'unknown handle' };
      try {
        return { info: c.state === 'active' || c.state === 'stopped' ? await this.info(c) : this.baseInfo(c) };
      } catch (err) {
        return { error: describeError(err) };
      }
    };
    await Promise.all(
      Array.from({ length: Math.min(BULK_INFO_CONCURRENCY, queue.length) }, async () => {
        for (let h = queue.shift(); h !== undefined; h = queue.shift()) out.set(h, await one(h));
      }),
    );
    return Object.fromEntries(out);
  }

  async infoRequest(req: M.InfoRequest, ctx: RequestContext): Promise<M.InfoResponse> {
    const c = this.lookup(req.handle, ctx);
    c.assertState('active', 'stopped');
    return this.info(c);
  }

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

  /** Watch a running job until it exits (recovery, for the jobs it found). */
  guard(c: Container, job: Job): void {
    this.jobs.guard(c, job);
  }

  /**
   * Container deaths the backend reports (event-driven, one watcher for all):
   * an OOM kill stops the container with the original's `out of memory` event;
   * a container whose init is gone is stopped with an event saying so. Called
   * once, at recovery, before any container is adopted.
   */
  watchContainerEvents(): void {
    this.backend.onContainerEvent?.((e) => {
      if (e.kind === 'warning') {
        if (!this.stopping) this.log.warn({ err: e.message }, 'container events');
        return;
      }
      const c = this.registry.all().find((x) => x.id === e.id);
      if (!c) {
        // OOM reports name every container on the host; an init is only ours.
        if (e.kind === 'init-exited') this.unclaimedInitExits.add(e.id);
        return;
      }
      if (e.kind === 'oom') this.outOfMemory(c);
      else this.initExited(c);
    });
  }

  /**
   * At recovery, once c is listed: a death reported before that counts now, and an
   * active container OOM-killed while no daemon watched is stopped now.
   */
  adopted(c: Container): Promise<void> {
    if (this.unclaimedInitExits.delete(c.id)) this.initExited(c);
    if (!this.backend.oomKilled || c.state !== 'active') return Promise.resolve();
    return this.backend
      .oomKilled(c.record)
      .then((oom) => {
        if (oom) this.outOfMemory(c);
      })
      .catch((err) => this.log.warn({ handle: c.handle, err: describeError(err) }, 'cannot read the OOM counter'));
  }

  /**
   * Marks c stopped with the `out of memory` event at once (a reply sent after
   * this call already shows it), then kills what is left of it, as the original did.
   */
  private outOfMemory(c: Container): void {
    if (c.state !== 'active' || this.registry.find(c.handle) !== c) return;
    this.log.info({ handle: c.handle }, 'out of memory: stopping container');
    this.observer.oom?.(c.handle);
    this.markStopped(c, 'out of memory');
  }

  /** The container's init died (killed from the host): nothing can run in it any more. */
  private initExited(c: Container): void {
    if ((c.state !== 'active' && c.state !== 'stopped') || c.obituary || this.registry.find(c.handle) !== c) return;
    if (c.record.events.includes(INIT_EXITED_EVENT)) return;
    this.log.warn({ handle: c.handle }, 'container init exited: container stopped');
    this.markStopped(c, INIT_EXITED_EVENT);
  }

  private markStopped(c: Container, event: string): void {
    c.state = 'stopped';
    if (!c.record.events.includes(event)) c.record.events.push(event);
    c.lock
      .run(async () => {
        await this.snapshot(c);
        if (c.state === 'stopped') await this.backend.stop(c.record, true);
      })
      .catch((err) => this.log.warn({ handle: c.handle, err: describeError(err) }, 'stopping after the container died failed'));
  }

  async netIn(req: M.NetInRequest, ctx: RequestContext): Promise<M.NetInResponse> {
    const c = this.lookup(req.handle, ctx);
    c.assertState('active');
    const pooled = !req.host_port || this.pools.port.contains(req.host_port);
    const hostPort = !req.host_port ? takePort(this.pools, this.log) : pooled ? this.pools.port.acquireSpecific(req.host_port) : req.host_port;
    // The insecure backend forwards nothing: like the original, it ignores container_port.
    const containerPort = this.backend.name === 'insecure' ? hostPort : req.container_port || hostPort;
    if (containerPort > 65535 || hostPort > 65535) {
      if (pooled) this.pools.port.release(hostPort);
      throw new WardenError('ports must be at most 65535');
    }
    try {
      await c.lock.run(async () => {
        c.assertState('active');
        await this.backend.netIn(c.record, hostPort, containerPort);
        if (pooled) c.record.ports.push(hostPort);
        c.record.net_in.push({ host_port: hostPort, container_port: containerPort });
        await this.snapshot(c);
      });
    } catch (err) {
      if (pooled && !c.record.ports.includes(hostPort)) this.pools.port.release(hostPort);
      throw err;
    }
    return { host_port: hostPort, container_port: containerPort };
  }

  async netOut(req: M.NetOutRequest, ctx: RequestContext): Promise<M.NetOutResponse> {
    const c = this.lookup(req.handle, ctx);
    c.assertState('active');
    const rule = validateNetOut(req);
    await c.lock.run(async () => {
      c.assertState('active');
      await this.backend.netOut(c.record, rule);
      c.record.net_out.push(rule);
      await this.snapshot(c);
    });
    return {};
  }

  async copyIn(req: M.CopyInRequest, ctx: RequestContext): Promise<M.CopyInResponse> {
    const c = this.lookup(req.handle, ctx);
    c.assertState('active');
    if (!req.src_path.startsWith('/')) throw new WardenError(`src_path must be an absolute host path: ${req.src_path}`);
    await this.backend.copyIn(c.record, req);
    return {};
  }

  async copyOut(req: M.CopyOutRequest, ctx: RequestContext): Promise<M.CopyOutResponse> {
    const c = this.lookup(req.handle, ctx);
    c.assertState('active', 'stopped');
    if (!req.dst_path.startsWith('/')) throw new WardenError(`dst_path must be an absolute host path: ${req.dst_path}`);
    if (req.owner && !/^[A-Za-z0-9_.-]+(:[A-Za-z0-9_.-]+)?$/.test(req.owner)) {
      throw new WardenError(`invalid owner ${JSON.stringify(req.owner)}: expected user or user:group`);
    }
    await this.backend.copyOut(c.record, req);
    return {};
  }

  /** The original's insecure backend implemented no limits: it answered "not implemented". */
  private assertLimits(): void {
    if (this.backend.name === 'insecure') throw new NotImplementedError();
  }

  /**
   * Sets the limit when the request gives one (0 too, as the original did), and
   * answers the cgroup's value either way: 9223372036854771712 when unlimited.
   */
  async limitMemory(req: M.LimitMemoryRequest, ctx: RequestContext): Promise<M.LimitMemoryResponse> {
    const c = this.lookup(req.handle, ctx);
    c.assertState('active', 'stopped');
    this.assertLimits();
    const bytes = req.limit_in_bytes;
    if (bytes === undefined || bytes === null) return { limit_in_bytes: await this.backend.limitMemory(c.record, undefined) };
    return c.lock.run(async () => {
      let now: M.U64;
      try {
        now = await this.backend.limitMemory(c.record, bytes);
      } catch (err) {
        throw new WardenError(`Failed setting memory limit: ${describeError(err)}`);
      }
      c.record.limits.memory_limit_in_bytes = bytes;
      await this.snapshot(c);
      return { limit_in_bytes: now };
    });
  }

  /** Sets the shares when given; answers cpu.shares as the kernel keeps it (1 reads back as 2). */
  async limitCpu(req: M.LimitCpuRequest, ctx: RequestContext): Promise<M.LimitCpuResponse> {
    const c = this.lookup(req.handle, ctx);
    c.assertState('active', 'stopped');
    this.assertLimits();
    const shares = req.limit_in_shares;
    if (shares === undefined || shares === null) return { limit_in_shares: await this.backend.limitCpu(c.record, undefined) };
    return c.lock.run(async () => {
      let now: M.U64;
      try {
        now = await this.backend.limitCpu(c.record, shares);
      } catch (err) {
        throw new WardenError(`Failed setting cpu shares: ${describeError(err)}`);
      }
      c.record.limits.cpu_limit_in_shares = now;
      await this.snapshot(c);
      return { limit_in_shares: now };
    });
  }

  async limitBandwidth(req: M.LimitBandwidthRequest, ctx: RequestContext): Promise<M.LimitBandwidthResponse> {
    const c = this.lookup(req.handle, ctx);
    c.assertState('active', 'stopped');
    this.assertLimits();
    // tc takes rates and bursts far below 2^53; larger ones cannot be applied.
    const rate = safeNumber(req.rate);
    const burst = safeNumber(req.burst);
    if (rate === undefined || burst === undefined) throw new WardenError(`rate ${req.rate} or burst ${req.burst} is too large`);
    await c.lock.run(async () => {
      await this.backend.limitBandwidth(c.record, rate, burst);
      c.record.limits.bandwidth = { rate, burst };
      await this.snapshot(c);
    });
    return { rate: req.rate, burst: req.burst };
  }

  /** Applies the limits given, if any, and answers the limits in force (every alias), as the original did. */
  async limitDisk(req: M.LimitDiskRequest, ctx: RequestContext): Promise<M.LimitDiskResponse> {
    const c = this.lookup(req.handle, ctx);
    c.assertState('active', 'stopped');
    this.assertLimits();
    const asked: M.DiskLimits = {};
    for (const f of DISK_LIMIT_FIELDS) if (Object.hasOwn(req, f) && req[f] !== undefined) asked[f] = req[f];
    if (Object.keys(asked).length === 0) return this.backend.limitDisk(c.record, asked);
    return c.lock.run(async () => {
      c.record.limits.disk = await this.backend.limitDisk(c.record, asked);
      await this.snapshot(c);
      return { ...c.record.limits.disk };
    });
  }

  /** Drain: stop the job watchers at a clean point (see JobRequests.stopGuards). */
  stopGuards(timeoutMs?: number): Promise<void> {
    return this.jobs.stopGuards(timeoutMs);
  }

  /** Wait for job watchers to settle (shutdown). */
  settle(): Promise<void> {
    return this.jobs.settle();
  }
}
