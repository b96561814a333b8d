// Summarises V8 CPU profiles the own daemon wrote with --cpu-prof (the harness's
// --cpu-prof option): self time by file and by function, per thread, over the
// whole run. Shows where the daemon's own CPU goes, which spawn traces cannot.
import { readdir, readFile } from 'node:fs/promises';
import { join, relative } from 'node:path';
import { ROOT } from '../daemon.ts';

interface ProfileNode {
  id: number;
  callFrame: { functionName: string; url: string; lineNumber: number };
  hitCount?: number;
}

interface Profile {
  nodes: ProfileNode[];
  startTime: number;
  endTime: number;
  samples?: number[];
  timeDeltas?: number[];
}

export interface ProfileSummary {
  file: string;
  /** Profiled wall time, ms. */
  totalMs: number;
  /** Time with a sample in some JS or native frame (not idle, not GC-only), ms. */
  busyMs: number;
  byFile: Array<[string, number]>;
  byFunction: Array<[string, number]>;
}

function where(url: string): string {
  if (!url) return '(native)';
  const path = url.replace(/^file:\/\//, '');
  if (path.startsWith(ROOT)) return relative(ROOT, path);
  if (url.startsWith('node:')) return url;
  return path;
}

export async function summarizeProfiles(dir: string, top = 12): Promise<ProfileSummary[]> {
  const files = (await readdir(dir).catch(() => [] as string[])).filter((f) => f.endsWith('.cpuprofile')).sort();
  const out: ProfileSummary[] = [];
  for (const f of files) {
    const p = JSON.parse(await readFile(join(dir, f), 'utf8')) as Profile;
    const byId = new Map(p.nodes.map((n) => [n.id, n]));
    const self = new Map<number, number>();
    // Self time from samples and their time deltas (µs).
    const samples = p.samples ?? [];
    const deltas = p.timeDeltas ?? [];
    for (let i = 0; i < samples.length; i++) self.set(samples[i], (self.get(samples[i]) ?? 0) + (deltas[i + 1] ?? deltas[i] ?? 0));
    const byFile = new Map<string, number>();
    const byFunction = new Map<string, number>();
    let busy = 0;
    for (const [id, us] of self) {
      const n = byId.get(id);
      if (!n) continue;
      const name = n.callFrame.functionName || '(anonymous)';
      // Idle: the event loop waiting, or a piscina worker blocked in Atomics.wait for its next task.
      if (name === '(idle)' || name === '(program)' || name === 'atomicsWaitLoop') continue;
      busy += us;
      const file = name === '(garbage collector)' ? '(garbage collector)' : where(n.callFrame.url);
      byFile.set(file, (byFile.get(file) ?? 0) + us);
      const fn = `${name} ${file}${n.callFrame.url ? `:${n.callFrame.lineNumber + 1}` : ''}`;
      byFunction.set(fn, (byFunction.get(fn) ?? 0) + us);
    }
    const sortTop = (m: Map<string, number>) => [...m].sort((a, b) => b[1] - a[1]).slice(0, top).map(([k, v]) => [k, v / 1000] as [string, number]);
    out.push({ file: f, totalMs: (p.endTime - p.startTime) / 1000, busyMs: busy / 1000, byFile: sortTop(byFile), byFunction: sortTop(byFunction) });
  }
  return out;
}
