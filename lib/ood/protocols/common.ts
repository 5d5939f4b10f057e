import { evaluate } from '../evaluation';
import type { Detector } from '../detectors/base';
import { createDetector } from '../detectors/registry';
import { DetectorInputError, matrixToArray, toLabels, type MatrixInput } from '../detectors/matrix';
import type { MetricChoice, MetricRow, OodRow, SampleSet } from './types';

export function newDetector(c: MetricChoice): Detector {
  return c.makeDetector ? c.makeDetector() : createDetector(c.metric, c.detectorOptions ?? {});
}

export function evaluateRow(ood: string, sIn: Float64Array, sOut: Float64Array, det: Detector, c: MetricChoice): OodRow {
  const ev = evaluate(sIn, sOut, { ...(c.evaluation ?? {}), orientation: det.orientation });
  return { ood, auroc: ev.auroc, aupr_in: ev.aupr_in, aupr_out: ev.aupr_out, fpr95: ev.fpr95, detection_error: ev.detection_error, n_in: ev.n_in, n_ood: ev.n_ood };
}

export function header(det: Detector, c: MetricChoice, nTrain: number) {
  const probe = evaluate([0], [1], { ...(c.evaluation ?? {}), orientation: det.orientation });
  return {
    metric: det.name,
    orientation: det.orientation,
    fpr95_convention: probe.fpr95_convention,
    aupr_convention: probe.aupr_convention,
    tpr_level: probe.tpr_level,
    n_train: nTrain,
  };
}

/** Arithmetic mean of each metric over rows (np.mean, as the reference averages). */
export function averageRows(rows: MetricRow[]): MetricRow {
  const keys: (keyof MetricRow)[] = ['auroc', 'aupr_in', 'aupr_out', 'fpr95', 'detection_error'];
  const out = {} as MetricRow;
  for (const k of keys) out[k] = rows.reduce((a, r) => a + r[k], 0) / rows.length;
  return out;
}

/** A split as JS row-major arrays, so subsets of rows can be taken. */
export interface LoadedSet {
  rows: number;
  features?: { data: Float64Array | Float32Array; cols: number };
  logits?: { data: Float64Array | Float32Array; cols: number };
  labels?: Int32Array;
}

export async function loadSet(s: SampleSet, what: string, caller: string): Promise<LoadedSet> {
  let rows = -1;
  const out: LoadedSet = { rows: 0 };
  const take = async (m: MatrixInput | undefined, key: 'features' | 'logits') => {
    if (m === undefined) return;
    const a = await matrixToArray(m, `${what}.${key}`, caller);
    if (rows >= 0 && a.rows !== rows) throw new DetectorInputError(`${caller}: ${what}.${key} has ${a.rows} rows, other inputs of ${what} have ${rows}`);
    rows = a.rows;
    out[key] = { data: a.data, cols: a.cols };
  };
  await take(s.features, 'features');
  await take(s.logits, 'logits');
  if (rows < 0) throw new DetectorInputError(`${caller}: ${what} has neither features nor logits`);
  out.rows = rows;
  if (s.labels !== undefined) out.labels = await toLabels(s.labels, rows, caller);
  return out;
}

function pick(src: { data: Float64Array | Float32Array; cols: number }, idx: number[]) {
  const { data, cols } = src;
  const out = new (data.constructor as Float64ArrayConstructor)(idx.length * cols);
  idx.forEach((r, i) => out.set(data.subarray(r * cols, (r + 1) * cols), i * cols));
  return { data: out, shape: [idx.length, cols] };
}

/** The rows `idx` of a loaded split, as detector input. */
export function subset(s: LoadedSet, idx: number[]): SampleSet {
  const out: SampleSet = {};
  if (s.features) out.features = pick(s.features, idx);
  if (s.logits) out.logits = pick(s.logits, idx);
  if (s.labels) out.labels = Int32Array.from(idx, (i) => s.labels![i]);
  return out;
}

export function asInput(s: LoadedSet): SampleSet {
  const out: SampleSet = {};
  if (s.features) out.features = { data: s.features.data, shape: [s.rows, s.features.cols] };
  if (s.logits) out.logits = { data: s.logits.data, shape: [s.rows, s.logits.cols] };
  if (s.labels) out.labels = s.labels;
  return out;
}
