// The report's plots, drawn from a run's results and samples: latency
// percentiles per scenario (with baselines), create latency and memory against
// live containers, throughput against concurrency.
import type { Results, SampleSeries } from '../results.ts';
import { COLORS, lineChart, rangeChart, type Series } from './svg.ts';

export interface Plot {
  /** File name without extension. */
  name: string;
  title: string;
  svg: string;
}

const DAEMON = COLORS[0];
const RAW = COLORS[1];

function col(s: SampleSeries | undefined, name: string): number[] {
  if (!s) return [];
  const i = s.columns.indexOf(name);
  return i < 0 ? [] : s.rows.map((r) => r[i]);
}

function quantileOf(sortedValues: number[], q: number): number {
  if (sortedValues.length === 0) return NaN;
  const pos = (sortedValues.length - 1) * q;
  const lo = Math.floor(pos);
  const hi = Math.min(lo + 1, sortedValues.length - 1);
  return sortedValues[lo] + (sortedValues[hi] - sortedValues[lo]) * (pos - lo);
}

/** p50 and p99 of y per bucket of x (about `buckets` of them), at the bucket's mean x. */
function bucketed(points: Array<[number, number]>, buckets: number): { p50: Array<[number, number]>; p99: Array<[number, number]> } {
  if (points.length === 0) return { p50: [], p99: [] };
  const sorted = [...points].sort((a, b) => a[0] - b[0]);
  const size = Math.max(1, Math.ceil(sorted.length / buckets));
  const p50: Array<[number, number]> = [];
  const p99: Array<[number, number]> = [];
  for (let i = 0; i < sorted.length; i += size) {
    const chunk = sorted.slice(i, i + size);
    const xs = chunk.reduce((a, p) => a + p[0], 0) / chunk.length;
    const ys = chunk.map((p) => p[1]).sort((a, b) => a - b);
    p50.push([xs, quantileOf(ys, 0.5)]);
    p99.push([xs, quantileOf(ys, 0.99)]);
  }
  return { p50, p99 };
}

/** At most n points, evenly picked. */
function thin<T>(points: T[], n: number): T[] {
  if (points.length <= n) return points;
  const step = points.length / n;
  return Array.from({ length: n }, (_, i) => points[Math.floor(i * step)]);
}

export function buildPlots(r: Results): Plot[] {
  const plots: Plot[] = [];
  const backend = r.meta.backend;

  // Latency percentiles per scenario.
  const scenarios = [...new Set(r.lines.map((l) => l.scenario))];
  for (const sc of scenarios) {
    const lines = r.lines.filter((l) => l.scenario === sc && l.unit === 'ms' && Number.isFinite(l.value) && !/^CPU/.test(l.metric));
    if (lines.length === 0) continue;
    plots.push({
      name: `latency-${sc}`,
      title: `${sc}: latency percentiles`,
      svg: rangeChart({
        title: `${sc} (${backend}): latency p50 / p90 / p99, daemon vs baseline`,
        xLabel: 'milliseconds (log scale)',
        legend: [{ name: 'daemon', color: DAEMON }, { name: 'baseline', color: RAW }],
        rows: lines.map((l) => ({
          label: `${l.metric} ${l.params}`.slice(0, 48),
          entries: [
            { name: 'daemon', p50: l.value, p90: l.p90, p99: l.p99, color: DAEMON },
            ...(l.baseline ? [{ name: 'baseline', p50: l.baseline.value, p90: l.baseline.p90, p99: l.baseline.p99, color: RAW }] : []),
          ],
        })),
      }),
    });
  }

  // Density: create latency against live containers.
  const fill = r.getSeries('density', 'fill');
  if (fill && fill.rows.length) {
    const pts: Array<[number, number]> = fill.rows.map((row) => [row[0], row[2]]);
    const b = bucketed(pts, 50);
    const drain = r.getSeries('density', 'drain');
    const d = bucketed((drain?.rows ?? []).map((row) => [row[0], row[2]] as [number, number]), 50);
    const n = fill.rows.length;
    const raw0 = col(r.getSeries('density', 'raw at 0'), 'create_ms').sort((a, c) => a - c);
    const rawN = col(r.getSeries('density', 'raw at N'), 'create_ms').sort((a, c) => a - c);
    const series: Series[] = [
      { name: 'each create (daemon)', points: thin(pts, 4000), style: 'dots', color: '#60a5fa', size: 2, opacity: 0.45 },
      { name: 'create p50 (daemon)', points: b.p50, style: 'line', color: DAEMON },
      { name: 'create p99 (daemon)', points: b.p99, style: 'line', color: DAEMON, dash: true },
    ];
    if (raw0.length || rawN.length) {
      series.push({ name: 'raw create p50 (at 0 and at N live)', points: [[0, quantileOf(raw0, 0.5)], [n, quantileOf(rawN, 0.5)]], style: 'line+dots', color: RAW });
    }
    if (d.p50.length) series.push({ name: 'destroy p50 (daemon, draining)', points: d.p50, style: 'line', color: COLORS[2] });
    plots.push({
      name: 'density-create',
      title: 'create latency against live containers',
      svg: lineChart({ title: `density (${backend}): create latency against live containers`, xLabel: 'containers alive when the request was sent', yLabel: 'milliseconds (log scale)', yLog: true, series }),
    });

    const res = r.getSeries('density', 'resources');
    if (res && res.rows.length) {
      const live = col(res, 'live');
      const rss = col(res, 'rss');
      const host = col(res, 'host_used');
      const host0 = host[0] ?? 0;
      const memSeries: Series[] = [
        { name: 'daemon RSS', points: live.map((x, i) => [x, rss[i] / 2 ** 20]), style: 'line+dots', color: DAEMON },
        { name: 'host memory used, growth since start', points: live.map((x, i) => [x, (host[i] - host0) / 2 ** 20]), style: 'line', color: COLORS[2] },
      ];
      const rawLine = r.lines.find((l) => l.scenario === 'density' && l.metric === 'host memory per container');
      if (rawLine?.baseline) {
        const maxX = Math.max(...live);
        memSeries.push({ name: 'raw containers, same count (host memory)', points: [[0, 0], [maxX, (rawLine.baseline.value * maxX) / 1024]], style: 'line', color: RAW, dash: true });
      }
      plots.push({
        name: 'density-memory',
        title: 'memory against live containers',
        svg: lineChart({ title: `density (${backend}): memory against live containers`, xLabel: 'containers alive', yLabel: 'MiB', series: memSeries }),
      });
    }
  }

  // Throughput against concurrency.
  const life = r.getSeries('lifecycle', 'by concurrency');
  if (life && life.rows.length) {
    const c = col(life, 'connections');
    plots.push({
      name: 'throughput-lifecycle',
      title: 'create+destroy throughput against concurrency',
      svg: lineChart({
        title: `lifecycle (${backend}): create+destroy cycles per second against concurrency`,
        xLabel: 'concurrent connections (log scale)',
        yLabel: 'cycles per second',
        xLog: true,
        xTicks: c,
        series: [
          { name: 'daemon', points: c.map((x, i) => [x, col(life, 'daemon_rate')[i]]), color: DAEMON },
          { name: 'raw (same host operations, C plain scripts)', points: c.map((x, i) => [x, col(life, 'raw_rate')[i]]), color: RAW, dash: true },
          { name: 'daemon cycle p50, ms', points: c.map((x, i) => [x, col(life, 'cycle_p50')[i]]), color: COLORS[2], right: true, style: 'line+dots' },
        ],
        y2Label: 'cycle latency p50, ms',
      }),
    });
  }
  const protoSeries: Series[] = [];
  for (const [i, name] of ['Ping', 'Echo 1 KiB'].entries()) {
    const s = r.getSeries('protocol', `${name} by concurrency`);
    if (!s) continue;
    const c = col(s, 'connections');
    protoSeries.push({ name: `${name}, daemon`, points: c.map((x, j) => [x, col(s, 'daemon_rate')[j]]), color: i === 0 ? DAEMON : COLORS[2] });
    protoSeries.push({ name: `${name}, raw echo`, points: c.map((x, j) => [x, col(s, 'raw_rate')[j]]), color: i === 0 ? RAW : COLORS[3], dash: true });
  }
  if (protoSeries.length) {
    const xs = [...new Set(protoSeries.flatMap((s) => s.points.map((p) => p[0])))].sort((a, b) => a - b);
    plots.push({
      name: 'throughput-protocol',
      title: 'round trips per second against concurrency',
      svg: lineChart({
        title: `protocol (${backend}): round trips per second against connections`,
        xLabel: 'connections, one request in flight each (log scale)',
        yLabel: 'round trips per second (log scale)',
        xLog: true,
        yLog: true,
        xTicks: xs,
        series: protoSeries,
      }),
    });
  }
  return plots;
}
