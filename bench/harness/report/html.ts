// The HTML report: one self-contained file (inline CSS and SVG, no scripts, no
// network): what ran where, whether it cleaned up, every result line with its
// baseline and ratio, where the time goes, and the plots.
import { formatRatio } from '../../lib/format.ts';
import { formatValue, type Results } from '../results.ts';
import type { Plot } from './plots.ts';
import { esc } from './svg.ts';

function table(columns: string[], rows: string[][], rightFrom = 99): string {
  const head = columns.map((c, i) => `<th${i >= rightFrom ? ' class="r"' : ''}>${esc(c)}</th>`).join('');
  const body = rows.map((r) => `<tr>${r.map((c, i) => `<td${i >= rightFrom ? ' class="r"' : ''}>${esc(c)}</td>`).join('')}</tr>`).join('\n');
  return `<table><thead><tr>${head}</tr></thead><tbody>${body}</tbody></table>`;
}

/** Ratio cell coloured by how far from the baseline it is, in the direction that costs. */
function ratioCell(ratio: number | undefined, better: 'lower' | 'higher'): string {
  if (ratio === undefined || !Number.isFinite(ratio)) return '<td class="r">-</td>';
  const cost = better === 'lower' ? ratio : 1 / ratio;
  const cls = cost <= 1.25 ? 'ok' : cost <= 3 ? 'warn' : 'bad';
  return `<td class="r ${cls}">${esc(formatRatio(ratio))}</td>`;
}

export function renderHtml(r: Results, plots: Plot[], jsonName: string): string {
  const m = r.meta;
  const rows = r.lines
    .map((l) => `<tr><td>${esc(l.scenario)}</td><td>${esc(l.metric)}</td><td>${esc(l.params)}</td>` +
      `<td class="r">${esc(formatValue(l.value, l.unit))}</td><td class="r">${l.p90 === undefined ? '' : esc(formatValue(l.p90, l.unit))}</td>` +
      `<td class="r">${l.p99 === undefined ? '' : esc(formatValue(l.p99, l.unit))}</td>` +
      `<td class="r">${l.baseline ? esc(formatValue(l.baseline.value, l.unit)) : '-'}</td>${ratioCell(l.ratio, l.better)}` +
      `<td>${esc(l.baseline?.label ?? '')}${l.note ? `<div class="note">${esc(l.note)}</div>` : ''}</td></tr>`)
    .join('\n');
  const cleanup = r.cleanup;
  const cleanupHtml = cleanup
    ? `<div class="${cleanup.ok ? 'clean ok' : 'clean bad'}"><b>${cleanup.ok ? 'Nothing left behind.' : 'Left behind:'}</b>` +
      (cleanup.ok ? '' : `<ul>${[...cleanup.listed.map((h) => `daemon still lists ${h}`), ...cleanup.host].map((x) => `<li>${esc(x)}</li>`).join('')}</ul>`) +
      `<details><summary>what was checked</summary><ul>${cleanup.checked.map((c) => `<li>${esc(c)}</li>`).join('')}</ul></details></div>`
    : '<div class="clean warn">Cleanup was not checked.</div>';
  const findings = r.findings.map((f) => `<h3>${esc(f.scenario)}: ${esc(f.title)}</h3>${table(f.columns, f.rows, 2)}`).join('\n');
  const errors = r.errors.length
    ? `<h2>Errors</h2><ul>${r.errors.map((e) => `<li><b>${esc(e.scenario)}</b>: ${esc(e.message)}</li>`).join('')}</ul>`
    : '';
  const plotHtml = plots.map((p) => `<figure id="${esc(p.name)}">${p.svg}<figcaption>${esc(p.title)} — plots/${esc(p.name)}.svg</figcaption></figure>`).join('\n');
  return `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>warden-bench ${esc(m.backend)} ${esc(m.started)}</title>
<style>
body{font:14px/1.45 system-ui,-apple-system,Segoe UI,Helvetica,Arial,sans-serif;margin:24px auto;max-width:1180px;color:#111827;padding:0 16px}
h1{font-size:22px}h2{font-size:18px;margin-top:32px;border-bottom:1px solid #e5e7eb}h3{font-size:15px;margin-bottom:4px}
table{border-collapse:collapse;width:100%;font-size:13px}th,td{padding:3px 8px;border-bottom:1px solid #f0f0f0;text-align:left;vertical-align:top}
th{background:#f3f4f6}.r{text-align:right;white-space:nowrap}.ok{color:#15803d}.warn{color:#b45309}.bad{color:#b91c1c}
td.ok,td.warn,td.bad{font-weight:600}.note{color:#6b7280;font-size:12px}
.clean{padding:8px 12px;border-radius:6px;margin:12px 0}.clean.ok{background:#f0fdf4}.clean.bad{background:#fef2f2}.clean.warn{background:#fffbeb}
figure{margin:24px 0}figcaption{color:#6b7280;font-size:12px}dl{display:grid;grid-template-columns:max-content 1fr;gap:2px 16px}dt{color:#6b7280}
code{background:#f3f4f6;padding:1px 4px;border-radius:3px}
</style></head><body>
<h1>warden-bench: ${esc(m.backend)} backend</h1>
<dl>
<dt>started</dt><dd>${esc(m.started)}${m.finished ? ` — finished ${esc(m.finished)}` : ''}</dd>
<dt>host</dt><dd>${m.host.cpus} x ${esc(m.host.cpuModel)}, ${(m.host.memTotal / 2 ** 30).toFixed(1)} GiB, kernel ${esc(m.host.kernel)}, node ${esc(m.host.node)}</dd>
<dt>daemon</dt><dd>${m.daemon.own ? 'started by the harness' : 'existing'} (pid ${m.daemon.pid ?? '?'}), socket <code>${esc(m.daemon.socket)}</code>${m.daemon.workerThreads ? `, ${m.daemon.workerThreads} worker threads` : ''}${m.daemon.logLevel ? `, log level ${esc(m.daemon.logLevel)}` : ''}</dd>
${m.git ? `<dt>source</dt><dd>commit ${esc(m.git.commit)}${m.git.dirtyFiles ? `, ${m.git.dirtyFiles} files changed in the working tree` : ''}</dd>` : ''}
<dt>command</dt><dd><code>${esc(m.command.join(' '))}</code>${m.quick ? ' (quick: smoke sizes, timings mean nothing)' : ''}</dd>
<dt>samples</dt><dd>every sample is in <code>${esc(jsonName)}</code></dd>
</dl>
${cleanupHtml}
<h2>Results</h2>
<p>Each line: the daemon's figure (p50 for latencies), its baseline measured in the same run, and the ratio daemon / baseline
(coloured by cost: green within 1.25x, amber within 3x, red beyond).</p>
<table><thead><tr><th>scenario</th><th>metric</th><th>params</th><th class="r">p50 / value</th><th class="r">p90</th><th class="r">p99</th><th class="r">baseline</th><th class="r">ratio</th><th>baseline is</th></tr></thead>
<tbody>
${rows}
</tbody></table>
${errors}
<h2>Where the time goes</h2>
${findings || '<p>(no breakdowns in this run)</p>'}
<h2>Plots</h2>
${plotHtml}
</body></html>
`;
}
