// Small helpers shared by the load harness: sleeping, running work with a
// fixed number of concurrent workers, and summarising samples.
import { quantile, sorted } from '../lib/stats.ts';

export const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

/** The run was interrupted (Ctrl-C): scenarios stop starting new work when they see it. */
export class Interrupted extends Error {
  override name = 'Interrupted';
  constructor() {
    super('interrupted');
  }
}

export function checkAbort(signal: AbortSignal): void {
  if (signal.aborted) throw new Interrupted();
}

/**
 * Runs `workers` loops at once; each takes the next index from a shared counter
 * until `count` items are done, the deadline passes or the signal aborts.
 * Returns how many items were started.
 */
export async function runWorkers(
  workers: number,
  o: { count?: number; deadline?: number; signal: AbortSignal },
  fn: (index: number, worker: number) => Promise<void>,
): Promise<number> {
  let next = 0;
  const more = () =>
    !o.signal.aborted && (o.count === undefined || next < o.count) && (o.deadline === undefined || performance.now() < o.deadline);
  await Promise.all(
    Array.from({ length: workers }, async (_, w) => {
      while (more()) {
        const i = next++;
        await fn(i, w);
      }
    }),
  );
  return next;
}

export interface Summary {
  n: number;
  mean: number;
  min: number;
  p50: number;
  p90: number;
  p99: number;
  max: number;
}

export function summarize(samples: readonly number[]): Summary {
  const s = sorted(samples);
  let sum = 0;
  for (const v of s) sum += v;
  return {
    n: s.length,
    mean: s.length ? sum / s.length : NaN,
    min: s.length ? s[0] : NaN,
    p50: quantile(s, 0.5),
    p90: quantile(s, 0.9),
    p99: quantile(s, 0.99),
    max: s.length ? s[s.length - 1] : NaN,
  };
}

/** Milliseconds since `t0` (performance.now()), rounded to microseconds for compact JSON. */
export function since(t0: number): number {
  return round3(performance.now() - t0);
}

export function round3(v: number): number {
  return Math.round(v * 1000) / 1000;
}

/** Random lowercase base-32 id of n characters (container ids for raw baselines). */
export function randomId(n = 11): string {
  const alphabet = '0123456789abcdefghijklmnopqrstuv';
  let s = '';
  for (let i = 0; i < n; i++) s += alphabet[Math.floor(Math.random() * 32)];
  return s;
}

/** An Error's message, or the thrown value as text. */
export function messageOf(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}
