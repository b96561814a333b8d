// What /proc and sysfs tell about a mounted btrfs, without a command: its UUID
// (the name of its /sys/fs/btrfs directory), whether quotas are on, a qgroup's
// limit. A daemon start asks all three, and each command saved there is a process
// not started while the daemon is down (`findmnt`, `btrfs quota enable`, `btrfs
// qgroup limit`: tens of milliseconds each on a busy 2-core host).
import { basename } from 'node:path';
import { access, readFile, readdir, realpath } from '../../../host/thread-fs.ts';

/** Where the answers are read: the host's files, or a test's copies. */
export interface BtrfsSysfsPaths {
  mountinfo: string;
  /** /sys/fs/btrfs: one directory per mounted btrfs, named by its UUID. */
  btrfs: string;
}

const HOST_PATHS: BtrfsSysfsPaths = { mountinfo: '/proc/self/mountinfo', btrfs: '/sys/fs/btrfs' };

export interface MountEntry {
  point: string;
  fstype: string;
  source: string;
}

/** mountinfo's octal escapes (`\040` for a space) undone. */
function unescapeField(s: string): string {
  return s.replace(/\\([0-7]{3})/g, (_, o: string) => String.fromCharCode(parseInt(o, 8)));
}

/** The mounts of a mountinfo text, in its order (a later mount on the same point is on top). */
export function parseMounts(text: string): MountEntry[] {
  const mounts: MountEntry[] = [];
  for (const line of text.split('\n')) {
    const [pre, post] = line.split(' - ');
    if (!pre || !post) continue;
    const point = pre.split(' ')[4];
    const [fstype, source] = post.split(' ');
    if (point === undefined || fstype === undefined || source === undefined) continue;
    mounts.push({ point: unescapeField(point), fstype, source: unescapeField(source) });
  }
  return mounts;
}

/** The mount that holds realPath (no symlinks in it): the longest mount point it is in, the last of equal ones. */
export function mountContaining(mounts: readonly MountEntry[], realPath: string): MountEntry | undefined {
  let found: MountEntry | undefined;
  for (const m of mounts) {
    const inside = m.point === '/' || realPath === m.point || realPath.startsWith(`${m.point}/`);
    if (inside && (!found || m.point.length >= found.point.length)) found = m;
  }
  return found;
}

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;

/**
 * The UUID of the btrfs that holds path: the mount it is in (mountinfo), that mount's
 * device (loop3, dm-0), and the /sys/fs/btrfs directory listing that device. Undefined
 * when they do not tell (not btrfs, a source that is no device): ask findmnt then.
 */
export async function btrfsUuidFromSysfs(path: string, where: BtrfsSysfsPaths = HOST_PATHS): Promise<string | undefined> {
  const mount = mountContaining(parseMounts(await readFile(where.mountinfo, 'utf8')), await realpath(path));
  if (mount?.fstype !== 'btrfs' || !mount.source.startsWith('/')) return undefined;
  const device = basename(await realpath(mount.source).catch(() => mount.source));
  for (const uuid of await readdir(where.btrfs)) {
    if (!UUID.test(uuid)) continue;
    if (await access(`${where.btrfs}/${uuid}/devices/${device}`).then(() => true, () => false)) return uuid;
  }
  return undefined;
}

/** A qgroup's sysfs directory ("1/1" → .../qgroups/1_1). */
export function qgroupDir(uuid: string, qgroup: string, where: BtrfsSysfsPaths = HOST_PATHS): string {
  return `${where.btrfs}/${uuid}/qgroups/${qgroup.replace('/', '_')}`;
}

/** Whether quotas are on: `btrfs quota enable` adds the qgroups directory, `disable` removes it. */
export async function quotaEnabled(uuid: string, where: BtrfsSysfsPaths = HOST_PATHS): Promise<boolean> {
  return access(`${where.btrfs}/${uuid}/qgroups`).then(() => true, () => false);
}

/** BTRFS_QGROUP_LIMIT_MAX_RFER in limit_flags: a referenced-bytes limit is set. */
const LIMIT_MAX_RFER = 1;

/**
 * The qgroup's referenced-bytes limit as sysfs prints it (decimal bytes); undefined
 * when it has none, or sysfs does not show the qgroup (quotas off, no such qgroup).
 */
export async function referencedLimit(uuid: string, qgroup: string, where: BtrfsSysfsPaths = HOST_PATHS): Promise<string | undefined> {
  const dir = qgroupDir(uuid, qgroup, where);
  try {
    const [flags, max] = await Promise.all([readFile(`${dir}/limit_flags`, 'utf8'), readFile(`${dir}/max_referenced`, 'utf8')]);
    return Number(flags.trim()) & LIMIT_MAX_RFER ? max.trim() : undefined;
  } catch {
    return undefined;
  }
}
