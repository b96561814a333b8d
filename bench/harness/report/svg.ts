// A tiny dependency-free SVG plotter for the report: line/scatter charts with
// linear or log axes, and a percentile range chart (p50 dot, p90 tick, p99 end
// of a bar) for comparing an operation with its baseline. Output is plain SVG
// markup with inline styles, so the HTML report and the PNGs need nothing else.

export const COLORS = ['#2563eb', '#ea580c', '#16a34a', '#9333ea', '#0891b2', '#dc2626', '#ca8a04', '#475569'];

export function esc(s: string): string {
  return s.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;').replace(/"/g, '&quot;');
}

function fmt(v: number): string {
  const a = Math.abs(v);
  if (a === 0) return '0';
  if (a >= 1e6) return `${+(v / 1e6).toPrecision(3)}M`;
  if (a >= 1e4) return `${+(v / 1e3).toPrecision(3)}k`;
  if (a >= 100) return `${Math.round(v)}`;
  if (a >= 1) return `${+v.toPrecision(3)}`;
  return `${+v.toPrecision(2)}`;
}

/** Tick values for a linear axis: about `count` round steps (1, 2, 5 x 10^k). */
export function linearTicks(min: number, max: number, count = 5): number[] {
  if (!(max > min)) return [min];
  const raw = (max - min) / count;
  const mag = 10 ** Math.floor(Math.log10(raw));
  const step = [1, 2, 5, 10].map((m) => m * mag).find((s) => s >= raw) ?? 10 * mag;
  const out: number[] = [];
  for (let v = Math.ceil(min / step) * step; v <= max + step * 1e-9; v += step) out.push(Math.abs(v) < step * 1e-9 ? 0 : v);
  return out;
}

/** Tick values for a log axis: decades, with 2 and 5 between when the range is short. */
export function logTicks(min: number, max: number): number[] {
  const lo = Math.floor(Math.log10(min));
  const hi = Math.ceil(Math.log10(max));
  const mults = hi - lo <= 3 ? [1, 2, 5] : [1];
  const out: number[] = [];
  for (let e = lo; e <= hi; e++) for (const m of mults) {
    const v = m * 10 ** e;
    if (v >= min * 0.999 && v <= max * 1.001) out.push(v);
  }
  return out.length >= 2 ? out : [min, max];
}

interface Scale {
  (v: number): number;
  ticks: number[];
}

function scale(min: number, max: number, from: number, to: number, log: boolean): Scale {
  let f: (v: number) => number;
  if (log) {
    const a = Math.log10(min);
    const b = Math.log10(max);
    f = (v) => from + ((Math.log10(Math.max(v, min)) - a) / (b - a || 1)) * (to - from);
  } else {
    f = (v) => from + ((v - min) / (max - min || 1)) * (to - from);
  }
  const s = f as Scale;
  s.ticks = log ? logTicks(min, max) : linearTicks(min, max);
  return s;
}

/** Domain of values with a little room; log domains snap out to round values. */
function domain(values: number[], log: boolean, includeZero: boolean, fixed?: [number | undefined, number | undefined]): [number, number] {
  let min = Infinity;
  let max = -Infinity;
  for (const x of values) {
    if (!Number.isFinite(x) || (log && x <= 0)) continue;
    if (x < min) min = x;
    if (x > max) max = x;
  }
  if (min === Infinity) [min, max] = log ? [1, 10] : [0, 1];
  if (log) {
    // Snap out to half decades.
    min = 10 ** (Math.floor(Math.log10(min) * 2) / 2);
    max = 10 ** (Math.ceil(Math.log10(max) * 2) / 2);
    if (max <= min) max = min * 10;
  } else {
    if (includeZero) min = Math.min(0, min);
    if (max === min) max = min + 1;
    const t = linearTicks(min, max);
    const step = t.length > 1 ? t[1] - t[0] : (max - min) / 5;
    max = Math.ceil(max / step) * step;
    if (!includeZero) min = Math.floor(min / step) * step;
  }
  if (fixed?.[0] !== undefined) min = fixed[0];
  if (fixed?.[1] !== undefined) max = fixed[1];
  return [min, max];
}

export interface Series {
  name: string;
  points: Array<[number, number]>;
  color?: string;
  style?: 'line' | 'dots' | 'line+dots' | 'step';
  dash?: boolean;
  /** Dot radius (dots) or stroke width (lines). */
  size?: number;
  opacity?: number;
  /** Plot against the right-hand y axis. */
  right?: boolean;
}

export interface ChartOptions {
  title: string;
  xLabel: string;
  yLabel: string;
  y2Label?: string;
  series: Series[];
  width?: number;
  height?: number;
  xLog?: boolean;
  yLog?: boolean;
  y2Log?: boolean;
  /** Show these x values as ticks (e.g. concurrency levels) instead of computed ones. */
  xTicks?: number[];
  yMin?: number;
  note?: string;
}

const FONT = 'font-family="system-ui,-apple-system,Segoe UI,Helvetica,Arial,sans-serif"';

export function lineChart(o: ChartOptions): string {
  const W = o.width ?? 760;
  const H = o.height ?? 380;
  const legendCols = Math.max(...o.series.map((s) => s.name.length + (s.right ? 14 : 0))) > 28 ? 2 : 3;
  const m = { l: 64, r: o.series.some((s) => s.right) ? 64 : 20, t: 40, b: 52 + Math.ceil(o.series.length / legendCols) * 18 };
  const left = o.series.filter((s) => !s.right);
  const right = o.series.filter((s) => s.right);
  const xs = o.series.flatMap((s) => s.points.map((p) => p[0]));
  const [x0, x1] = domain(o.xTicks ? [...xs, ...o.xTicks] : xs, !!o.xLog, false);
  const [y0, y1] = domain(left.flatMap((s) => s.points.map((p) => p[1])), !!o.yLog, !o.yLog, [o.yMin, undefined]);
  const x = scale(x0, x1, m.l, W - m.r, !!o.xLog);
  const y = scale(y0, y1, H - m.b, m.t, !!o.yLog);
  let y2: Scale | undefined;
  if (right.length) {
    const [a, b] = domain(right.flatMap((s) => s.points.map((p) => p[1])), !!o.y2Log, !o.y2Log);
    y2 = scale(a, b, H - m.b, m.t, !!o.y2Log);
  }
  const parts: string[] = [];
  parts.push(`<svg xmlns="http://www.w3.org/2000/svg" width="${W}" height="${H}" viewBox="0 0 ${W} ${H}" ${FONT} font-size="12">`);
  parts.push(`<rect width="${W}" height="${H}" fill="#fff"/>`);
  parts.push(`<text x="${W / 2}" y="22" text-anchor="middle" font-size="15" font-weight="600">${esc(o.title)}</text>`);
  // grid and ticks
  for (const t of o.xTicks ?? x.ticks) {
    const px = x(t);
    parts.push(`<line x1="${px.toFixed(1)}" x2="${px.toFixed(1)}" y1="${m.t}" y2="${H - m.b}" stroke="#e5e7eb"/>`);
    parts.push(`<text x="${px.toFixed(1)}" y="${H - m.b + 16}" text-anchor="middle" fill="#374151">${fmt(t)}</text>`);
  }
  for (const t of y.ticks) {
    const py = y(t);
    parts.push(`<line x1="${m.l}" x2="${W - m.r}" y1="${py.toFixed(1)}" y2="${py.toFixed(1)}" stroke="#e5e7eb"/>`);
    parts.push(`<text x="${m.l - 6}" y="${(py + 4).toFixed(1)}" text-anchor="end" fill="#374151">${fmt(t)}</text>`);
  }
  if (y2) for (const t of y2.ticks) parts.push(`<text x="${W - m.r + 6}" y="${(y2(t) + 4).toFixed(1)}" fill="#374151">${fmt(t)}</text>`);
  parts.push(`<rect x="${m.l}" y="${m.t}" width="${W - m.l - m.r}" height="${H - m.t - m.b}" fill="none" stroke="#9ca3af"/>`);
  parts.push(`<text x="${(m.l + W - m.r) / 2}" y="${H - m.b + 34}" text-anchor="middle" fill="#111827">${esc(o.xLabel)}</text>`);
  parts.push(`<text transform="translate(16 ${(m.t + H - m.b) / 2}) rotate(-90)" text-anchor="middle" fill="#111827">${esc(o.yLabel)}</text>`);
  if (y2 && o.y2Label) parts.push(`<text transform="translate(${W - 12} ${(m.t + H - m.b) / 2}) rotate(90)" text-anchor="middle" fill="#111827">${esc(o.y2Label)}</text>`);
  // series
  o.series.forEach((s, i) => {
    const color = s.color ?? COLORS[i % COLORS.length];
    const ys = s.right && y2 ? y2 : y;
    const pts = s.points.filter((p) => Number.isFinite(p[0]) && Number.isFinite(p[1]) && (!o.xLog || p[0] > 0) && (!(s.right ? o.y2Log : o.yLog) || p[1] > 0));
    const style = s.style ?? 'line+dots';
    if (style !== 'dots' && pts.length > 1) {
      let d = '';
      pts.forEach((p, j) => {
        const px = x(p[0]).toFixed(1);
        const py = ys(p[1]).toFixed(1);
        if (j === 0) d += `M${px} ${py}`;
        else if (style === 'step') d += `H${px}V${py}`;
        else d += `L${px} ${py}`;
      });
      parts.push(`<path d="${d}" fill="none" stroke="${color}" stroke-width="${s.size ?? 2}"${s.dash ? ' stroke-dasharray="6 4"' : ''}${s.opacity ? ` stroke-opacity="${s.opacity}"` : ''}/>`);
    }
    if (style === 'dots' || style === 'line+dots') {
      const r = style === 'dots' ? (s.size ?? 1.6) : 3;
      const op = s.opacity ?? (style === 'dots' ? 0.35 : 1);
      const dots = pts.map((p) => `<circle cx="${x(p[0]).toFixed(1)}" cy="${ys(p[1]).toFixed(1)}" r="${r}"/>`).join('');
      parts.push(`<g fill="${color}" fill-opacity="${op}">${dots}</g>`);
    }
  });
  // legend
  const cols = legendCols;
  const colW = (W - m.l - m.r) / cols;
  o.series.forEach((s, i) => {
    const color = s.color ?? COLORS[i % COLORS.length];
    const lx = m.l + (i % cols) * colW;
    const ly = H - m.b + 50 + Math.floor(i / cols) * 18;
    const mark = s.style === 'dots'
      ? `<circle cx="${lx + 9}" cy="${ly - 4}" r="3.5" fill="${color}"/>`
      : `<line x1="${lx}" x2="${lx + 18}" y1="${ly - 4}" y2="${ly - 4}" stroke="${color}" stroke-width="2.5"${s.dash ? ' stroke-dasharray="5 3"' : ''}/>`;
    parts.push(`${mark}<text x="${lx + 24}" y="${ly}" fill="#111827">${esc(s.name)}${s.right ? ' (right axis)' : ''}</text>`);
  });
  if (o.note) parts.push(`<text x="${W - m.r}" y="${m.t - 6}" text-anchor="end" fill="#6b7280" font-size="11">${esc(o.note)}</text>`);
  parts.push('</svg>');
  return parts.join('\n');
}

export interface RangeRow {
  label: string;
  entries: Array<{ name: string; p50: number; p90?: number; p99?: number; color?: string }>;
}

/**
 * Percentiles per operation on a log axis: for each row, each entry is a bar from
 * p50 to p99 with a dot at p50 and a tick at p90 (daemon above, baseline below).
 */
export function rangeChart(o: { title: string; xLabel: string; rows: RangeRow[]; width?: number; legend: Array<{ name: string; color: string }> }): string {
  const W = o.width ?? 760;
  const rowH = 14 * Math.max(1, ...o.rows.map((r) => r.entries.length)) + 12;
  const labelW = Math.min(360, 24 + 7.2 * Math.max(10, ...o.rows.map((r) => r.label.length)));
  const m = { l: labelW, r: 24, t: 40, b: 62 };
  const H = m.t + m.b + rowH * o.rows.length;
  const values = o.rows.flatMap((r) => r.entries.flatMap((e) => [e.p50, e.p90 ?? e.p50, e.p99 ?? e.p50]));
  const [x0, x1] = domain(values, true, false);
  const x = scale(x0, x1, m.l, W - m.r, true);
  const parts: string[] = [];
  parts.push(`<svg xmlns="http://www.w3.org/2000/svg" width="${W}" height="${H}" viewBox="0 0 ${W} ${H}" ${FONT} font-size="12">`);
  parts.push(`<rect width="${W}" height="${H}" fill="#fff"/>`);
  parts.push(`<text x="${W / 2}" y="22" text-anchor="middle" font-size="15" font-weight="600">${esc(o.title)}</text>`);
  for (const t of x.ticks) {
    const px = x(t).toFixed(1);
    parts.push(`<line x1="${px}" x2="${px}" y1="${m.t}" y2="${H - m.b}" stroke="#e5e7eb"/>`);
    parts.push(`<text x="${px}" y="${H - m.b + 16}" text-anchor="middle" fill="#374151">${fmt(t)}</text>`);
  }
  parts.push(`<text x="${(m.l + W - m.r) / 2}" y="${H - m.b + 34}" text-anchor="middle" fill="#111827">${esc(o.xLabel)}</text>`);
  o.rows.forEach((r, i) => {
    const top = m.t + i * rowH;
    if (i % 2 === 0) parts.push(`<rect x="0" y="${top}" width="${W}" height="${rowH}" fill="#f9fafb"/>`);
    parts.push(`<text x="${m.l - 8}" y="${top + rowH / 2 + 4}" text-anchor="end" fill="#111827">${esc(r.label)}</text>`);
    r.entries.forEach((e, j) => {
      const cy = top + 10 + j * 14;
      const color = e.color ?? COLORS[j % COLORS.length];
      if (!Number.isFinite(e.p50)) return;
      const a = x(e.p50);
      const b = x(e.p99 ?? e.p50);
      parts.push(`<line x1="${a.toFixed(1)}" x2="${b.toFixed(1)}" y1="${cy}" y2="${cy}" stroke="${color}" stroke-width="5" stroke-opacity="0.35"/>`);
      if (e.p90 !== undefined && Number.isFinite(e.p90)) parts.push(`<line x1="${x(e.p90).toFixed(1)}" x2="${x(e.p90).toFixed(1)}" y1="${cy - 5}" y2="${cy + 5}" stroke="${color}" stroke-width="2"/>`);
      if (e.p99 !== undefined && Number.isFinite(e.p99)) parts.push(`<line x1="${b.toFixed(1)}" x2="${b.toFixed(1)}" y1="${cy - 4}" y2="${cy + 4}" stroke="${color}" stroke-width="1.5"/>`);
      parts.push(`<circle cx="${a.toFixed(1)}" cy="${cy}" r="4" fill="${color}"/>`);
    });
  });
  parts.push(`<rect x="${m.l}" y="${m.t}" width="${W - m.l - m.r}" height="${H - m.t - m.b}" fill="none" stroke="#9ca3af"/>`);
  let lx = m.l;
  const ly = H - 12;
  for (const l of o.legend) {
    parts.push(`<circle cx="${lx + 5}" cy="${ly - 4}" r="4" fill="${l.color}"/><text x="${lx + 14}" y="${ly}" fill="#111827">${esc(l.name)}</text>`);
    lx += 24 + 7 * l.name.length;
  }
  parts.push(`<text x="${W - m.r}" y="${ly}" text-anchor="end" fill="#6b7280" font-size="11">dot p50 · tick p90 · bar end p99</text>`);
  parts.push('</svg>');
  return parts.join('\n');
}
