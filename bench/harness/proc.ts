// What the harness reads from /proc: the daemon's memory and CPU, the host's
// memory and CPU, and which process serves a unix socket.
import { readFile, readdir, readlink } from 'node:fs/promises';

/** Clock ticks per second of /proc/<pid>/stat times (USER_HZ; 100 on Linux). */
const HZ = 100;

export interface ProcessSample {
  /** Resident set size, bytes. */
  rss: number;
  /** CPU seconds of the process itself (all threads: main thread and workers). */
  cpu: number;
  /**
   * CPU seconds of its children: those it waited for, and its live descendants
   * (the daemon's spawner processes, which run its host commands, with the
   * commands they waited for). A long-lived child's children reach the
   * process's own cutime only when that child exits, so without the live ones
   * every host command the daemon ran would be missing. Job supervisors forked
   * by the spawner's job starter (Linux) are descendants: their CPU and their
   * `runc exec`'s count, as the raw scripts' `runc exec` does; the insecure
   * backend's supervisors are detached, no descendants.
   */
  childCpu: number;
  threads: number;
}

interface StatFields {
  ppid: number;
  /** utime + stime, ticks. */
  own: number;
  /** cutime + cstime, ticks. */
  reaped: number;
}

function parseStat(stat: string): StatFields {
  // Fields after the command name start at field 3 (state): ppid is field 4,
  // utime 14, stime 15, cutime 16, cstime 17.
  const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  return { ppid: Number(f[1]), own: Number(f[11]) + Number(f[12]), reaped: Number(f[13]) + Number(f[14]) };
}

/** Ticks of pid's live descendants (each one's own time and what it reaped). */
async function liveDescendantTicks(pid: number): Promise<number> {
  const byParent = new Map<number, Array<{ pid: number; ticks: number }>>();
  for (const name of await readdir('/proc').catch(() => [] as string[])) {
    if (!/^\d+$/.test(name)) continue;
    const stat = await readFile(`/proc/${name}/stat`, 'utf8').catch(() => undefined);
    if (!stat) continue;
    const p = parseStat(stat);
    const list = byParent.get(p.ppid) ?? [];
    list.push({ pid: Number(name), ticks: p.own + p.reaped });
    byParent.set(p.ppid, list);
  }
  let ticks = 0;
  const walk = (parent: number) => {
    for (const child of byParent.get(parent) ?? []) {
      ticks += child.ticks;
      walk(child.pid);
    }
  };
  walk(pid);
  return ticks;
}

export async function processSample(pid: number): Promise<ProcessSample | undefined> {
  try {
    const [stat, status] = await Promise.all([readFile(`/proc/${pid}/stat`, 'utf8'), readFile(`/proc/${pid}/status`, 'utf8')]);
    const p = parseStat(stat);
    const live = await liveDescendantTicks(pid);
    const rssKb = Number(/^VmRSS:\s+(\d+)/m.exec(status)?.[1] ?? NaN);
    const threads = Number(/^Threads:\s+(\d+)/m.exec(status)?.[1] ?? NaN);
    return { rss: rssKb * 1024, cpu: p.own / HZ, childCpu: (p.reaped + live) / HZ, threads };
  } catch {
    return undefined;
  }
}

export interface HostMemory {
  total: number;
  available: number;
  /** total - available: what the host has given away, bytes. */
  used: number;
  slab: number;
}

export async function hostMemory(): Promise<HostMemory> {
  const text = await readFile('/proc/meminfo', 'utf8');
  const kb = (key: string) => Number(new RegExp(`^${key}:\\s+(\\d+)`, 'm').exec(text)?.[1] ?? 0) * 1024;
  const total = kb('MemTotal');
  const available = kb('MemAvailable');
  return { total, available, used: total - available, slab: kb('Slab') };
}

/** Busy and total jiffies of all CPUs since boot (for host CPU use between two readings). */
export async function hostCpu(): Promise<{ busy: number; total: number }> {
  const line = (await readFile('/proc/stat', 'utf8')).split('\n')[0];
  const v = line.trim().split(/\s+/).slice(1).map(Number);
  const total = v.reduce((a, b) => a + b, 0);
  const idle = (v[3] ?? 0) + (v[4] ?? 0);
  return { busy: total - idle, total };
}

/** The pid of the process listening on a unix socket path, found through /proc/net/unix and fds. */
export async function socketOwner(path: string): Promise<number | undefined> {
  const table = await readFile('/proc/net/unix', 'utf8').catch(() => '');
  const inodes = new Set<string>();
  for (const line of table.split('\n').slice(1)) {
    const cols = line.trim().split(/\s+/);
    // Num RefCount Protocol Flags Type St Inode Path; listening sockets have flag __SO_ACCEPTCON (0x10000).
    if (cols[7] === path && (parseInt(cols[3], 16) & 0x10000) !== 0) inodes.add(cols[6]);
  }
  if (inodes.size === 0) return undefined;
  for (const pid of await readdir('/proc')) {
    if (!/^\d+$/.test(pid) || Number(pid) === process.pid) continue;
    const fds = await readdir(`/proc/${pid}/fd`).catch(() => [] as string[]);
    for (const fd of fds) {
      const target = await readlink(`/proc/${pid}/fd/${fd}`).catch(() => '');
      const m = /^socket:\[(\d+)\]$/.exec(target);
      if (m && inodes.has(m[1])) return Number(pid);
    }
  }
  return undefined;
}

/** The process's command line, as arguments. */
export async function cmdline(pid: number): Promise<string[]> {
  const text = await readFile(`/proc/${pid}/cmdline`, 'utf8').catch(() => '');
  return text.split('\0').filter(Boolean);
}

/**
 * Samples a process (and the host) every `everyMs` while running, and on demand;
 * each sample carries a caller-supplied x (e.g. live containers).
 */
export class ResourceSampler {
  readonly pid: number | undefined;
  readonly t0 = performance.now();
  readonly rows: Array<{ t: number; x: number; rss: number; cpu: number; childCpu: number; hostUsed: number; hostBusy: number; hostTotal: number }> = [];
  private timer: NodeJS.Timeout | undefined;

  constructor(pid: number | undefined) {
    this.pid = pid;
  }

  async sample(x: number): Promise<ResourceSampler['rows'][number]> {
    const [p, m, c] = await Promise.all([
      this.pid ? processSample(this.pid) : undefined,
      hostMemory(),
      hostCpu(),
    ]);
    const row = {
      t: Math.round(performance.now() - this.t0),
      x,
      rss: p?.rss ?? NaN,
      cpu: p?.cpu ?? NaN,
      childCpu: p?.childCpu ?? NaN,
      hostUsed: m.used,
      hostBusy: c.busy,
      hostTotal: c.total,
    };
    this.rows.push(row);
    return row;
  }

  /** Samples every everyMs with x from getX() until stop(). */
  start(everyMs: number, getX: () => number): void {
    const tick = () => {
      void this.sample(getX()).finally(() => {
        if (this.timer) this.timer = setTimeout(tick, everyMs);
      });
    };
    this.timer = setTimeout(tick, everyMs);
  }

  stop(): void {
    if (this.timer) clearTimeout(this.timer);
    this.timer = undefined;
  }
}
