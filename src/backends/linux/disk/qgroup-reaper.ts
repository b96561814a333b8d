// Stale qgroups. A deleted subvolume's qgroup lives until btrfs's cleaner has dropped
// the subvolume's tree, which takes seconds to minutes after a container wrote GBs, and
// the cleaner works through deletions in order. Destroy does not wait for it (waiting
// made every later destroy time out behind one big one): it hands the qgroup to this
// reaper, which removes it once the cleaner is done. Newer kernels drop the qgroup
// themselves at that moment; then the reaper only sees it gone (a sysfs stat, no fork).
// A daemon that exits with qgroups pending leaves them stale; the next start adopts
// every stale qgroup of the depot (adoptStaleQgroups), so none leaks for good.
import { stat } from 'node:fs/promises';
import { HostCommandError, run } from '../exec.ts';
import { filesystemId } from './subvolume.ts';

const FIRST_DELAY_MS = 1_000;
const MAX_DELAY_MS = 15_000;

/** depot → subvolume ids whose qgroup is still to go. */
const pending = new Map<string, Set<number>>();
let timer: NodeJS.Timeout | undefined;
let delayMs = FIRST_DELAY_MS;
let reaping = false;

/** Removes qgroup 0/subvolId of depot as soon as btrfs lets it (in the background). */
export function reapQgroupLater(depot: string, subvolId: number): void {
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

/** Tries once: true when the qgroup is gone (removed now, or already), false while the cleaner still holds it. */
export async function tryDestroyQgroup(depot: string, subvolId: number): Promise<boolean> {
  const fsid = await filesystemId(depot).catch(() => undefined);
  if (fsid && !(await stat(`/sys/fs/btrfs/${fsid}/qgroups/0_${subvolId}`).then(() => true, () => false))) return true;
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

function schedule(): void {
  if (timer || reaping) return;
  timer = setTimeout(() => void reap(), delayMs);
  // A worker that is shutting down must not be kept alive for this.
  timer.unref();
}

async function reap(): Promise<void> {
  timer = undefined;
  reaping = true;
  try {
    for (const [depot, ids] of pending) {
      for (const id of [...ids]) {
        const gone = await tryDestroyQgroup(depot, id).catch(() => false);
        if (gone) ids.delete(id);
      }
      if (ids.size === 0) pending.delete(depot);
    }
  } finally {
    reaping = false;
  }
  if (pending.size > 0) {
    delayMs = Math.min(MAX_DELAY_MS, delayMs * 2);
    schedule();
  }
}
