/**
 * Model-level OOD evaluation: extract (cached) features and logits of the ID training, ID test and
 * OOD sets once, then fit and evaluate every requested metric on them with lib/ood's detectors and
 * protocols. Multi-class: ID test vs each OOD set. One-class (`classIdx`): the ID group's training
 * samples fit the detector, the ID group's test samples are ID, each other group of the test set is OOD
 * (the reference's loops). Used by `mood eval-features` / `mood eval-logits` and callable directly.
 */
import type { Beit } from '../../models/beit';
import type { DataLoader } from '../../data/types';
import { createDetector, type DetectorOptions } from '../detectors/registry';
import type { Detector } from '../detectors/base';
import { multiClassProtocol } from '../protocols/multiClass';
import { superclassList } from '../protocols/oneClass';
import type { MetricRow, OodRow, SampleSet } from '../protocols/types';
import type { AuprConvention, EvaluateOptions, Fpr95Convention, Orientation } from '../evaluation/types';
import { extractCached, type LoaderDescription } from './extract';
import { gatherShards, type RowGatherer } from './gather';
import { DEFAULT_TRAIN_FEATURES, type ExtractedSet, type ExtractionRecord, type FeatureCacheOptions, type TrainFeatureTransform } from './types';

export interface OodLoader {
  name: string;
  loader: DataLoader;
  /** Cache identity extras (e.g. { ood: true }). */
  extra?: Record<string, unknown>;
}

export interface EvaluateOodInput {
  model: Beit;
  /** ID training set; built with the training augmentation iff trainFeatures is 'train-augment'. */
  idTrain?: DataLoader;
  /** ID test set (one-class: all classes; the ID group is picked by classIdx). */
  idTest: DataLoader;
  /** OOD sets (multi-class). */
  oods?: OodLoader[];
  /** Detector registry names (createDetector). */
  metrics: string[];
  /** One-class protocol: index of the ID group (a class, or a CIFAR-100 superclass). */
  classIdx?: number;
  /** One-class groups of labels; default superclassList(dataset) or one group per class. */
  groups?: number[][];
  /** How idTrain was built; recorded in every result and in the cache key. Default 'eval-transform'. */
  trainFeatures?: TrainFeatureTransform;
  /** Model input side (cache key). Default model.options.img_size. */
  inputSize?: number;
  /** Augmentation seed of idTrain with 'train-augment' (cache key). */
  trainSeed?: number;
  /** What else fixes idTrain's 'train-augment' features (augmentation flags, sampler; cache key). */
  trainAugment?: Record<string, unknown>;
  detectorOptions?: DetectorOptions | ((metric: string) => DetectorOptions);
  evaluation?: Omit<EvaluateOptions, 'orientation'>;
  cache?: FeatureCacheOptions;
  /** false: no progress bars. */
  progress?: boolean;
  /** Keep per-sample scores in each result. */
  keepScores?: boolean;
  /**
   * Also return each metric's detector fitted on exactly the training rows its evaluation used
   * (`result.detector`, e.g. to save for `mood score`); the caller disposes them.
   */
  keepDetectors?: boolean;
  warn?: (msg: string) => void;
  /**
   * Distributed evaluation (--dist_eval): the loaders shard by rank (DistributedSampler), each rank
   * extracts its rows, and `group.allGather` reassembles every set on every rank. Without a group,
   * rank/worldSize > 1 is refused.
   */
  group?: RowGatherer;
  rank?: number;
  worldSize?: number;
}

export interface OodMetricResult {
  metric: string;
  orientation: Orientation;
  protocol: 'multi-class' | 'one-class';
  id_dataset: string;
  class_idx: number | null;
  /** One-class: the labels of the ID group. */
  id_classes?: number[];
  train_features: TrainFeatureTransform | null;
  fpr95_convention: Fpr95Convention;
  aupr_convention: AuprConvention;
  tpr_level: number;
  n_train: number | null;
  n_in: number;
  rows: OodRow[];
  average: MetricRow;
  scores?: { in: Float64Array; ood: Record<string, Float64Array> };
  /** With keepDetectors: the fitted detector (dispose it). */
  detector?: Detector;
}

export interface EvaluateOodResult {
  results: OodMetricResult[];
  extraction: ExtractionRecord[];
  /** The extracted sets, for callers that want to save or inspect them. */
  sets: { train?: ExtractedSet; test: ExtractedSet; ood: Record<string, ExtractedSet> };
}

export class OodEvaluationError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'OodEvaluationError';
  }
}

/** The one-class groups for a dataset: the reference's lists, else one group per class. */
export function oneClassGroups(datasetName: string, numClasses: number): number[][] {
  try {
    return superclassList(datasetName);
  } catch {
    return Array.from({ length: numClasses }, (_, i) => [i]);
  }
}

function asSample(s: ExtractedSet, what: { features: boolean; logits: boolean; labels: boolean }): SampleSet {
  const out: SampleSet = {};
  if (what.features) out.features = { data: s.features, shape: [s.n, s.featureDim] };
  if (what.logits) out.logits = { data: s.logits, shape: [s.n, s.numClasses] };
  if (what.labels) out.labels = s.labels;
  return out;
}

/** The rows `rows` of an extracted set (one-class splits). */
function takeRows(s: ExtractedSet, rows: number[]): ExtractedSet {
  const F = new Float32Array(rows.length * s.featureDim);
  const L = new Float32Array(rows.length * s.numClasses);
  rows.forEach((r, k) => {
    F.set(s.features.subarray(r * s.featureDim, (r + 1) * s.featureDim), k * s.featureDim);
    L.set(s.logits.subarray(r * s.numClasses, (r + 1) * s.numClasses), k * s.numClasses);
  });
  return {
    n: rows.length,
    features: F,
    featureDim: s.featureDim,
    logits: L,
    numClasses: s.numClasses,
    labels: Int32Array.from(rows, (r) => s.labels[r]),
    indices: Int32Array.from(rows, (r) => s.indices[r]),
  };
}

/** Head weight and bias of the model (vim, residual, react). */
async function headOptions(model: Beit): Promise<Pick<DetectorOptions, 'weight' | 'bias'>> {
  const sd = model.stateDict();
  try {
    const w = sd.get('head.weight');
    const b = sd.get('head.bias');
    if (!w || !b) throw new OodEvaluationError('this metric needs the classifier head, but the model has none (num_classes 0)');
    const wd = (await w.data()) as Float32Array;
    const bd = (await b.data()) as Float32Array;
    return { weight: { data: Float32Array.from(wd), shape: w.shape }, bias: Array.from(bd) };
  } finally {
    for (const t of sd.values()) t.dispose();
  }
}

export async function evaluateOod(input: EvaluateOodInput): Promise<EvaluateOodResult> {
  const { model, metrics } = input;
  if (!metrics.length) throw new OodEvaluationError('evaluateOod: no metrics given');
  const group = input.group;
  const worldSize = group?.worldSize ?? input.worldSize ?? 1;
  const rank = group?.rank ?? input.rank ?? 0;
  if (worldSize > 1 && !group) {
    throw new OodEvaluationError(`distributed evaluation (world size ${worldSize}) needs a process group to all-gather the shards (option group: lib/distributed's ProcessGroup); run on one process or pass one`);
  }
  const oneClass = input.classIdx !== undefined && input.classIdx !== null;
  const oods = input.oods ?? [];
  if (!oneClass && oods.length === 0) throw new OodEvaluationError('evaluateOod: give OOD sets (multi-class) or classIdx (one-class)');
  // Detectors first: an unknown metric fails before any extraction.
  const probes = metrics.map((m) => createDetector(m, {}));
  const needTrain = probes.some((d) => d.needs.trainFeatures || d.needs.trainLabels);
  const needsHead = metrics.some((m) => m === 'vim' || m === 'residual' || m === 'react');
  for (const d of probes) d.dispose();
  const trainFeatures = input.trainFeatures ?? DEFAULT_TRAIN_FEATURES;
  if (needTrain && !input.idTrain) throw new OodEvaluationError(`metric(s) ${metrics.join(', ')} need ID training features: give idTrain`);
  const test = input.idTest;
  let groups: number[][] | undefined;
  if (oneClass) {
    groups = input.groups ?? oneClassGroups(test.dataset.name, test.dataset.classes.length);
    const ci = input.classIdx!;
    if (!Number.isInteger(ci) || ci < 0 || ci >= groups.length) {
      throw new OodEvaluationError(`class_idx ${ci} is out of range: ${test.dataset.name} has ${groups.length} one-class groups (0..${groups.length - 1})`);
    }
  }

  const inputSize = input.inputSize ?? model.options.img_size;
  const extraction: ExtractionRecord[] = [];
  const run = async (loader: DataLoader, desc: LoaderDescription, label: string): Promise<ExtractedSet> => {
    const { set, record } = await extractCached(model, loader, desc, input.cache, {
      label,
      progress: input.progress === false ? false : undefined,
      rank,
      worldSize,
      warn: input.warn,
    });
    extraction.push(record);
    // Each rank extracted (and cached) its shard; every rank gets the whole set back.
    return worldSize > 1 ? gatherShards(set, group!, loader.dataset.length) : set;
  };
  const train = needTrain
    ? await run(input.idTrain!, { train: trainFeatures === 'train-augment', inputSize, seed: input.trainSeed, augment: input.trainAugment }, `${input.idTrain!.dataset.name}/train`)
    : undefined;
  const testSet = await run(test, { train: false, inputSize }, `${test.dataset.name}/test`);
  const oodSets: Record<string, ExtractedSet> = {};
  for (const o of oods) {
    if (Object.prototype.hasOwnProperty.call(oodSets, o.name)) throw new OodEvaluationError(`OOD set name '${o.name}' given twice`);
    oodSets[o.name] = await run(o.loader, { train: false, inputSize, extra: { ood: true, ...(o.extra ?? {}) } }, `${o.name} (OOD)`);
  }
  const head = needsHead ? await headOptions(model) : {};

  const results: OodMetricResult[] = [];
  for (const metric of metrics) {
    const base = typeof input.detectorOptions === 'function' ? input.detectorOptions(metric) : (input.detectorOptions ?? {});
    const detectorOptions: DetectorOptions = { ...head, ...base };
    const probe = createDetector(metric, detectorOptions);
    const needs = probe.needs;
    probe.dispose();
    const what = { features: needs.features || needs.trainFeatures, logits: true, labels: true };
    const usesTrain = needs.trainFeatures || needs.trainLabels;
    // The rows the detector is fitted on (kept for keepDetectors).
    let fitted: SampleSet;
    if (!oneClass) {
      fitted = usesTrain ? asSample(train!, what) : asSample(testSet, what);
      const r = await multiClassProtocol({
        metric,
        detectorOptions,
        evaluation: input.evaluation,
        train: fitted,
        test: asSample(testSet, what),
        ood: oods.map((o) => ({ name: o.name, ...asSample(oodSets[o.name], what) })),
        keepScores: input.keepScores,
      });
      results.push({
        metric: r.metric,
        orientation: r.orientation,
        protocol: 'multi-class',
        id_dataset: test.dataset.name,
        class_idx: null,
        train_features: usesTrain ? trainFeatures : null,
        fpr95_convention: r.fpr95_convention,
        aupr_convention: r.aupr_convention,
        tpr_level: r.tpr_level,
        n_train: usesTrain ? train!.n : null,
        n_in: r.n_in,
        rows: r.rows,
        average: r.average,
        ...(r.scores ? { scores: r.scores } : {}),
      });
    } else {
      // The reference's one-class loop: fit on the ID group's training rows, ID = the group's test rows,
      // OOD = each other group's test rows separately, averaged. A training set that lib/data already
      // subset to this group (dataset.classIdx, possibly relabelled to a CIFAR-100 superclass) is used
      // whole; a full training set is filtered by the group's labels. Metrics with nothing to fit get the
      // ID test rows as their (ignored) training input, so logit metrics need no training pass.
      const g = groups![input.classIdx!];
      const inGroup = (labels: Int32Array): number[] => {
        const set = new Set(g);
        const out: number[] = [];
        labels.forEach((l, i) => {
          if (set.has(l)) out.push(i);
        });
        return out;
      };
      const testRows = groups!.map((grp) => {
        const set = new Set(grp);
        const out: number[] = [];
        testSet.labels.forEach((l, i) => {
          if (set.has(l)) out.push(i);
        });
        return out;
      });
      if (testRows[input.classIdx!].length === 0) throw new OodEvaluationError(`one-class: no test samples of group ${input.classIdx} (labels ${g.join(', ')}) in ${test.dataset.name}`);
      let trainSample: SampleSet;
      let nTrain: number | null = null;
      if (usesTrain) {
        const presubset = input.idTrain!.dataset.classIdx === input.classIdx;
        const rows = presubset ? null : inGroup(train!.labels);
        if (rows && rows.length === 0) throw new OodEvaluationError(`one-class: no training samples of group ${input.classIdx} (labels ${g.join(', ')}) in ${input.idTrain!.dataset.name}`);
        trainSample = rows ? asSample(takeRows(train!, rows), what) : asSample(train!, what);
        nTrain = rows ? rows.length : train!.n;
      } else {
        trainSample = asSample(takeRows(testSet, testRows[input.classIdx!]), what);
      }
      const oodList: Array<{ name: string } & SampleSet> = [];
      groups!.forEach((_, d) => {
        if (d === input.classIdx) return;
        if (testRows[d].length === 0) throw new OodEvaluationError(`one-class: no test samples of OOD group ${d} in ${test.dataset.name}`);
        oodList.push({ name: String(d), ...asSample(takeRows(testSet, testRows[d]), what) });
      });
      fitted = trainSample;
      const r = await multiClassProtocol({
        metric,
        detectorOptions,
        evaluation: input.evaluation,
        train: trainSample,
        test: asSample(takeRows(testSet, testRows[input.classIdx!]), what),
        ood: oodList,
        keepScores: input.keepScores,
      });
      results.push({
        metric: r.metric,
        orientation: r.orientation,
        protocol: 'one-class',
        id_dataset: test.dataset.name,
        class_idx: input.classIdx!,
        id_classes: [...g],
        train_features: usesTrain ? trainFeatures : null,
        fpr95_convention: r.fpr95_convention,
        aupr_convention: r.aupr_convention,
        tpr_level: r.tpr_level,
        n_train: nTrain,
        n_in: r.n_in,
        rows: r.rows,
        average: r.average,
        ...(r.scores ? { scores: r.scores } : {}),
      });
    }
    if (input.keepDetectors) {
      const det = createDetector(metric, detectorOptions);
      try {
        await det.fit(fitted);
      } catch (e) {
        det.dispose();
        for (const r of results) r.detector?.dispose();
        throw e;
      }
      results[results.length - 1].detector = det;
    }
  }
  return { results, extraction, sets: { train, test: testSet, ood: oodSets } };
}
