// lifecycle: create → destroy cycles at each concurrency level (C connections,
// one cycle in flight on each), throughput and latency p50/p90/p99, beside the
// raw sequence of the same host operations run by C plain scripts at once.
import { formatDuration } from '../../lib/format.ts';
import { rawCycles, stepMedians } from '../baselines/raw-cycles.ts';
import { closeAll, connections, type BenchContext } from '../context.ts';
import { processSample } from '../proc.ts';
import { messageOf, round3, runWorkers, summarize } from '../util.ts';

export async function lifecycleScenario(ctx: BenchContext): Promise<void> {
  const { opts, results, progress, tracker } = ctx;
  const byLevel: number[][] = [];
  const rawLabel = ctx.target.backend === 'linux' ? 'raw runc + host tools, C plain scripts' : 'raw file operations, in-process';
  let firstRawOps: import('../baselines/script.ts').RawOp[] | undefined;
  let firstLevel: { create: number; destroy: number } | undefined;
  for (const c of opts.levels) {
    if (ctx.signal.aborted) return;
    const clients = await connections(ctx, c);
    const samples: number[][] = [];
    const errors: string[] = [];
    const durationMs = opts.count === undefined ? opts.durationS * 1000 : undefined;
    progress.start(`lifecycle c=${c} daemon`, opts.count ?? 0, { timeBoundMs: durationMs });
    const before = ctx.target.pid ? await processSample(ctx.target.pid) : undefined;
    const phase = results.phase(`lifecycle c=${c}`, 'create+destroy cycle');
    const t0 = performance.now();
    const deadline = durationMs === undefined ? undefined : t0 + durationMs;
    await runWorkers(c, { count: opts.count, deadline, signal: ctx.signal }, async (_, w) => {
      const k = clients[w];
      const s = performance.now();
      try {
        const handle = await tracker.create(k);
        const m = performance.now();
        await tracker.destroy(k, handle);
        const e = performance.now();
        samples.push([round3(s - t0), round3(m - s), round3(e - m)]);
        progress.tick();
      } catch (err) {
        if (!ctx.signal.aborted) errors.push(messageOf(err));
        progress.tick(1, true);
      }
    });
    const elapsed = performance.now() - t0;
    phase.end(samples.length, summarize(samples.map((r) => r[1] + r[2])).p50);
    const after = ctx.target.pid ? await processSample(ctx.target.pid) : undefined;
    progress.end();
    await closeAll(clients);
    if (errors.length) results.errors.push({ scenario: 'lifecycle', message: `c=${c}: ${errors.length} failed cycles, first: ${errors[0]}` });
    const cycles = samples.length;
    const rate = (cycles * 1000) / elapsed;
    const create = summarize(samples.map((r) => r[1]));
    const destroy = summarize(samples.map((r) => r[2]));
    const cycle = summarize(samples.map((r) => r[1] + r[2]));
    const daemonCpuMs = before && after && cycles ? ((after.cpu - before.cpu) * 1000) / cycles : NaN;
    const childCpuMs = before && after && cycles ? ((after.childCpu - before.childCpu) * 1000) / cycles : NaN;
    results.addSeries('lifecycle', `c=${c} daemon`, ['t_ms', 'create_ms', 'destroy_ms'], samples);

    let raw: Awaited<ReturnType<typeof rawCycles>>;
    if (opts.baselines && !ctx.signal.aborted) {
      progress.start(`lifecycle c=${c} raw`, opts.count ?? 0, { timeBoundMs: durationMs });
      const rawPhase = results.phase(`lifecycle c=${c} raw`, 'create+destroy cycle', `lifecycle c=${c}`);
      raw = await rawCycles(ctx, c, { count: opts.count, durationMs, onCycle: () => progress.tick() });
      rawPhase.end(raw?.cycles ?? 0);
      progress.end();
      if (raw) {
        for (const e of raw.errors.slice(0, 3)) results.errors.push({ scenario: 'lifecycle', message: `raw c=${c}: ${e}` });
        results.addSeries('lifecycle', `c=${c} raw`, ['create_ms', 'destroy_ms'], raw.create.map((v, i) => [round3(v), round3(raw!.destroy[i] ?? NaN)]));
        if (!firstRawOps) firstRawOps = raw.ops;
      }
    }
    const rawRate = raw && raw.elapsedMs > 0 ? (raw.cycles * 1000) / raw.elapsedMs : NaN;
    const params = `c=${c}`;
    const bl = (v: number[]) => (raw ? { ...summarize(v), label: rawLabel } : undefined);
    results.add({
      scenario: 'lifecycle', metric: 'create+destroy cycles', params, unit: '/s', value: rate, better: 'higher', n: cycles,
      baseline: raw ? { label: rawLabel, value: rawRate } : undefined,
    });
    results.latency('lifecycle', 'create+destroy', params, cycle, bl(raw?.cycle ?? []));
    results.latency('lifecycle', 'create', params, create, bl(raw?.create ?? []));
    results.latency('lifecycle', 'destroy', params, destroy, bl(raw?.destroy ?? []));
    results.add({
      scenario: 'lifecycle', metric: 'CPU per cycle (daemon + its children)', params, unit: 'ms', value: daemonCpuMs + childCpuMs, better: 'lower',
      baseline: raw && raw.cycles ? { label: ctx.target.backend === 'linux' ? 'raw scripts + their children' : 'raw, this process', value: (raw.cpuSeconds * 1000) / raw.cycles } : undefined,
      note: `daemon ${formatDuration(daemonCpuMs)} + children ${formatDuration(childCpuMs)}`,
    });
    byLevel.push([c, rate, rawRate, create.p50, create.p90, create.p99, destroy.p50, destroy.p99, cycle.p50, cycle.p99, raw ? summarize(raw.cycle).p50 : NaN, raw ? summarize(raw.cycle).p99 : NaN, daemonCpuMs, childCpuMs]);
    if (!firstLevel) firstLevel = { create: create.p50, destroy: destroy.p50 };
  }
  results.addSeries('lifecycle', 'by concurrency', ['connections', 'daemon_rate', 'raw_rate', 'create_p50', 'create_p90', 'create_p99', 'destroy_p50', 'destroy_p99', 'cycle_p50', 'cycle_p99', 'raw_cycle_p50', 'raw_cycle_p99', 'daemon_cpu_ms', 'child_cpu_ms'], byLevel);

  // Where the raw time goes, step by step (first level), next to the daemon's whole.
  if (firstRawOps && firstLevel) {
    const rows: string[][] = [];
    for (const op of ['create', 'destroy'] as const) {
      const steps = stepMedians(firstRawOps, op);
      const total = steps.reduce((a, [, v]) => a + v, 0);
      for (const [k, v] of steps) rows.push([op, k, formatDuration(v), `${((v / total) * 100).toFixed(0)}%`]);
      rows.push([op, 'raw total (sum of step medians)', formatDuration(total), '100%']);
      rows.push([op, `daemon p50 at c=${opts.levels[0]}`, formatDuration(firstLevel[op]), `${((firstLevel[op] / total) * 100).toFixed(0)}%`]);
    }
    results.finding('lifecycle', `raw ${ctx.target.backend} create and destroy, step by step (median of each step, c=${opts.levels[0]})`, ['op', 'step', 'median', 'share of raw'], rows);
  }
}
