// Options common to the benchmarks. BENCH_QUICK=1 shrinks every run to a token
// length so that the smoke test can run them end to end in a few seconds.

export const QUICK = process.env.BENCH_QUICK === '1' || process.env.BENCH_QUICK === 'true';

/** Parse a positive number option, or exit with a message naming it. */
export function positiveNumber(name: string, text: string | undefined, fallback: number): number {
  if (text === undefined) return fallback;
  const n = Number(text);
  if (!Number.isFinite(n) || n <= 0) usageError(`--${name} must be a positive number, got ${JSON.stringify(text)}`);
  return n;
}

export function usageError(message: string): never {
  console.error(message);
  process.exit(2);
}
