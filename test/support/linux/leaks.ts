// What a destroyed container must not leave behind, found by scanning the host for
// its id, never by asking the implementation what it made: every cgroup hierarchy
// for instance-<id>, mounts, interfaces w-<id>-*, iptables (every table), tc,
// loop devices, runc state in any runc root under /run, the /tmp/warden/cgroup
// links, processes in its cgroups, and its folder.
import { lstat, readdir, readFile, stat } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { execa } from 'execa';
import type { ContainerRecord } from '../../../src/model/records.ts';
import type { LinuxFacts } from '../../../src/backends/linux/container/facts.ts';

const CGROUP_ROOT = '/sys/fs/cgroup';
const CGROUP_LINK_ROOT = '/tmp/warden/cgroup';

/** Directories named `name` anywhere under root (cgroup trees are shallow; no symlinks followed). */
async function findDirs(root: string, name: string, depth = 12): Promise<string[]> {
  const out: string[] = [];
  const walk = async (dir: string, left: number): Promise<void> => {
    const entries = await readdir(dir, { withFileTypes: true }).catch(() => []);
    for (const e of entries) {
      if (!e.isDirectory()) continue;
      const p = join(dir, e.name);
      if (e.name === name) out.push(p);
      else if (left > 0) await walk(p, left - 1);
    }
  };
  await walk(root, depth);
  return out;
}

/** runc state folders named id in any runc root on the host: /run/runc, and the folders under /run named warden... */
async function runcStates(id: string): Promise<string[]> {
  const out: string[] = [];
  for (const e of await readdir('/run', { withFileTypes: true }).catch(() => [])) {
    if (e.isDirectory() && (e.name === 'runc' || e.name.startsWith('warden'))) out.push(...(await findDirs(join('/run', e.name), id, 2)));
  }
  return out;
}

export async function leftovers(c: ContainerRecord, facts?: LinuxFacts): Promise<string[]> {
  const id = c.id;
  const names = (line: string) => line.includes(`instance-${id}`) || line.includes(`w-${id}-`) || line.includes(`warden-i-${id}`) || line.includes(`/${id}/`) || line.endsWith(`/${id}`);
  const found: string[] = [];

  for (const dir of await findDirs(CGROUP_ROOT, `instance-${id}`)) found.push(`cgroup ${dir}`);
  for (const controller of await readdir(CGROUP_LINK_ROOT).catch(() => [] as string[])) {
    const link = join(CGROUP_LINK_ROOT, controller, `instance-${id}`);
    if (await lstat(link).catch(() => undefined)) found.push(`cgroup link ${link}`);
  }

  for (const line of (await readFile('/proc/self/mountinfo', 'utf8')).split('\n')) {
    if (line.includes(id)) found.push(`mount ${line.split(' ').slice(3, 5).join(' ')}`);
  }
  for (const n of await readdir('/sys/class/net')) if (n.startsWith(`w-${id}-`)) found.push(`interface ${n}`);
  for (const table of ['filter', 'nat', 'mangle']) {
    const out = await execa('iptables', ['-w', '-t', table, '-S'], { reject: false });
    for (const line of out.stdout.split('\n')) if (line.includes(id)) found.push(`iptables ${table}: ${line}`);
  }
  const tc = await execa('tc', ['qdisc', 'show'], { reject: false });
  for (const line of tc.stdout.split('\n')) if (line.includes(`w-${id}-`)) found.push(`qdisc: ${line}`);
  const loops = await execa('losetup', ['-l', '-n', '-O', 'NAME,BACK-FILE'], { reject: false });
  for (const line of loops.stdout.split('\n')) if (line.includes(id)) found.push(`loop device: ${line.trim()}`);

  for (const p of await runcStates(id)) found.push(`runc state ${p}`);

  for (const pid of await readdir('/proc').catch(() => [] as string[])) {
    if (!/^\d+$/.test(pid)) continue;
    const [cg, st] = await Promise.all([readFile(`/proc/${pid}/cgroup`, 'utf8').catch(() => ''), readFile(`/proc/${pid}/stat`, 'utf8').catch(() => '')]);
    if (/\) Z /.test(st)) continue; // a zombie holds nothing but its pid
    if (cg.split('\n').some(names)) found.push(`process ${pid}`);
  }

  if (await stat(c.path).catch(() => undefined)) found.push(`folder ${c.path}`);
  if (facts?.subvolume.fsid && facts.subvolume.subvolId !== undefined) {
    // Destroy does not wait for btrfs's cleaner; the qgroup goes once it has dropped the subvolume.
    await execa('btrfs', ['subvolume', 'sync', dirname(c.path)], { reject: false, timeout: 120_000 });
    const q = `/sys/fs/btrfs/${facts.subvolume.fsid}/qgroups/0_${facts.subvolume.subvolId}`;
    if (await stat(q).catch(() => undefined)) found.push(`qgroup ${q}`);
  }
  return found;
}
