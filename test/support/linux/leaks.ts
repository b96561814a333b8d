// What a destroyed container must not leave behind on the host.
import { readFile, stat } from 'node:fs/promises';
import { dirname } from 'node:path';
import { execa } from 'execa';
import type { ContainerRecord } from '../../../src/model/records.ts';
import type { LinuxFacts } from '../../../src/backends/linux/container/facts.ts';

export async function leftovers(c: ContainerRecord, facts: LinuxFacts): Promise<string[]> {
  const found: string[] = [];
  const mounts = await readFile('/proc/self/mountinfo', 'utf8');
  if (mounts.includes(c.id)) found.push('mount');
  for (const dir of new Set(Object.values(facts.cgroups))) {
    if (await stat(dir).catch(() => undefined)) found.push(`cgroup ${dir}`);
  }
  for (const iface of [`w-${c.id}-0`, `w-${c.id}-1`, `w-${c.id}-2`]) {
    if (await stat(`/sys/class/net/${iface}`).catch(() => undefined)) found.push(`interface ${iface}`);
  }
  if (await stat(c.path).catch(() => undefined)) found.push(`folder ${c.path}`);
  const st = await execa('runc', ['--root', facts.runtime.root, 'state', c.id], { reject: false });
  if (st.exitCode === 0) found.push('runtime container');
  if (facts.subvolume.fsid && facts.subvolume.subvolId !== undefined) {
    // Destroy does not wait for btrfs's cleaner; the qgroup goes once it has dropped the subvolume.
    await execa('btrfs', ['subvolume', 'sync', dirname(c.path)], { reject: false, timeout: 120_000 });
    const q = `/sys/fs/btrfs/${facts.subvolume.fsid}/qgroups/0_${facts.subvolume.subvolId}`;
    if (await stat(q).catch(() => undefined)) found.push(`qgroup ${q}`);
  }
  const ipt = await execa('iptables', ['-w', '-S'], { reject: false });
  if (ipt.stdout.includes(`warden-i-${c.id}`)) found.push('iptables chain');
  const nat = await execa('iptables', ['-w', '-t', 'nat', '-S'], { reject: false });
  if (nat.stdout.includes(`warden-i-${c.id}`)) found.push('iptables nat chain');
  return found;
}
