// Worker tasks of the Linux backend (see workers/tasks.ts). Each takes one plain
// object: `host` (LinuxHostSettings) where host-wide settings matter, `c` the
// ContainerRecord as the daemon knows it (c.backend holds LinuxFacts after create).
import type { ContainerRecord, NetOutRule } from '../../containers/model.ts';
import type { DiskLimits, InfoResponse } from '../../protocol/types.ts';
import type { LinuxHostSettings } from './settings.ts';
import { setupHost, teardownHost, type HostFacts } from './host/setup.ts';
import { createContainerOnHost } from './container/create.ts';
import { destroyContainerOnHost } from './container/destroy.ts';
import { stopContainerProcesses } from './container/stop.ts';
import { recoverContainerOnHost, recoverContainersOnHost, type RecoverOutcome } from './container/recover.ts';
import { sweepHost } from './container/sweep.ts';
import { liveFacts, netSpec, type LinuxFacts } from './container/facts.ts';
import { killJobProcesses } from './jobs/kill.ts';
import { containerInfo } from './info.ts';
import { copyIn, copyOut } from './copy.ts';
import { limitCpu, limitDisk, limitMemory } from './limits.ts';
import { containerPaths } from './paths.ts';
import { watchOom, type OomResult, type WatchOomArgs } from './oom.ts';
import { limitBandwidth, netIn, netOut } from './network/index.ts';

interface HostArg {
  host: LinuxHostSettings;
}
interface ContainerArg {
  c: ContainerRecord;
}

export const linuxTasks = {
  'linux.setupHost': (a: HostArg): Promise<HostFacts> => setupHost(a.host),
  'linux.teardownHost': (a: HostArg): Promise<void> => teardownHost(a.host),
  'linux.sweep': (a: HostArg & { claimed: string[]; only?: string[] }): Promise<void> =>
    sweepHost(a.host, { claimed: new Set(a.claimed), only: a.only ? new Set(a.only) : undefined }),

  'linux.create': (a: HostArg & ContainerArg): Promise<LinuxFacts> => createContainerOnHost(a.host, a.c),
  'linux.recover': (a: HostArg & ContainerArg): Promise<boolean> => recoverContainerOnHost(a.host, a.c),
  /** linux.recover for many containers in one go (daemon start); one outcome per record. */
  'linux.recoverMany': (a: HostArg & { cs: ContainerRecord[] }): Promise<RecoverOutcome[]> => recoverContainersOnHost(a.host, a.cs),
  'linux.stop': (a: ContainerArg & { kill: boolean; timeoutMs?: number }): Promise<void> =>
    stopContainerProcesses(a.c, a.kill, a.timeoutMs),
  'linux.destroy': (a: HostArg & ContainerArg): Promise<void> => destroyContainerOnHost(a.host, a.c),

  'linux.killJob': (a: ContainerArg & { job: { id: number; dir: string; pid?: number } }): Promise<void> =>
    killJobProcesses(a.c, a.job),
  'linux.info': (a: ContainerArg): Promise<InfoResponse> => containerInfo(a.c),

  'linux.copyIn': (a: ContainerArg & { src: string; dst: string }): Promise<void> => copyIn(a.c, a.src, a.dst),
  'linux.copyOut': (a: ContainerArg & { src: string; dst: string; owner?: string }): Promise<void> =>
    copyOut(a.c, a.src, a.dst, a.owner),

  'linux.netIn': (a: HostArg & ContainerArg & { hostPort: number; containerPort: number }): Promise<void> =>
    netIn(netSpec(a.c, a.host), a.hostPort, a.containerPort, a.c.net_in),
  'linux.netOut': (a: HostArg & ContainerArg & { rule: NetOutRule }): Promise<void> =>
    netOut(netSpec(a.c, a.host), a.rule),

  /** Sets (when bytes is given) and returns memory.limit_in_bytes. */
  'linux.limitMemory': (a: ContainerArg & { bytes?: number }): Promise<number> => limitMemory(liveFacts(a.c).cgroups, a.bytes),
  /** Sets (when shares is given) and returns cpu.shares. */
  'linux.limitCpu': (a: ContainerArg & { shares?: number }): Promise<number> => limitCpu(liveFacts(a.c).cgroups, a.shares),
  'linux.limitBandwidth': (a: ContainerArg & { rate: number; burst: number }): Promise<void> =>
    limitBandwidth(a.c.id, a.rate, a.burst),
  /** Applies the byte/block limits given (inode limits are refused) and returns the limits in force. */
  'linux.limitDisk': (a: ContainerArg & { limits: DiskLimits }): Promise<DiskLimits> =>
    limitDisk(containerPaths(a.c.path).subvolume, liveFacts(a.c).subvolume, a.limits),

  /** Long-lived: resolves when the container is OOM-killed ('oom') or its cgroup is gone ('gone'). */
  'linux.watchOom': (a: WatchOomArgs): Promise<OomResult> => watchOom(a),
};
