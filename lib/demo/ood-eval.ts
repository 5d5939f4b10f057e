/**
 * The demo's OOD evaluation on extracted features/logits, producing report rows with curves and the
 * raw per-sample scores. Numbers come from lib/ood (detectors + exact float64 evaluation); this file
 * only arranges the protocols so the scores are kept for the report and for re-checking:
 * - multi-class: fit once on the ID training rows, ID test vs each OOD set;
 * - one-class: for one ID class, fit on its training rows; score the whole test set once; the row is
 *   the mean over every other class as a separate OOD set (the reference's loop, as
 *   lib/ood/protocols/oneClass does), its curves pool the other classes.
 */
import { evaluate } from '../ood/evaluation';
import { createDetector, listDetectors, type DetectorOptions } from '../ood/detectors/registry';
import type { Detector } from '../ood/detectors/base';
import { rocPoints, scoreHistogram } from '../report/curves';
import type { EvalPart, EvalRow, MetricInfo } from '../report/schema';

/** Per-sample outputs of one pass (ExtractedSet of lib/ood/features without its bookkeeping). */
export interface FeatureRows {
  n: number;
  features: Float32Array;
  featureDim: number;
  logits: Float32Array;
  numClasses: number;
  labels: Int32Array;
}

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

function input(s: FeatureRows) {
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

function numbers(sIn: Float64Array, sOut: Float64Array, det: Detector) {
  const e = evaluate(sIn, sOut, { orientation: det.orientation });
  return { auroc: e.auroc, aupr_in: e.aupr_in, aupr_out: e.aupr_out, fpr95: e.fpr95, detection_error: e.detection_error };
}

async function withDetector<T>(metric: string, o: OodEvalOptions, train: FeatureRows, fn: (d: Detector) => Promise<T>): Promise<T> {
  const det = createDetector(metric, o.detectorOptions?.(metric) ?? {});
  try {
    await det.fit(input(train));
    return await fn(det);
  } finally {
    det.dispose();
  }
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
    await withDetector(m.name, o, train, async (det) => {
      const sIn = await det.score(input(test));
      const kIn = sink.put(`${m.name}__in`, sIn);
      for (const ood of oods) {
        const sOut = await det.score(input(ood.rows));
        const kOut = sink.put(`${m.name}__${ood.name}`, sOut);
        out.push({
          id: idName,
          ood: ood.name,
          metric: m.name,
          ...numbers(sIn, sOut, det),
          n_in: sIn.length,
          n_ood: sOut.length,
          ...curves(sIn, sOut, m.orientation, o),
          scores: { file: sink.file, in: kIn, ood: kOut },
        });
      }
    });
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
  const fitRows = selectRows(train, (l) => l === cls);
  if (fitRows.n === 0) throw new RangeError(`one-class: no training samples of class ${cls}`);
  const others = [...new Set(test.labels)].filter((l) => l !== cls).sort((a, b) => a - b);
  if (others.length === 0) throw new RangeError(`one-class: the test set has no class other than ${cls}`);
  const name = (c: number) => `${c} ${classNames[c] ?? ''}`.trim();
  const out: EvalRow[] = [];
  for (const m of metricInfo(o.metrics)) {
    await withDetector(m.name, o, fitRows, async (det) => {
      const all = await det.score(input(test));
      const pick = (keep: (l: number) => boolean) => {
        const v: number[] = [];
        for (let i = 0; i < test.n; i++) if (keep(test.labels[i])) v.push(all[i]);
        return Float64Array.from(v);
      };
      const sIn = pick((l) => l === cls);
      if (sIn.length === 0) throw new RangeError(`one-class: no test samples of class ${cls}`);
      const kIn = sink.put(`${m.name}__in`, sIn);
      const parts: EvalPart[] = others.map((d) => {
        const sOut = pick((l) => l === d);
        return { ood: name(d), n_ood: sOut.length, ...numbers(sIn, sOut, det), scores: { file: sink.file, in: kIn, ood: sink.put(`${m.name}__ood${d}`, sOut) } };
      });
      const mean = (k: 'auroc' | 'aupr_in' | 'aupr_out' | 'fpr95' | 'detection_error') => parts.reduce((a, p) => a + (p[k] ?? 0), 0) / parts.length;
      const pooled = pick((l) => l !== cls);
      out.push({
        id: `class ${name(cls)}`,
        ood: `other classes (mean of ${parts.length})`,
        metric: m.name,
        auroc: mean('auroc'),
        aupr_in: mean('aupr_in'),
        aupr_out: mean('aupr_out'),
        fpr95: mean('fpr95'),
        detection_error: mean('detection_error'),
        n_in: sIn.length,
        n_ood: pooled.length,
        ...curves(sIn, pooled, m.orientation, o),
        scores: { file: sink.file, in: kIn, ood: sink.put(`${m.name}__ood`, pooled) },
        parts,
      });
    });
  }
  return out;
}
