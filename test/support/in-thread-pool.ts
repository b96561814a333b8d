// A TaskRunner (src/workers/pool.ts) that runs the daemon's real worker tasks
// (src/workers/task-table.ts: depot, job, insecure and Linux tasks) in the test's
// own thread. What crosses the thread boundary is cloned as it would be between
// threads (arguments with their transfer list, results, errors as WireErrors made
// WardenErrors again, as WorkerPool does), so a task can neither see nor change
// the caller's objects. Knobs: make a task fail, and
// read the record of calls. Test-only: never imported by src/.
import runTask, { type TaskArgs, type TaskName, type TaskResult } from '../../src/workers/task-table.ts';
import { fromWireError, isWireError, toWireError } from '../../src/model/errors.ts';
import type { TransferListItem } from 'node:worker_threads';
import type { TaskRunner } from '../../src/workers/pool.ts';

export interface TaskCall {
  name: TaskName;
  /** The arguments as the task received them (a clone). */
  args: unknown;
}

interface Fault {
  error: Error;
  /** Only calls whose arguments match (default: every call of the task). */
  when: (args: unknown) => boolean;
  times: number;
}

/**
 * An error as WorkerPool.run delivers it: the task table throws it as a WireError
 * (plain data), which is cloned across and made a WardenError again with its code.
 */
function acrossThreads(err: unknown): unknown {
  const cloned: unknown = structuredClone(isWireError(err) ? err : toWireError(err));
  return isWireError(cloned) ? fromWireError(cloned) : cloned;
}

export class InThreadPool implements TaskRunner {
  readonly calls: TaskCall[] = [];
  private readonly faults = new Map<TaskName, Fault[]>();
  private readonly inFlight = new Set<Promise<unknown>>();

  /**
   * The next `times` calls of `name` (those whose arguments pass `when`) fail with
   * `error` without running the task.
   */
  failNext(name: TaskName, opts: { error?: Error; times?: number; when?: (args: unknown) => boolean } = {}): void {
    const list = this.faults.get(name) ?? [];
    list.push({
      error: opts.error ?? new Error(`${name} failed (injected by the test)`),
      when: opts.when ?? (() => true),
      times: opts.times ?? 1,
    });
    this.faults.set(name, list);
  }

  /** Calls of one task, in order. */
  callsOf(name: TaskName): unknown[] {
    return this.calls.filter((c) => c.name === name).map((c) => c.args);
  }

  run<K extends TaskName>(name: K, args: TaskArgs<K>, transferList?: TransferListItem[]): Promise<TaskResult<K>> {
    const p = this.execute(name, args, transferList);
    this.inFlight.add(p);
    const forget = () => this.inFlight.delete(p);
    p.then(forget, forget);
    return p;
  }

  /** Resolves once no task is running (tasks started meanwhile included). */
  async idle(): Promise<void> {
    while (this.inFlight.size > 0) await Promise.allSettled([...this.inFlight]);
  }

  private async execute<K extends TaskName>(name: K, args: TaskArgs<K>, transferList?: TransferListItem[]): Promise<TaskResult<K>> {
    // Cloned now, as postMessage would: later changes by the caller are not seen.
    const cloned = structuredClone(args, transferList ? { transfer: transferList as never[] } : undefined);
    this.calls.push({ name, args: cloned });
    // Like a worker, the task starts on a later turn, never inside the caller's synchronous code.
    await Promise.resolve();
    const faults = this.faults.get(name) ?? [];
    const fault = faults.find((f) => f.times > 0 && f.when(cloned));
    if (fault) {
      fault.times--;
      throw acrossThreads(fault.error);
    }
    let result: unknown;
    try {
      result = await runTask({ name, args: cloned });
    } catch (err) {
      throw acrossThreads(err);
    }
    return structuredClone(result) as TaskResult<K>;
  }
}
