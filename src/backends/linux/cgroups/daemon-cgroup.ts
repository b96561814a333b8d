// The daemon's own cgroup in the cpu hierarchy: <own>/<parent>-daemon, beside the
// containers' parent <own>/<parent>, with cpu.shares server.daemon_cpu_shares. A
// container that burns every CPU (a fork bomb) then competes with the daemon
// through the kernel's weights, and Ping, Create and host commands keep their share.
//
// The daemon moves itself in at start (setupHost) and out at exit, and the group is
// removed then; a daemon killed outright leaves it for the next daemon on the same
// depot, which reuses it. Children forked by the daemon start in it, which is right
// for host commands, but two kinds move back to <own> first:
// - `runc run` resolves the container's relative cgroupsPath against its own
//   cgroup; from inside this group the container would land under it.
// - job supervisors outlive the daemon and would keep the group from being removed.
// Only the hierarchy with the cpu controller is touched (v1); on a pure cgroup v2
// host the daemon stays where it was started.
import { mkdir, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { daemonGroupName, emptyAndRemoveGroup, hierarchies, outsideDaemonGroup, type CgroupHierarchy } from './cgroups.ts';
import { wrapError } from '../../../model/errors.ts';

async function cpuHierarchy(): Promise<CgroupHierarchy | undefined> {
  return (await hierarchies()).find((h) => h.controllers.includes('cpu'));
}

/**
 * Creates (or reuses) the daemon's group with the given shares and moves the whole
 * daemon process into it. Returns the cgroup.procs file of the group it left (where
 * runc run and job supervisors go), or undefined when there is no cpu hierarchy.
 */
export async function enterDaemonCgroup(parent: string, shares: number): Promise<string | undefined> {
  const h = await cpuHierarchy();
  if (!h) return undefined;
  const dir = join(h.own, daemonGroupName(parent));
  try {
    await mkdir(dir, { recursive: true });
    await writeFile(join(dir, 'cpu.shares'), String(shares));
    await writeFile(join(dir, 'cgroup.procs'), String(process.pid));
  } catch (err) {
    throw wrapError(`cannot move the daemon into its cgroup ${dir}`, err);
  }
  return join(h.own, 'cgroup.procs');
}

/**
 * The cgroup.procs file a child must write its pid to before it runs runc run or
 * becomes a job supervisor, when this process is in its daemon group now (else undefined).
 */
export async function procsOutsideDaemonGroup(): Promise<string | undefined> {
  const h = await cpuHierarchy();
  if (!h) return undefined;
  const self = await readFile('/proc/self/cgroup', 'utf8');
  const line = self.split('\n').find((l) => l.split(':')[1]?.split(',').includes('cpu'));
  const path = line?.split(':').slice(2).join(':') ?? '';
  return outsideDaemonGroup(path) !== path ? join(h.own, 'cgroup.procs') : undefined;
}

/**
 * Moves every process still in the daemon's group (the daemon at exit; host commands
 * just finishing) back to the group it came from and removes it. Missing is fine.
 */
export async function leaveDaemonCgroup(parent: string): Promise<void> {
  const h = await cpuHierarchy();
  if (!h) return;
  const dir = join(h.own, daemonGroupName(parent));
  await emptyAndRemoveGroup(dir, join(h.own, 'cgroup.procs'));
}
