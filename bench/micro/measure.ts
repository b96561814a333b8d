// Runs micro benchmark cases with tinybench, each beside its baseline.
//
// Many of the operations take well under a microsecond, less than the clock's
// own resolution and overhead, so a synchronous case is timed in batches of K
// calls (K chosen so a batch takes about BATCH_TARGET_MS) and each sample is the
// batch's mean per call. Mean and ops/s are exact; p50 and p99 are percentiles of
// those batch means, which hides variation inside a batch but keeps GC pauses
// and other stalls that span one.
import { Bench, type Task } from 'tinybench';

export interface Operation {
  name: string;
  /** Synchronous cases are batched; asynchronous ones are timed one call at a time. */
  fn: () => unknown;
  async?: boolean;
}

export interface Case extends Operation {
  group: string;
  /** Bytes each call handles (frame or snapshot size), for the MB/s column. */
  bytes?: number;
  /** The same work done the simplest way Node offers, measured in the same run. */
  baseline?: Operation;
}

export interface Measurement {
  name: string;
  /** Calls per batch (1 for async cases). */
  batch: number;
  samples: number;
  opsPerSecond: number;
  /** Milliseconds per call. */
  mean: number;
  p50: number;
  p99: number;
}

export interface CaseResult {
  case: Case;
  subject: Measurement;
  baseline?: Measurement;
}

export interface MeasureOptions {
  /** Time budget per task in milliseconds. */
  timeMs: number;
  warmupMs: number;
  /** Minimum samples per task. */
  minSamples: number;
}

const BATCH_TARGET_MS = 0.02;
const MAX_BATCH = 100_000;

/** Keeps results reachable so that no call can be optimized away. */
let sink: unknown;

/** Calls per batch so that a batch takes about BATCH_TARGET_MS. */
function batchSize(fn: () => unknown, calibrateMs: number): number {
  let n = 0;
  const start = performance.now();
  let elapsed = 0;
  while (elapsed < calibrateMs) {
    sink = fn();
    n++;
    elapsed = performance.now() - start;
  }
  const perCall = elapsed / n;
  return Math.max(1, Math.min(MAX_BATCH, Math.round(BATCH_TARGET_MS / perCall)));
}

function addTask(bench: Bench, op: Operation, key: string, calibrateMs: number): number {
  if (op.async) {
    bench.add(key, op.fn, { async: true });
    return 1;
  }
  const k = batchSize(op.fn, calibrateMs);
  const fn = op.fn;
  bench.add(key, () => {
    const start = performance.now();
    for (let i = 0; i < k; i++) sink = fn();
    const elapsed = performance.now() - start;
    return { overriddenDuration: elapsed / k, overriddenIterationCost: elapsed };
  });
  return k;
}

function measurement(task: Task, name: string, batch: number): Measurement {
  const r = task.result;
  if (r.state === 'errored') throw new Error(`benchmark ${JSON.stringify(name)} failed: ${r.error.message}`, { cause: r.error });
  if (r.state !== 'completed') throw new Error(`benchmark ${JSON.stringify(name)} did not complete (${r.state})`);
  return {
    name,
    batch,
    samples: r.latency.samplesCount,
    opsPerSecond: r.latency.mean > 0 ? 1000 / r.latency.mean : Infinity,
    mean: r.latency.mean,
    p50: r.latency.p50,
    p99: r.latency.p99,
  };
}

/** Run every case and its baseline, one after the other, in one process. */
export async function runCases(cases: readonly Case[], options: MeasureOptions): Promise<CaseResult[]> {
  const bench = new Bench({
    time: options.timeMs,
    warmupTime: options.warmupMs,
    iterations: options.minSamples,
    warmupIterations: Math.min(16, options.minSamples),
    throws: true,
  });
  const calibrateMs = Math.max(1, Math.min(5, options.warmupMs));
  const batches = new Map<string, number>();
  // A baseline shared by several cases (the same Operation object) is measured once.
  const baselineKeys = new Map<Operation, string>();
  cases.forEach((c, i) => {
    batches.set(`${i}:subject`, addTask(bench, c, `${i}:subject`, calibrateMs));
    if (c.baseline && !baselineKeys.has(c.baseline)) {
      const key = `${i}:baseline`;
      baselineKeys.set(c.baseline, key);
      batches.set(key, addTask(bench, c.baseline, key, calibrateMs));
    }
  });
  await bench.run();
  void sink;
  return cases.map((c, i) => {
    const subject = measurement(bench.getTask(`${i}:subject`)!, c.name, batches.get(`${i}:subject`)!);
    const key = c.baseline && baselineKeys.get(c.baseline);
    const baseline = key ? measurement(bench.getTask(key)!, c.baseline!.name, batches.get(key)!) : undefined;
    return { case: c, subject, baseline };
  });
}
