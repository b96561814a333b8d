// Micro benchmarks of the daemon's hot paths: frame encode/decode, snapshot
// serialization and atomic write, pool acquire+release. Each figure is printed
// beside a baseline measured in the same run, so numbers from different
// machines or loads can be compared through the ratio.
//
//   node bench/micro/index.ts [--time MS] [--warmup MS] [--filter TEXT] [--dir PATH]
//
// --time     time budget per benchmark in ms (default 300; 20 with BENCH_QUICK=1)
// --warmup   warmup per benchmark in ms (default 50; 10 with BENCH_QUICK=1)
// --filter   run only benchmarks whose group or name contains TEXT
// --dir      where the snapshot write benchmark writes (default the OS temp folder)
import { cpus } from 'node:os';
import { parseArgs } from 'node:util';
import { formatDuration, formatMBps, formatRate, formatRatio, renderTable } from '../lib/format.ts';
import { QUICK, positiveNumber } from '../lib/options.ts';
import { codecCases } from './codec-cases.ts';
import { runCases, type Case, type CaseResult, type Measurement } from './measure.ts';
import { poolCases } from './pool-cases.ts';
import { snapshotCases } from './snapshot-cases.ts';

const { values } = parseArgs({
  options: {
    time: { type: 'string' },
    warmup: { type: 'string' },
    filter: { type: 'string' },
    dir: { type: 'string' },
  },
  strict: true,
});
const timeMs = positiveNumber('time', values.time, QUICK ? 20 : 300);
const warmupMs = positiveNumber('warmup', values.warmup, QUICK ? 10 : 50);

/**
 * One row per benchmark and, under it, one for its baseline, so that each figure
 * sits right above the baseline's. The ratios (benchmark over baseline, by mean
 * and by median) are on the benchmark's row; a shared baseline is repeated.
 */
function report(results: readonly CaseResult[]): string {
  const figures = (m: Measurement, bytes: number | undefined) => [
    formatRate(m.opsPerSecond),
    formatDuration(m.mean),
    formatDuration(m.p50),
    formatDuration(m.p99),
    bytes === undefined ? '' : formatMBps(bytes * m.opsPerSecond),
  ];
  const rows: string[][] = [];
  for (const { case: c, subject, baseline } of results) {
    rows.push([
      c.group,
      c.name,
      ...figures(subject, c.bytes),
      baseline ? formatRatio(subject.mean / baseline.mean) : '',
      baseline ? formatRatio(subject.p50 / baseline.p50) : '',
    ]);
    if (baseline) rows.push(['', `  baseline: ${baseline.name}`, ...figures(baseline, c.bytes)]);
  }
  return renderTable(
    [
      { title: 'group' },
      { title: 'benchmark' },
      { title: 'ops/s', right: true },
      { title: 'mean', right: true },
      { title: 'p50', right: true },
      { title: 'p99', right: true },
      { title: 'MB/s', right: true },
      { title: 'ratio mean', right: true },
      { title: 'ratio p50', right: true },
    ],
    rows,
  );
}

async function main(): Promise<void> {
  const snapshot = snapshotCases({ parentDir: values.dir });
  const cleanup = () => snapshot.cleanup();
  const onSignal = (signal: NodeJS.Signals) => {
    cleanup();
    process.kill(process.pid, signal);
  };
  process.once('SIGINT', onSignal);
  process.once('SIGTERM', onSignal);
  try {
    let cases: Case[] = [...codecCases(), ...snapshot.cases, ...poolCases()];
    const filter = values.filter?.toLowerCase();
    if (filter) cases = cases.filter((c) => `${c.group} ${c.name}`.toLowerCase().includes(filter));
    if (cases.length === 0) throw new Error(`no benchmark matches --filter ${JSON.stringify(values.filter)}`);

    console.log(`warden micro benchmarks: node ${process.version}, ${cpus().length} x ${cpus()[0]?.model ?? 'unknown CPU'}`);
    console.log(`${timeMs} ms per benchmark after ${warmupMs} ms warmup${QUICK ? ' (BENCH_QUICK)' : ''}; snapshot writes in ${snapshot.dir}`);
    const results = await runCases(cases, { timeMs, warmupMs, minSamples: QUICK ? 4 : 64 });
    console.log('');
    console.log(report(results));
    console.log('');
    console.log('mean, p50 and p99 are per call; sync calls are timed in batches of ~20 µs, so p50/p99 are over batch means.');
    console.log('MB/s counts frame (or snapshot) bytes. ratio = benchmark / baseline time per call, by mean and by p50');
    console.log('(the p50 ratio is the steadier one on a busy machine; the mean one counts GC and stalls).');
  } finally {
    cleanup();
    process.off('SIGINT', onSignal);
    process.off('SIGTERM', onSignal);
  }
}

main().catch((err: unknown) => {
  console.error(`bench/micro: ${(err as Error)?.stack ?? String(err)}`);
  process.exitCode = 1;
});
