// CPU by process, from `perf record -a` (the harness's --perf option): where the
// CPU of one operation goes on the whole machine, for the daemon's process tree
// (its threads, its spawner, every host command and container process it started)
// against the raw baselines' (the scripts the bench runs and everything they
// start). `processSample` gives only the two totals; this splits them by what ran,
// so that "the daemon costs 1.3x the raw scripts" becomes "this many ms in its
// threads, this many in forks of its spawner before their exec, this many in runc".
//
// Samples are taken every millisecond of CPU time (cpu-clock, one per ms), stamped
// with CLOCK_REALTIME so that they line up with the phases' Date.now() windows. A
// process is named by the program it exec'd; a forked child that has not exec'd yet
// is "fork of <its parent's name>", where a fork's page-table copy and the old
// address space's teardown at exec are paid.
import { spawn, type ChildProcess } from 'node:child_process';
import { createInterface } from 'node:readline';
import type { Results } from '../results.ts';

/** CPU time each sample stands for (perf's -c, in ns of cpu-clock). */
const SAMPLE_NS = 1_000_000;

export interface PerfRecording {
  file: string;
  /** Stops the recording (SIGINT, as perf expects) and waits until the file is written. */
  stop(): Promise<void>;
}

/** Starts `perf record` over every CPU, writing to file. Rejects when perf cannot start. */
export async function startPerf(file: string): Promise<PerfRecording> {
  const child = spawn('perf', ['record', '-a', '-q', '-e', 'cpu-clock', '-c', String(SAMPLE_NS), '-k', 'CLOCK_REALTIME', '-o', file], {
    stdio: ['ignore', 'ignore', 'pipe'],
  });
  let stderr = '';
  child.stderr!.on('data', (d: Buffer) => (stderr += d.toString()));
  const exited = new Promise<number | null>((resolve) => child.once('close', (code) => resolve(code)));
  const failed = new Promise<never>((_, reject) => child.once('error', (e) => reject(new Error(`perf: ${e.message} (is linux-perf installed?)`))));
  // perf prints nothing when it starts well: give it a moment to fail instead.
  const early = await Promise.race([exited.then((code) => ({ code })), failed, new Promise<undefined>((r) => setTimeout(() => r(undefined), 300))]);
  if (early) throw new Error(`perf record exited at once (${early.code}): ${stderr.trim()}`);
  return { file, stop: () => stopPerf(child, exited) };
}

async function stopPerf(child: ChildProcess, exited: Promise<number | null>): Promise<void> {
  if (child.exitCode === null && child.signalCode === null) child.kill('SIGINT');
  await exited;
}

/** What a recording says about processes and where they spent CPU. */
export interface PerfData {
  /** A process's parent (by pid, from fork events, including those perf synthesizes at start). */
  parent: Map<number, number>;
  /** When a process was forked (s, realtime); 0 for those perf found running at its start. */
  forkedAt: Map<number, number>;
  /** Programs each pid exec'd, in order, with the time (s, realtime). */
  execs: Map<number, Array<{ t: number; name: string }>>;
  /** Name of a process that existed before the recording (perf's synthesized COMM events). */
  names: Map<number, string>;
  samples: Array<{ pid: number; comm: string; t: number }>;
}

const LINE = /^\s*(.+?)\s+(-?\d+)\/(-?\d+)\s+(\d+\.\d+):\s*(.*)$/;
const FORK = /^PERF_RECORD_FORK\((\d+):(\d+)\):\((\d+):(\d+)\)/;
const EXEC = /^PERF_RECORD_COMM exec: (.*):(\d+)\/(\d+)$/;
const COMM = /^PERF_RECORD_COMM: (.*):(\d+)\/(\d+)$/;

/** Reads `perf script --show-task-events -F comm,pid,tid,time` lines; keeps the samples that keep(t) accepts. */
export async function parsePerfScript(lines: AsyncIterable<string> | Iterable<string>, keep: (t: number) => boolean = () => true): Promise<PerfData> {
  const data: PerfData = { parent: new Map(), forkedAt: new Map(), execs: new Map(), names: new Map(), samples: [] };
  for await (const line of lines) {
    const m = LINE.exec(line);
    if (!m) continue;
    const [, comm, pidText, , timeText, rest] = m;
    const t = Number(timeText);
    if (rest.startsWith('PERF_RECORD_')) {
      const f = FORK.exec(rest);
      // A thread's fork has the parent's pid: only processes make the tree.
      if (f && f[1] !== f[3]) {
        data.parent.set(Number(f[1]), Number(f[3]));
        data.forkedAt.set(Number(f[1]), t);
      }
      const e = EXEC.exec(rest);
      if (e) {
        const pid = Number(e[2]);
        const list = data.execs.get(pid) ?? [];
        list.push({ t, name: e[1] });
        data.execs.set(pid, list);
      }
      const c = COMM.exec(rest);
      if (c && c[2] === c[3] && !data.names.has(Number(c[2]))) data.names.set(Number(c[2]), c[1]);
      // perf names the processes it finds running at its start with such events too.
      continue;
    }
    const pid = Number(pidText);
    if (pid > 0 && keep(t)) data.samples.push({ pid, comm, t });
  }
  return data;
}

/** Runs `perf script` on a recording and parses it as it streams. */
export async function readPerf(file: string, keep?: (t: number) => boolean): Promise<PerfData> {
  const child = spawn('perf', ['script', '-i', file, '--show-task-events', '-F', 'comm,pid,tid,time'], { stdio: ['ignore', 'pipe', 'ignore'] });
  const exited = new Promise<void>((resolve, reject) => {
    child.once('error', reject);
    child.once('close', () => resolve());
  });
  const data = await parsePerfScript(createInterface({ input: child.stdout!, crlfDelay: Infinity }), keep);
  await exited;
  return data;
}

/** Answers which tree a pid belongs to, and what it was running at a given time. */
export class ProcessTree {
  private readonly rootOf = new Map<number, number | undefined>();
  private readonly data: PerfData;
  private readonly roots: Set<number>;

  constructor(data: PerfData, roots: Set<number>) {
    this.data = data;
    this.roots = roots;
  }

  /** The root among `roots` that pid descends from (itself included), if any. */
  root(pid: number): number | undefined {
    if (this.rootOf.has(pid)) return this.rootOf.get(pid);
    const seen: number[] = [];
    let p: number | undefined = pid;
    let found: number | undefined;
    while (p !== undefined && !seen.includes(p)) {
      if (this.roots.has(p)) {
        found = p;
        break;
      }
      if (this.rootOf.has(p)) {
        found = this.rootOf.get(p);
        break;
      }
      seen.push(p);
      p = this.data.parent.get(p);
    }
    for (const s of seen) this.rootOf.set(s, found);
    return found;
  }

  /**
   * The program pid ran at time t: the last it exec'd before t; a child forked during
   * the recording that has not exec'd yet is a fork of its parent's program; one that
   * was running before the recording goes by the name perf found it with.
   */
  name(pid: number, t: number, depth = 0): string {
    let name: string | undefined;
    for (const e of this.data.execs.get(pid) ?? []) if (e.t <= t) name = e.name;
    if (name !== undefined) return name;
    const parent = this.data.parent.get(pid);
    if ((this.data.forkedAt.get(pid) ?? 0) > 0 && parent !== undefined && depth < 4) {
      const p = this.name(parent, t, depth + 1);
      return p.startsWith('fork of ') ? p : `fork of ${p}`;
    }
    return this.data.names.get(pid) ?? '?';
  }
}

export interface CpuBreakdown {
  /** ms of CPU by process name, over the window. */
  byName: Map<string, number>;
  totalMs: number;
}

/**
 * CPU in [start, end] (epoch ms) of the processes that descend from root, by name:
 * the root process itself by thread (`<rootLabel>: <thread name>`; left out without
 * a label), every other by the program it ran.
 */
export function cpuByProcess(
  data: PerfData,
  tree: ProcessTree,
  root: number,
  rootLabel: string | undefined,
  start: number,
  end: number,
  rename: (pid: number, name: string) => string = (_, name) => name,
): CpuBreakdown {
  const byName = new Map<string, number>();
  let total = 0;
  const ms = SAMPLE_NS / 1e6;
  for (const s of data.samples) {
    const t = s.t * 1000;
    if (t < start || t > end || tree.root(s.pid) !== root) continue;
    if (s.pid === root && rootLabel === undefined) continue;
    const name = s.pid === root ? `${rootLabel}: ${s.comm}` : rename(s.pid, tree.name(s.pid, s.t));
    byName.set(name, (byName.get(name) ?? 0) + ms);
    total += ms;
  }
  return { byName, totalMs: total };
}

/**
 * Table rows: name, ms per op on each side, for the names that make up most of either
 * side (the rest summed in one row), then the totals.
 */
export function breakdownRows(sides: Array<{ cpu: CpuBreakdown; ops: number } | undefined>, top = 16): string[][] {
  const per = (side: { cpu: CpuBreakdown; ops: number } | undefined, name: string) =>
    side && side.ops > 0 ? (side.cpu.byName.get(name) ?? 0) / side.ops : undefined;
  const names = new Set<string>();
  for (const s of sides) for (const n of s?.cpu.byName.keys() ?? []) names.add(n);
  const weight = (n: string) => Math.max(...sides.map((s) => per(s, n) ?? 0));
  const sorted = [...names].sort((a, b) => weight(b) - weight(a));
  const fmt = (v: number | undefined) => (v === undefined ? '-' : `${v.toFixed(1)} ms`);
  const rows = sorted.slice(0, top).map((n) => [n, ...sides.map((s) => fmt(per(s, n)))]);
  const rest = sorted.slice(top);
  if (rest.length) {
    rows.push([`${rest.length} others`, ...sides.map((s) => fmt(s && s.ops > 0 ? rest.reduce((a, n) => a + (per(s, n) ?? 0), 0) : undefined))]);
  }
  rows.push(['all', ...sides.map((s) => fmt(s && s.ops > 0 ? s.cpu.totalMs / s.ops : undefined))]);
  return rows;
}

/** A phase as the run's results record it. */
type Phase = Results['phases'][number];

/**
 * One table per daemon phase with operations: CPU per operation by process, the
 * daemon's tree (rooted at daemonPid) against its raw baseline phase's (the
 * processes this bench process started, less the daemon's tree and this process).
 */
export async function perfFindings(file: string, phases: Phase[], daemonPid: number): Promise<Array<{ title: string; columns: string[]; rows: string[][] }>> {
  const closed = phases.filter((p) => Number.isFinite(p.end) && p.ops > 0);
  const data = await readPerf(file, (t) => closed.some((p) => t * 1000 >= p.start && t * 1000 <= p.end));
  const tree = new ProcessTree(data, new Set([daemonPid, process.pid]));
  const out: Array<{ title: string; columns: string[]; rows: string[][] }> = [];
  for (const p of closed.filter((q) => !q.raw)) {
    // The daemon's own Node children are its spawners (one shared, one for the janitor).
    const spawner = (pid: number, name: string) => (name === 'node' && data.parent.get(pid) === daemonPid ? 'node (spawner)' : name);
    const daemon = { cpu: cpuByProcess(data, tree, daemonPid, 'daemon', p.start, p.end, spawner), ops: p.ops };
    const rawPhase = closed.find((q) => q.raw?.pairs === p.label);
    const raw = rawPhase ? { cpu: cpuByProcess(data, tree, process.pid, undefined, rawPhase.start, rawPhase.end), ops: rawPhase.ops } : undefined;
    out.push({
      title: `${p.label}: CPU per ${p.opName} by process, every CPU sampled (perf), the daemon's process tree${raw ? ' against the raw baseline\'s' : ''}`,
      columns: ['process', 'daemon', ...(raw ? ['raw'] : [])],
      rows: breakdownRows(raw ? [daemon, raw] : [daemon]),
    });
  }
  return out;
}
