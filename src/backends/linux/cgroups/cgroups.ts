// The container's cgroups. runc creates them from the bundle's relative
// cgroupsPath (<parent>/instance-<id>), which it resolves per hierarchy under its
// own cgroup: the daemon's (the process's memory cgroup may be nested, e.g. under
// /process_api/..., while the other controllers sit at the root). We compute the
// same paths here, record them in c.backend at create, and read or write the
// files directly (no fork per Info; `runc update` would also rewrite every other
// resource from its stale copy of the config).
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { mkdir, readFile, readdir, readdirTyped, rmdir, writeFile } from '../../../host/thread-fs.ts';
import { dirname, join } from 'node:path';
import { instanceName } from '../paths.ts';
import { readKernelFile } from '../../../host/kernel-file.ts';
import type { U64 } from '../../../protocol/types.ts';
import { parseU64 } from '../../../protocol/u64.ts';
import { wrapError, WardenError } from '../../../model/errors.ts';

export interface CgroupHierarchy {
  /** v1 controllers of this hierarchy (e.g. ['cpu','cpuacct'], ['name=systemd']), or ['unified'] for v2. */
  controllers: string[];
  /** Our own cgroup's directory in this hierarchy. */
  own: string;
}

/** Controller (or 'unified') → the container's cgroup directory. */
export type CgroupPaths = Record<string, string>;

interface Mount {
  root: string;
  point: string;
  fstype: string;
  superOptions: string[];
}

function parseMountinfo(text: string): Mount[] {
  const mounts: Mount[] = [];
  for (const line of text.split('\n')) {
    if (!line) continue;
    const [pre, post] = line.split(' - ');
    if (!pre || !post) continue;
    const f = pre.split(' ');
    const g = post.split(' ');
    mounts.push({ root: unescape(f[3]), point: unescape(f[4]), fstype: g[0], superOptions: (g[2] ?? '').split(',') });
  }
  return mounts;
}

function unescape(s: string): string {
  return s.replace(/\\([0-7]{3})/g, (_, o: string) => String.fromCharCode(parseInt(o, 8)));
}

/** The daemon's own cgroup (cgroups/daemon-cgroup.ts): <own>/<parent>-daemon, beside the containers' parent. */
export function daemonGroupName(parent: string): string {
  return `${parent}-daemon`;
}

const DAEMON_GROUP = /\/warden-[^/]+-daemon$/;

/**
 * The cgroup the daemon started in: once it moved itself into its own group, that
 * group's parent. Containers' cgroups and parents are computed from it, in every
 * worker, whether it asks before or after the move.
 */
export function outsideDaemonGroup(dir: string): string {
  return DAEMON_GROUP.test(dir) ? dirname(dir) : dir;
}

let cached: Promise<CgroupHierarchy[]> | undefined;

/** Every cgroup hierarchy this process is in, with our own directory in it (cached per worker). */
export function hierarchies(): Promise<CgroupHierarchy[]> {
  cached ??= loadHierarchies().catch((err) => {
    cached = undefined;
    throw err;
  });
  return cached;
}

async function loadHierarchies(): Promise<CgroupHierarchy[]> {
  const [self, mountinfo] = await Promise.all([
    readFile('/proc/self/cgroup', 'utf8'),
    readFile('/proc/self/mountinfo', 'utf8'),
  ]);
  const mounts = parseMountinfo(mountinfo).filter((m) => m.fstype === 'cgroup' || m.fstype === 'cgroup2');
  const out: CgroupHierarchy[] = [];
  for (const line of self.split('\n')) {
    const m = /^(\d+):([^:]*):(.*)$/.exec(line);
    if (!m) continue;
    const [, , ctrl, path] = m;
    const controllers = ctrl === '' ? ['unified'] : ctrl.split(',');
    const mount = mounts.find((mt) =>
      ctrl === '' ? mt.fstype === 'cgroup2' : mt.fstype === 'cgroup' && controllers.every((c) => mt.superOptions.includes(c)),
    );
    if (!mount) continue;
    // Our path is relative to the hierarchy's root; the mount may show only a subtree of it.
    const rel = path.startsWith(mount.root) ? path.slice(mount.root.length) : path;
    out.push({ controllers, own: outsideDaemonGroup(join(mount.point, rel)) });
  }
  return out;
}

/** The cgroupsPath runc gets: relative, so it lands under the daemon's own cgroup in each hierarchy. */
export function runtimeCgroupsPath(parent: string, id: string): string {
  return `${parent}/${instanceName(id)}`;
}

export async function containerCgroups(parent: string, id: string): Promise<CgroupPaths> {
  const paths: CgroupPaths = {};
  for (const h of await hierarchies()) {
    const dir = join(h.own, parent, instanceName(id));
    for (const c of h.controllers) paths[c] = dir;
  }
  return paths;
}

/** The parent directories (<own>/<parent>) in each hierarchy. */
export async function parentCgroups(parent: string): Promise<string[]> {
  return (await hierarchies()).map((h) => join(h.own, parent));
}

/** Distinct directories of a container's cgroups (controllers sharing a hierarchy share one). */
export function cgroupDirs(paths: CgroupPaths): string[] {
  return [...new Set(Object.values(paths))];
}

/** Where to list a container's processes: the pids controller, else any. */
export function procsDir(paths: CgroupPaths): string {
  return paths.pids ?? paths.memory ?? paths.unified ?? Object.values(paths)[0];
}

export async function readPids(paths: CgroupPaths): Promise<number[]> {
  try {
    const text = await readFile(join(procsDir(paths), 'cgroup.procs'), 'utf8');
    return text.split('\n').filter(Boolean).map(Number);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return [];
    throw err;
  }
}

/** "key value" lines (memory.stat, cpuacct.stat); values exact (hierarchical_memory_limit is 2^63 - 4096 when unlimited). */
export async function readKeyValues(file: string): Promise<Map<string, U64>> {
  return parseKeyValues(await readKernelFile(file));
}

/** `key value` lines (memory.stat, cpuacct.stat) as numbers by key. */
export function parseKeyValues(text: string): Map<string, U64> {
  const out = new Map<string, U64>();
  for (const line of text.split('\n')) {
    const [k, v] = line.split(' ');
    const n = v === undefined ? undefined : parseU64(v);
    if (k && n !== undefined) out.set(k, n);
  }
  return out;
}

/**
 * Sets memory.limit_in_bytes and memory.memsw.limit_in_bytes to bytes, in the order
 * that keeps limit <= memsw true at every step (raise memsw first, lower limit first).
 */
/**
 * Sets the memory limit (and memsw). Blocking cgroupfs calls, for a worker: a
 * handful of small kernel files in a row cost it microseconds, where async calls
 * cost a threadpool trip each. A limit below what the group holds makes the
 * kernel reclaim first, a bounded number of passes, then EBUSY (DEAs set limits
 * right after a create, when there is nothing to reclaim).
 */
export async function setMemoryLimit(paths: CgroupPaths, bytes: U64): Promise<void> {
  const dir = paths.memory;
  if (!dir) throw new Error('no memory cgroup');
  const limitFile = join(dir, 'memory.limit_in_bytes');
  const memswFile = join(dir, 'memory.memsw.limit_in_bytes');
  const hasMemsw = existsSync(memswFile);
  const current = BigInt(readFileSync(limitFile, 'utf8').trim());
  const value = String(bytes);
  try {
    if (!hasMemsw) {
      writeFileSync(limitFile, value);
    } else if (bytes >= current) {
      writeFileSync(memswFile, value);
      writeFileSync(limitFile, value);
    } else {
      writeFileSync(limitFile, value);
      writeFileSync(memswFile, value);
    }
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (code === 'EBUSY') throw new WardenError(`memory limit ${bytes} is below what the container uses now`, { code: 'invalid', cause: err });
    throw err;
  }
}

/** Sets cpu.shares (blocking, for a worker, as setMemoryLimit). */
export async function setCpuShares(paths: CgroupPaths, shares: U64): Promise<void> {
  if (!paths.cpu) throw new Error('no cpu cgroup');
  writeFileSync(join(paths.cpu, 'cpu.shares'), String(shares));
}

/** The kernel's count of OOM kills in the container's memory cgroup, or undefined when the group is gone. */
export async function oomKillCount(paths: CgroupPaths): Promise<number | undefined> {
  if (!paths.memory) return undefined;
  try {
    const kv = await readKeyValues(join(paths.memory, 'memory.oom_control'));
    return Number(kv.get('oom_kill') ?? 0);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw err;
  }
}

/**
 * Puts the container's init alone into the container's cgroup v2 group (made if
 * runc did not), so that the group's cgroup.events says `populated 0` once the
 * init is gone. Returns that cgroup.events file, or undefined when the host has
 * no cgroup v2 hierarchy. Throws ESRCH when the init is gone.
 */
export async function joinInitGroup(paths: CgroupPaths, initPid: number): Promise<string | undefined> {
  if (!paths.unified) return undefined;
  await mkdir(paths.unified, { recursive: true });
  await writeFile(join(paths.unified, 'cgroup.procs'), String(initPid));
  return join(paths.unified, 'cgroup.events');
}

/** Removes the container's cgroup directories (children first); missing ones are fine. */
export async function removeCgroups(paths: CgroupPaths): Promise<void> {
  const failures: string[] = [];
  for (const dir of cgroupDirs(paths)) {
    try {
      await removeTree(dir);
    } catch (err) {
      failures.push(`${dir}: ${(err as Error).message}`);
    }
  }
  if (failures.length) throw new Error(`cannot remove cgroups: ${failures.join('; ')}`);
}

async function removeTree(dir: string): Promise<void> {
  // Usually gone already (runc delete removes its groups): no readdir and its exception then.
  if (!existsSync(dir)) return;
  let entries;
  try {
    entries = await readdirTyped(dir);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return;
    throw err;
  }
  for (const e of entries) if (e.isDirectory()) await removeTree(join(dir, e.name));
  if (!(await removeGroup(dir, REMOVE_TRIES))) throw stillBusy(dir);
}

/** Kills every process of the cgroup: cgroup.kill on v2 when present, and SIGKILL to each pid of the v1 groups (runc exec does not put jobs into the v2 group). */
export async function killAll(paths: CgroupPaths): Promise<void> {
  if (paths.unified) {
    try {
      await writeFile(join(paths.unified, 'cgroup.kill'), '1');
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code;
      if (code === 'ENOENT') {
        // no such group or no cgroup.kill: fall through
      } else throw err;
    }
  }
  for (const pid of await readPids(paths)) {
    try {
      process.kill(pid, 'SIGKILL');
    } catch {
      // already gone
    }
  }
}

/**
 * The memory group beside the container's own (`instance-<id>.jobs`) that its job
 * supervisors and their `runc exec` join: their memory is accounted to the
 * container and kept out of the daemon's group, without eating into the app's own
 * limit (the original's job plumbing inside the container cost almost nothing, and
 * its clients size limits for the app alone).
 */
export function jobsMemoryGroup(paths: CgroupPaths): string | undefined {
  return paths.memory ? `${paths.memory}${JOBS_GROUP_SUFFIX}` : undefined;
}

export const JOBS_GROUP_SUFFIX = '.jobs';

/**
 * Removes the container's jobs memory group: whatever still sits in it (a
 * supervisor writing its job's exit status) moves to the parent group first.
 */
export async function removeJobsGroup(paths: CgroupPaths): Promise<void> {
  const dir = jobsMemoryGroup(paths);
  if (dir) await emptyAndRemoveGroup(dir, join(dirname(dir), 'cgroup.procs'));
}

/**
 * Moves every process in the group at dir into the group whose cgroup.procs is
 * `into`, then removes dir; a process that forks or lands there meanwhile makes
 * rmdir busy, and the move goes again (bounded). A missing group is fine.
 */
export async function emptyAndRemoveGroup(dir: string, into: string): Promise<void> {
  for (let attempt = 0; ; attempt++) {
    let pids: string[];
    try {
      pids = (await readFile(join(dir, 'cgroup.procs'), 'utf8')).split('\n').filter(Boolean);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return;
      throw err;
    }
    for (const pid of pids) {
      await writeFile(into, pid).catch((err: NodeJS.ErrnoException) => {
        if (err.code !== 'ESRCH') throw err; // it exited meanwhile
      });
    }
    if (await removeGroup(dir, 2)) return;
    if (attempt >= REMOVE_TRIES) throw stillBusy(dir);
  }
}

/** Tries this often, 20 ms apart, before a busy group is an error (a second). */
const REMOVE_TRIES = 50;

/**
 * rmdir of a cgroup, tried up to `tries` times: a group whose last process
 * just died stays busy for a moment. True when it is gone, false when still busy.
 */
async function removeGroup(dir: string, tries: number): Promise<boolean> {
  for (let attempt = 1; ; attempt++) {
    try {
      await rmdir(dir);
      return true;
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code;
      if (code === 'ENOENT') return true;
      if (code !== 'EBUSY') throw wrapError(`cannot remove cgroup ${dir}`, err);
      if (attempt >= tries) return false;
      await new Promise((r) => setTimeout(r, 20));
    }
  }
}

function stillBusy(dir: string): WardenError {
  return new WardenError(`cannot remove cgroup ${dir}: it stays busy`, { code: 'internal' });
}
