// One btrfs subvolume per container (<path>/tmp: overlay upper + work dirs); its
// level-0 qgroup carries the disk limit. Usage is read from sysfs
// (/sys/fs/btrfs/<fsid>/qgroups/0_<subvolid>/referenced), so Info does not fork.
import { rm } from 'node:fs/promises';
import { mkdir } from '../../../host/thread-fs.ts';
import { dirname } from 'node:path';
import { run, HostCommandError } from '../exec.ts';
import { isBtrfs } from './depot.ts';
import type { U64 } from '../../../protocol/types.ts';
import { destroyQgroupOrReap } from './qgroup-reaper.ts';
import { readKernelFile } from '../../../host/kernel-file.ts';
import { btrfsUuidFromSysfs } from './btrfs-sysfs.ts';

export interface SubvolumeInfo {
  /** false: a plain directory (depot not on btrfs and disk quotas off). */
  btrfs: boolean;
  subvolId?: number;
  fsid?: string;
}

export async function createSubvolume(path: string, parentFs: string, quota: boolean): Promise<SubvolumeInfo> {
  if (!quota && !(await isBtrfs(parentFs))) {
    await mkdir(path, { recursive: true });
    return { btrfs: false };
  }
  await run('btrfs', ['subvolume', 'create', path], { context: `create subvolume ${path}` });
  try {
    const [id, fsid] = await Promise.all([subvolumeId(path), filesystemId(parentFs)]);
    return { btrfs: true, subvolId: id, fsid };
  } catch (err) {
    await run('btrfs', ['subvolume', 'delete', path], { context: `delete subvolume ${path}` }).catch(() => undefined);
    throw err;
  }
}

export async function subvolumeId(path: string): Promise<number> {
  const out = await run('btrfs', ['inspect-internal', 'rootid', path], { context: `subvolume id of ${path}` });
  return Number(out.trim());
}

const fsids = new Map<string, string>();

/**
 * The filesystem's UUID (its /sys/fs/btrfs directory name): from mountinfo and sysfs,
 * else findmnt. Remembered per path; fresh: look again (the depot at start, which
 * may have been mounted anew since).
 */
export async function filesystemId(path: string, opts: { fresh?: boolean } = {}): Promise<string> {
  const cachedId = opts.fresh ? undefined : fsids.get(path);
  if (cachedId) return cachedId;
  const id = (await btrfsUuidFromSysfs(path).catch(() => undefined)) ?? (await findmntUuid(path));
  fsids.set(path, id);
  return id;
}

async function findmntUuid(path: string): Promise<string> {
  const out = await run('findmnt', ['-n', '-o', 'UUID', '-T', path], { context: `btrfs filesystem of ${path}` });
  const m = /([0-9a-f-]{36})/.exec(out);
  if (!m) throw new Error(`cannot find the btrfs uuid of ${path} in: ${out}`);
  return m[1];
}

/** The level-1 qgroup that holds every container subvolume of the depot. */
export const CONTAINERS_QGROUP = '1/1';

/**
 * Deletes the subvolume; missing is fine. Its qgroup goes now if btrfs lets it, else
 * the qgroup reaper removes it once the cleaner has dropped the tree: never wait for
 * the cleaner here (after a container wrote GBs it takes minutes, and every later
 * deletion queues behind it).
 */
export async function deleteSubvolume(path: string, info: SubvolumeInfo, depot: string): Promise<void> {
  if (!info.btrfs) {
    await rm(path, { recursive: true, force: true });
    return;
  }
  const exists = await isBtrfs(path).catch(() => false);
  if (exists && info.subvolId !== undefined) {
    // Out of the containers' qgroup first: that gives its share back at once, where
    // the deleted subvolume's bytes would count until btrfs's cleaner is done with
    // them (which destroy does not wait for). Not a member (an older container): fine.
    await run('btrfs', ['qgroup', 'remove', `0/${info.subvolId}`, CONTAINERS_QGROUP, depot], { context: `leave ${CONTAINERS_QGROUP}` }).catch(() => undefined);
  }
  if (exists) {
    await run('btrfs', ['subvolume', 'delete', path], { context: `delete subvolume ${path}` });
  }
  if (info.subvolId !== undefined) await destroyQgroupOrReap(depot, info.subvolId);
}

/**
 * Sets (bytes > 0) or clears (0) the referenced-bytes limit of the subvolume's qgroup.
 * Named by id and done through the subvolume's parent folder: the change is a
 * transaction charged to the subvolume it is made on, and a container that filled
 * the containers' share would refuse it (EDQUOT) if made on its own subvolume.
 */
export async function setByteLimit(path: string, bytes: U64, info?: SubvolumeInfo): Promise<void> {
  const target = info?.subvolId === undefined ? [path] : [`0/${info.subvolId}`, dirname(path)];
  await run('btrfs', ['qgroup', 'limit', bytes > 0 ? String(bytes) : 'none', ...target], {
    context: `limit disk of ${path}`,
  });
}

/** The subvolume's qgroup file in sysfs (undefined: not a btrfs subvolume we know the id of). */
export function qgroupFile(info: SubvolumeInfo, name: string): string | undefined {
  if (!info.btrfs || !info.fsid || info.subvolId === undefined) return undefined;
  return `/sys/fs/btrfs/${info.fsid}/qgroups/0_${info.subvolId}/${name}`;
}

/** Bytes referenced by the subvolume (btrfs accounts at transaction commit: lags by up to ~30 s). */
export async function bytesUsed(info: SubvolumeInfo, read: (path: string) => Promise<string> = readKernelFile): Promise<number | undefined> {
  const file = qgroupFile(info, 'referenced');
  if (!file) return undefined;
  try {
    return Number((await read(file)).trim());
  } catch {
    return undefined;
  }
}
