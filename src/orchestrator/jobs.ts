// The job requests (Spawn, Link, Stream, Run) and the life of a job as the main
// thread sees it: it owns the job ids, the start of a job, its guard (exit,
// output limit, syslog forwarding) and the status a job reports. WardenService
// delegates to it; what it needs of the service (finding a container, its Info,
// snapshots, stopping it after an OOM) comes in through JobHost.
import { join } from 'node:path';
import type { Logger } from 'pino';
import type { Backend } from '../backends/backend.ts';
import type { WardenConfig } from '../config/types.ts';
import type { Container } from '../model/container.ts';
import type { JobRecord } from '../model/records.ts';
import { NoSuchJobError, WardenError, describeError } from '../model/errors.ts';
import { Job } from '../jobs/job.ts';
import { readExitStatus } from '../jobs/job-files.ts';
import { JobIdAllocator } from '../jobs/job-ids.ts';
import { followJobFromMain, readFinishedOutput, withinLimit } from '../jobs/job-output.ts';
import { KeptOutputs } from '../jobs/kept-output.ts';
import { effectiveRlimits } from '../jobs/rlimits.ts';
import type * as M from '../protocol/types.ts';
import type { TaskRunner } from '../workers/pool.ts';
import { OUTPUT_EXCEEDED_EVENT, type RequestContext } from './core.ts';
import { settledWithin } from '../model/settled-within.ts';
import { FolderRemover } from '../depot/folder-remover.ts';

/** The job id ceiling's file in the depot (ids are never reused across restarts). */
export const JOB_IDS_FILE = '.job_ids';

/** What the job requests need of the rest of the service. */
export interface JobHost {
  readonly config: WardenConfig;
  readonly pool: TaskRunner;
  readonly backend: Backend;
  readonly log: Logger;
  /** The daemon's own hard rlimits (jobs cannot get more). */
  readonly hardLimits: Record<string, number>;
  /** Environment variables passed to every job (LANG). */
  readonly jobEnv: Record<string, string>;
  /** The container named by a request; the connection now references it. */
  lookup(handle: string, ctx: RequestContext): Container;
  /** Is c still the container listed under its handle? */
  listed(c: Container): boolean;
  snapshot(c: Container): Promise<void>;
  /** Info as a Link/Run/Stream answer carries it (never throws). */
  answerInfo(c: Container): Promise<M.InfoResponse>;
  /** Stop c with the `out of memory` event (when it is still active). */
  outOfMemory(c: Container): void;
  /** The daemon drains: a watcher that ends is no failure. */
  readonly stopping: boolean;
}

/** How long a job killed for its output may take to end before it is killed again. */
const KILL_CHECK_MS = 3_000;

export class JobRequests {
  private readonly host: JobHost;
  private jobIds: JobIdAllocator;
  /** Job watchers (exit and output limit) still running. */
  private readonly guards = new Set<Promise<void>>();
  /** Aborted when the daemon drains: the job watchers stop. */
  private readonly guardsStop = new AbortController();
  /** Finished jobs' folders go in batches. */
  private readonly folders: FolderRemover;
  /** Small outputs of finished jobs, as their watchers read them at the exit. */
  private readonly kept = new KeptOutputs();

  constructor(host: JobHost) {
    this.host = host;
    this.folders = new FolderRemover(host.pool, host.config.server.container_depot_path);
    this.jobIds = new JobIdAllocator(1, (ceiling) => this.persistJobCeiling(ceiling));
  }

  /** Delete the forgotten jobs' folders a daemon before this one left, then its lists (recovery). */
  removeLeftovers(folders: readonly string[], lists: readonly string[]): Promise<void> {
    return this.folders.adopt(folders, lists);
  }

  /** Continue job ids above every id seen or reserved before (recovery). */
  startJobIdsAt(next: number): void {
    this.jobIds = new JobIdAllocator(next, (ceiling) => this.persistJobCeiling(ceiling));
  }

  private persistJobCeiling(ceiling: number): Promise<void> {
    const depot = this.host.config.server.container_depot_path;
    return this.host.pool.run('state.writeText', { path: join(depot, JOB_IDS_FILE), text: `${ceiling}\n` });
  }

  async spawn(req: M.SpawnRequest, ctx: RequestContext): Promise<M.SpawnResponse> {
    const c = this.host.lookup(req.handle, ctx);
    const job = await this.startJob(c, req);
    // As the original's around_spawn did: the job (its log_tag, privilege, output
    // mode) is in the snapshot before the client hears of it, so a daemon that dies
    // next recovers it whole. The job runs either way: a failed write is logged.
    await this.host.snapshot(c).catch((err) => this.host.log.warn({ handle: c.handle, job: job.id, err: describeError(err) }, 'snapshot after spawn failed'));
    return { job_id: job.id };
  }

  async link(req: M.LinkRequest, ctx: RequestContext): Promise<M.LinkResponse> {
    const c = this.host.lookup(req.handle, ctx);
    c.assertState('active', 'stopped');
    const job = this.findJob(c, req.job_id);
    return this.collect(c, job, ctx);
  }

  async stream(req: M.StreamRequest, ctx: RequestContext): Promise<M.StreamResponse> {
    const c = this.host.lookup(req.handle, ctx);
    c.assertState('active', 'stopped');
    const job = this.findJob(c, req.job_id);
    const { status, info } = await this.readJob(c, job, ctx, async () => {
      const r = await followJobFromMain(this.host.pool, {
        dir: job.dir,
        limit: this.host.config.server.job_output_limit,
        onData: (name, data) => ctx.send('Stream', { name, data }),
        signal: ctx.signal,
      });
      if (r.outcome === 'cancelled') throw new WardenError('connection closed');
      if (r.outcome === 'gone' && !c.obituary) throw new WardenError('job vanished: its container is gone');
      return r.status ?? (await job.exited);
    });
    return { exit_status: status, info };
  }

  async run(req: M.RunRequest, ctx: RequestContext): Promise<M.RunResponse> {
    // One lookup: a Destroy from another connection while the job starts removes
    // the handle, and the Run must still answer with the container's obituary.
    const c = this.host.lookup(req.handle, ctx);
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

  /** Start a job in c (Spawn, Run). */
  private async startJob(c: Container, req: M.SpawnRequest): Promise<Job> {
    const { config, backend, pool } = this.host;
    c.assertState('active');
    const rlimits = effectiveRlimits(config.server.container_rlimits, req.rlimits, this.host.hardLimits);
    const id = await this.jobIds.allocate();
    c.assertState('active');
    // Checked right before the job is added (no await in between), so concurrent spawns cannot pass it together.
    const maxJobs = config.server.container_max_jobs;
    if (c.runningJobIds().length >= maxJobs) {
      throw new WardenError(`cannot spawn job: the container runs its maximum of ${maxJobs} jobs (server.container_max_jobs)`);
    }
    const dir = c.jobDir(id);
    const launch = backend.jobLaunch(c.record, { id, dir, privileged: !!req.privileged, rlimits, env: { ...this.host.jobEnv } });
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
      await pool.run('job.start', {
        dir,
        script: req.script,
        argv: launch.argv,
        env: launch.env,
        cwd: launch.cwd,
        ...(launch.cgroupProcs ? { cgroupProcs: launch.cgroupProcs } : {}),
        ...(launch.files ? { files: launch.files } : {}),
        ...(launch.fd3 ? { fd3: launch.fd3 } : {}),
        discardOutput: !!req.discard_output,
      });
    } catch (err) {
      c.forgetJob(job);
      void this.folders.remove(dir);
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
    const { backend } = this.host;
    job.settled ??= (async () => {
      if (job.outputExceeded) return 255;
      if (recorded !== 255 && recorded !== 137) return recorded;
      if (c.state === 'active' && backend.oomKilled && (await backend.oomKilled(c.record).catch(() => false))) {
        this.host.outOfMemory(c);
      }
      return c.record.events.includes('out of memory') ? 255 : recorded;
    })();
    return job.settled;
  }

  /**
   * Watch a running job until it exits: enforce the output limit, forward to
   * syslog, record the exit. Link and Run learn of the exit from here (one
   * watcher per job, however many ask).
   */
  guard(c: Container, job: Job): void {
    const { config, pool, backend, log } = this.host;
    const limit = config.server.job_output_limit;
    const socket = config.server.syslog_socket;
    const syslog = socket && job.record.log_tag ? { socket, tag: job.record.log_tag } : undefined;
    const watch = async (): Promise<void> => {
      let r = await followJobFromMain(pool, { dir: job.dir, limit, syslog, signal: this.guardsStop.signal });
      // The daemon drains: the next one's watcher goes on where this one stopped.
      if (r.outcome === 'cancelled') return;
      if (r.outcome === 'limit') {
        log.info({ handle: c.handle, job: job.id, limit }, 'job output limit exceeded, killing job');
        // The original's words; the job then reports 255.
        if (!c.record.events.includes(OUTPUT_EXCEEDED_EVENT)) c.record.events.push(OUTPUT_EXCEEDED_EVENT);
        job.outputExceeded = true;
        // Kill until it is gone: a kill that missed (the job was just starting)
        // must not leave it writing on, unbounded, into the depot.
        for (let kills = 1; ; kills++) {
          await backend.killJob(c.record, { id: job.id, dir: job.dir }).catch(() => {});
          const waited = AbortSignal.any([this.guardsStop.signal, AbortSignal.timeout(KILL_CHECK_MS)]);
          r = await followJobFromMain(pool, { dir: job.dir, limit: Infinity, signal: waited });
          if (r.outcome !== 'cancelled' || this.guardsStop.signal.aborted) break;
          log.warn({ handle: c.handle, job: job.id, kills }, 'job still running after its kill, killing it again');
        }
        if (r.outcome === 'cancelled') return;
      }
      if (r.outcome === 'gone') job.vanished = true;
      if (r.output && !job.forgotten) this.kept.keep(job.dir, r.output);
      job.markExited(await this.settleExit(c, job, r.status ?? 255));
      if (this.host.listed(c)) await this.host.snapshot(c).catch(() => {});
    };
    const p = watch()
      .catch(async (err) => {
        if (this.host.stopping) return;
        log.error({ handle: c.handle, job: job.id, err: describeError(err) }, 'job watcher failed');
        // Link and Run learn the exit from here: the status the supervisor recorded, if it did.
        job.markExited(await this.settleExit(c, job, (await readExitStatus(job.dir)) ?? 255));
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

  /**
   * Link and Run: wait for the job's exit (its guard sees it), then read its
   * output once, on this thread, from the files the supervisor left: no
   * follower of its own, no copy through a worker.
   */
  private async collect(c: Container, job: Job, ctx: RequestContext): Promise<M.LinkResponse> {
    let stdout: Buffer = Buffer.alloc(0);
    let stderr: Buffer = Buffer.alloc(0);
    const { status, info } = await this.readJob(
      c,
      job,
      ctx,
      async () => {
        const recorded = await exitOrAbort(job, ctx.signal);
        if (job.vanished && !c.obituary) throw new WardenError('job vanished: its container is gone');
        return recorded;
      },
      async () => {
        const limit = this.host.config.server.job_output_limit;
        const kept = this.kept.get(job.dir);
        ({ stdout, stderr } = kept ? withinLimit(kept, limit) : await readFinishedOutput(job.dir, limit));
      },
    );
    return { exit_status: status, stdout, stderr, info };
  }

  /**
   * Read a job's output to its end (`read` answers the status its supervisor
   * recorded; `alongside`, if given, runs beside the Info once the status is
   * settled); then the job is forgotten.
   */
  private async readJob(
    c: Container,
    job: Job,
    ctx: RequestContext,
    read: () => Promise<number>,
    alongside?: () => Promise<void>,
  ): Promise<{ status: number; info: M.InfoResponse }> {
    job.readers++;
    let readDone!: () => void;
    const reading = new Promise<void>((r) => (readDone = r));
    c.reads.add(reading);
    try {
      const status = await this.settleExit(c, job, await read());
      job.markExited(status);
      const [info] = await Promise.all([this.host.answerInfo(c), alongside?.()]);
      if (!job.forgotten) c.forgetJob(job);
      return { status, info };
    } finally {
      job.readers--;
      c.reads.delete(reading);
      readDone();
      if (job.forgotten && job.readers === 0) this.kept.drop(job.dir);
      if (job.forgotten && job.readers === 0 && c.state !== 'destroyed') {
        // The guard may still be forwarding the tail to syslog: remove the folder after it.
        // No snapshot for this: recovery takes a container's jobs from their folders
        // (a folder exists until its job is forgotten), and the next snapshot, or the
        // drain's, leaves the job out. A Link burst would otherwise write one each.
        job.guarded
          .then(() => (c.state === 'destroyed' ? undefined : this.folders.remove(job.dir)))
          .catch(() => {});
      }
    }
  }

  /**
   * Drain: stop the job watchers at a clean point (a watcher forwarding to syslog
   * has recorded how far it got, and its logger processes have sent what they
   * took), so that the next daemon forwards each line once. Waits at most
   * `timeoutMs`.
   */
  async stopGuards(timeoutMs = 3000): Promise<void> {
    this.guardsStop.abort();
    await settledWithin([...this.guards], timeoutMs);
    // Folders of jobs linked just now: the next daemon would list them again.
    await settledWithin([this.folders.idle()], timeoutMs);
  }

  /** Wait for job watchers to settle (shutdown). */
  async settle(): Promise<void> {
    await settledWithin([...this.guards], 100);
  }
}

/** The exit status the job's guard recorded, or 'connection closed' when the request is cut first. */
function exitOrAbort(job: Job, signal: AbortSignal): Promise<number> {
  if (!job.running) return job.exited;
  if (signal.aborted) return Promise.reject(new WardenError('connection closed'));
  return new Promise<number>((resolve, reject) => {
    const onAbort = () => reject(new WardenError('connection closed'));
    signal.addEventListener('abort', onAbort, { once: true });
    job.exited.then((s) => {
      signal.removeEventListener('abort', onAbort);
      resolve(s);
    });
  });
}
