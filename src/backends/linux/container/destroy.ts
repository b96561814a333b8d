// destroy: idempotent, ordered so it cannot hang on a stuck container, and it
// attempts every step even when one fails (the error names each failure).
import { rm } from 'node:fs/promises';
import { stat } from '../../../host/thread-fs.ts';
import type { ContainerRecord } from '../../../model/records.ts';
import { attemptAll } from '../exec.ts';
import { containerPaths } from '../paths.ts';
import type { LinuxHostSettings } from '../settings.ts';
import { CGROUP_LINK_ROOT, unlinkContainerCgroups } from '../cgroups/links.ts';
import { containerCgroups, killAll, removeCgroups, removeJobsGroup } from '../cgroups/cgroups.ts';
import { deleteContainer } from '../runtime/runc.ts';
import { destroyContainerNetwork } from '../network/index.ts';
import { unmountOverlay } from '../rootfs/overlay.ts';
import { mountAt, isBtrfs } from '../disk/depot.ts';
import { deleteSubvolume, subvolumeId, type SubvolumeInfo } from '../disk/subvolume.ts';
import { checkContainerId, factsOf, runtimeOf } from './facts.ts';

export async function destroyContainerOnHost(s: LinuxHostSettings, c: ContainerRecord): Promise<void> {
  checkContainerId(c.id);
  const f = factsOf(c);
  const p = containerPaths(c.path);
  const rt = runtimeOf(c, s);
  const cgroups = f.cgroups ?? (await containerCgroups(s.cgroupParent, c.id));
  let unmounted = false;
  await attemptAll(`destroy ${c.id}`, [
    // Kill first: cgroup.kill / SIGKILL cannot be ignored; runc delete -f also kills.
    ['kill processes', () => killAll(cgroups)],
    ['runtime delete', () => deleteContainer(rt, c.id)],
    ['network', () => destroyContainerNetwork(c.id)],
    ['cgroups', () => removeCgroups(cgroups)],
    ['jobs memory group', () => removeJobsGroup(cgroups)],
    ['cgroup links', () => unlinkContainerCgroups(s.cgroupLinkRoot ?? CGROUP_LINK_ROOT, c.id)],
    ['unmount rootfs', async () => {
      await unmountOverlay(p.mnt);
      unmounted = true;
    }],
    ['subvolume', async () => deleteSubvolume(p.subvolume, f.subvolume ?? (await detectSubvolume(p.subvolume)), s.depot)],
    ['folder', async () => {
      // Never recurse into a mounted root: that would walk the base rootfs.
      if (!unmounted || (await mountAt(p.mnt))) throw new Error(`${p.mnt} is still mounted; folder kept`);
      await rm(c.path, { recursive: true, force: true });
    }],
  ]);
}

/** What a folder left by a failed create or an older record holds at <path>/tmp. */
export async function detectSubvolume(path: string): Promise<SubvolumeInfo> {
  const st = await stat(path).catch(() => undefined);
  if (!st) return { btrfs: false };
  // A btrfs subvolume's root directory has inode number 256.
  if (st.ino === 256 && (await isBtrfs(path))) return { btrfs: true, subvolId: await subvolumeId(path) };
  return { btrfs: false };
}
