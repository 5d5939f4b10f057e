/** The self-contained report page: inline CSS and SVG, no scripts, no external resources. */
import { escapeXml as esc } from './svg';
import { chartSvg } from './svg';
import type { ReportFigures } from './figures';
import type { ProtocolResult, ResultsFile } from './schema';
import { aurocGrid, dataSeenLines, formatCell } from './tables';

const CSS = `
body { font-family: -apple-system, "Segoe UI", Roboto, "DejaVu Sans", sans-serif; margin: 24px; color: #222; max-width: 1400px; }
h1 { font-size: 22px; margin-bottom: 4px; } h2 { font-size: 18px; margin-top: 28px; border-bottom: 1px solid #ddd; }
h3 { font-size: 15px; } .meta { color: #666; font-size: 13px; }
table { border-collapse: collapse; margin: 8px 0 16px; font-size: 13px; }
th, td { border: 1px solid #ccc; padding: 3px 8px; text-align: right; }
th { background: #f0f3f7; } td.label, th.label { text-align: left; }
tr.mean td { font-weight: bold; background: #fafafa; } td.best { background: #e3f2e1; }
.plots { display: flex; flex-wrap: wrap; gap: 8px; } .plots svg { border: 1px solid #eee; }
dl.data-seen { display: grid; grid-template-columns: max-content auto; gap: 2px 12px; font-size: 13px; margin: 6px 0; }
dl.data-seen dt { font-weight: bold; } dl.data-seen dd { margin: 0; } td.diff, th.diff { background: #f4f0fa; }
.note { background: #fff8e1; border-left: 4px solid #f0c040; padding: 6px 10px; font-size: 13px; }
`;

const pct = (v: number): string => (100 * v).toFixed(2);

/** AUROC table: one line per (ID, OOD) pair, a column per metric (and arm, with the difference), mean line; best per line marked. */
function aurocTable(p: ProtocolResult, pi: number): string {
  const g = aurocGrid(p);
  const head = `<tr><th class="label">ID</th><th class="label">OOD</th>${g.columns.map((c) => `<th${c.diff ? ' class="diff"' : ''}>${esc(c.header)}</th>`).join('')}</tr>`;
  const cells = (vals: Array<number | undefined>, markBest: boolean) => {
    const shown = vals.filter((v, i): v is number => v !== undefined && !g.columns[i].diff);
    const best = markBest && shown.length ? Math.max(...shown) : NaN;
    return vals
      .map((v, i) => {
        const diff = g.columns[i].diff === true;
        const cls = [diff ? 'diff' : '', !diff && v === best ? 'best' : ''].filter(Boolean).join(' ');
        return `<td${cls ? ` class="${cls}"` : ''}>${formatCell(v, diff)}</td>`;
      })
      .join('');
  };
  const body = g.lines.map((l) => `<tr><td class="label">${esc(l.id)}</td><td class="label">${esc(l.ood)}</td>${cells(l.cells, true)}</tr>`);
  if (g.mean) body.push(`<tr class="mean"><td class="label" colspan="2">mean</td>${cells(g.mean, false)}</tr>`);
  const caption = `AUROC (%), OOD as positive${p.arms?.length === 2 ? `; difference = ${esc(p.arms[0])} - ${esc(p.arms[1])}` : ''}`;
  return `<table class="results auroc" id="auroc-${pi}" data-protocol="${esc(p.protocol)}"><caption>${caption}</caption>${head}${body.join('')}</table>`;
}

/** What each stage saw, as a definition list under the protocol's heading. */
function dataSeenList(p: ProtocolResult): string {
  const lines = dataSeenLines(p);
  return lines.length ? `<dl class="data-seen">${lines.map(([k, v]) => `<dt>${esc(k)}</dt><dd>${esc(v)}</dd>`).join('')}</dl>` : '';
}

/** Every number of every row. */
function fullTable(p: ProtocolResult, pi: number): string {
  const head =
    `<tr><th class="label">ID</th><th class="label">OOD</th>${p.arms ? '<th class="label">backbone</th>' : ''}<th class="label">metric</th><th>AUROC</th><th>AUPR-In</th><th>AUPR-Out</th>` +
    `<th>FPR@${Math.round(p.tpr_level * 100)}TPR</th><th>n ID</th><th>n OOD</th></tr>`;
  const body = p.rows.map(
    (r) =>
      `<tr><td class="label">${esc(r.id)}</td><td class="label">${esc(r.ood)}</td>${p.arms ? `<td class="label">${esc(r.arm ?? '')}</td>` : ''}<td class="label">${esc(r.metric)}</td>` +
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
    parts.push(
      `<section class="protocol" data-protocol="${esc(p.protocol)}"${p.variant ? ` data-variant="${esc(p.variant)}"` : ''}><h2>${esc(p.title ?? `${p.protocol} protocol`)}</h2>` +
        `${dataSeenList(p)}<p>${esc(p.description)}</p>`,
    );
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
        `<td>${e.test_acc1 == null ? '-' : e.test_acc1.toFixed(2)}</td><td>${e.test_images == null ? '-' : e.test_images}</td><td>${e.lr == null ? '-' : e.lr.toExponential(2)}</td><td>${e.seconds == null ? '-' : e.seconds.toFixed(1)}</td></tr>`,
    );
    parts.push(
      `<section class="training"><h2>Training</h2><div class="plots">${fig.training.map(chartSvg).join('\n')}</div>` +
        `<table id="training"><tr><th>epoch</th><th>train loss</th><th>test loss</th><th>acc@1 (%)</th><th>test images</th><th>lr</th><th>seconds</th></tr>${rows.join('')}</table></section>`,
    );
  }
  const settings = Object.entries(res.settings).map(([k, v]) => `<tr><td class="label">${esc(k)}</td><td class="label">${esc(v === null ? 'null' : String(v))}</td></tr>`);
  parts.push(`<section><h2>Settings</h2><table id="settings">${settings.join('')}</table></section>`);
  parts.push('</body></html>\n');
  return parts.join('\n');
}
