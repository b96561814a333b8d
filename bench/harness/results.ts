// What a run produces: result lines (each with its baseline and the ratio), the
// raw samples behind them, and the figures the plots are drawn from. The JSON
// file is this object as it is.
import { formatDuration, formatRate, formatRatio, renderTable } from '../lib/format.ts';
import type { Summary } from './util.ts';

export type Unit = 'ms' | '/s' | 'MB/s' | 'MiB' | 'KiB' | 's' | '%';

export interface Baseline {
  /** What the baseline is, in a few words ("raw runc + host tools, sequential"). */
  label: string;
  value: number;
  p90?: number;
  p99?: number;
}

export interface ResultLine {
  scenario: string;
  metric: string;
  /** Parameters of this line ("c=4", "at 10,000 live"). */
  params: string;
  unit: Unit;
  /** The headline figure: p50 for latencies, the rate for throughputs. */
  value: number;
  p90?: number;
  p99?: number;
  n?: number;
  /** lower (latency, memory) or higher (throughput) is better. */
  better: 'lower' | 'higher';
  baseline?: Baseline;
  /** value / baseline.value. */
  ratio?: number;
  note?: string;
}

/** One named series of samples: columns and rows, so that large series stay compact in JSON. */
export interface SampleSeries {
  scenario: string;
  name: string;
  columns: string[];
  rows: number[][];
}

export interface RunMeta {
  started: string;
  finished?: string;
  host: { cpus: number; cpuModel: string; memTotal: number; kernel: string; node: string };
  backend: 'insecure' | 'linux';
  daemon: { own: boolean; socket: string; pid?: number; config?: string; workerThreads?: number; logLevel?: string };
  command: string[];
  /** The daemon's source: commit and how many files differ from it (the tree may be dirty). */
  git?: { commit: string; dirtyFiles: number };
  options: Record<string, unknown>;
  quick: boolean;
}

export interface CleanupReport {
  /** Our handles still in the daemon's List after cleanup. */
  listed: string[];
  /** Host resources left behind (empty: nothing). */
  host: string[];
  /** What was checked, in words. */
  checked: string[];
  ok: boolean;
}

export class Results {
  readonly meta: RunMeta;
  readonly lines: ResultLine[] = [];
  readonly series: SampleSeries[] = [];
  /** Free-form findings per scenario (where the time goes): shown in the report. */
  readonly findings: Array<{ scenario: string; title: string; rows: string[][]; columns: string[] }> = [];
  readonly errors: Array<{ scenario: string; message: string }> = [];
  /**
   * Time windows of the run's phases (epoch ms), for attributing the daemon's spawn
   * trace and a perf recording's CPU: the daemon's work, or a raw baseline's
   * (`pairs` names the daemon phase it is the baseline of).
   */
  readonly phases: Array<{ label: string; start: number; end: number; ops: number; opName: string; latencyP50?: number; raw?: { pairs: string } }> = [];
  cleanup: CleanupReport | undefined;
  interrupted = false;

  constructor(meta: RunMeta) {
    this.meta = meta;
  }

  add(line: Omit<ResultLine, 'ratio'>): ResultLine {
    const full: ResultLine = { ...line };
    if (line.baseline && Number.isFinite(line.baseline.value) && line.baseline.value !== 0) {
      full.ratio = line.value / line.baseline.value;
    }
    this.lines.push(full);
    return full;
  }

  /** A latency line from a summary (milliseconds). */
  latency(scenario: string, metric: string, params: string, s: Summary, baseline?: Summary & { label: string }, note?: string): ResultLine {
    return this.add({
      scenario,
      metric,
      params,
      unit: 'ms',
      value: s.p50,
      p90: s.p90,
      p99: s.p99,
      n: s.n,
      better: 'lower',
      baseline: baseline ? { label: baseline.label, value: baseline.p50, p90: baseline.p90, p99: baseline.p99 } : undefined,
      note,
    });
  }

  addSeries(scenario: string, name: string, columns: string[], rows: number[][]): SampleSeries {
    const s = { scenario, name, columns, rows };
    this.series.push(s);
    return s;
  }

  getSeries(scenario: string, name: string): SampleSeries | undefined {
    return this.series.find((s) => s.scenario === scenario && s.name === name);
  }

  /** Starts a phase; end(ops) closes it with the number of operations done in it. rawFor: the label of the daemon phase this one is the baseline of. */
  phase(label: string, opName: string, rawFor?: string): { end(ops: number, latencyP50?: number): void } {
    const p: Results['phases'][number] = { label, start: Date.now(), end: NaN, ops: 0, opName, ...(rawFor ? { raw: { pairs: rawFor } } : {}) };
    this.phases.push(p);
    return {
      end: (ops: number, latencyP50?: number) => {
        p.end = Date.now();
        p.ops = ops;
        p.latencyP50 = latencyP50;
      },
    };
  }

  finding(scenario: string, title: string, columns: string[], rows: string[][]): void {
    this.findings.push({ scenario, title, columns, rows });
  }

  toJSON(): unknown {
    return {
      meta: this.meta,
      interrupted: this.interrupted,
      results: this.lines,
      findings: this.findings,
      errors: this.errors,
      cleanup: this.cleanup,
      phases: this.phases,
      samples: this.series,
    };
  }
}

export function formatValue(v: number | undefined, unit: Unit): string {
  if (v === undefined || !Number.isFinite(v)) return '-';
  switch (unit) {
    case 'ms':
      return formatDuration(v);
    case '/s':
      return `${v < 100 ? v.toFixed(v < 10 ? 2 : 1) : formatRate(v)}/s`;
    case 'MB/s':
      return `${v < 100 ? v.toFixed(v < 10 ? 2 : 1) : formatRate(v)} MB/s`;
    case 'MiB':
      return `${v.toFixed(v < 10 ? 2 : v < 100 ? 1 : 0)} MiB`;
    case 'KiB':
      return `${v.toFixed(v < 10 ? 2 : v < 100 ? 1 : 0)} KiB`;
    case 's':
      return `${v.toFixed(v < 10 ? 2 : 1)} s`;
    case '%':
      return `${v.toFixed(1)}%`;
  }
}

export const SUMMARY_COLUMNS = [
  { title: 'scenario' },
  { title: 'metric' },
  { title: 'params' },
  { title: 'p50 / value', right: true },
  { title: 'p90', right: true },
  { title: 'p99', right: true },
  { title: 'baseline', right: true },
  { title: 'ratio', right: true },
  { title: 'baseline is' },
];

export function summaryRow(l: ResultLine): string[] {
  return [
    l.scenario,
    l.metric,
    l.params,
    formatValue(l.value, l.unit),
    l.p90 === undefined ? '' : formatValue(l.p90, l.unit),
    l.p99 === undefined ? '' : formatValue(l.p99, l.unit),
    l.baseline ? formatValue(l.baseline.value, l.unit) : '-',
    l.ratio === undefined ? '-' : formatRatio(l.ratio),
    l.baseline?.label ?? (l.note ?? ''),
  ];
}

/** The terminal summary: every result line with its baseline and ratio. */
export function renderSummary(r: Results): string {
  return renderTable(SUMMARY_COLUMNS, r.lines.map(summaryRow));
}
