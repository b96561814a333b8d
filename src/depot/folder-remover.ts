// Removes finished jobs' folders in two steps:
// 1. Listed at once: the folders of one turn of the event loop are appended, in
//    one worker task and one write, to a list in the depot (FORGOTTEN_LIST_PREFIX);
//    recovery takes no job from a folder a list names, so no restart lists the job
//    again. (Renaming each folder to a hidden sibling did the same, but a rename
//    is about 45 us of btrfs metadata work: a third of a Link burst's worker time.)
// 2. Deleted later, on the janitor, once removals stop coming for a while (a Link
//    burst is over) or at the latest MAX_DELAY_MS after the first: deleting a
//    job's folder (about ten unlinks on the btrfs depot) beside a burst of 400
//    Links at 16 connections cost the burst 45% of its rate, even at nice 10.
// Each delete round starts a new list, and a list is removed once every folder it
// names is deleted: no list outgrows a few seconds of Links. What a daemon leaves
// listed (killed, or drained before the delete) the next one deletes after its
// recovery, then the lists (scanDepot reads them).
import { randomBytes } from 'node:crypto';
import { join, relative } from 'node:path';
import type { TaskRunner } from '../workers/pool.ts';

/** Folders one janitor task deletes at most (the deletes block the janitor a few ms for this many). */
const BATCH = 64;
/** Delete once no folder was listed for this long... */
const QUIET_MS = 250;
/** ...or this long after the first one waiting, whichever comes first. */
const MAX_DELAY_MS = 5_000;

/** A list's file name in the depot: this prefix, the writing daemon's token, the list's number. */
export const FORGOTTEN_LIST_PREFIX = '.forgotten-';

/** A line of a list: a job folder relative to the depot (container folder, `jobs`, job id). */
export const FORGOTTEN_LINE = /^([^./\n][^/\n]*)\/jobs\/([0-9]{1,16})$/;

interface Doomed {
  path: string;
  /** The list that names it, if one does. */
  list?: string;
}

export class FolderRemover {
  private readonly pool: TaskRunner;
  private readonly depot: string;
  /** Names this daemon's lists apart from those a daemon before it left (recovery removes those). */
  private readonly token = randomBytes(4).toString('hex');
  private generation = 1;
  /** The folders each list names that are not deleted yet. */
  private readonly listed = new Map<string, Set<string>>();
  private queued: { path: string; done: () => void }[] = [];
  private listing: Promise<void> | undefined;
  /** Folders waiting for their delete, and when the first of them came. */
  private doomed: Doomed[] = [];
  private firstDoomedAt = 0;
  private timer: NodeJS.Timeout | undefined;
  private deleting: Promise<void> = Promise.resolve();

  constructor(pool: TaskRunner, depot: string) {
    this.pool = pool;
    this.depot = depot;
  }

  /** Remove the folder at path (rm -rf); resolves once it is listed, or could not be. */
  remove(path: string): Promise<void> {
    return new Promise<void>((done) => {
      this.queued.push({ path, done });
      this.listing ??= new Promise<void>((r) => setImmediate(r)).then(() => this.list());
    });
  }

  private currentList(): string {
    return join(this.depot, `${FORGOTTEN_LIST_PREFIX}${this.token}-${this.generation}`);
  }

  private async list(): Promise<void> {
    while (this.queued.length > 0) {
      const batch = this.queued.splice(0);
      const list = this.currentList();
      let members = this.listed.get(list);
      if (!members) this.listed.set(list, (members = new Set()));
      const lines: string[] = [];
      const items: Doomed[] = batch.map(({ path }) => {
        const line = relative(this.depot, path);
        if (!FORGOTTEN_LINE.test(line)) return { path };
        lines.push(line);
        // Named before the write starts: a delete round that ends meanwhile must not remove the list.
        members.add(path);
        return { path, list };
      });
      if (lines.length > 0) {
        const written = await this.pool.run('state.appendText', { path: list, text: `${lines.join('\n')}\n` }).then(
          () => true,
          () => false,
        );
        // Deleted all the same; only a restart before the delete would list these jobs again.
        if (!written) for (const item of items) if (item.list && members.delete(item.path)) delete item.list;
      }
      this.doomLater(items);
      for (const b of batch) b.done();
    }
    this.listing = undefined;
  }

  /**
   * What a daemon before this one left (recovery's scan): the forgotten folders are
   * deleted on the janitor now, then the lists that named them, so that a daemon
   * killed meanwhile still has them. Never rejects.
   */
  async adopt(folders: readonly string[], lists: readonly string[]): Promise<void> {
    this.doomLater(folders.map((path) => ({ path })));
    await this.deleteNow();
    if (lists.length > 0) await this.pool.run('state.removeTrees', { paths: [...lists] }).catch(() => {});
  }

  private doomLater(items: readonly Doomed[]): void {
    if (items.length === 0) return;
    const now = performance.now();
    if (this.doomed.length === 0) this.firstDoomedAt = now;
    this.doomed.push(...items);
    clearTimeout(this.timer);
    this.timer = setTimeout(() => void this.deleteNow(), Math.max(0, Math.min(QUIET_MS, this.firstDoomedAt + MAX_DELAY_MS - now)));
    // A daemon that exits meanwhile leaves them listed for the next one.
    this.timer.unref();
  }

  /** Delete what waits now; resolves when every delete asked for so far is done, and the lists they emptied removed. */
  deleteNow(): Promise<void> {
    clearTimeout(this.timer);
    this.timer = undefined;
    const items = this.doomed;
    this.doomed = [];
    // Later removals go to a new list, so that this one can go once its folders have.
    if (this.listed.get(this.currentList())?.size) this.generation++;
    this.deleting = this.deleting.then(async () => {
      for (let i = 0; i < items.length; i += BATCH) {
        const part = items.slice(i, i + BATCH);
        await this.pool.run('state.removeTrees', { paths: part.map((d) => d.path) }).catch(() => {});
        for (const d of part) if (d.list) this.listed.get(d.list)?.delete(d.path);
      }
      const current = this.currentList();
      const spent = [...this.listed].filter(([list, members]) => members.size === 0 && list !== current).map(([list]) => list);
      for (const list of spent) this.listed.delete(list);
      if (spent.length > 0) await this.pool.run('state.removeTrees', { paths: spent }).catch(() => {});
    });
    return this.deleting;
  }

  /** Resolves once every folder asked for so far is listed (a drain waits for it; the deletes may wait for the next daemon). */
  async idle(): Promise<void> {
    await this.listing;
  }

  /** Every folder asked for so far listed and deleted, and the lists that named them removed. */
  async settled(): Promise<void> {
    await this.listing;
    await this.deleteNow();
  }
}
