/** The report's plots as chart descriptions, built from a results file. */
import { ID_COLOR, OOD_COLOR, PALETTE, dataRange, type Chart, type Series } from './chart';
import type { ProtocolResult, ResultsFile } from './schema';
import { lineLabel } from './tables';

/** File-name-safe slug. */
export function slug(s: string): string {
  return s.toLowerCase().replace(/[^a-z0-9]+/g, '-').replace(/^-+|-+$/g, '') || 'x';
}

/** A protocol's name in file names: its variant when it has one (unique in a file), else its position. */
export function protocolSlug(p: ProtocolResult, index: number): string {
  return p.variant ? `${slug(p.protocol)}-${slug(p.variant)}` : `${slug(p.protocol)}${index > 0 ? `-${index}` : ''}`;
}

/** A protocol's name in chart titles. */
function protocolName(p: ProtocolResult): string {
  return p.variant ? `${p.protocol} (${p.variant})` : p.protocol;
}

export function trainingCharts(res: ResultsFile): Chart[] {
  const ep = res.training?.epochs ?? [];
  if (ep.length === 0) return [];
  const charts: Chart[] = [];
  const x = ep.map((e) => e.epoch);
  const xr: [number, number] = ep.length === 1 ? [x[0] - 1, x[0] + 1] : [Math.min(...x), Math.max(...x)];
  const loss: Series[] = [{ kind: 'line', name: 'train loss', color: PALETTE[0], x, y: ep.map((e) => e.train_loss), markers: true }];
  const tl = ep.filter((e) => typeof e.test_loss === 'number');
  if (tl.length > 0) loss.push({ kind: 'line', name: 'test loss', color: PALETTE[1], x: tl.map((e) => e.epoch), y: tl.map((e) => e.test_loss as number), markers: true, dashed: true });
  const lossValues = loss.flatMap((s) => (s.kind === 'line' ? Array.from(s.y) : []));
  const [, lhi] = dataRange(lossValues, 0.08);
  charts.push({ id: 'training-loss', kind: 'training', title: 'Fine-tuning loss', xLabel: 'epoch', yLabel: 'cross-entropy', xRange: xr, yRange: [0, Math.max(lhi, 1e-6)], series: loss });
  const acc = ep.filter((e) => typeof e.test_acc1 === 'number');
  if (acc.length > 0) {
    charts.push({
      id: 'training-accuracy',
      kind: 'training',
      title: 'ID test accuracy',
      xLabel: 'epoch',
      yLabel: 'top-1 accuracy (%)',
      xRange: xr,
      yRange: [0, 100],
      legend: 'bottom-right',
      series: [{ kind: 'line', name: 'acc@1', color: PALETTE[2], x: acc.map((e) => e.epoch), y: acc.map((e) => e.test_acc1 as number), markers: true }],
    });
  }
  return charts;
}

/** One ROC chart per metric (and arm): a curve per row (per OOD set, or per ID class in one-class). */
export function rocCharts(p: ProtocolResult, index: number): Chart[] {
  const out: Chart[] = [];
  for (const m of p.metrics) {
    for (const arm of p.arms ?? [undefined]) {
      const rows = p.rows.filter((r) => r.metric === m.name && r.arm === arm && r.roc);
      if (rows.length === 0) continue;
      out.push({
        id: `${protocolSlug(p, index)}-roc-${slug(m.name)}${arm ? `-${slug(arm)}` : ''}`,
        kind: 'roc',
        title: `${protocolName(p)} ROC: ${m.name}${arm ? `, ${arm}` : ''}`,
        xLabel: 'false positive rate (ID flagged OOD)',
        yLabel: 'true positive rate (OOD)',
        xRange: [0, 1],
        yRange: [0, 1],
        diagonal: true,
        legend: 'bottom-right',
        series: rows.map((r, i) => ({
          kind: 'line' as const,
          name: `${lineLabel(p, r)} ${(100 * r.auroc).toFixed(1)}`,
          color: PALETTE[i % PALETTE.length],
          x: r.roc!.fpr,
          y: r.roc!.tpr,
        })),
      });
    }
  }
  return out;
}

/** One histogram chart per row that has one: ID vs OOD score distributions. */
export function histogramCharts(p: ProtocolResult, index: number): Chart[] {
  const out: Chart[] = [];
  for (const r of p.rows) {
    const h = r.histogram;
    if (!h) continue;
    const m = p.metrics.find((x) => x.name === r.metric);
    const dir = m?.orientation === 'higher_is_id' ? 'higher = more ID' : 'higher = more OOD';
    const ymax = Math.max(...h.in, ...h.ood);
    const arm = r.arm ? ` (${r.arm})` : '';
    out.push({
      id: `${protocolSlug(p, index)}-hist-${slug(r.metric)}-${slug(lineLabel(p, r))}${r.arm ? `-${slug(r.arm)}` : ''}`,
      kind: 'histogram',
      title: `${r.metric}${arm}: ${lineLabel(p, r)}`,
      xLabel: `score (${dir})${h.clipped ? ', ends clipped' : ''}`,
      yLabel: 'share of samples',
      xRange: [h.edges[0], h.edges[h.edges.length - 1]],
      yRange: [0, ymax > 0 ? ymax * 1.1 : 1],
      series: [
        { kind: 'bars', name: `ID (${r.n_in})`, color: ID_COLOR, edges: h.edges, values: h.in },
        { kind: 'bars', name: `OOD (${r.n_ood})`, color: OOD_COLOR, edges: h.edges, values: h.ood },
      ],
    });
  }
  return out;
}

export interface ReportFigures {
  training: Chart[];
  protocols: Array<{ roc: Chart[]; histograms: Chart[] }>;
}

export function reportFigures(res: ResultsFile): ReportFigures {
  return {
    training: trainingCharts(res),
    protocols: res.protocols.map((p, i) => ({ roc: rocCharts(p, i), histograms: histogramCharts(p, i) })),
  };
}

export function allCharts(f: ReportFigures): Chart[] {
  return [...f.training, ...f.protocols.flatMap((p) => [...p.roc, ...p.histograms])];
}
