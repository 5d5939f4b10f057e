/**
 * Shared body of `mood eval-features` and `mood eval-logits` (the reference's eval_with_features.py
 * and eval_with_logits.py): flags, dataset and model set-up, one cached extraction for every metric
 * (lib/ood/features evaluateOod), the reference's result lines (stdout + eval_results.txt) and an
 * atomic JSON result file.
 *
 * Only type imports at the top level: libtorch and lib/data load when a command runs.
 */
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import type { Command } from 'commander';
import type { DataLoader, ImageDataset, LoaderOptions } from '../data/types';
import type { Beit } from '../models/beit';
import type { OodMetricResult, TrainFeatureTransform, ExtractionRecord, CheckpointIdentity } from '../ood/features';
import type { DetectorOptions } from '../ood/detectors/registry';
import type { AuprConvention, Fpr95Convention } from '../ood/evaluation/types';
import type { EvaluationFigures } from './ood-score';
import { intFlag, listFlag, numFlag } from '../util/flags';
import { modelFromFlags } from './model';
import { requireFile } from './forward';
import { addReferenceFlagOptions, describeTrainAugment, EvalCliError, parseTrainAugment, referenceFlagNotes, type AugmentFlags, type EvalKind } from './eval-reference-flags';

export { EvalCliError, type EvalKind } from './eval-reference-flags';

/** The reference's `--metric all` lists. */
export const REFERENCE_FEATURE_METRICS = ['mahalanobis', 'cos', 'projection', 'gauss', 'kmeans', 'euclidean', 'minkowski', 'chebyshev'] as const;
export const REFERENCE_LOGIT_METRICS = ['softmax', 'entropy', 'energy', 'gradnorm'] as const;

/** Options as commander gives them (snake_case flags arrive as camelCase). */
export interface EvalCliOptions extends AugmentFlags {
  ckpt?: string;
  model?: string;
  dataSet?: string;
  dataPath?: string;
  evalDataPath?: string;
  oodDataset?: string;
  oodDataPath?: string;
  metric?: string;
  cc?: boolean;
  avgcc?: boolean;
  classIdx?: string;
  batchSize?: string;
  resultsDir?: string;
  inputSize?: string;
  nbClasses?: string;
  numWorkers?: string;
  seed?: string;
  device?: string;
  distEval?: boolean;
  trainFeatures?: string;
  cacheDir?: string;
  /** commander's --no-cache. */
  cache?: boolean;
  jsonOut?: string;
  json?: boolean;
  quiet?: boolean;
  detectorOut?: string;
  k?: string;
  temperature?: string;
  fpr95Convention?: Fpr95Convention;
  auprConvention?: AuprConvention;
  cropPct?: string;
  imagenetDefaultMeanAndStd?: boolean;
  modelPrefix?: string;
  absPosEmb?: boolean;
  disableRelPosBias?: boolean;
  /** --use_cls gives true. */
  useCls?: boolean;
  layerScaleInitValue?: string;
}

/** What the CLI needs from lib/data; tests pass an in-memory one. */
export interface DatasetSpec {
  /** The reference's dataset name (--data_set / --ood_dataset). */
  name: string;
  /** Root folder (--data_path / --ood_data_path); undefined: the data layer's default, if it has one. */
  path?: string;
  split: 'train' | 'test';
  /** One-class subset of the ID training set (the reference's class_idx). */
  classIdx?: number;
  /** An OOD set or a full test set: never subset by class_idx (the reference's ood=True). */
  ood?: boolean;
  inputSize: number;
  nbClasses?: number;
  evalDataPath?: string;
  cropPct?: number;
  imagenetDefaultMeanAndStd?: boolean;
}

export interface DataProvider {
  dataset(spec: DatasetSpec): Promise<ImageDataset> | ImageDataset;
  loader(dataset: ImageDataset, opts: LoaderOptions): DataLoader;
}

/** The process group --dist_eval needs (structurally lib/distributed's ProcessGroup). */
export interface EvalGroup {
  readonly rank: number;
  readonly worldSize: number;
  allGather(t: import('../tensor').Tensor): import('../tensor').Tensor[];
  destroy?(): Promise<void>;
}

export interface EvalDeps {
  data?: DataProvider;
  /** --dist_eval: joins the process group (default: lib/distributed's initFromEnv). */
  group?: () => Promise<EvalGroup | null>;
  out?: (s: string) => void;
  err?: (s: string) => void;
}

/** One row of the JSON result file: one metric on one OOD set (or 'all' = the average). */
export interface EvalJsonRow extends EvaluationFigures {
  metric: string;
  /** The --metric spelling the reference would print. */
  reference_metric: string;
  orientation: string;
  ood: string;
  /** Which of aupr_in / aupr_out the reference's "AUPR" column is for this metric. */
  reference_aupr: 'aupr_in' | 'aupr_out';
  train_features: TrainFeatureTransform | null;
}

export interface EvalJson {
  command: 'eval-features' | 'eval-logits';
  created: string;
  checkpoint: { file: string; identity: CheckpointIdentity | string };
  model: { config: string | null; img_size: number; num_classes: number; embed_dim: number; depth: number };
  id_dataset: string;
  data_path: string | null;
  ood_datasets: string[];
  protocol: 'multi-class' | 'one-class';
  class_idx: number | null;
  id_classes?: number[];
  train_features: TrainFeatureTransform | null;
  /** The augmentation of train-augment training features (the reference's flags), else null. */
  train_augment: Record<string, string | number | null> | null;
  results: EvalJsonRow[];
  averages: EvalJsonRow[];
  extraction: ExtractionRecord[];
  lines: string[];
  results_file: string;
  json_file: string;
}

// ---- parsing ---------------------------------------------------------------------------------------

/** --metric (and --cc/--avgcc) -> [reference spelling, detector registry name] pairs. */
export function resolveMetrics(kind: EvalKind, metric: string | undefined, cc: boolean, avgcc: boolean, detectorNames: readonly string[], kindOf: (m: string) => string | undefined): Array<[string, string]> {
  const given = metric ?? (kind === 'features' ? 'mahalanobis' : 'softmax');
  const names = given === 'all' ? [...(kind === 'features' ? REFERENCE_FEATURE_METRICS : REFERENCE_LOGIT_METRICS)] : listFlag(given);
  if (names.length === 0) throw new EvalCliError('--metric is empty');
  if (cc && avgcc) throw new EvalCliError('--cc and --avgcc exclude each other');
  const out: Array<[string, string]> = [];
  for (const n of names) {
    let det = n;
    if (kind === 'logits' && n === 'softmax') det = 'maxlogit'; // what the reference's get_softmax computes
    if (kind === 'features' && n === 'mahalanobis' && cc) det = 'cc';
    if (kind === 'features' && n === 'mahalanobis' && avgcc) det = 'avgcc';
    const k = kindOf(det);
    const ok = kind === 'features' ? k === 'feature' || k === 'head' : k === 'logit';
    if (!ok) {
      const valid = kind === 'features'
        ? detectorNames.filter((d) => kindOf(d) === 'feature' || kindOf(d) === 'head')
        : ['softmax (= maxlogit, as the reference computes it)', ...detectorNames.filter((d) => kindOf(d) === 'logit')];
      const hint = k !== undefined ? ` ('${n}' is a ${k === 'logit' ? 'logit metric: use mood eval-logits' : 'feature metric: use mood eval-features'})` : '';
      throw new EvalCliError(`--metric: unknown ${kind === 'features' ? 'feature' : 'logit'} metric '${n}'${hint}; valid: ${valid.join(', ')}, all`);
    }
    out.push([n, det]);
  }
  return out;
}

function parseTrainFeatures(v: string | undefined): TrainFeatureTransform {
  if (v === undefined || v === 'eval-transform' || v === 'eval') return 'eval-transform';
  if (v === 'train-augment' || v === 'train') return 'train-augment';
  throw new EvalCliError(`--train-features must be eval-transform or train-augment, got '${v}'`);
}

function defaultCacheDir(): string {
  const base = process.env.MOOD_CACHE_DIR ?? path.join(process.env.XDG_CACHE_HOME ?? path.join(os.homedir(), '.cache'), 'mood-ood');
  return path.join(base, 'features');
}

// ---- data ------------------------------------------------------------------------------------------

/** lib/data's buildDataset/createLoader (loaded when a command runs, not at registration). */
export async function libDataProvider(): Promise<DataProvider> {
  const { buildDataset, createLoader, DATASET_NAMES } = await import('../data');
  const known = new Set<string>(DATASET_NAMES);
  return {
    dataset: (s) => {
      let name = s.name;
      let dataPath = s.path;
      // The reference reads any other OOD name (lsun, places, textures, ...) as an image folder at
      // --ood_data_path; lib/data's ood_folder is that (flat or nested, one label).
      if (s.ood && !known.has(name) && s.path !== undefined) name = 'ood_folder';
      // image_folder evaluates on --eval_data_path, as the reference does.
      if (name === 'image_folder' && s.split === 'test' && s.evalDataPath) dataPath = s.evalDataPath;
      // The test split is never subset (one-class OOD groups come from it); lib/data subsets the
      // training split to the ID group itself (CIFAR-100: relabelled to superclasses).
      return buildDataset({ dataSet: name, dataPath, train: s.split === 'train', ...(s.classIdx !== undefined && !s.ood ? { classIdx: s.classIdx } : {}) });
    },
    loader: (ds, o) => createLoader(ds, o),
  };
}

/** lib/distributed's initFromEnv (loaded only for --dist_eval; null when not launched distributed). */
async function joinProcessGroup(): Promise<EvalGroup | null> {
  const { initFromEnv } = await import('../distributed');
  return initFromEnv();
}

// ---- model -----------------------------------------------------------------------------------------

export async function loadEvalModel(opts: EvalCliOptions, numClasses: number | undefined, inputSize: number | undefined): Promise<Beit> {
  const ckpt = requireFile('--ckpt', opts.ckpt);
  const given: Record<string, unknown> = {};
  if (numClasses !== undefined) given.num_classes = numClasses;
  if (inputSize !== undefined) given.img_size = inputSize;
  if (opts.absPosEmb) given.use_abs_pos_emb = true;
  if (opts.disableRelPosBias) given.use_rel_pos_bias = false;
  if (opts.useCls) given.use_mean_pooling = false;
  const ls = numFlag('--layer_scale_init_value', opts.layerScaleInitValue);
  if (ls !== undefined) given.init_values = ls;
  if (opts.device) given.device = opts.device;
  return modelFromFlags({ ckpt, model: opts.model, options: given }, (m) => new EvalCliError(m));
}

// ---- output ----------------------------------------------------------------------------------------

/**
 * Python's '{:.2f}'.format(x): correctly rounded, exact binary ties to even. JS toFixed rounds exact
 * ties up (0.125 -> '0.13', Python '0.12'), which would change the reference's lines in rare cases.
 */
export function pyFixed2(x: number): string {
  if (!Number.isFinite(x)) return x > 0 ? 'inf' : x < 0 ? '-inf' : 'nan';
  const js = x.toFixed(2);
  // toFixed(100) is the exact decimal expansion for |x| < 1e21 at this scale; a tie is '...d5000...'.
  const exact = Math.abs(x).toFixed(100);
  const dot = exact.indexOf('.');
  const rest = exact.slice(dot + 3);
  if (!/^50*$/.test(rest)) return js;
  const lastDigit = Number(exact[dot + 2]);
  if (lastDigit % 2 === 1) return js; // toFixed rounded up to an even digit already
  // Round down: truncate to two decimals.
  const down = exact.slice(0, dot + 3);
  return (x < 0 && Number(down) !== 0 ? '-' : '') + down;
}

const pct = (x: number): string => pyFixed2(100 * x);

/** The reference's logger lines for one metric. */
export function referenceLines(kind: EvalKind, refMetric: string, dataSet: string, r: OodMetricResult, aupr: 'aupr_in' | 'aupr_out'): string[] {
  const tail = (x: { fpr95: number; auroc: number; aupr_in: number; aupr_out: number }): string => `FPR95: ${pct(x.fpr95)}\tAUROC: ${pct(x.auroc)}\tAUPR: ${pct(x[aupr])}`;
  if (r.protocol === 'multi-class') {
    // "%-15s\t" % ood_dataset inside "OOD: {}\t": the name padded to 15, then two tabs.
    return r.rows.map((row) => `${refMetric}\tIn-data: ${dataSet}\tOOD: ${row.ood.padEnd(15)}\t\t${tail(row)}`);
  }
  // eval_with_logits.py prints the method name 'MOOD' instead of the metric in the one-class loop.
  const name = kind === 'features' ? refMetric : 'MOOD';
  const lines = r.rows.map((row) => `${name}\tDataset: ${dataSet}\tID: ${r.class_idx}\tOOD: ${row.ood}\t${tail(row)}`);
  lines.push(`${name}\tDataset: ${dataSet}\tID: ${r.class_idx}\tOOD: all\t${tail(r.average)}`);
  return lines;
}

// ---- the command -----------------------------------------------------------------------------------

export async function runEval(kind: EvalKind, opts: EvalCliOptions, deps: EvalDeps = {}): Promise<EvalJson> {
  const out = deps.out ?? ((s: string) => void process.stdout.write(s));
  const err = deps.err ?? ((s: string) => void process.stderr.write(s));
  const info = opts.json ? err : out;
  const command = kind === 'features' ? 'eval-features' : 'eval-logits';

  // Cheap checks first: flags, files, metrics.
  if (!opts.ckpt) throw new EvalCliError('--ckpt <file> is required');
  if (!fs.existsSync(opts.ckpt)) throw new EvalCliError(`--ckpt ${opts.ckpt}: no such file`);
  if (!opts.dataSet) throw new EvalCliError('--data_set <name> is required (e.g. cifar10, cifar100, imagenet30, imagenet1k, image_folder)');
  const dataPath = opts.dataPath;
  // Optional like the reference's (whose default is a cluster path): lib/data knows default locations
  // for some sets (Fashion-MNIST) and names the expected layout otherwise.
  if (dataPath !== undefined && !fs.existsSync(dataPath)) throw new EvalCliError(`--data_path ${dataPath}: no such directory`);
  const classIdx = intFlag('--class_idx', opts.classIdx, { min: 0 });
  const oodNames = listFlag(opts.oodDataset);
  const oodPaths = listFlag(opts.oodDataPath);
  if (classIdx === undefined) {
    if (oodNames.length === 0) throw new EvalCliError('--ood_dataset <name> is required without --class_idx (multi-class); with --class_idx the other classes are the OOD sets');
    if (oodPaths.length && oodPaths.length !== oodNames.length) throw new EvalCliError(`--ood_data_path lists ${oodPaths.length} paths for ${oodNames.length} OOD datasets`);
    for (const p of oodPaths) if (!fs.existsSync(p)) throw new EvalCliError(`--ood_data_path ${p}: no such directory`);
  } else if (oodNames.length) {
    throw new EvalCliError('--ood_dataset is not used with --class_idx (one-class: the other classes of --data_set are the OOD sets)');
  }
  const batchSize = intFlag('--batch_size', opts.batchSize, { min: 1 }) ?? (kind === 'features' ? 8 : 16);
  const inputSizeFlag = intFlag('--input_size', opts.inputSize, { min: 1 });
  const nbClassesFlag = intFlag('--nb_classes', opts.nbClasses, { min: 1 });
  const workers = intFlag('--num_workers', opts.numWorkers, { min: 0 });
  const seed = intFlag('--seed', opts.seed, { min: 0 }) ?? 0;
  const trainFeatures = parseTrainFeatures(opts.trainFeatures);
  const cropPct = numFlag('--crop_pct', opts.cropPct);
  // The reference's training-feature augmentation (its argparse defaults unless given).
  const augment = await parseTrainAugment(opts);
  const augmented = kind === 'features' && trainFeatures === 'train-augment';
  for (const note of referenceFlagNotes(kind, opts as Record<string, unknown>, kind === 'features' ? trainFeatures : null, augment)) err(`note: ${note}\n`);
  const detectorOptions: DetectorOptions = {};
  const k = intFlag('--k', opts.k, { min: 1 });
  if (k !== undefined) detectorOptions.k = k;
  const t = numFlag('--temperature', opts.temperature);
  if (t !== undefined) detectorOptions.temperature = t;

  const [{ DETECTOR_NAMES, listDetectors }, features, { officialIdLabel }, { writeFileAtomic }] = await Promise.all([
    import('../ood/detectors/registry'),
    import('../ood/features'),
    import('../ood/evaluation/official'),
    import('../io/atomic'),
  ]);
  const kinds = new Map(listDetectors().map((d) => [d.name, d.kind as string]));
  const metrics = resolveMetrics(kind, opts.metric, !!opts.cc, !!opts.avgcc, DETECTOR_NAMES, (m) => kinds.get(m));
  if (opts.detectorOut && metrics.length !== 1) throw new EvalCliError(`--detector-out saves one fitted detector: give a single --metric (got ${metrics.map((m) => m[0]).join(', ')})`);

  const data = deps.data ?? (await libDataProvider());
  const resultsDir = opts.resultsDir ?? './eval_results';
  const resultsFile = path.join(resultsDir, 'eval_results.txt');
  info(`loading from ${opts.ckpt}\n=> Saving to ${resultsFile}\n`);

  // The model first: it fixes the input size (--input_size, else the checkpoint's) and the class
  // count (--nb_classes, else the checkpoint's head), as the reference's create_model + load does.
  const model = await loadEvalModel(opts, nbClassesFlag, inputSizeFlag);
  let group: EvalGroup | null = null;
  try {
    // --dist_eval: join the launcher's process group (torchrun environment); each rank extracts its
    // shard and every set is all-gathered; rank 0 prints and writes the results.
    group = opts.distEval ? await (deps.group ? deps.group() : joinProcessGroup()) : null;
    const rank = group?.rank ?? 0;
    const worldSize = group?.worldSize ?? 1;
    const main = rank === 0;
    const inputSize = inputSizeFlag ?? model.options.img_size;
    // Datasets: the full test set (ID test; one-class OOD groups come from it), the ID training set
    // (one-class: only the ID group, as the reference) and each OOD set.
    const spec = (s: Pick<DatasetSpec, 'name' | 'path' | 'split'> & Partial<DatasetSpec>): DatasetSpec => ({
      inputSize,
      nbClasses: nbClassesFlag,
      evalDataPath: opts.evalDataPath,
      cropPct,
      imagenetDefaultMeanAndStd: opts.imagenetDefaultMeanAndStd,
      ...s,
    });
    const dataset = async (s: DatasetSpec, flag: string): Promise<ImageDataset> => {
      try {
        return await data.dataset(s);
      } catch (e) {
        throw new EvalCliError(`${flag} ${s.name}${s.path ? ` at ${s.path}` : ''} (${s.split}): ${(e as Error).message}`);
      }
    };
    const testDs = await dataset(spec({ name: opts.dataSet, path: dataPath, split: 'test', ood: true }), '--data_set');
    if (testDs.classes.length !== model.options.num_classes) {
      err(`warning: ${opts.dataSet} has ${testDs.classes.length} classes but the model's head has ${model.options.num_classes} (pass --nb_classes to match a checkpoint)\n`);
    }
    let groups: number[][] | undefined;
    if (classIdx !== undefined) {
      groups = features.oneClassGroups(opts.dataSet, testDs.classes.length);
      if (classIdx >= groups.length) throw new EvalCliError(`--class_idx ${classIdx} is out of range: ${opts.dataSet} has ${groups.length} one-class groups (0..${groups.length - 1})`);
    }
    const transformOpts: Partial<LoaderOptions> = { ...(cropPct !== undefined ? { cropPct } : {}), ...(opts.imagenetDefaultMeanAndStd ? { imagenetDefaultMeanAndStd: true } : {}) };
    const loaderOpts = (train: boolean): LoaderOptions => ({
      batchSize,
      inputSize,
      train,
      seed,
      ...(workers !== undefined ? { workers } : {}),
      ...(opts.device ? { device: opts.device } : {}),
      ...(worldSize > 1 ? { rank, worldSize } : {}),
      ...transformOpts,
      // eval_with_features.py's training loader: RandomSampler + drop_last=True, build_transform(is_train=True).
      ...(train ? { ...augment, shuffle: true, dropLast: true } : {}),
    });
    const needsTrain = kind === 'features';
    const trainDs = needsTrain ? await dataset(spec({ name: opts.dataSet, path: dataPath, split: 'train', classIdx }), '--data_set') : undefined;
    const oods = [];
    for (let i = 0; i < oodNames.length; i++) {
      const ds = await dataset(spec({ name: oodNames[i], path: oodPaths[i] ?? dataPath, split: 'test', ood: true }), '--ood_dataset');
      oods.push({ name: oodNames[i], loader: data.loader(ds, loaderOpts(false)) });
    }
    const cacheDir = opts.cacheDir ?? defaultCacheDir();
    const res = await features.evaluateOod({
      model,
      idTrain: trainDs ? data.loader(trainDs, loaderOpts(trainFeatures === 'train-augment')) : undefined,
      idTest: data.loader(testDs, loaderOpts(false)),
      oods,
      metrics: metrics.map((m) => m[1]),
      classIdx,
      groups,
      trainFeatures,
      inputSize,
      trainSeed: seed,
      ...(augmented ? { trainAugment: { ...describeTrainAugment(augment), sampler: 'random', drop_last: true, batch_size: batchSize } } : {}),
      detectorOptions,
      evaluation: { fpr95Convention: opts.fpr95Convention, auprConvention: opts.auprConvention },
      cache: { dir: cacheDir, enabled: opts.cache !== false, checkpoint: opts.ckpt },
      progress: !opts.quiet,
      warn: (m) => err(`warning: ${m}\n`),
      ...(group ? { group } : {}),
      keepDetectors: !!opts.detectorOut,
    });
    try {
      const lines: string[] = [];
      const rows: EvalJsonRow[] = [];
      const averages: EvalJsonRow[] = [];
      res.results.forEach((r, i) => {
        const [refMetric] = metrics[i];
        const idLabel = kind === 'features' ? 0 : officialIdLabel('eval_with_logits', refMetric);
        const refAupr = idLabel === 1 ? 'aupr_in' : 'aupr_out';
        lines.push(...referenceLines(kind, refMetric, opts.dataSet!, r, refAupr));
        const common = {
          metric: r.metric,
          reference_metric: refMetric,
          orientation: r.orientation,
          aupr_convention: r.aupr_convention,
          reference_aupr: refAupr,
          fpr95_convention: r.fpr95_convention,
          tpr_level: r.tpr_level,
          n_train: r.n_train,
          train_features: r.train_features,
        } as const;
        for (const row of r.rows) rows.push({ ...common, ood: row.ood, auroc: row.auroc, aupr_in: row.aupr_in, aupr_out: row.aupr_out, fpr95: row.fpr95, detection_error: row.detection_error, n_in: row.n_in, n_ood: row.n_ood });
        const nOod = r.rows.reduce((a, x) => a + x.n_ood, 0);
        averages.push({ ...common, ood: 'all', ...r.average, n_in: r.n_in, n_ood: nOod });
      });
      const identity = await features.modelIdentity(model, { dir: cacheDir, checkpoint: opts.ckpt });
      const tag = classIdx !== undefined ? `class${classIdx}` : oodNames.join('+');
      // Runs that differ in metric or training-feature transform get their own file.
      const metricTag = opts.metric === 'all' ? 'all' : metrics.map((m) => m[1]).join('+');
      const augTag = kind === 'features' && trainFeatures === 'train-augment' ? '_train-augment' : '';
      const jsonFile = opts.jsonOut ?? path.join(resultsDir, `${command}_${opts.dataSet}_${tag}_${metricTag}${augTag}.json`.replace(/[^A-Za-z0-9_.+-]+/g, '_'));
      const o = model.options;
      const result: EvalJson = {
        command,
        created: new Date().toISOString(),
        checkpoint: { file: path.resolve(opts.ckpt), identity },
        model: { config: opts.model ?? null, img_size: o.img_size, num_classes: o.num_classes, embed_dim: o.embed_dim, depth: o.depth },
        id_dataset: opts.dataSet,
        data_path: dataPath ?? null,
        ood_datasets: classIdx !== undefined ? res.results[0].rows.map((r) => r.ood) : oodNames,
        protocol: classIdx !== undefined ? 'one-class' : 'multi-class',
        class_idx: classIdx ?? null,
        ...(classIdx !== undefined ? { id_classes: groups![classIdx] } : {}),
        train_features: kind === 'features' ? trainFeatures : null,
        train_augment: augmented ? describeTrainAugment(augment) : null,
        results: rows,
        averages,
        extraction: res.extraction,
        lines,
        results_file: resultsFile,
        json_file: jsonFile,
      };
      // Other ranks took part in extraction and the gathers; rank 0 reports.
      if (!main) return result;
      for (const l of lines) out(l + '\n');
      fs.mkdirSync(resultsDir, { recursive: true });
      if (!opts.json && lines.length) {
        const trainNote = kind === 'features' ? `; train features: ${trainFeatures}` : '';
        out(`(FPR95 ${res.results[0].fpr95_convention} at TPR ${res.results[0].tpr_level}; AUPR = ${averages.map((a) => `${a.reference_metric}: ${a.reference_aupr}`).join(', ')} (${res.results[0].aupr_convention})${trainNote})\n`);
      }
      fs.appendFileSync(resultsFile, lines.map((l) => l + '\n').join(''));

      writeFileAtomic(jsonFile, JSON.stringify(result, null, 2) + '\n');
      if (opts.detectorOut) {
        await res.results[0].detector!.save(opts.detectorOut);
        info(`detector saved to ${opts.detectorOut}\n`);
      }
      if (opts.json) out(JSON.stringify(result, null, 2) + '\n');
      else info(`results: ${jsonFile}\n`);
      return result;
    } finally {
      for (const r of res.results) r.detector?.dispose();
    }
  } finally {
    model.dispose();
    await group?.destroy?.();
  }
}

/** Flags shared by both commands (the reference's names; snake_case works through lib/cli/argv.ts). */
export function addEvalOptions(cmd: Command, kind: EvalKind): Command {
  const metrics = kind === 'features'
    ? `${REFERENCE_FEATURE_METRICS.join(', ')} (reference) or cc, avgcc, gauss_logp, knn, mds, rmds, vim, residual, react; comma list or all (default mahalanobis)`
    : 'softmax (max logit, as the reference), msp, maxlogit, entropy, energy, gradnorm; comma list or all (default softmax)';
  cmd
    .option('--ckpt <file>', 'fine-tuned checkpoint (.pth; official/MOOD/our own; pt22k adapted)')
    .option('--model <name>', 'named configuration to start from (e.g. beit_large_patch16_224); default: inferred from the checkpoint')
    .option('--data-set <name>', 'ID dataset (cifar10, cifar100, imagenet30, imagenet1k, image_folder, ...)')
    .option('--data-path <dir>', 'ID dataset root')
    .option('--eval-data-path <dir>', 'evaluation root for image_folder')
    .option('--ood-dataset <names>', 'OOD dataset name(s), comma-separated (multi-class)')
    .option('--ood-data-path <dirs>', 'OOD dataset root(s), comma-separated like --ood_dataset')
    .option('--metric <name>', metrics)
    .option('--cc', 'mahalanobis: min over class-conditional distances')
    .option('--avgcc', 'mahalanobis: mean over class-conditional distances')
    .option('--class-idx <n>', 'one-class: the ID class (CIFAR-100: superclass); the other classes are OOD')
    .option('--batch-size <n>', `images per forward pass (default ${kind === 'features' ? 8 : 16})`)
    .option('--results-dir <dir>', 'where eval_results.txt and the JSON result go (default ./eval_results)')
    .option('--input-size <n>', 'image side (default: the model\'s img_size)')
    .option('--nb-classes <n>', 'number of classes (default: from the dataset)')
    .option('--num-workers <n>', 'native decode/transform threads')
    .option('--seed <n>', 'augmentation seed (--train-features train-augment)')
    .option('--device <d>', 'cpu or cuda[:i]')
    .option('--dist-eval', 'shard extraction across ranks (RANK/WORLD_SIZE)')
    .option('--train-features <t>', 'ID training features through eval-transform (default) or train-augment (the reference)')
    .option('--cache-dir <dir>', 'feature cache (default $MOOD_CACHE_DIR or ~/.cache/mood-ood/features)')
    .option('--no-cache', 'neither read nor write the feature cache')
    .option('--json-out <file>', 'JSON result file (default <results-dir>/<command>_<data_set>_<ood|classN>_<metrics>[_train-augment].json)')
    .option('--detector-out <file>', 'save the fitted detector (.npz) for mood score (single metric)')
    .option('--k <n>', 'knn neighbour / kmeans clusters')
    .option('--temperature <t>', 'energy temperature')
    .option('--fpr95-convention <c>', 'id-positive-percentile (MOOD, default) | roc-id-positive | ood-positive')
    .option('--aupr-convention <c>', 'average-precision (MOOD, default) | trapezoid')
    .option('--crop-pct <f>', 'evaluation crop fraction')
    .option('--imagenet-default-mean-and-std', 'ImageNet normalisation instead of 0.5/0.5')
    .option('--abs-pos-emb', 'model uses absolute position embeddings')
    .option('--disable-rel-pos-bias', 'model without relative position bias')
    .option('--use-cls', 'cls-token pooling instead of mean pooling')
    .option('--layer-scale-init-value <f>', 'layer scale (0 disables)')
    .option('--json', 'print the JSON result instead of the text lines')
    .option('--quiet', 'no progress bars');
  return addReferenceFlagOptions(cmd);
}
