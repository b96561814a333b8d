// Number and table formatting shared by the benchmarks' reports.

/** A duration given in milliseconds, in the unit that keeps it readable: "812 ns", "41.2 µs", "3.10 ms". */
export function formatDuration(ms: number): string {
  if (!Number.isFinite(ms)) return '-';
  const ns = ms * 1e6;
  if (ns < 1000) return `${ns.toFixed(ns < 10 ? 1 : 0)} ns`;
  if (ns < 1e6) return `${(ns / 1e3).toFixed(ns < 1e4 ? 2 : 1)} µs`;
  if (ns < 1e9) return `${(ns / 1e6).toFixed(ns < 1e7 ? 2 : 1)} ms`;
  return `${(ns / 1e9).toFixed(2)} s`;
}

/** An operation rate with thousands separators: "1,234,567". */
export function formatRate(perSecond: number): string {
  if (!Number.isFinite(perSecond)) return '-';
  return Math.round(perSecond).toLocaleString('en-US');
}

export function formatMBps(bytesPerSecond: number): string {
  if (!Number.isFinite(bytesPerSecond)) return '-';
  const mb = bytesPerSecond / 1e6;
  return mb.toFixed(mb < 10 ? 2 : mb < 100 ? 1 : 0);
}

/** A ratio as "2.41x". */
export function formatRatio(ratio: number): string {
  if (!Number.isFinite(ratio)) return '-';
  return `${ratio.toFixed(ratio < 10 ? 2 : ratio < 100 ? 1 : 0)}x`;
}

export function formatBytes(n: number): string {
  if (n < 1024) return `${n} B`;
  if (n < 1024 * 1024) return `${+(n / 1024).toFixed(1)} KiB`;
  return `${+(n / 1024 / 1024).toFixed(1)} MiB`;
}

export interface Column {
  title: string;
  /** Right-align (numbers). Default left. */
  right?: boolean;
}

/** A plain-text table: a header, a rule, and the rows; cells are padded to the widest. */
export function renderTable(columns: readonly Column[], rows: readonly (readonly string[])[]): string {
  const widths = columns.map((c, i) => Math.max(c.title.length, ...rows.map((r) => (r[i] ?? '').length)));
  const line = (cells: readonly string[]) =>
    columns
      .map((c, i) => (c.right ? (cells[i] ?? '').padStart(widths[i]) : (cells[i] ?? '').padEnd(widths[i])))
      .join('  ')
      .trimEnd();
  return [line(columns.map((c) => c.title)), widths.map((w) => '-'.repeat(w)).join('  '), ...rows.map(line)].join('\n');
}
