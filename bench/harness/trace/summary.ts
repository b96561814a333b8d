// Reads the daemon's spawn trace (spawn-trace.ts) and says, per phase of the
// run, which host commands the daemon ran, how many per operation and how long
// they took: the part of a create or destroy spent waiting for host tools, and
// by difference the part spent in the daemon itself.
import { readFile } from 'node:fs/promises';
import { basename } from 'node:path';
import { formatDuration } from '../../lib/format.ts';
import { summarize } from '../util.ts';

export interface TraceEntry {
  cmd: string;
  args: string[];
  start: number;
  ms: number;
  thread: number;
  code?: number | null;
  /** Processes: the synchronous part of spawn (fork + exec), during which the spawning thread's event loop is blocked. */
  syncMs?: number;
  /** 'spawner': recorded in a thread's spawner process (src/host/spawner-process.ts), not in the daemon. */
  by?: string;
}

export interface Phase {
  label: string;
  /** Epoch ms. */
  start: number;
  end: number;
  /** Operations done in the phase (cycles, creates...), to show commands per operation. */
  ops: number;
  opName: string;
  /** The daemon's latency per operation in the phase (p50), when known. */
  latencyP50?: number;
}

const VALUE_FLAGS: Record<string, string[]> = {
  runc: ['--root', '--log', '--log-format'],
};

/** A short name for a command: "runc create", "btrfs subvolume delete", "iptables-restore", "nsenter ip". */
export function commandKey(cmd: string, args: string[]): string {
  if (cmd.startsWith('fs.')) return cmd;
  const name = basename(cmd);
  const positional = (skip: string[] = []) => {
    const out: string[] = [];
    for (let i = 0; i < args.length; i++) {
      const a = args[i];
      if (skip.includes(a)) {
        i++;
        continue;
      }
      if (a.startsWith('-')) continue;
      out.push(a);
    }
    return out;
  };
  switch (name) {
    case 'runc':
    case 'crun':
      return `${name} ${positional(VALUE_FLAGS.runc)[0] ?? ''}`.trim();
    case 'btrfs':
      return `btrfs ${positional().slice(0, 2).join(' ')}`;
    case 'iptables': {
      const verb = args.find((a) => /^-[ACDINXFS]$/.test(a));
      const table = args[args.indexOf('-t') + 1];
      return `iptables ${args.includes('-t') ? `-t ${table} ` : ''}${verb ?? ''}`.trim();
    }
    case 'ip':
      return `ip ${args.filter((a) => a.startsWith('-')).join(' ')} ${positional().slice(0, 2).join(' ')}`.replace(/\s+/g, ' ').trim();
    case 'nsenter': {
      const at = args.indexOf('--');
      return `nsenter ${basename(args[at + 1] ?? '')}`.trim();
    }
    case 'bash':
    case 'sh': {
      if (args[0] === '-c') return `${name} -c ${/\btar\b/.test(args[1] ?? '') ? 'tar pipe' : (args[1] ?? '').slice(0, 20)}`;
      return `${name} ${basename(args[0] ?? '')}`;
    }
    default:
      return name;
  }
}

export async function readTrace(path: string): Promise<TraceEntry[]> {
  const text = await readFile(path, 'utf8').catch(() => '');
  const out: TraceEntry[] = [];
  for (const line of text.split('\n')) {
    if (!line) continue;
    try {
      out.push(JSON.parse(line) as TraceEntry);
    } catch {
      /* a torn last line */
    }
  }
  return out;
}

export interface PhaseTrace {
  phase: Phase;
  rows: Array<{ key: string; kind: 'process' | 'fs'; count: number; perOp: number; totalMs: number; msPerOp: number; p50: number; p99: number }>;
  /** Sum over every host command of its duration, per operation. */
  msPerOp: number;
  /** The same for fs calls. */
  fsMsPerOp: number;
  /** Event-loop time blocked in spawn's fork + exec, per operation. */
  syncMsPerOp: number;
}

export function summarizeTrace(entries: TraceEntry[], phases: Phase[]): PhaseTrace[] {
  return phases.map((phase) => {
    const inPhase = entries.filter((e) => e.start >= phase.start && e.start < phase.end);
    const by = new Map<string, number[]>();
    for (const e of inPhase) {
      const k = commandKey(e.cmd, e.args);
      const list = by.get(k) ?? [];
      list.push(e.ms);
      by.set(k, list);
    }
    const ops = phase.ops > 0 ? phase.ops : 1;
    const rows = [...by].map(([key, ms]) => {
      const s = summarize(ms);
      const total = ms.reduce((a, b) => a + b, 0);
      const kind: 'process' | 'fs' = key.startsWith('fs.') ? 'fs' : 'process';
      return { key, kind, count: ms.length, perOp: ms.length / ops, totalMs: total, msPerOp: total / ops, p50: s.p50, p99: s.p99 };
    });
    rows.sort((a, b) => (a.kind === b.kind ? b.totalMs - a.totalMs : a.kind === 'process' ? -1 : 1));
    const sum = (k: 'process' | 'fs') => rows.filter((r) => r.kind === k).reduce((a, r) => a + r.msPerOp, 0);
    const sync = inPhase.reduce((a, e) => a + (e.syncMs ?? 0), 0) / ops;
    return { phase, rows, msPerOp: sum('process'), fsMsPerOp: sum('fs'), syncMsPerOp: sync };
  });
}

export function traceTableRows(t: PhaseTrace): string[][] {
  // fs calls that add up to little are left out of the table (they are in the totals).
  return t.rows.filter((r) => r.kind === 'process' || r.msPerOp >= 0.5).map((r) => [
    r.key,
    r.perOp.toFixed(2),
    formatDuration(r.p50),
    formatDuration(r.p99),
    formatDuration(r.msPerOp),
  ]);
}

export const TRACE_COLUMNS = ['command', `per op`, 'p50', 'p99', 'time per op'];
