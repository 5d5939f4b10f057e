/**
 * One-class protocol, exactly the loops of eval_with_features.py / run_class_finetuning.py with
 * `--class_idx`: for each ID group g (a class, or a CIFAR-100 superclass of 5 classes), fit on the
 * training samples whose label is in g, take the test samples in g as ID and, for every other group
 * d ≠ g separately, the test samples in d as OOD; average FPR95/AUROC/AUPR over d (np.mean). The
 * summary averages the per-group averages.
 *
 * Scores are per sample, so each group's detector scores the whole test set once and the rows are
 * split by group: the same numbers as refitting for every d, as the reference does. (The reference also
 * re-normalises the already-normalised features on every d; that changes values by ~1e-10 and is not
 * reproduced.)
 */
import { DetectorInputError } from '../detectors/matrix';
import { averageRows, evaluateRow, header, loadSet, newDetector, subset, asInput } from './common';
import type { MetricChoice, MetricRow, OodRow, ProtocolHeader, SampleSet } from './types';

/** ood_utils.get_superclass_list('cifar100'): the 20 CIFAR-100 superclasses (fine label ids). */
export const CIFAR100_SUPERCLASSES: readonly (readonly number[])[] = [
  [4, 31, 55, 72, 95], [1, 33, 67, 73, 91], [54, 62, 70, 82, 92], [9, 10, 16, 29, 61], [0, 51, 53, 57, 83],
  [22, 25, 40, 86, 87], [5, 20, 26, 84, 94], [6, 7, 14, 18, 24], [3, 42, 43, 88, 97], [12, 17, 38, 68, 76],
  [23, 34, 49, 60, 71], [15, 19, 21, 32, 39], [35, 63, 64, 66, 75], [27, 45, 77, 79, 99], [2, 11, 36, 46, 98],
  [28, 30, 44, 78, 93], [37, 50, 65, 74, 80], [47, 52, 56, 59, 96], [8, 13, 48, 58, 90], [41, 69, 81, 85, 89],
];

/** The reference's group lists: CIFAR-10 and ImageNet-30 one class each, CIFAR-100 superclasses. */
export function superclassList(dataset: string): number[][] {
  const d = dataset.toLowerCase();
  if (d === 'cifar10') return Array.from({ length: 10 }, (_, i) => [i]);
  if (d === 'imagenet' || d === 'imagenet30') return Array.from({ length: 30 }, (_, i) => [i]);
  if (d === 'cifar100') return CIFAR100_SUPERCLASSES.map((g) => [...g]);
  throw new RangeError(`no superclass list for dataset '${dataset}' (cifar10, cifar100, imagenet30)`);
}

export interface OneClassInput extends MetricChoice {
  /** Training features (all classes) with labels. */
  train: SampleSet;
  /** Test features (all classes) with labels. */
  test: SampleSet;
  /** Groups of labels; default: each distinct test label is its own group. */
  groups?: number[][];
  /** Which groups to use as ID (indices into groups); default all (the paper's per-class table). */
  idGroups?: number[];
  /** Keep each ID group's scores of the whole test set in the result. */
  keepScores?: boolean;
}

export interface OneClassGroupResult {
  id: number;
  classes: number[];
  n_train: number;
  n_in: number;
  rows: OodRow[];
  average: MetricRow;
  /** keepScores: the detector's score of every test sample, in test order. */
  scores?: Float64Array;
}

export interface OneClassResult extends ProtocolHeader {
  protocol: 'one-class';
  groups: OneClassGroupResult[];
  /** Mean over ID groups of each group's average. */
  average: MetricRow;
}

export async function oneClassProtocol(input: OneClassInput): Promise<OneClassResult> {
  const caller = 'oneClassProtocol';
  const train = await loadSet(input.train, 'train', caller);
  const test = await loadSet(input.test, 'test', caller);
  if (!train.labels || !test.labels) throw new DetectorInputError(`${caller}: train and test labels are required`);
  const groups = input.groups ?? [...new Set(test.labels)].sort((a, b) => a - b).map((c) => [c]);
  if (groups.length < 2) throw new DetectorInputError(`${caller}: needs at least 2 groups (ID + one OOD), got ${groups.length}`);
  const idGroups = input.idGroups ?? groups.map((_, i) => i);
  const rowsOf = (labels: Int32Array, g: number[]): number[] => {
    const set = new Set(g);
    const out: number[] = [];
    labels.forEach((l, i) => {
      if (set.has(l)) out.push(i);
    });
    return out;
  };
  const testRows = groups.map((g) => rowsOf(test.labels!, g));
  const results: OneClassGroupResult[] = [];
  let head: ReturnType<typeof header> | null = null;
  for (const gi of idGroups) {
    if (!Number.isInteger(gi) || gi < 0 || gi >= groups.length) throw new RangeError(`${caller}: ID group ${gi} out of range 0..${groups.length - 1}`);
    const trainIdx = rowsOf(train.labels, groups[gi]);
    if (trainIdx.length === 0) throw new DetectorInputError(`${caller}: no training samples in group ${gi} (labels ${groups[gi].join(', ')})`);
    if (testRows[gi].length === 0) throw new DetectorInputError(`${caller}: no test samples in group ${gi}`);
    const det = newDetector(input);
    try {
      await det.fit(subset(train, trainIdx));
      const all = await det.score(asInput(test));
      head ??= header(det, input, 0);
      const sIn = Float64Array.from(testRows[gi], (i) => all[i]);
      const rows: OodRow[] = [];
      for (let d = 0; d < groups.length; d++) {
        if (d === gi) continue;
        if (testRows[d].length === 0) throw new DetectorInputError(`${caller}: no test samples in OOD group ${d}`);
        rows.push(evaluateRow(String(d), sIn, Float64Array.from(testRows[d], (i) => all[i]), det, input));
      }
      results.push({ id: gi, classes: groups[gi], n_train: trainIdx.length, n_in: sIn.length, rows, average: averageRows(rows), ...(input.keepScores ? { scores: all } : {}) });
    } finally {
      det.dispose();
    }
  }
  return {
    protocol: 'one-class',
    ...head!,
    n_train: results.reduce((a, r) => a + r.n_train, 0),
    groups: results,
    average: averageRows(results.map((r) => r.average)),
  };
}
