// Removes finished jobs' folders in batches: a burst of Links (a DEA linking
// every job of a staging wave) would otherwise cost one worker task each, and
// on the main thread a task's hand-off (piscina's queue, a postMessage) costs
// more than the removal itself costs the worker.
import type { TaskRunner } from '../workers/pool.ts';

/** Folders one worker task removes at most: the removal blocks that worker (a few ms for this many). */
const BATCH = 64;

export class FolderRemover {
  private readonly pool: TaskRunner;
  private queued: { path: string; done: () => void }[] = [];
  private flushing: Promise<void> | undefined;

  constructor(pool: TaskRunner) {
    this.pool = pool;
  }

  /** Remove the folder at path (rm -rf); resolves once it is gone or could not be removed. */
  remove(path: string): Promise<void> {
    return new Promise<void>((done) => {
      this.queued.push({ path, done });
      // What is removed in this turn of the event loop goes together (BATCH a task).
      this.flushing ??= new Promise<void>((r) => setImmediate(r)).then(() => this.flush());
    });
  }

  private async flush(): Promise<void> {
    while (this.queued.length > 0) {
      const batch = this.queued.splice(0, BATCH);
      await this.pool.run('state.removeTrees', { paths: batch.map((b) => b.path) }).catch(() => {});
      for (const b of batch) b.done();
    }
    this.flushing = undefined;
  }

  /** Resolves once every removal asked for so far is done (a drain waits for it). */
  async idle(): Promise<void> {
    await this.flushing;
  }
}
