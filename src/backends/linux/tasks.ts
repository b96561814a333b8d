// Worker tasks of the Linux backend (see src/workers/task-table.ts). Each takes one plain
// object: `host` (LinuxHostSettings) where host-wide settings matter, `c` the
// ContainerRecord as the daemon knows it (c.backend holds LinuxFacts after create).
import type { ContainerRecord, NetOutRule } from '../../model/records.ts';
import type { DiskLimits, InfoResponse, U64 } from '../../protocol/types.ts';
import type { LinuxHostSettings } from './settings.ts';
import { leaveHost, setupHost, teardownHost, type HostFacts } from './host/setup.ts';
import { createContainerOnHost } from './container/create.ts';
import { destroyContainerOnHost } from './container/destroy.ts';
import { stopContainerProcesses } from './container/stop.ts';
import { recoverContainersOnHost } from './container/recover.ts';
import type { RecoverOutcome } from '../backend.ts';
import { sweepHost } from './container/sweep.ts';
import { liveFacts, netSpec, type LinuxFacts } from './container/facts.ts';
import { killJobProcesses } from './jobs/kill.ts';
import { containerInfo } from './info.ts';
import type { InfoOutcome } from './info-batch.ts';
import { describeError } from '../../model/errors.ts';
import { copyIn, copyOut } from './copy.ts';
import { limitCpu, limitDisk, limitMemory } from './limits.ts';
import { containerPaths } from './paths.ts';
import { oomKillCount, type CgroupPaths } from './cgroups/cgroups.ts';
import { watchContainerEvents } from './container-events.ts';
import type { MessagePort } from 'node:worker_threads';
import { limitBandwidth, netIn, netOut } from './network/index.ts';
import { readKernelFileSync } from '../../host/kernel-file.ts';

interface HostArg {
  host: LinuxHostSettings;
}
interface ContainerArg {
  c: ContainerRecord;
}

export const linuxTasks = {
  'linux.setupHost': (a: HostArg): Promise<HostFacts> => setupHost(a.host),
  'linux.teardownHost': (a: HostArg): Promise<void> => teardownHost(a.host),
  'linux.leaveHost': (a: HostArg): Promise<void> => leaveHost(a.host),
  'linux.sweep': (a: HostArg & { claimed: string[]; only?: string[] }): Promise<void> =>
    sweepHost(a.host, { claimed: new Set(a.claimed), only: a.only ? new Set(a.only) : undefined }),

  'linux.create': (a: HostArg & ContainerArg): Promise<LinuxFacts> => createContainerOnHost(a.host, a.c),
  /** Re-adopts containers after a restart, many in one go; one outcome per record. */
  'linux.recoverMany': (a: HostArg & { cs: ContainerRecord[] }): Promise<RecoverOutcome[]> => recoverContainersOnHost(a.host, a.cs),
  'linux.stop': (a: ContainerArg & { kill: boolean; timeoutMs?: number }): Promise<void> =>
    stopContainerProcesses(a.c, a.kill, a.timeoutMs),
  'linux.destroy': (a: HostArg & ContainerArg): Promise<void> => destroyContainerOnHost(a.host, a.c),

  'linux.killJob': (a: ContainerArg & { job: { id: number; dir: string } }): Promise<void> =>
    killJobProcesses(a.c, a.job),
  // Blocking reads: a handful of small kernel files read in a row cost this worker
  // less than a threadpool trip each would cost the caller.
  'linux.info': (a: ContainerArg): Promise<InfoResponse> => containerInfo(a.c, async (path) => readKernelFileSync(path)),
  /** Info of several containers (an InfoBatch); one outcome per record, in order. */
  // Side by side, not in a row: the reads block anyway, but a container with a
  // bandwidth limit waits for `tc`, and the others need not wait with it.
  'linux.infoMany': (a: { cs: ContainerRecord[] }): Promise<InfoOutcome[]> =>
    Promise.all(
      a.cs.map((c) =>
        containerInfo(c, async (path) => readKernelFileSync(path)).then(
          (info): InfoOutcome => ({ info }),
          (err: unknown): InfoOutcome => ({ error: describeError(err) }),
        ),
      ),
    ),

  'linux.copyIn': (a: ContainerArg & { src: string; dst: string }): Promise<void> => copyIn(a.c, a.src, a.dst),
  'linux.copyOut': (a: ContainerArg & { src: string; dst: string; owner?: string }): Promise<void> =>
    copyOut(a.c, a.src, a.dst, a.owner),

  'linux.netIn': (a: HostArg & ContainerArg & { hostPort: number; containerPort: number }): Promise<void> =>
    netIn(netSpec(a.c, a.host), a.hostPort, a.containerPort, a.c.net_in),
  'linux.netOut': (a: HostArg & ContainerArg & { rule: NetOutRule }): Promise<void> =>
    netOut(netSpec(a.c, a.host), a.rule),

  /** Sets (when bytes is given) and returns memory.limit_in_bytes. */
  'linux.limitMemory': (a: ContainerArg & { bytes?: U64 }): Promise<U64> => limitMemory(liveFacts(a.c).cgroups, a.bytes),
  /** Sets (when shares is given) and returns cpu.shares. */
  'linux.limitCpu': (a: ContainerArg & { shares?: U64 }): Promise<U64> => limitCpu(liveFacts(a.c).cgroups, a.shares),
  'linux.limitBandwidth': (a: ContainerArg & { rate: number; burst: number }): Promise<void> =>
    limitBandwidth(a.c.id, a.rate, a.burst),
  /** Applies the byte/block limits given (inode limits are refused) and returns the limits in force. */
  'linux.limitDisk': (a: ContainerArg & { limits: DiskLimits }): Promise<DiskLimits> =>
    limitDisk(containerPaths(a.c.path).subvolume, liveFacts(a.c).subvolume, a.limits),

  /** Long-lived, one per daemon: reports OOM kills and init deaths of every container over the port (container-events.ts). */
  'linux.containerEvents': (a: { port: MessagePort }): Promise<void> => watchContainerEvents(a),
  /** Whether the kernel has OOM-killed a process of the container (its memory cgroup's oom_kill counter). */
  'linux.oomKilled': async (a: { cgroups: CgroupPaths }): Promise<boolean> => ((await oomKillCount(a.cgroups)) ?? 0) > 0,
};
