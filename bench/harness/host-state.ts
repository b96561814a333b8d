// What a bench run leaves on the host. Every check is scoped to what is the
// run's own: for a daemon the harness started, everything under its depot,
// runtime root and cgroup parent, and anything carrying an address of the bench
// range; for an existing daemon, the container ids that appeared during the run
// (depot folders, runc state, cgroups, interfaces) and not before it. Other work
// on the host (test suites, other daemons) never counts.
import { readFile, readdir, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { execa } from 'execa';
import { parentCgroups } from '../../src/backends/linux/cgroups/cgroups.ts';
import { mountAt } from '../../src/backends/linux/disk/depot.ts';
import { unusedBaseChains } from '../../src/backends/linux/network/index.ts';
import { cidrContains, parseCidr, parseIpv4 } from '../../src/model/ipv4.ts';
import { BENCH_RANGE, type Target } from './daemon.ts';

/** Host resources of the raw baselines (the harness's own runc root, cgroup parent, folder). */
export interface RawScope {
  dir: string;
  runtimeRoot: string;
  cgroupParent: string;
  ids: Set<string>;
}

const ID = /^[0-9a-z]{1,11}$/;

/** Container ids the target's daemon has any trace of on the host now. */
export async function daemonIds(t: Target): Promise<Set<string>> {
  const ids = new Set<string>();
  const depot = t.config?.server.container_depot_path;
  if (depot) for (const name of await readdir(depot).catch(() => [] as string[])) if (ID.test(name)) ids.add(name);
  const s = t.settings;
  if (s) {
    // `runc list` creates a missing root: look before asking it.
    if (await stat(s.runtimeRoot).catch(() => undefined)) {
      const list = await execa('runc', ['--root', s.runtimeRoot, 'list', '-q'], { reject: false });
      for (const id of list.stdout.split('\n')) if (ID.test(id.trim())) ids.add(id.trim());
    }
    for (const parent of await parentCgroups(s.cgroupParent).catch(() => [] as string[])) {
      for (const name of await readdir(parent).catch(() => [] as string[])) {
        const m = /^instance-([0-9a-z]{1,11})$/.exec(name);
        if (m) ids.add(m[1]);
      }
    }
    for (const id of await ifaceIdsIn(s.network.poolNetwork)) ids.add(id);
  }
  if (t.own) {
    const log = await readFile(t.own.logPath, 'utf8').catch(() => '');
    for (const m of log.matchAll(/"id":"([0-9a-v]{11})"/g)) ids.add(m[1]);
  }
  return ids;
}

/** Ids of w-<id>-0 interfaces whose address lies in cidr. */
async function ifaceIdsIn(cidr: string): Promise<string[]> {
  const pool = parseCidr(cidr);
  const out = await execa('ip', ['-o', '-4', 'addr', 'show'], { reject: false });
  const ids: string[] = [];
  for (const line of out.stdout.split('\n')) {
    const m = /^\d+:\s+w-([0-9a-z]+)-0\s+inet\s+([\d.]+)\//.exec(line);
    const ip = m ? parseIpv4(m[2]) : undefined;
    if (m && pool && ip !== undefined && cidrContains(pool, ip)) ids.push(m[1]);
  }
  return ids;
}

export interface LeakCheck {
  found: string[];
  checked: string[];
}

/**
 * Everything of the run's left on the host. `ids`: container ids of the run (for an
 * existing daemon: seen during the run, not before). After the own daemon's teardown
 * (`tornDown`), its depot mount, runtime root, cgroup parents and folder must be gone too.
 */
export async function findLeaks(t: Target, ids: Set<string>, raw: RawScope | undefined, tornDown: boolean): Promise<LeakCheck> {
  const found: string[] = [];
  const checked: string[] = [];
  const own = !!t.own;
  const depot = t.config?.server.container_depot_path;
  const mentions = (line: string, idSet: Set<string>) => {
    for (const id of idSet) if (line.includes(`i-${id}`) || line.includes(`w-${id}-`) || line.includes(`instance-${id}`)) return true;
    return false;
  };
  const allIds = new Set([...ids, ...(raw?.ids ?? [])]);

  if (depot) {
    checked.push(own ? `depot ${depot}: no container folders` : `depot ${depot}: none of the run's ${ids.size} container folders`);
    for (const e of await readdir(depot, { withFileTypes: true }).catch(() => [])) {
      if (!e.isDirectory() || e.name === 'lost+found') continue;
      if (own || ids.has(e.name)) found.push(`depot folder ${join(depot, e.name)}`);
    }
  }

  // Processes: job supervisors and jobs (their command lines name the depot), runc execs, anything in our cgroups.
  const markers: string[] = [];
  if (depot) markers.push(`${depot}/`);
  if (raw) markers.push(`${raw.dir}/`);
  const cgroupMarkers: string[] = [];
  if (own && t.settings) cgroupMarkers.push(`/${t.settings.cgroupParent}/`);
  if (raw?.cgroupParent) cgroupMarkers.push(`/${raw.cgroupParent}/`);
  checked.push('processes: none whose command line names the depot or that sit in the run\'s cgroups');
  // Processes of a container being torn down can take a moment to be reaped: look again for a few seconds.
  for (let attempt = 0; ; attempt++) {
    const procs = await ownProcesses(t, ids, markers, cgroupMarkers, own);
    if (procs.length === 0) break;
    if (attempt >= 10) {
      found.push(...procs);
      break;
    }
    await new Promise((r) => setTimeout(r, 500));
  }

  if (t.backend === 'linux') {
    const s = t.settings;
    checked.push(`interfaces: no w-*-0 with an address in ${BENCH_RANGE}, none of the run's ids`);
    for (const id of await ifaceIdsIn(BENCH_RANGE)) found.push(`interface w-${id}-0 (address in ${BENCH_RANGE})`);
    for (const name of await readdir('/sys/class/net')) {
      const m = /^w-([0-9a-z]+)-[0-2]$/.exec(name);
      if (m && allIds.has(m[1]) && !found.some((f) => f.startsWith(`interface ${name}`))) found.push(`interface ${name}`);
    }
    checked.push(`iptables (filter, nat, mangle): no chain or rule of the run's containers, none naming ${BENCH_RANGE}${tornDown ? '' : ' but the base rules'}`);
    for (const table of ['filter', 'nat', 'mangle']) {
      const out = await execa('iptables', ['-w', '-t', table, '-S'], { reject: false });
      for (const line of out.stdout.split('\n')) {
        if (mentions(line, allIds)) found.push(`iptables ${table}: ${line}`);
        else if (line.includes('10.240.') && (tornDown || !/^-A warden-(default|input|postrouting) -s 10\.240\.0\.0\/16 /.test(line)) && !/ -s 10\.240\.0\.0\/16 .*warden-egress-guard-/.test(line)) {
          found.push(`iptables ${table}: ${line}`);
        } else if (tornDown && line.includes(`warden-egress-guard-${process.pid}`)) found.push(`egress guard: ${table} ${line}`);
      }
    }
    if (tornDown && own) {
      checked.push('iptables: no base chain left that nothing uses');
      for (const c of await unusedBaseChains()) found.push(`iptables base chain ${c}, used by nothing`);
    }
    const qdiscs = await execa('tc', ['qdisc', 'show'], { reject: false });
    for (const line of qdiscs.stdout.split('\n')) if (mentions(line, allIds)) found.push(`qdisc: ${line}`);

    const parents: Array<[string, boolean]> = [];
    if (s) for (const p of await parentCgroups(s.cgroupParent)) parents.push([p, own]);
    if (raw?.cgroupParent) for (const p of await parentCgroups(raw.cgroupParent)) parents.push([p, true]);
    checked.push('cgroups: no instance-* group of the run' + (tornDown ? ', no cgroup parent of the daemon or the raw baseline' : ''));
    for (const [parent, whole] of parents) {
      const names = await readdir(parent).catch(() => undefined);
      if (names === undefined) continue;
      for (const name of names) {
        const m = /^instance-(.+)$/.exec(name);
        if (m && (whole || ids.has(m[1]))) found.push(`cgroup ${join(parent, name)}`);
      }
      if (tornDown && whole) found.push(`cgroup parent ${parent}`);
    }

    checked.push('runc: no container under the daemon\'s or the raw baseline\'s runtime root' + (own ? '' : ' of the run'));
    for (const [root, whole] of [[s?.runtimeRoot, own], [raw?.runtimeRoot, true]] as Array<[string | undefined, boolean]>) {
      // `runc list` creates a missing root: look before asking it.
      if (!root || !(await stat(root).catch(() => undefined))) continue;
      const list = await execa('runc', ['--root', root, 'list', '-q'], { reject: false });
      for (const id of list.stdout.split('\n').filter(Boolean)) if (whole || ids.has(id)) found.push(`runc container ${id} (root ${root})`);
      if (tornDown && whole && (await stat(root).catch(() => undefined))) found.push(`runtime root ${root}`);
    }

    const mountinfo = await readFile('/proc/self/mountinfo', 'utf8');
    checked.push('mounts: none under the depot or the raw baseline folder' + (tornDown ? ', depot unmounted' : ''));
    for (const line of mountinfo.split('\n')) {
      const point = line.split(' ')[4];
      if (!point) continue;
      if (depot && point.startsWith(`${depot}/`) && (own || [...ids].some((id) => point.startsWith(`${depot}/${id}/`)))) found.push(`mount ${point}`);
      if (raw && point.startsWith(`${raw.dir}/`)) found.push(`mount ${point}`);
      if (depot && own && tornDown && point === depot) found.push(`depot mount ${point}`);
    }
    if (s && depot) {
      const m = await mountAt(depot);
      if (m?.fstype === 'btrfs') {
        checked.push('btrfs: no qgroup left in the depot');
        const qg = await execa('btrfs', ['qgroup', 'show', '--raw', depot], { reject: false });
        for (const line of qg.stdout.split('\n')) {
          const q = /^0\/(\d+)\s/.exec(line.trim());
          if (q && q[1] !== '5' && own) found.push(`qgroup 0/${q[1]} in ${depot}`);
        }
      }
      if (tornDown && own) {
        const losetup = await execa('losetup', ['-n', '-O', 'NAME', '-j', s.depotImage], { reject: false });
        for (const dev of losetup.stdout.split('\n').map((l) => l.trim()).filter(Boolean)) found.push(`loop device ${dev} of ${s.depotImage}`);
      }
    }
  }
  if (raw) {
    checked.push(`raw baseline folder ${raw.dir}: gone`);
    if (await stat(raw.dir).catch(() => undefined)) found.push(`raw baseline folder ${raw.dir}`);
  }
  if (tornDown && t.own) {
    checked.push(`daemon folder ${t.own.dir}: gone`);
    if (await stat(t.own.dir).catch(() => undefined)) found.push(`daemon folder ${t.own.dir}`);
    if (t.settings && (await stat(t.settings.depotImage).catch(() => undefined))) found.push(`depot image ${t.settings.depotImage}`);
  }
  return { found: [...new Set(found)], checked };
}

async function ownProcesses(t: Target, ids: Set<string>, markers: string[], cgroupMarkers: string[], own: boolean): Promise<string[]> {
  const found: string[] = [];
  for (const pid of await readdir('/proc').catch(() => [] as string[])) {
    if (!/^\d+$/.test(pid) || Number(pid) === process.pid || Number(pid) === t.pid) continue;
    const [cg, cmd, stat] = await Promise.all([
      readFile(`/proc/${pid}/cgroup`, 'utf8').catch(() => ''),
      readFile(`/proc/${pid}/cmdline`, 'utf8').catch(() => ''),
      readFile(`/proc/${pid}/stat`, 'utf8').catch(() => ''),
    ]);
    const cmdline = cmd.split('\0').join(' ').trim();
    if (!cmdline && !cg) continue;
    const state = stat.slice(stat.lastIndexOf(')') + 2, stat.lastIndexOf(')') + 3);
    const ownCmd = markers.some((m) => cmdline.includes(m)) && (own || [...ids].some((id) => cmdline.includes(`/${id}/`)));
    if (ownCmd || cgroupMarkers.some((m) => cg.includes(m))) found.push(`process ${pid}${state === 'Z' ? ' (zombie)' : ''} ${cmdline.slice(0, 120)}`);
  }
  return found;
}
