/**
 * `mood ood-score`: fit a detector on precomputed ID training features (.npy), score ID test and OOD
 * samples, and report AUROC / AUPR-In / AUPR-Out / FPR95 (exact float64, named conventions).
 *
 *   mood ood-score --metric M --train F.npy [--train-labels Y.npy] --test F.npy --ood F.npy
 *                  [--test-logits L.npy --ood-logits L.npy] [--scores-out S.npz] [--json]
 *
 * Only type imports (and the dependency-free ./reference-flags) at the top: libtorch is loaded when the command runs, so registering the command
 * keeps `mood --help` fast.
 */
import type { Command } from 'commander';
import { ignoredLine } from './reference-flags';
import { intFlag, numFlag } from '../util/flags';
import type { NdArray } from '../npy/ndarray';
import type { DetectorOptions } from '../ood/detectors/registry';
import type { DetectorNeeds } from '../ood/detectors/base';
import type { Fpr95Convention, AuprConvention, EvaluationResult, Orientation } from '../ood/evaluation/types';

export interface OodScoreOptions {
  metric: string;
  train?: string;
  trainLabels?: string;
  trainLogits?: string;
  test?: string;
  ood?: string;
  testLogits?: string;
  oodLogits?: string;
  /** Head weight (C x D) / bias (C) .npy for vim, residual, react. */
  headWeight?: string;
  headBias?: string;
  scoresOut?: string;
  /** Save the fitted detector (.npz, loadDetector). */
  detectorOut?: string;
  json?: boolean;
  /** knn neighbour / kmeans clusters. */
  k?: number | string;
  temperature?: number | string;
  seed?: number | string;
  nInit?: number | string;
  dim?: number | string;
  percentile?: number | string;
  /** commander's --no-normalize gives normalize: false. */
  normalize?: boolean;
  fpr95Convention?: Fpr95Convention;
  auprConvention?: AuprConvention;
}

/** The evaluation figures every JSON result row carries (ood-score, eval-features, eval-logits): lib/ood's EvaluationResult without the orientation, plus the training-set size. */
export type EvaluationFigures = Omit<EvaluationResult, 'orientation'> & { n_train: number | null };

export interface OodScoreResult extends EvaluationFigures {
  metric: string;
  orientation: Orientation;
  files: Record<string, string>;
  scores_out?: string;
}

/**
 * Options given that `det` does not use, as stderr lines: detector options it does not list among the
 * options it saves, head files for a metric without a head, and inputs its `needs` leave out.
 */
export function unusedOodScoreOptions(opts: OodScoreOptions, det: { name: string; needs: DetectorNeeds; usedOptions(): Record<string, unknown> }, kind: string): string[] {
  const used = det.usedOptions();
  const lines: string[] = [];
  const note = (flag: string, why: string) => lines.push(ignoredLine('ood-score', flag, why, false));
  const detectorFlags: Array<[keyof OodScoreOptions, string, string]> = [
    ['k', '--k', 'k'], ['temperature', '--temperature', 'temperature'], ['seed', '--seed', 'seed'], ['nInit', '--n-init', 'nInit'],
    ['dim', '--dim', 'dim'], ['percentile', '--percentile', 'percentile'],
  ];
  for (const [key, flag, option] of detectorFlags) if (opts[key] !== undefined && !(option in used)) note(flag, `metric '${det.name}' does not use it`);
  if (opts.normalize === false && !('normalize' in used)) note('--no-normalize', `metric '${det.name}' scores logits, which are never normalised`);
  for (const [v, flag] of [[opts.headWeight, '--head-weight'], [opts.headBias, '--head-bias']] as const) {
    if (v !== undefined && kind !== 'head') note(flag, `metric '${det.name}' does not use the classifier head (vim, residual, react do)`);
  }
  const inputs: Array<[string | undefined, string, boolean, string]> = [
    [opts.train, '--train', det.needs.trainFeatures, 'fits on no training features'],
    [opts.trainLabels, '--train-labels', det.needs.trainLabels || (det.name === 'kmeans' && opts.k === undefined), det.name === 'kmeans' ? 'takes k from --k' : 'uses no labels'],
    [opts.test, '--test', det.needs.features, 'scores logits, not features'],
    [opts.ood, '--ood', det.needs.features, 'scores logits, not features'],
    [opts.testLogits, '--test-logits', det.needs.logits, 'scores features, not logits'],
    [opts.oodLogits, '--ood-logits', det.needs.logits, 'scores features, not logits'],
  ];
  for (const [v, flag, needed, why] of inputs) if (v !== undefined && !needed) note(flag, `metric '${det.name}' ${why}`);
  return lines;
}

/** Runs the command; prints a line (or JSON with `json`) through `write`, returns the result. */
export async function runOodScore(
  opts: OodScoreOptions,
  write: (s: string) => void = (s) => process.stdout.write(s),
  err: (s: string) => void = (s) => void process.stderr.write(s),
): Promise<OodScoreResult> {
  const [{ readNpy, writeNpz, ndarray }, { createDetector, listDetectors }, { evaluate }] = await Promise.all([
    import('../npy'),
    import('../ood/detectors/registry'),
    import('../ood/evaluation'),
  ]);
  if (!opts.metric) throw new Error('--metric is required');
  const detOpts: DetectorOptions = {
    k: intFlag('--k', opts.k),
    temperature: numFlag('--temperature', opts.temperature),
    seed: intFlag('--seed', opts.seed),
    nInit: intFlag('--n-init', opts.nInit),
    dim: intFlag('--dim', opts.dim),
    percentile: numFlag('--percentile', opts.percentile),
  };
  if (opts.normalize === false) detOpts.normalize = false;
  for (const k of Object.keys(detOpts) as (keyof DetectorOptions)[]) if (detOpts[k] === undefined) delete detOpts[k];
  const files: Record<string, string> = {};
  const load = (key: string, file: string | undefined): NdArray | undefined => {
    if (!file) return undefined;
    files[key] = file;
    return readNpy(file);
  };
  if (opts.headWeight) detOpts.weight = load('head_weight', opts.headWeight);
  if (opts.headBias) {
    const b = load('head_bias', opts.headBias)!;
    detOpts.bias = Array.from(b.typed() as ArrayLike<number | bigint>, Number);
  }
  const det = createDetector(opts.metric, detOpts);
  const needs = det.needs;
  for (const l of unusedOodScoreOptions(opts, det, listDetectors().find((d) => d.name === det.name)?.kind ?? '')) err(l);
  const need = (file: string | undefined, flag: string): string => {
    if (!file) throw new Error(`metric '${opts.metric}' needs ${flag}`);
    return file;
  };
  try {
    const trainFeatures = load('train', needs.trainFeatures ? need(opts.train, '--train F.npy') : opts.train);
    const trainLabels = load('train_labels', needs.trainLabels ? need(opts.trainLabels, '--train-labels Y.npy') : opts.trainLabels);
    const trainLogits = load('train_logits', opts.trainLogits);
    const testFeatures = load('test', needs.features ? need(opts.test, '--test F.npy') : opts.test);
    const oodFeatures = load('ood', needs.features ? need(opts.ood, '--ood F.npy') : opts.ood);
    const testLogits = load('test_logits', needs.logits ? need(opts.testLogits, '--test-logits L.npy') : opts.testLogits);
    const oodLogits = load('ood_logits', needs.logits ? need(opts.oodLogits, '--ood-logits L.npy') : opts.oodLogits);
    if (opts.metric === 'kmeans' && detOpts.k === undefined && !trainLabels) throw new Error("metric 'kmeans' needs --k or --train-labels (k = number of ID classes)");
    await det.fit({ features: trainFeatures, labels: trainLabels, logits: trainLogits });
    const sIn = await det.score({ features: testFeatures, logits: testLogits });
    const sOut = await det.score({ features: oodFeatures, logits: oodLogits });
    const ev = evaluate(sIn, sOut, { orientation: det.orientation, fpr95Convention: opts.fpr95Convention, auprConvention: opts.auprConvention });
    const result: OodScoreResult = {
      metric: det.name,
      orientation: det.orientation,
      auroc: ev.auroc,
      aupr_in: ev.aupr_in,
      aupr_out: ev.aupr_out,
      aupr_convention: ev.aupr_convention,
      fpr95: ev.fpr95,
      fpr95_convention: ev.fpr95_convention,
      tpr_level: ev.tpr_level,
      detection_error: ev.detection_error,
      n_in: ev.n_in,
      n_ood: ev.n_ood,
      n_train: trainFeatures ? trainFeatures.shape[0] : trainLogits ? trainLogits.shape[0] : null,
      files,
    };
    if (opts.scoresOut) {
      writeNpz(opts.scoresOut, { in: ndarray('float64', [sIn.length], sIn), ood: ndarray('float64', [sOut.length], sOut) });
      result.scores_out = opts.scoresOut;
    }
    if (opts.detectorOut) await det.save(opts.detectorOut);
    if (opts.json) write(JSON.stringify(result, null, 2) + '\n');
    else {
      const pct = (x: number) => (100 * x).toFixed(2);
      write(
        `${result.metric}\tIn-data: ${opts.test ?? opts.testLogits}\tOOD: ${opts.ood ?? opts.oodLogits}\t` +
          `FPR95: ${pct(result.fpr95)}\tAUROC: ${pct(result.auroc)}\tAUPR-In: ${pct(result.aupr_in)}\tAUPR-Out: ${pct(result.aupr_out)}\n` +
          `(${result.orientation}; FPR95 ${result.fpr95_convention} at TPR ${result.tpr_level}; AUPR ${result.aupr_convention}; n_in ${result.n_in}, n_ood ${result.n_ood})\n`,
      );
    }
    return result;
  } finally {
    det.dispose();
  }
}

/** Adds `ood-score` to the `mood` program (the action loads libtorch lazily). */
export function registerOodScore(program: Command): Command {
  return program
    .command('ood-score')
    .description('fit an OOD detector on precomputed ID features (.npy) and evaluate ID test vs OOD scores')
    .requiredOption('--metric <name>', 'detector: mahalanobis, cc, avgcc, cos, projection, gauss, gauss_logp, kmeans, euclidean, minkowski, chebyshev, knn, mds, rmds, vim, residual, react, msp, maxlogit, entropy, energy, gradnorm')
    .option('--train <file>', 'ID training features (N x D .npy)')
    .option('--train-labels <file>', 'ID training labels (N .npy; cc, avgcc, mds, rmds; kmeans k)')
    .option('--train-logits <file>', 'ID training logits (optional; checks the class count)')
    .option('--test <file>', 'ID test features (.npy)')
    .option('--ood <file>', 'OOD features (.npy)')
    .option('--test-logits <file>', 'ID test logits (logit metrics)')
    .option('--ood-logits <file>', 'OOD logits (logit metrics)')
    .option('--head-weight <file>', 'classifier head weight C x D (vim, residual, react)')
    .option('--head-bias <file>', 'classifier head bias C (vim, residual, react)')
    .option('--k <n>', 'knn: neighbour index (default 50); kmeans: clusters (default: number of train labels)')
    .option('--temperature <t>', 'energy/react temperature (default 1)')
    .option('--seed <n>', 'kmeans seed (default 0)')
    .option('--n-init <n>', 'kmeans restarts (default 10)')
    .option('--dim <n>', 'vim/residual principal dimension')
    .option('--percentile <p>', 'react clipping percentile (default 90)')
    .option('--no-normalize', "skip MOOD's f / (||f|| + 1e-10) feature normalisation")
    .option('--fpr95-convention <c>', 'id-positive-percentile (MOOD, default) | roc-id-positive | ood-positive (OpenOOD)')
    .option('--aupr-convention <c>', 'average-precision (MOOD, default) | trapezoid (OpenOOD)')
    .option('--scores-out <file>', 'save per-sample scores as .npz (members in, ood; atomic)')
    .option('--detector-out <file>', 'save the fitted detector (.npz)')
    .option('--json', 'machine-readable output')
    .action(async (opts: OodScoreOptions) => {
      await runOodScore(opts);
    });
}
