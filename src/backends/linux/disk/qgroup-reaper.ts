// Stale qgroups. A deleted subvolume's qgroup lives until btrfs's cleaner has dropped
// the subvolume's tree, which takes seconds to minutes after a container wrote GBs, and
// the cleaner works through deletions in order. Destroy does not wait for it (waiting
// made every later destroy time out behind one big one): it hands the qgroup to this
// reaper, which removes it once the cleaner is done. Newer kernels drop the qgroup
// themselves at that moment; then the reaper only sees it gone (a sysfs stat, no fork).
// A daemon that exits with qgroups pending leaves them stale; the next start adopts
// every stale qgroup of the depot (adoptStaleQgroupsLater, after the start), so none
// leaks for good.
//
// The cleaner drops deleted subvolumes in the order they were deleted, and only
// after a transaction commit (up to 30 s by default). So a round looks at every
// pending qgroup in sysfs (no fork), but runs `btrfs qgroup destroy` for the oldest
// only: while that one is busy, every younger one is too. Trying them all each
// round forked btrfs about 100 times a second under steady creates and destroys.
import { stat } from '../../../host/thread-fs.ts';
import { HostCommandError, run } from '../exec.ts';
import { filesystemId } from './subvolume.ts';

const FIRST_DELAY_MS = 1_000;
const MAX_DELAY_MS = 15_000;

/** depot → subvolume ids whose qgroup is still to go, oldest first. */
const pending = new Map<string, Set<number>>();
/** Depots whose kernel refused to destroy a just-deleted subvolume's qgroup (EBUSY): destroy hands the qgroup straight to the reaper. */
const holdsBusy = new Set<string>();
let timer: NodeJS.Timeout | undefined;
let delayMs = FIRST_DELAY_MS;
/** The round running now, if any. */
let round: Promise<void> | undefined;

/** Removes qgroup 0/subvolId of depot as soon as btrfs lets it (in the background). */
function reapQgroupLater(depot: string, subvolId: number): void {
  let ids = pending.get(depot);
  if (!ids) pending.set(depot, (ids = new Set()));
  ids.add(subvolId);
  delayMs = FIRST_DELAY_MS;
  schedule();
}

/** Qgroups the reaper still waits for (tests, logs). */
export function pendingQgroups(depot: string): number[] {
  return [...(pending.get(depot) ?? [])];
}

/** Level-0 qgroups of depot whose subvolume is gone or being cleaned (`<stale>` in btrfs's listing). */
export async function staleQgroups(depot: string): Promise<number[]> {
  const out = await run('btrfs', ['qgroup', 'show', '--raw', depot], { context: `list qgroups of ${depot}` });
  const ids: number[] = [];
  for (const line of out.split('\n')) {
    const m = /^0\/(\d+)\s+\d+\s+\d+\s+<stale>\s*$/.exec(line.trim());
    if (m) ids.push(Number(m[1]));
  }
  return ids;
}

/** At start: hand every stale qgroup of depot (left by a daemon that exited) to the reaper. */
export async function adoptStaleQgroups(depot: string): Promise<number> {
  const ids = await staleQgroups(depot);
  for (const id of ids) reapQgroupLater(depot, id);
  return ids.length;
}

/**
 * adoptStaleQgroups a while after the start, in the background: its `btrfs qgroup show`
 * then does not hold up the start, and nothing waits for stale qgroups (the reaper takes
 * seconds to minutes with them anyway). A failure is dropped: the next start looks again.
 */
export function adoptStaleQgroupsLater(depot: string, delayMs = FIRST_DELAY_MS): void {
  const t = setTimeout(() => void adoptStaleQgroups(depot).catch(() => 0), delayMs);
  // A worker that is shutting down must not be kept alive for this.
  t.unref();
}

/**
 * After a subvolume was deleted: removes its qgroup now when this kernel allows that,
 * else leaves it to the reaper. A kernel that said EBUSY once (6.x: a qgroup goes only
 * once the cleaner dropped its tree) is not asked again right after a delete, which
 * would be a fork that always fails.
 */
export async function destroyQgroupOrReap(depot: string, subvolId: number): Promise<void> {
  if (holdsBusy.has(depot)) {
    if (!(await qgroupGone(depot, subvolId))) reapQgroupLater(depot, subvolId);
    return;
  }
  if (!(await tryDestroyQgroup(depot, subvolId))) {
    holdsBusy.add(depot);
    reapQgroupLater(depot, subvolId);
  }
}

/** True when sysfs shows no such qgroup (removed, or the kernel dropped it itself); false when present or unknown. */
async function qgroupGone(depot: string, subvolId: number): Promise<boolean> {
  const fsid = await filesystemId(depot).catch(() => undefined);
  if (!fsid) return false;
  return !(await stat(`/sys/fs/btrfs/${fsid}/qgroups/0_${subvolId}`).then(() => true, () => false));
}

/** Tries once: true when the qgroup is gone (removed now, or already), false while the cleaner still holds it. */
async function tryDestroyQgroup(depot: string, subvolId: number): Promise<boolean> {
  if (await qgroupGone(depot, subvolId)) return true;
  try {
    await run('btrfs', ['qgroup', 'destroy', `0/${subvolId}`, depot], { context: `destroy qgroup 0/${subvolId}` });
    return true;
  } catch (err) {
    if (!(err instanceof HostCommandError)) throw err;
    // EBUSY: the subvolume's tree is not dropped yet.
    if (/busy/i.test(err.stderr)) return false;
    // Gone already, quotas off, or the depot is not mounted any more: nothing to reap.
    if (/No such file|does not exist|not enabled|ENOENT|not a btrfs|Invalid argument/i.test(err.stderr)) return true;
    throw err;
  }
}

/**
 * One round for a depot: drops the qgroups sysfs no longer shows, then destroys
 * the oldest that remain until one is still busy. A failure other than busy
 * (tryDestroyQgroup throws) keeps that qgroup pending without holding up the
 * younger ones.
 */
async function reapDepot(depot: string, ids: Set<number>): Promise<void> {
  for (const id of [...ids]) if (await qgroupGone(depot, id)) ids.delete(id);
  for (const id of [...ids]) {
    let gone: boolean;
    try {
      gone = await tryDestroyQgroup(depot, id);
    } catch {
      continue;
    }
    if (!gone) break;
    ids.delete(id);
  }
  if (ids.size === 0) pending.delete(depot);
}

function schedule(): void {
  if (timer || round) return;
  timer = setTimeout(() => void reapNow(), delayMs);
  // A worker that is shutting down must not be kept alive for this.
  timer.unref();
}

/** One round over every depot now (after the one running, if any); the next is scheduled while some remain. */
export async function reapNow(): Promise<void> {
  while (round) await round;
  clearTimeout(timer);
  timer = undefined;
  round = (async () => {
    for (const [depot, ids] of pending) await reapDepot(depot, ids);
  })();
  try {
    await round;
  } finally {
    round = undefined;
  }
  if (pending.size > 0) {
    delayMs = Math.min(MAX_DELAY_MS, delayMs * 2);
    schedule();
  }
}
