// sweep: at daemon start, remove every host resource of ours that no live
// container claims: runtime containers, cgroups, overlay mounts, subvolumes and
// folders in the depot, network leftovers. `only` restricts it to some ids (tests
// share the host with other work).
import { readdir, rm, stat, readFile } from 'node:fs/promises';
import { join } from 'node:path';
import type { LinuxHostSettings } from '../settings.ts';
import { attemptAll, run } from '../exec.ts';
import { parentCgroups, killAll, removeCgroups, type CgroupPaths } from '../cgroups/cgroups.ts';
import { CGROUP_LINK_ROOT, sweepCgroupLinks } from '../cgroups/links.ts';
import { deleteContainer, listContainers, runtimeRootIds } from '../runtime/runc.ts';
import { sweepNetwork } from '../network/index.ts';
import { containerPaths } from '../paths.ts';
import { deleteSubvolume } from '../disk/subvolume.ts';
import { detectSubvolume } from './destroy.ts';
import { isContainerId } from './facts.ts';
import { cidrContains, parseCidr, parseIpv4 } from '../../../model/ipv4.ts';

export interface SweepArgs {
  claimed: Set<string>;
  only?: Set<string>;
}

/** Ids of containers this daemon has any trace of: runtime state, cgroups, depot folders, pool addresses. */
async function ownedIds(s: LinuxHostSettings, runtimeIds: Promise<string[]>): Promise<Set<string>> {
  const ids = new Set<string>();
  for (const id of await runtimeIds) ids.add(id);
  for (const parent of await parentCgroups(s.cgroupParent).catch(() => [] as string[])) {
    for (const name of await readdir(parent).catch(() => [] as string[])) {
      const m = /^instance-([^.]+)(?:\.jobs)?$/.exec(name);
      if (m) ids.add(m[1]);
    }
  }
  for (const name of await readdir(s.depot).catch(() => [] as string[])) ids.add(name);
  const pool = parseCidr(s.network.poolNetwork);
  const out = await run('ip', ['-o', '-4', 'addr', 'show'], { context: 'sweep' }).catch(() => undefined);
  for (const line of out?.split('\n') ?? []) {
    const m = /^\d+:\s+w-([0-9a-z]+)-0\s+inet\s+([\d.]+)\//.exec(line);
    const ip = m ? parseIpv4(m[2]) : undefined;
    if (m && pool && ip !== undefined && cidrContains(pool, ip)) ids.add(m[1]);
  }
  return ids;
}

export async function sweepHost(s: LinuxHostSettings, a: SweepArgs): Promise<void> {
  const orphan = (id: string) => isContainerId(id) && !a.claimed.has(id) && (!a.only || a.only.has(id));
  const rt = { binary: s.runtime, root: s.runtimeRoot };
  // One `runc list` for both uses; the network is swept while the runtime,
  // cgroups and depot are (it is independent of them): the daemon is down meanwhile.
  const runtimeIds = listContainers(rt).catch(() => [] as string[]);
  // Which ids are ours is read before anything is removed.
  const owned = a.only ? Promise.resolve(a.only) : ownedIds(s, runtimeIds);
  const lanes = await Promise.allSettled([
    attemptAll('sweep', [
      ['runtime containers', async () => {
        await owned.catch(() => undefined);
        // Also folders a `runc run` cut by a kill left without a state.json.
        const ids = new Set([...(await runtimeIds), ...(await runtimeRootIds(rt))]);
        for (const id of [...ids].filter(orphan)) await deleteContainer(rt, id);
      }],
      ['cgroups', async () => {
      for (const parent of await parentCgroups(s.cgroupParent)) {
        const names = await readdir(parent).catch(() => [] as string[]);
        for (const name of names) {
          // instance-<id>, and instance-<id>.jobs (its jobs' memory group).
          const m = /^instance-([^.]+)(?:\.jobs)?$/.exec(name);
          if (!m || !orphan(m[1])) continue;
          const paths: CgroupPaths = { any: join(parent, name) };
          await killAll(paths);
          await removeCgroups(paths);
        }
      }
      }],
      ['cgroup links', async () => {
        // Only links into our own parents: another daemon's containers are not ours to judge.
        await sweepCgroupLinks(s.cgroupLinkRoot ?? CGROUP_LINK_ROOT, await parentCgroups(s.cgroupParent), orphan);
      }],
      ['depot', async () => {
      const mounts = await readFile('/proc/self/mountinfo', 'utf8');
      for (const name of await readdir(s.depot).catch(() => [] as string[])) {
        if (!orphan(name)) continue;
        const p = containerPaths(join(s.depot, name));
        // Only folders that look like ours: a bundle or a subvolume inside.
        const ours = (await stat(p.bundle).catch(() => undefined)) || (await stat(p.subvolume).catch(() => undefined));
        if (!ours) continue;
        if (mounts.includes(` ${p.mnt} `)) await run('umount', ['-l', p.mnt], { context: `sweep ${name}` });
        await deleteSubvolume(p.subvolume, await detectSubvolume(p.subvolume), s.depot);
        await rm(p.root, { recursive: true, force: true });
      }
      }],
    ]),
    attemptAll('sweep', [['network', async () => {
      // Only networks this daemon can tell are its own: of ids it has other
      // state for, or whose host end holds an address of its pool. Another
      // daemon's containers on the same host are left alone.
      const ours = await owned;
      await sweepNetwork(a.claimed, { include: (id) => ours.has(id) });
    }]]),
  ]);
  const failed = lanes.flatMap((l) => (l.status === 'rejected' ? [l.reason as Error] : []));
  if (failed.length > 0) throw new AggregateError(failed, failed.map((f) => f.message).join('; '));
}
