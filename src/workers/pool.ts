// The daemon's one Piscina pool. Every task is async inside the worker, so each
// worker multiplexes many at once (job followers run for a job's whole life):
// a blocked slot per job would cap us at a few jobs per core.
// Layer: src/workers/ is the thread boundary: plain data and transferred ports
// cross it, errors as WireErrors; nothing else is shared with the workers.
import { availableParallelism } from 'node:os';
import { fileURLToPath } from 'node:url';
import type { TransferListItem } from 'node:worker_threads';
import { Piscina } from 'piscina';
import { fromWireError, isWireError } from '../model/errors.ts';
import type { TaskName, TaskArgs, TaskResult } from './task-table.ts';
import type { SharedSpawner } from '../host/spawner.ts';

/**
 * Each worker's V8 young generation. V8 sizes it for throughput (up to 48 MiB a
 * thread on this kind of host) and keeps what it grew to: with two workers that was
 * 20-30 MiB of the daemon's RSS at 1,000 containers. A worker's tasks allocate
 * little on the V8 heap (buffers live outside it), so a small nursery only means
 * more, shorter scavenges. The main thread's is capped in bin/warden-server.
 */
const WORKER_YOUNG_GENERATION_MB = 4;

export interface WorkerPoolOptions {
  threads?: number;
  /** Task families (name prefixes: state, job, insecure, linux) each worker loads as it boots; the rest load on first use. */
  preload?: string[];
  /** The daemon's shared spawner (startSharedSpawner): the workers' host commands go to it. */
  spawner?: SharedSpawner;
}

/**
 * What main-thread code needs of the pool: run one task by name. The orchestrator,
 * recovery and the job follower depend on this, not on WorkerPool, so that unit
 * tests can run the same tasks in their own thread (test/support/in-thread-pool.ts).
 */
export interface TaskRunner {
  run<K extends TaskName>(name: K, args: TaskArgs<K>, transferList?: TransferListItem[]): Promise<TaskResult<K>>;
}

/**
 * Tasks that no request waits for, run on the janitor: one more thread at a low
 * CPU priority. Removing a Link burst's job folders (about ten unlinks each on the
 * btrfs depot) took half the daemon's CPU at 16 connections, and the Infos the
 * Links wait for queued behind it in the same workers.
 */
const BACKGROUND_TASKS: ReadonlySet<TaskName> = new Set<TaskName>(['state.removeTrees']);

/** The janitor's nice value: under load it gets about a tenth of what a request's thread gets, and all the CPU left idle. */
const JANITOR_NICE = 10;
const JANITOR_IDLE_MS = 30_000;

/** Set by scripts/build in the bundle: its worker entry, relative to this source file. */
declare const WARDEN_WORKER_ENTRY: string | undefined;

/** The file each worker starts from: the bundle's worker when this module runs bundled, else the source entry. */
const WORKER_ENTRY = fileURLToPath(
  new URL(typeof WARDEN_WORKER_ENTRY === 'string' ? WARDEN_WORKER_ENTRY : '../../workers/tasks.ts', import.meta.url),
);

/** A Piscina of the task table's workers; what differs between the two lanes is given. */
function lane(o: {
  minThreads: number;
  maxThreads: number;
  idleTimeout: number;
  workerData: { preload: string[]; nice?: number; spawner?: SharedSpawner };
}): Piscina {
  return new Piscina({
    filename: WORKER_ENTRY,
    concurrentTasksPerWorker: 4096,
    // 'sync' (the default) blocks an idle worker in Atomics.wait, its event loop with
    // it: work a worker starts on its own (the task families it preloads at boot)
    // would stand still until its first task came.
    atomics: 'async',
    resourceLimits: { maxYoungGenerationSizeMb: WORKER_YOUNG_GENERATION_MB },
    ...o,
  });
}

export class WorkerPool implements TaskRunner {
  private readonly piscina: Piscina;
  private readonly janitor: Piscina;

  constructor(opts: WorkerPoolOptions = {}) {
    const threads = Math.max(1, opts.threads ?? availableParallelism());
    this.piscina = lane({
      minThreads: threads,
      maxThreads: threads,
      idleTimeout: Number.MAX_SAFE_INTEGER,
      workerData: { preload: opts.preload ?? [], ...(opts.spawner ? { spawner: opts.spawner } : {}) },
    });
    // Started on first use and ended after a quiet spell: most hosts link in bursts,
    // and a thread that idles costs the daemon's RSS some 10 MiB. Its commands go to a
    // spawner of its own, which inherits its low priority.
    this.janitor = lane({ minThreads: 0, maxThreads: 1, idleTimeout: JANITOR_IDLE_MS, workerData: { preload: [], nice: JANITOR_NICE } });
  }

  run<K extends TaskName>(name: K, args: TaskArgs<K>, transferList?: TransferListItem[]): Promise<TaskResult<K>> {
    const target = BACKGROUND_TASKS.has(name) ? this.janitor : this.piscina;
    return (target.run({ name, args }, transferList ? { transferList: transferList as never } : undefined) as Promise<TaskResult<K>>).catch(
      (err: unknown) => {
        // A task's failure arrives as plain data: made a WardenError again, with its code.
        throw isWireError(err) ? fromWireError(err) : err;
      },
    );
  }

  get stats(): { threads: number; queued: number; utilization: number } {
    return {
      threads: this.piscina.threads.length,
      queued: this.piscina.queueSize,
      utilization: this.piscina.utilization,
    };
  }

  /**
   * Ends the workers at once. Called at shutdown, after every snapshot is written:
   * what still runs then are long-lived watchers (job followers, OOM watches) that
   * the next daemon starts again. piscina's close() would wait for them — for a
   * job or a container that lives on, until its 30 s closeTimeout, and then fail
   * the drain (exit 1).
   */
  async close(): Promise<void> {
    await Promise.all([this.piscina.destroy(), this.janitor.destroy()]);
  }
}
