// Raw create → destroy cycles on either backend's baseline, with the same shape of
// result as the daemon's: latencies, cycles per second, CPU per cycle, and the
// per-step times of each operation (where the raw time goes).
import type { BenchContext } from '../context.ts';
import type { RawOp } from './script.ts';
import { runWorkers } from '../util.ts';

export interface CycleFigures {
  create: number[];
  destroy: number[];
  cycle: number[];
  ops: RawOp[];
  cycles: number;
  elapsedMs: number;
  /** CPU seconds spent (the scripts and their children, or this process for the in-process insecure baseline). */
  cpuSeconds: number;
  errors: string[];
}

/** `workers` at once, `count` cycles in all or for durationMs. */
export async function rawCycles(
  ctx: BenchContext,
  workers: number,
  o: { count?: number; durationMs?: number; onCycle?: () => void; slotBase?: number },
): Promise<CycleFigures | undefined> {
  const f: CycleFigures = { create: [], destroy: [], cycle: [], ops: [], cycles: 0, elapsedMs: 0, cpuSeconds: 0, errors: [] };
  const t0 = performance.now();
  if (ctx.rawLinux) {
    let pendingCreate = new Map<number, number>();
    const perWorker = o.count === undefined ? undefined : Math.max(1, Math.ceil(o.count / workers));
    const run = await ctx.rawLinux.cycles(workers, {
      count: perWorker,
      untilMs: perWorker === undefined ? o.durationMs : undefined,
      signal: ctx.signal,
      slotBase: o.slotBase,
      onOp: (op) => {
        f.ops.push(op);
        if (op.op === 'create') {
          f.create.push(op.totalMs);
          pendingCreate.set(op.worker, op.totalMs);
        } else if (op.op === 'destroy') {
          f.destroy.push(op.totalMs);
          f.cycle.push((pendingCreate.get(op.worker) ?? NaN) + op.totalMs);
          pendingCreate.delete(op.worker);
          f.cycles++;
          o.onCycle?.();
        }
      },
    });
    pendingCreate = new Map();
    f.cpuSeconds = run.cpuSeconds;
    f.errors = run.errors;
  } else if (ctx.rawInsecure) {
    const raw = ctx.rawInsecure;
    const cpu0 = process.cpuUsage();
    const deadline = o.durationMs === undefined ? undefined : performance.now() + o.durationMs;
    await runWorkers(workers, { count: o.count, deadline, signal: ctx.signal }, async () => {
      try {
        const c = await raw.create();
        const d = await raw.destroy(c.id);
        f.ops.push(c.op, d);
        f.create.push(c.op.totalMs);
        f.destroy.push(d.totalMs);
        f.cycle.push(c.op.totalMs + d.totalMs);
        f.cycles++;
        o.onCycle?.();
      } catch (err) {
        f.errors.push((err as Error).message);
      }
    });
    const cpu = process.cpuUsage(cpu0);
    f.cpuSeconds = (cpu.user + cpu.system) / 1e6;
  } else {
    return undefined;
  }
  f.elapsedMs = performance.now() - t0;
  return f;
}

/** Median of each step over the ops named `op`, in the order the steps first appear. */
export function stepMedians(ops: RawOp[], op: string): Array<[string, number]> {
  const by = new Map<string, number[]>();
  for (const o of ops) {
    if (o.op !== op) continue;
    for (const [k, v] of Object.entries(o.steps)) {
      const list = by.get(k) ?? [];
      list.push(v);
      by.set(k, list);
    }
  }
  return [...by].map(([k, v]) => {
    const s = [...v].sort((a, b) => a - b);
    return [k, s[Math.floor((s.length - 1) / 2)] ?? NaN];
  });
}
