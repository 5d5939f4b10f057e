/**
 * The demo's OOD evaluation on extracted features/logits, as report rows with curves and the raw
 * per-sample scores. The numbers are lib/ood/protocols' (the reference's loops, lib/ood's detectors and
 * exact float64 evaluation); this file turns their results into report rows and keeps the scores for
 * the report and for re-checking:
 * - multi-class: multiClassProtocol per metric (fit on the ID training rows, ID test vs each OOD set);
 * - one-class: oneClassProtocol per metric for one ID class; the row is the mean over every other class
 *   as a separate OOD set, its curves pool the other classes.
 */
import { multiClassProtocol, oneClassProtocol, type SampleSet } from '../ood/protocols';
import { listDetectors, type DetectorOptions } from '../ood/detectors/registry';
import { rocPoints, scoreHistogram } from '../report/curves';
import type { EvalPart, EvalRow, MetricInfo } from '../report/schema';
import type { ExtractedSet } from '../ood/features/types';

/** Per-sample outputs of one pass: lib/ood/features' ExtractedSet without its bookkeeping. */
export type FeatureRows = Pick<ExtractedSet, 'n' | 'features' | 'featureDim' | 'logits' | 'numClasses' | 'labels'>;

/** The rows whose label passes `keep` (copies). */
export function selectRows(s: FeatureRows, keep: (label: number, row: number) => boolean): FeatureRows {
  const idx: number[] = [];
  for (let i = 0; i < s.n; i++) if (keep(s.labels[i], i)) idx.push(i);
  const f = new Float32Array(idx.length * s.featureDim);
  const l = new Float32Array(idx.length * s.numClasses);
  idx.forEach((r, k) => {
    f.set(s.features.subarray(r * s.featureDim, (r + 1) * s.featureDim), k * s.featureDim);
    l.set(s.logits.subarray(r * s.numClasses, (r + 1) * s.numClasses), k * s.numClasses);
  });
  return { n: idx.length, features: f, featureDim: s.featureDim, logits: l, numClasses: s.numClasses, labels: Int32Array.from(idx, (r) => s.labels[r]) };
}

function input(s: FeatureRows): SampleSet {
  return {
    features: { data: s.features, shape: [s.n, s.featureDim] },
    logits: { data: s.logits, shape: [s.n, s.numClasses] },
    labels: s.labels,
  };
}

export function metricInfo(metrics: readonly string[]): MetricInfo[] {
  const all = new Map(listDetectors().map((d) => [d.name, d]));
  return metrics.map((m) => {
    const d = all.get(m);
    if (!d) throw new RangeError(`unknown OOD metric '${m}'; valid metrics: ${[...all.keys()].join(', ')}`);
    if (d.kind === 'head') throw new RangeError(`metric '${m}' needs the classifier head's weights; the demo supports feature and logit metrics`);
    return { name: m, kind: d.kind, orientation: d.orientation };
  });
}

/** Collects raw scores for one .npz: key -> float64 array (the exact values evaluated). */
export class ScoreSink {
  readonly arrays = new Map<string, Float64Array>();
  constructor(readonly file: string) {}
  put(key: string, v: Float64Array): string {
    const k = key.replace(/[^A-Za-z0-9_.-]+/g, '_');
    this.arrays.set(k, v);
    return k;
  }
}

export interface OodEvalOptions {
  metrics: readonly string[];
  detectorOptions?: (metric: string) => DetectorOptions;
  bins?: number;
  maxRocPoints?: number;
}

function curves(sIn: Float64Array, sOut: Float64Array, orientation: MetricInfo['orientation'], o: OodEvalOptions) {
  return { roc: rocPoints(sIn, sOut, orientation, o.maxRocPoints ?? 300), histogram: scoreHistogram(sIn, sOut, o.bins ?? 40) };
}

type Numbers = Pick<EvalRow, 'auroc' | 'aupr_in' | 'aupr_out' | 'fpr95' | 'detection_error'>;

function numbers(r: Numbers): Numbers {
  return { auroc: r.auroc, aupr_in: r.aupr_in, aupr_out: r.aupr_out, fpr95: r.fpr95, detection_error: r.detection_error };
}

/**
 * Multi-class protocol: one row per (metric, OOD set). Scores go to `sink` under
 * `<metric>__in` and `<metric>__<ood>`.
 */
export async function multiClassRows(
  idName: string,
  train: FeatureRows,
  test: FeatureRows,
  oods: ReadonlyArray<{ name: string; rows: FeatureRows }>,
  o: OodEvalOptions,
  sink: ScoreSink,
): Promise<EvalRow[]> {
  const out: EvalRow[] = [];
  for (const m of metricInfo(o.metrics)) {
    const r = await multiClassProtocol({
      metric: m.name,
      detectorOptions: o.detectorOptions?.(m.name) ?? {},
      train: input(train),
      test: input(test),
      ood: oods.map((x) => ({ name: x.name, ...input(x.rows) })),
      keepScores: true,
    });
    const sIn = r.scores!.in;
    const kIn = sink.put(`${m.name}__in`, sIn);
    for (const row of r.rows) {
      const sOut = r.scores!.ood[row.ood];
      out.push({
        id: idName,
        ood: row.ood,
        metric: m.name,
        ...numbers(row),
        n_in: row.n_in,
        n_ood: row.n_ood,
        ...curves(sIn, sOut, m.orientation, o),
        scores: { file: sink.file, in: kIn, ood: sink.put(`${m.name}__${row.ood}`, sOut) },
      });
    }
  }
  return out;
}

/**
 * One-class protocol for ID class `cls`: fit on the training rows of `cls`, one row per metric whose
 * numbers are the mean over the other classes (each its own OOD set, `parts`). Scores go to `sink`
 * under `<metric>__in` and `<metric>__ood<d>`; the pooled OOD scores under `<metric>__ood`.
 */
export async function oneClassRows(
  cls: number,
  classNames: readonly string[],
  train: FeatureRows,
  test: FeatureRows,
  o: OodEvalOptions,
  sink: ScoreSink,
): Promise<EvalRow[]> {
  if (!train.labels.includes(cls)) throw new RangeError(`one-class: no training samples of class ${cls}`);
  if (!test.labels.includes(cls)) throw new RangeError(`one-class: no test samples of class ${cls}`);
  const labels = [...new Set(test.labels)].sort((a, b) => a - b);
  if (labels.length < 2) throw new RangeError(`one-class: the test set has no class other than ${cls}`);
  const name = (c: number) => `${c} ${classNames[c] ?? ''}`.trim();
  const pick = (all: Float64Array, keep: (l: number) => boolean) => Float64Array.from(all.filter((_, i) => keep(test.labels[i])));
  const out: EvalRow[] = [];
  for (const m of metricInfo(o.metrics)) {
    const r = await oneClassProtocol({
      metric: m.name,
      detectorOptions: o.detectorOptions?.(m.name) ?? {},
      train: input(train),
      test: input(test),
      groups: labels.map((l) => [l]),
      idGroups: [labels.indexOf(cls)],
      keepScores: true,
    });
    const g = r.groups[0];
    const all = g.scores!;
    const sIn = pick(all, (l) => l === cls);
    const kIn = sink.put(`${m.name}__in`, sIn);
    const parts: EvalPart[] = g.rows.map((row) => {
      const d = labels[Number(row.ood)];
      return { ood: name(d), n_ood: row.n_ood, ...numbers(row), scores: { file: sink.file, in: kIn, ood: sink.put(`${m.name}__ood${d}`, pick(all, (l) => l === d)) } };
    });
    const pooled = pick(all, (l) => l !== cls);
    out.push({
      id: `class ${name(cls)}`,
      ood: `other classes (mean of ${parts.length})`,
      metric: m.name,
      ...numbers(g.average),
      n_in: sIn.length,
      n_ood: pooled.length,
      ...curves(sIn, pooled, m.orientation, o),
      scores: { file: sink.file, in: kIn, ood: sink.put(`${m.name}__ood`, pooled) },
      parts,
    });
  }
  return out;
}
