// recover: re-adopt a container after a daemon restart. It is alive when the
// runtime says running and its init is the very process we started (pid and
// start time match); then its network rules are rebuilt from the record.
import { stat } from 'node:fs/promises';
import type { ContainerRecord } from '../../../containers/model.ts';
import type { LinuxHostSettings } from '../settings.ts';
import { containerState } from '../runtime/runc.ts';
import { isSameProcess } from '../procfs.ts';
import { restoreContainerNetwork } from '../network/index.ts';
import { factsOf, netSpec, runtimeOf } from './facts.ts';

export async function recoverContainerOnHost(s: LinuxHostSettings, c: ContainerRecord): Promise<boolean> {
  const f = factsOf(c);
  if (!f.initPid || !f.initStartTime || !f.cgroups) return false;
  const state = await containerState(runtimeOf(c, s), c.id);
  if (!state || state.status !== 'running' || state.pid !== f.initPid) return false;
  if (!(await isSameProcess(f.initPid, f.initStartTime))) return false;
  if (f.cgroups.memory && !(await stat(f.cgroups.memory).catch(() => undefined))) return false;
  await restoreContainerNetwork(netSpec(c, s), c.net_in ?? [], c.net_out ?? [], c.limits?.bandwidth);
  return true;
}
