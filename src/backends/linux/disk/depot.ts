// The depot's disk-limit backing. Per-uid quotas need kernel quota support, which
// hosts like ours lack, so disk limits are btrfs qgroups: the depot must be btrfs.
// When it is not, a sparse image file is formatted once and loop-mounted at the
// depot (mount's autoclear detaches the loop device at umount).
import { mkdir, open, readFile, readdir, statfs, stat } from 'node:fs/promises';
import { dirname } from 'node:path';
import { run } from '../exec.ts';
import type { LinuxHostSettings } from '../settings.ts';
import { prepareContainersQgroup } from './containers-qgroup.ts';
import { quotaEnabled } from './btrfs-sysfs.ts';
import { filesystemId } from './subvolume.ts';

const BTRFS_SUPER_MAGIC = 0x9123683e;
const GiB = 1024 ** 3;

export async function isBtrfs(path: string): Promise<boolean> {
  return (await statfs(path)).type === BTRFS_SUPER_MAGIC;
}

/** The mount at exactly path (last one wins), from /proc/self/mountinfo. */
export async function mountAt(path: string): Promise<{ fstype: string; source: string } | undefined> {
  const text = await readFile('/proc/self/mountinfo', 'utf8');
  let found: { fstype: string; source: string } | undefined;
  for (const line of text.split('\n')) {
    const [pre, post] = line.split(' - ');
    if (!pre || !post) continue;
    const point = pre.split(' ')[4]?.replace(/\\040/g, ' ');
    if (point === path) {
      const [fstype, source] = post.split(' ');
      found = { fstype, source };
    }
  }
  return found;
}

/** Makes the depot a btrfs filesystem with quotas on (idempotent). */
export async function prepareDepot(s: LinuxHostSettings): Promise<void> {
  await mkdir(s.depot, { recursive: true });
  if (!s.diskQuota) return;
  if (!(await isBtrfs(s.depot))) {
    const entries = await readdir(s.depot);
    if (entries.length > 0) {
      throw new Error(
        `depot ${s.depot} is not on btrfs and not empty: disk limits need a btrfs depot ` +
          `(empty it so an image can be mounted there, or set quota.disk_quota_enabled: false)`,
      );
    }
    await ensureImage(s);
    await run('mount', ['-t', 'btrfs', '-o', 'loop,discard=async,noatime', s.depotImage, s.depot], {
      context: `mount depot image ${s.depotImage}`,
    });
  }
  // Sysfs shows quotas on at every start but the first: no command then.
  const fsid = await filesystemId(s.depot, { fresh: true });
  if (!(await quotaEnabled(fsid))) await run('btrfs', ['quota', 'enable', s.depot], { context: 'enable btrfs quota on the depot' });
  await prepareContainersQgroup(s.depot, s.depotReserve ?? null);
}

async function ensureImage(s: LinuxHostSettings): Promise<void> {
  const exists = await stat(s.depotImage).then(() => true, () => false);
  if (exists) return;
  await mkdir(dirname(s.depotImage), { recursive: true });
  let size = s.depotImageBytes;
  if (!size) {
    const fs = await statfs(dirname(s.depotImage));
    size = Math.min(256 * GiB, Math.max(1 * GiB, Math.floor((fs.bavail * fs.bsize) / 2)));
  }
  const tmp = `${s.depotImage}.tmp-${process.pid}`;
  const fh = await open(tmp, 'w', 0o600);
  try {
    await fh.truncate(size); // sparse
  } finally {
    await fh.close();
  }
  await run('mkfs.btrfs', ['-q', '-L', 'warden-depot', tmp], { context: `format depot image ${tmp}` });
  await run('mv', ['-T', tmp, s.depotImage], { context: 'install depot image' });
}

/** Unmounts the depot image if we mounted one (tests, operators); leaves the image file. */
export async function unmountDepot(s: LinuxHostSettings): Promise<void> {
  const m = await mountAt(s.depot);
  if (m && m.fstype === 'btrfs' && m.source.startsWith('/dev/loop')) {
    await run('umount', [s.depot], { context: `unmount depot ${s.depot}` });
  }
}
