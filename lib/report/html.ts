/** The self-contained report page: inline CSS and SVG, no scripts, no external resources. */
import { escapeXml as esc } from './svg';
import { chartSvg } from './svg';
import type { ReportFigures } from './figures';
import type { EvalRow, ProtocolResult, ResultsFile } from './schema';

const CSS = `
body { font-family: -apple-system, "Segoe UI", Roboto, "DejaVu Sans", sans-serif; margin: 24px; color: #222; max-width: 1400px; }
h1 { font-size: 22px; margin-bottom: 4px; } h2 { font-size: 18px; margin-top: 28px; border-bottom: 1px solid #ddd; }
h3 { font-size: 15px; } .meta { color: #666; font-size: 13px; }
table { border-collapse: collapse; margin: 8px 0 16px; font-size: 13px; }
th, td { border: 1px solid #ccc; padding: 3px 8px; text-align: right; }
th { background: #f0f3f7; } td.label, th.label { text-align: left; }
tr.mean td { font-weight: bold; background: #fafafa; } td.best { background: #e3f2e1; }
.plots { display: flex; flex-wrap: wrap; gap: 8px; } .plots svg { border: 1px solid #eee; }
.note { background: #fff8e1; border-left: 4px solid #f0c040; padding: 6px 10px; font-size: 13px; }
`;

const pct = (v: number): string => (100 * v).toFixed(2);

function rowKey(p: ProtocolResult, r: EvalRow): string {
  return `${r.id}\u0000${r.ood}`;
}

/** AUROC table: one line per (ID, OOD) pair, one column per metric, mean line; best per line marked. */
function aurocTable(p: ProtocolResult, pi: number): string {
  const metrics = p.metrics.map((m) => m.name);
  const lines = new Map<string, { id: string; ood: string; cells: Map<string, number> }>();
  for (const r of p.rows) {
    const k = rowKey(p, r);
    if (!lines.has(k)) lines.set(k, { id: r.id, ood: r.ood, cells: new Map() });
    lines.get(k)!.cells.set(r.metric, r.auroc);
  }
  const head = `<tr><th class="label">ID</th><th class="label">OOD</th>${metrics.map((m) => `<th>${esc(m)}</th>`).join('')}</tr>`;
  const body: string[] = [];
  for (const l of lines.values()) {
    const best = Math.max(...[...l.cells.values()]);
    body.push(
      `<tr><td class="label">${esc(l.id)}</td><td class="label">${esc(l.ood)}</td>` +
        metrics.map((m) => {
          const v = l.cells.get(m);
          return v === undefined ? '<td>-</td>' : `<td${v === best ? ' class="best"' : ''}>${pct(v)}</td>`;
        }).join('') + '</tr>',
    );
  }
  if (lines.size > 1) {
    const means = metrics.map((m) => {
      const v = p.rows.filter((r) => r.metric === m).map((r) => r.auroc);
      return v.length ? `<td>${pct(v.reduce((a, b) => a + b, 0) / v.length)}</td>` : '<td>-</td>';
    });
    body.push(`<tr class="mean"><td class="label" colspan="2">mean</td>${means.join('')}</tr>`);
  }
  return `<table class="results auroc" id="auroc-${pi}" data-protocol="${esc(p.protocol)}"><caption>AUROC (%), OOD as positive</caption>${head}${body.join('')}</table>`;
}

/** Every number of every row. */
function fullTable(p: ProtocolResult, pi: number): string {
  const head =
    '<tr><th class="label">ID</th><th class="label">OOD</th><th class="label">metric</th><th>AUROC</th><th>AUPR-In</th><th>AUPR-Out</th>' +
    `<th>FPR@${Math.round(p.tpr_level * 100)}TPR</th><th>n ID</th><th>n OOD</th></tr>`;
  const body = p.rows.map(
    (r) =>
      `<tr><td class="label">${esc(r.id)}</td><td class="label">${esc(r.ood)}</td><td class="label">${esc(r.metric)}</td>` +
      `<td>${pct(r.auroc)}</td><td>${pct(r.aupr_in)}</td><td>${pct(r.aupr_out)}</td><td>${pct(r.fpr95)}</td><td>${r.n_in}</td><td>${r.n_ood}</td></tr>`,
  );
  return `<table class="results full" id="full-${pi}" data-protocol="${esc(p.protocol)}"><caption>All metrics (%)</caption>${head}${body.join('')}</table>`;
}

export function reportHtml(res: ResultsFile, fig: ReportFigures): string {
  const title = res.title ?? 'MOOD out-of-distribution detection report';
  const parts: string[] = [];
  parts.push(`<!DOCTYPE html><html lang="en"><head><meta charset="utf-8"><title>${esc(title)}</title><style>${CSS}</style></head><body>`);
  parts.push(`<h1>${esc(title)}</h1><p class="meta">written ${esc(res.created)} &middot; schema ${esc(res.schema)}</p>`);
  for (const n of res.notes ?? []) parts.push(`<p class="note">${esc(n)}</p>`);
  res.protocols.forEach((p, pi) => {
    parts.push(`<section class="protocol" data-protocol="${esc(p.protocol)}"><h2>${esc(p.protocol)} protocol</h2><p>${esc(p.description)}</p>`);
    parts.push(
      `<p class="meta">AUROC with OOD as positive; AUPR as ${esc(p.aupr_convention)}; FPR at ${Math.round(p.tpr_level * 100)}% TPR as ${esc(p.fpr95_convention)}. ` +
        `Metrics: ${p.metrics.map((m) => `${esc(m.name)} (${m.kind}, ${m.orientation.replace(/_/g, ' ')})`).join(', ')}.</p>`,
    );
    if (p.incomplete) parts.push(`<p class="note">Incomplete: ${esc(p.incomplete)}</p>`);
    parts.push(aurocTable(p, pi));
    const f = fig.protocols[pi];
    if (f.roc.length) parts.push(`<h3>ROC curves</h3><div class="plots">${f.roc.map(chartSvg).join('\n')}</div>`);
    if (f.histograms.length) parts.push(`<h3>ID vs OOD score histograms</h3><div class="plots">${f.histograms.map(chartSvg).join('\n')}</div>`);
    parts.push(`<details><summary>All metrics</summary>${fullTable(p, pi)}</details></section>`);
  });
  if (fig.training.length) {
    const ep = res.training!.epochs;
    const rows = ep.map(
      (e) =>
        `<tr><td>${e.epoch}</td><td>${e.train_loss.toFixed(4)}</td><td>${e.test_loss == null ? '-' : e.test_loss.toFixed(4)}</td>` +
        `<td>${e.test_acc1 == null ? '-' : e.test_acc1.toFixed(2)}</td><td>${e.lr == null ? '-' : e.lr.toExponential(2)}</td><td>${e.seconds == null ? '-' : e.seconds.toFixed(1)}</td></tr>`,
    );
    parts.push(
      `<section class="training"><h2>Training</h2><div class="plots">${fig.training.map(chartSvg).join('\n')}</div>` +
        `<table id="training"><tr><th>epoch</th><th>train loss</th><th>test loss</th><th>acc@1 (%)</th><th>lr</th><th>seconds</th></tr>${rows.join('')}</table></section>`,
    );
  }
  const settings = Object.entries(res.settings).map(([k, v]) => `<tr><td class="label">${esc(k)}</td><td class="label">${esc(v === null ? 'null' : String(v))}</td></tr>`);
  parts.push(`<section><h2>Settings</h2><table id="settings">${settings.join('')}</table></section>`);
  parts.push('</body></html>\n');
  return parts.join('\n');
}
