// The run's result lines as a Markdown table (summary.md beside the report), for
// pasting into a README: figure, p99, baseline, ratio and what the baseline is.
import { formatRatio } from '../../lib/format.ts';
import { formatValue, type Results } from '../results.ts';

const cell = (s: string) => s.replace(/\|/g, '\\|');

export function renderMarkdown(r: Results): string {
  const out: string[] = [];
  out.push('| scenario | metric | params | p50 / value | p99 | baseline | ratio | baseline is |');
  out.push('|---|---|---|--:|--:|--:|--:|---|');
  for (const l of r.lines) {
    out.push(
      `| ${[
        l.scenario,
        l.metric,
        l.params,
        formatValue(l.value, l.unit),
        l.p99 === undefined ? '' : formatValue(l.p99, l.unit),
        l.baseline ? formatValue(l.baseline.value, l.unit) : '-',
        l.ratio === undefined ? '-' : formatRatio(l.ratio),
        `${l.baseline?.label ?? ''}${l.note ? ` (${l.note})` : ''}`,
      ].map(cell).join(' | ')} |`,
    );
  }
  return `${out.join('\n')}\n`;
}
