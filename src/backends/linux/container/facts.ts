// What the Linux backend keeps in ContainerRecord.backend: everything destroy and
// recover need, so they work after a daemon restart without recomputing.
import type { ContainerRecord } from '../../../model/records.ts';
import type { CgroupPaths } from '../cgroups/cgroups.ts';
import type { SubvolumeInfo } from '../disk/subvolume.ts';
import type { ContainerNetSpec } from '../network/index.ts';
import type { LinuxHostSettings } from '../settings.ts';
import type { Runtime } from '../runtime/runc.ts';

export interface LinuxFacts {
  /** Host pid of the container's init (PID 1 inside) and its start time (/proc/PID/stat field 22). */
  initPid: number;
  initStartTime: number;
  cgroups: CgroupPaths;
  subvolume: SubvolumeInfo;
  /** The runtime and its state dir the container was created with. */
  runtime: Runtime;
}

export function factsOf(c: ContainerRecord): Partial<LinuxFacts> {
  return (c.backend ?? {}) as Partial<LinuxFacts>;
}

/** Facts that must be there for a live container (anything else is a bug or a foreign record). */
export function liveFacts(c: ContainerRecord): LinuxFacts {
  const f = factsOf(c);
  if (!f.initPid || !f.cgroups || !f.subvolume || !f.runtime) {
    throw new Error(`container ${c.id} has no Linux backend record (was it created by this backend?)`);
  }
  return f as LinuxFacts;
}

export function runtimeOf(c: ContainerRecord, s: LinuxHostSettings): Runtime {
  return factsOf(c).runtime ?? { binary: s.runtime, root: s.runtimeRoot };
}

export function netSpec(c: ContainerRecord, s: LinuxHostSettings): ContainerNetSpec {
  return { id: c.id, hostIp: c.host_ip, containerIp: c.container_ip, mtu: s.mtu };
}

const ID = /^[0-9a-z]{1,11}$/;

/** Ids name folders, cgroups, interfaces and chains: refuse anything else early. */
export function checkContainerId(id: string): void {
  if (typeof id !== 'string' || !ID.test(id)) {
    throw new Error(`invalid container id ${JSON.stringify(id)}: expected 1-11 characters [0-9a-z]`);
  }
}

export function isContainerId(name: string): boolean {
  return ID.test(name);
}
