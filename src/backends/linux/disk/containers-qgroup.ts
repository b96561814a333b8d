// One btrfs qgroup over every container's subvolume, limited to the depot's size
// less a reserve. Per-container limits may add up to more than the depot holds (a
// LimitDisk may ask for any size, as the original's setquota took any), so without
// it containers together, or one without a limit, could fill the depot, after which
// snapshots, job output and even destroys failed with ENOSPC for every container.
// The reserve stays for what lives outside the containers' subvolumes: the
// daemon's snapshots, job folders, bundles, and the room btrfs needs to delete.
import { access, statfs } from '../../../host/thread-fs.ts';
import { run, HostCommandError } from '../exec.ts';
import { CONTAINERS_QGROUP, filesystemId } from './subvolume.ts';
import { qgroupDir, referencedLimit } from './btrfs-sysfs.ts';

export { CONTAINERS_QGROUP };

const MiB = 1024 * 1024;
const MIN_AUTO_RESERVE = 256 * MiB;

/** server.container_depot_reserve when not given: 5% of the depot, at least 256 MiB, at most half. */
export function autoReserve(depotBytes: number): number {
  return Math.min(Math.floor(depotBytes / 2), Math.max(MIN_AUTO_RESERVE, Math.floor(depotBytes * 0.05)));
}

/** The containers' share of the depot: its size less the reserve. Throws when nothing is left. */
export function containersShare(depotBytes: number, reserve: number | null): number {
  const r = reserve ?? autoReserve(depotBytes);
  if (r >= depotBytes) {
    throw new Error(`server.container_depot_reserve (${r} bytes) leaves nothing for containers in a depot of ${depotBytes} bytes`);
  }
  return depotBytes - r;
}

/**
 * Creates the containers' qgroup if missing and sets its limit to the share: looked at
 * every start (the depot's size or the reserve may have changed), set only when sysfs
 * shows another limit.
 */
export async function prepareContainersQgroup(depot: string, reserve: number | null): Promise<number> {
  const fs = await statfs(depot);
  const share = containersShare(fs.blocks * fs.bsize, reserve);
  const fsid = await filesystemId(depot);
  const exists = await access(qgroupDir(fsid, CONTAINERS_QGROUP)).then(() => true, () => false);
  if (!exists) {
    try {
      await run('btrfs', ['qgroup', 'create', CONTAINERS_QGROUP, depot], { context: `create qgroup ${CONTAINERS_QGROUP}` });
    } catch (err) {
      if (!(err instanceof HostCommandError && /File exists/i.test(err.stderr))) throw err;
    }
  }
  if ((await referencedLimit(fsid, CONTAINERS_QGROUP)) !== String(share)) {
    await run('btrfs', ['qgroup', 'limit', String(share), CONTAINERS_QGROUP, depot], { context: `limit qgroup ${CONTAINERS_QGROUP}` });
  }
  return share;
}

/**
 * Puts a container's subvolume in the containers' qgroup. Without a rescan: a new
 * (or unshared) subvolume's usage is added exactly, and a rescan walks the whole depot.
 */
export async function joinContainersQgroup(subvolId: number, depot: string): Promise<void> {
  await run('btrfs', ['qgroup', 'assign', '--no-rescan', `0/${subvolId}`, CONTAINERS_QGROUP, depot], {
    context: `put subvolume ${subvolId} in qgroup ${CONTAINERS_QGROUP}`,
  });
}

/**
 * Puts the given container subvolumes that are in no parent qgroup yet (made by
 * a daemon from before the containers' qgroup) into it: one listing for all, and
 * nothing more when they all are in already (every start after the first).
 */
export async function joinMissing(depot: string, subvolIds: number[]): Promise<void> {
  if (subvolIds.length === 0) return;
  const out = await run('btrfs', ['qgroup', 'show', '-p', '--raw', depot], { context: 'list qgroups' });
  const lines = out.split('\n');
  const parentAt = (lines.find((l) => /^\s*qgroupid\b/i.test(l)) ?? '').trim().split(/\s+/).findIndex((t) => /^parent$/i.test(t));
  if (parentAt < 0) throw new Error(`cannot read the qgroup listing of ${depot}: ${lines[0] ?? ''}`);
  const orphans = new Set<number>();
  for (const line of lines) {
    const t = line.trim().split(/\s+/);
    const m = /^0\/(\d+)$/.exec(t[0] ?? '');
    if (m && t[parentAt] === '-') orphans.add(Number(m[1]));
  }
  for (const id of subvolIds) if (orphans.has(id)) await joinContainersQgroup(id, depot);
}
