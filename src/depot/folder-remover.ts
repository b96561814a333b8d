// Removes finished jobs' folders in two steps:
// 1. Hidden at once: the folders of one turn of the event loop are renamed, in one
//    worker task, to hidden siblings (`.gone-<id>`). One rename each, after which
//    no restart lists the job again (recovery takes jobs from their folders).
// 2. Deleted later, on the janitor, once removals stop coming for a while (a Link
//    burst is over) or at the latest MAX_DELAY_MS after the first: deleting a
//    job's folder (about ten unlinks on the btrfs depot) beside a burst of 400
//    Links at 16 connections cost the burst 45% of its rate, even at nice 10.
// What a daemon leaves hidden (killed, or drained before the delete) the next one
// deletes after its recovery (scanDepot lists it).
import type { TaskRunner } from '../workers/pool.ts';

/** Folders one worker task renames or deletes at most (the deletes block the janitor a few ms for this many). */
const BATCH = 64;
/** Delete once no folder was hidden for this long... */
const QUIET_MS = 250;
/** ...or this long after the first one waiting, whichever comes first. */
const MAX_DELAY_MS = 5_000;

/** A hidden folder's name: this prefix and the job folder's own name. Job ids are digits only. */
export const RETIRED_PREFIX = '.gone-';

export class FolderRemover {
  private readonly pool: TaskRunner;
  private queued: { path: string; done: () => void }[] = [];
  private hiding: Promise<void> | undefined;
  /** Hidden folders waiting for their delete, and when the first of them came. */
  private doomed: string[] = [];
  private firstDoomedAt = 0;
  private timer: NodeJS.Timeout | undefined;
  private deleting: Promise<void> = Promise.resolve();

  constructor(pool: TaskRunner) {
    this.pool = pool;
  }

  /** Remove the folder at path (rm -rf); resolves once it is hidden, gone, or could not be removed. */
  remove(path: string): Promise<void> {
    return new Promise<void>((done) => {
      this.queued.push({ path, done });
      this.hiding ??= new Promise<void>((r) => setImmediate(r)).then(() => this.hide());
    });
  }

  private async hide(): Promise<void> {
    while (this.queued.length > 0) {
      const batch = this.queued.splice(0, BATCH);
      const paths = batch.map((b) => b.path);
      // What could not be hidden is deleted where it is.
      this.deleteLater(await this.pool.run('state.hideTrees', { paths, prefix: RETIRED_PREFIX }).catch(() => paths));
      for (const b of batch) b.done();
    }
    this.hiding = undefined;
  }

  /** Delete these folders (rm -rf) on the janitor once removals pause. */
  deleteLater(paths: readonly string[]): void {
    if (paths.length === 0) return;
    const now = performance.now();
    if (this.doomed.length === 0) this.firstDoomedAt = now;
    this.doomed.push(...paths);
    clearTimeout(this.timer);
    this.timer = setTimeout(() => void this.deleteNow(), Math.max(0, Math.min(QUIET_MS, this.firstDoomedAt + MAX_DELAY_MS - now)));
    // A daemon that exits meanwhile leaves them hidden for the next one.
    this.timer.unref();
  }

  /** Delete what waits now; resolves when every delete asked for so far is done. */
  deleteNow(): Promise<void> {
    clearTimeout(this.timer);
    this.timer = undefined;
    const paths = this.doomed;
    this.doomed = [];
    this.deleting = this.deleting.then(async () => {
      for (let i = 0; i < paths.length; i += BATCH) {
        await this.pool.run('state.removeTrees', { paths: paths.slice(i, i + BATCH) }).catch(() => {});
      }
    });
    return this.deleting;
  }

  /** Resolves once every folder asked for so far is hidden (a drain waits for it; the deletes may wait for the next daemon). */
  async idle(): Promise<void> {
    await this.hiding;
  }

  /** Every folder asked for so far hidden and deleted. */
  async settled(): Promise<void> {
    await this.hiding;
    await this.deleteNow();
  }
}
