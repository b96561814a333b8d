// info: memory, cpu, disk and bandwidth figures from files (cgroups, btrfs sysfs);
// the only fork is tc's, and only when a bandwidth limit is set.
import { join } from 'node:path';
import type { ContainerRecord } from '../../model/records.ts';
import { MEMORY_STAT_FIELDS, type InfoResponse, type MemoryStat } from '../../protocol/types.ts';
import { parseKeyValues } from './cgroups/cgroups.ts';
import { readKernelFile } from '../../host/kernel-file.ts';
import { parseU64 } from '../../protocol/u64.ts';
import { bytesUsed } from './disk/subvolume.ts';
import { bandwidthStat } from './network/index.ts';
import { liveFacts } from './container/facts.ts';

export async function containerInfo(c: ContainerRecord, read: (path: string) => Promise<string> = readKernelFile): Promise<InfoResponse> {
  const f = liveFacts(c);
  const mem = f.cgroups.memory;
  const acct = f.cgroups.cpuacct;
  const [memStat, usage, cpuStat, bytes, bw] = await Promise.all([
    mem ? read(join(mem, 'memory.stat')).then(parseKeyValues, () => undefined) : undefined,
    acct ? read(join(acct, 'cpuacct.usage')).then(parseU64, () => undefined) : undefined,
    acct ? read(join(acct, 'cpuacct.stat')).then(parseKeyValues, () => undefined) : undefined,
    bytesUsed(f.subvolume, read),
    c.limits?.bandwidth ? bandwidthStat(c.id).catch(() => undefined) : undefined,
  ]);
  const memory_stat: MemoryStat = {};
  if (memStat) for (const k of MEMORY_STAT_FIELDS) if (memStat.has(k)) memory_stat[k] = memStat.get(k);
  return {
    host_ip: c.host_ip,
    container_ip: c.container_ip,
    container_path: c.path,
    memory_stat,
    cpu_stat: { usage: usage ?? 0, user: cpuStat?.get('user') ?? 0, system: cpuStat?.get('system') ?? 0 },
    disk_stat: { bytes_used: bytes ?? 0, inodes_used: 0 },
    bandwidth_stat: bw ?? { in_rate: 0, in_burst: 0, out_rate: 0, out_burst: 0 },
  };
}
