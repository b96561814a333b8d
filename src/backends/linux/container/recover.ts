// recover: re-adopt a container after a daemon restart. It is alive when the
// runtime says running and its init is the very process we started (pid and
// start time match); then its network rules are rebuilt from the record.
import { stat } from 'node:fs/promises';
import type { RecoverOutcome } from '../../backend.ts';
import type { ContainerRecord } from '../../../model/records.ts';
import type { LinuxHostSettings } from '../settings.ts';
import { keepsRuncState, listContainerStates, readRuncState, type RuntimeState } from '../runtime/runc.ts';
import { isSameProcess } from '../../../host/procfs.ts';
import { restoreContainerNetworks } from '../network/index.ts';
import { describeError } from '../../../model/errors.ts';
import { factsOf, netSpec, runtimeOf } from './facts.ts';
import { CGROUP_LINK_ROOT, linkContainerCgroups } from '../cgroups/links.ts';

/** The /tmp/warden/cgroup links of a live container (a host clean-up of /tmp may have taken them). */
function relink(s: LinuxHostSettings, c: ContainerRecord): Promise<void> {
  return linkContainerCgroups(s.cgroupLinkRoot ?? CGROUP_LINK_ROOT, c.id, factsOf(c).cgroups ?? {});
}
import { joinMissing } from '../disk/containers-qgroup.ts';
import { mapBounded } from '../bounded.ts';

/** The btrfs subvolume ids of containers whose rootfs is one. */
function subvolumeIds(cs: ContainerRecord[]): number[] {
  return cs.flatMap((c) => {
    const v = factsOf(c).subvolume;
    return v?.btrfs && v.subvolId !== undefined ? [v.subvolId] : [];
  });
}

/** Containers whose /proc and cgroup checks run at once. */
const AT_ONCE = 32;

/** Whether the runtime's view and /proc agree that c's init is the process we started. */
async function initAlive(c: ContainerRecord, state: RuntimeState | undefined): Promise<boolean> {
  const f = factsOf(c);
  if (!f.initPid || !f.initStartTime || !f.cgroups) return false;
  if (!state || state.status !== 'running' || state.pid !== f.initPid) return false;
  if (!(await isSameProcess(f.initPid, f.initStartTime))) return false;
  if (f.cgroups.memory && !(await stat(f.cgroups.memory).catch(() => undefined))) return false;
  return true;
}

/**
 * Re-adopts containers after a restart with a handful of host commands in all
 * (runc's state read from its files, or one `list` per runtime root for another
 * runtime; batched network restore) rather than ~6 each: at daemon start every
 * fork counts, and the daemon is down until recovery is done.
 */
export async function recoverContainersOnHost(s: LinuxHostSettings, cs: ContainerRecord[]): Promise<RecoverOutcome[]> {
  const out: RecoverOutcome[] = cs.map(() => ({ alive: false }));
  const states = new Map<string, Map<string, RuntimeState> | Error>();
  for (const c of cs) {
    const rt = runtimeOf(c, s);
    if (!keepsRuncState(rt) && !states.has(rt.root)) states.set(rt.root, await listContainerStates(rt).catch((err: Error) => err));
  }
  const isAlive = await mapBounded(cs, AT_ONCE, async (c, i) => {
    const rt = runtimeOf(c, s);
    if (keepsRuncState(rt)) return initAlive(c, await readRuncState(rt, c.id));
    const list = states.get(rt.root)!;
    if (list instanceof Error) {
      out[i] = { error: describeError(list) };
      return false;
    }
    return initAlive(c, list.get(c.id));
  });
  const alive = cs.flatMap((_, i) => (isAlive[i] ? [i] : []));
  // The network, the cgroup links and the depot's qgroup are independent: restored at once.
  const [restored, relinked] = await Promise.all([
    restoreContainerNetworks(
      alive.map((i) => {
        const c = cs[i]!;
        return { spec: netSpec(c, s), netIn: c.net_in ?? [], netOut: c.net_out ?? [], bandwidth: c.limits?.bandwidth };
      }),
    ),
    mapBounded(alive, AT_ONCE, (i) => relink(s, cs[i]!).then(() => undefined, (e: unknown) => e)),
    // Not a reason to lose the containers: they would only stay outside the depot's share.
    s.diskQuota ? joinMissing(s.depot, subvolumeIds(alive.map((i) => cs[i]!))).catch(() => undefined) : undefined,
  ]);
  alive.forEach((i, k) => {
    const err = restored[k] ?? relinked[k];
    out[i] = err ? { error: describeError(err) } : { alive: true };
  });
  return out;
}
