/**
 * finetune(): the reference `run_class_finetuning.py` as one call — model (named config or
 * --finetune checkpoint with the BEiT adaptation), datasets and loaders (lib/data), the Trainer with
 * the reference defaults, evaluation after each epoch, checkpoints and log.txt in outputDir.
 * Options are the reference flags in camelCase; `validateFinetuneOptions` checks them all before any
 * work (the CLI calls it first).
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import type { DataLoader, ImageDataset, LoaderOptions, MixupOptions } from '../data/types';
import { parseRandAugment } from '../data/randaugment';
import type { Beit, BeitOptions } from '../models/beit';
import type { EpochLog, EvalStats, StepEvent, TrainingSink } from './sinks';
import type { TrainerOptions } from './trainer';

export interface FinetuneOptions {
  /** A named configuration (beitConfigNames()). */
  model: string;
  /** Constructor keyword overrides (the reference's names), applied last. */
  modelOpts?: Partial<BeitOptions>;
  /** Pre-trained checkpoint to start from (adapted: rel-pos expansion, pos_embed resize, head drop). */
  finetune?: string;
  dataSet: string;
  dataPath?: string;
  classIdx?: number;
  /** Classes of the head (default: the dataset's). */
  nbClasses?: number;
  inputSize?: number;
  batchSize?: number;
  epochs?: number;
  updateFreq?: number;
  lr?: number;
  minLr?: number;
  warmupLr?: number;
  warmupEpochs?: number;
  warmupSteps?: number;
  weightDecay?: number;
  weightDecayEnd?: number;
  optEps?: number;
  optBetas?: [number, number];
  clipGrad?: number;
  layerDecay?: number;
  smoothing?: number;
  drop?: number;
  attnDropRate?: number;
  dropPath?: number;
  layerScaleInitValue?: number;
  relPosBias?: boolean;
  absPosEmb?: boolean;
  useMeanPooling?: boolean;
  initScale?: number;
  disableWeightDecayOnRelPosBias?: boolean;
  mixup?: number;
  cutmix?: number;
  cutmixMinmax?: [number, number];
  mixupProb?: number;
  mixupSwitchProb?: number;
  mixupMode?: 'batch' | 'pair' | 'elem';
  reprob?: number;
  /** timm auto-augment policy for training ('rand-m9-mstd0.5-inc1' by default, as the reference); 'none' turns it off. */
  aa?: string;
  /**
   * false: training images take the evaluation transform (shuffled, no crop/flip/RandAugment/erasing;
   * --aa and --reprob then do nothing). Not a reference flag: at 28 px the reference's RandomCrop
   * (padding 4) + flip is far too slow to learn from in a CPU-minutes schedule (docs/finetune.md).
   */
  augment?: boolean;
  imagenetDefaultMeanAndStd?: boolean;
  modelEma?: boolean;
  modelEmaDecay?: number;
  l2Alpha?: number;
  l2Beta?: number;
  freezeBackbone?: boolean;
  outputDir?: string;
  /** TensorBoard event files here (the reference's --log_dir; rank 0), in run_class_finetuning.py's tags and cadence. */
  logDir?: string;
  resume?: string;
  autoResume?: boolean;
  saveCkpt?: boolean;
  saveCkptFreq?: number;
  /** Only evaluate (the loaded/resumed model) on the test split. */
  eval?: boolean;
  seed?: number;
  device?: string;
  workers?: number;
  gradSyncId?: number;
  rank?: number;
  worldSize?: number;
  progress?: boolean;
  /** Called with each epoch's log line (also written to outputDir/log.txt). */
  onEpoch?: (log: EpochLog) => void;
  onStep?: (e: StepEvent) => void;
  /** More training sinks (rank 0), next to progress and log.txt. */
  sinks?: TrainingSink[];
  /** Runs once on the built model before training (distributed: broadcast rank 0's weights). */
  beforeTrain?: (model: Beit) => Promise<void>;
}

/** The reference's defaults (MOODv1 run_class_finetuning.get_args). */
export const FINETUNE_DEFAULTS = {
  inputSize: 224,
  batchSize: 64,
  epochs: 200,
  updateFreq: 1,
  lr: 5e-4,
  minLr: 1e-6,
  warmupLr: 1e-6,
  warmupEpochs: 5,
  warmupSteps: -1,
  weightDecay: 0.05,
  optEps: 1e-8,
  layerDecay: 0.9,
  smoothing: 0.1,
  drop: 0,
  attnDropRate: 0,
  dropPath: 0.1,
  layerScaleInitValue: 0.1,
  relPosBias: true,
  absPosEmb: false,
  useMeanPooling: true,
  initScale: 0.001,
  mixup: 0,
  cutmix: 0,
  mixupProb: 1,
  mixupSwitchProb: 0.5,
  mixupMode: 'batch' as const,
  reprob: 0.25,
  aa: 'rand-m9-mstd0.5-inc1',
  modelEmaDecay: 0.9999,
  autoResume: true,
  saveCkpt: true,
  saveCkptFreq: 50,
  seed: 0,
} as const;

/** Classes of the data sets lib/data reads (checked before loading anything). */
const CLASS_COUNTS: Readonly<Record<string, number>> = { fashion_mnist: 10, cifar10: 10, cifar100: 100 };

export class FinetuneOptionsError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'FinetuneOptionsError';
  }
}

export interface FinetuneResult {
  /** The last checkpoint written, or the one resumed from when nothing was left to train. */
  checkpoint?: string;
  history: EpochLog[];
  /** Per optimizer step losses of this run. */
  losses: number[];
  maxAccuracy?: number;
  /** --eval only: the test statistics. */
  evaluation?: EvalStats;
  startEpoch: number;
}

/**
 * Checks every flag without touching data or libtorch beyond the model-name list: ranges,
 * contradictions, files that must exist, an output dir that can be written.
 */
export function validateFinetuneOptions(o: FinetuneOptions, configNames: readonly string[]): void {
  const bad = (flag: string, msg: string): never => {
    throw new FinetuneOptionsError(`--${flag}: ${msg}`);
  };
  const int = (flag: string, v: number | undefined, min: number) => {
    if (v !== undefined && (!Number.isInteger(v) || v < min)) bad(flag, `expected an integer >= ${min}, got ${v}`);
  };
  const num = (flag: string, v: number | undefined, lo: number, hi: number, loOpen = false, hiOpen = false) => {
    if (v === undefined) return;
    if (!Number.isFinite(v) || (loOpen ? v <= lo : v < lo) || (hiOpen ? v >= hi : v > hi))
      bad(flag, `expected a number in ${loOpen ? '(' : '['}${lo}, ${hi}${hiOpen ? ')' : ']'}, got ${v}`);
  };
  if (!o.model) bad('model', 'a model name is required');
  if (!configNames.includes(o.model)) bad('model', `unknown model '${o.model}': expected one of ${configNames.join(', ')}`);
  if (!o.dataSet) bad('data_set', 'required (fashion_mnist, cifar10, cifar100)');
  const classes = CLASS_COUNTS[o.dataSet];
  if (!classes) bad('data_set', `unknown data set '${o.dataSet}': expected one of ${Object.keys(CLASS_COUNTS).join(', ')}`);
  // One-class CIFAR-100 counts superclasses (20), as the reference's one-class protocol.
  const oneClassK = o.dataSet === 'cifar100' ? 20 : classes;
  if (o.classIdx !== undefined && (!Number.isInteger(o.classIdx) || o.classIdx < 0 || o.classIdx >= oneClassK))
    bad('class_idx', `${o.classIdx} is out of range for ${o.dataSet}: expected an integer in 0..${oneClassK - 1}`);
  if (o.nbClasses !== undefined && o.nbClasses < (o.classIdx !== undefined ? oneClassK : classes))
    bad('nb_classes', `${o.nbClasses} is smaller than the ${o.classIdx !== undefined ? oneClassK : classes} classes of ${o.dataSet}`);
  int('update_freq', o.updateFreq, 1);
  int('batch_size', o.batchSize, 1);
  int('epochs', o.epochs, 1);
  int('input_size', o.inputSize, 1);
  int('warmup_epochs', o.warmupEpochs, 0);
  int('save_ckpt_freq', o.saveCkptFreq, 1);
  int('nb_classes', o.nbClasses, 1);
  int('class_idx', o.classIdx, 0);
  int('seed', o.seed, 0);
  if (o.warmupSteps !== undefined && !Number.isInteger(o.warmupSteps)) bad('warmup_steps', `expected an integer, got ${o.warmupSteps}`);
  num('lr', o.lr, 0, Infinity, true);
  num('min_lr', o.minLr, 0, Infinity);
  num('warmup_lr', o.warmupLr, 0, Infinity);
  num('weight_decay', o.weightDecay, 0, Infinity);
  num('weight_decay_end', o.weightDecayEnd, 0, Infinity);
  num('opt_eps', o.optEps, 0, Infinity, true);
  num('clip_grad', o.clipGrad, 0, Infinity);
  num('layer_decay', o.layerDecay, 0, 1, true);
  num('smoothing', o.smoothing, 0, 1, false, true);
  num('drop', o.drop, 0, 1, false, true);
  num('attn_drop_rate', o.attnDropRate, 0, 1, false, true);
  num('drop_path', o.dropPath, 0, 1, false, true);
  num('mixup', o.mixup, 0, Infinity);
  num('cutmix', o.cutmix, 0, Infinity);
  num('mixup_prob', o.mixupProb, 0, 1);
  num('mixup_switch_prob', o.mixupSwitchProb, 0, 1);
  num('reprob', o.reprob, 0, 1);
  num('model_ema_decay', o.modelEmaDecay, 0, 1, true);
  num('l2_alpha', o.l2Alpha, 0, Infinity);
  num('l2_beta', o.l2Beta, 0, Infinity);
  if (o.optBetas) {
    if (o.optBetas.length !== 2 || o.optBetas.some((b) => !(b >= 0 && b < 1))) bad('opt_betas', `expected two numbers in [0, 1), got ${o.optBetas.join(' ')}`);
  }
  if (o.aa !== undefined && o.aa !== 'none' && o.aa !== '') {
    try {
      parseRandAugment(o.aa);
    } catch (e) {
      bad('aa', (e as Error).message);
    }
  }
  if (o.augment === false && ((o.mixup ?? 0) > 0 || (o.cutmix ?? 0) > 0 || o.cutmixMinmax !== undefined))
    bad('no_augment', 'contradicts --mixup/--cutmix (batch mixing is part of the training transform)');
  if (o.mixupMode && !['batch', 'pair', 'elem'].includes(o.mixupMode)) bad('mixup_mode', `expected batch, pair or elem, got '${o.mixupMode}'`);
  if (o.cutmixMinmax && (o.cutmixMinmax.length !== 2 || !(o.cutmixMinmax[0] >= 0 && o.cutmixMinmax[0] < o.cutmixMinmax[1] && o.cutmixMinmax[1] <= 1)))
    bad('cutmix_minmax', `expected two fractions 0 <= min < max <= 1, got ${o.cutmixMinmax.join(' ')}`);
  if (o.minLr !== undefined && o.lr !== undefined && o.minLr > o.lr) bad('min_lr', `${o.minLr} is above --lr ${o.lr}`);
  for (const [flag, f] of [['finetune', o.finetune], ['resume', o.resume]] as const) {
    if (f && !fs.existsSync(f)) bad(flag, `no such file: ${f}`);
  }
  if (o.eval && !o.finetune && !o.resume && !(o.autoResume !== false && o.outputDir)) bad('eval', 'needs weights to evaluate: --finetune, --resume or --output_dir with a checkpoint');
  if (o.outputDir) checkWritableDir(o.outputDir);
  if (o.logDir) checkWritableDir(o.logDir, 'log_dir');
  const ws = o.worldSize ?? 1;
  const rank = o.rank ?? 0;
  if (!Number.isInteger(ws) || ws < 1 || !Number.isInteger(rank) || rank < 0 || rank >= ws) bad('rank', `rank ${rank} is outside world size ${ws}`);
}

/** The directory `--<flag>` names exists (or can be made) and accepts a file. */
export function checkWritableDir(dir: string, flag = 'output_dir'): void {
  const abs = path.resolve(dir);
  const fail = (why: string): never => {
    throw new FinetuneOptionsError(`--${flag}: cannot write to ${abs}: ${why}`);
  };
  // Made one level at a time (Node's recursive mkdir can spin on pseudo file systems such as /proc).
  const missing: string[] = [];
  let p = abs;
  while (!fs.existsSync(p)) {
    missing.unshift(p);
    const up = path.dirname(p);
    if (up === p) break;
    p = up;
  }
  if (fs.existsSync(p) && !fs.statSync(p).isDirectory()) fail(`${p} is not a directory`);
  try {
    for (const m of missing) {
      try {
        fs.mkdirSync(m);
      } catch (e) {
        // Another process (a second rank under mood launch) made it first: fine if it is a directory.
        if ((e as NodeJS.ErrnoException).code !== 'EEXIST' || !fs.statSync(m).isDirectory()) throw e;
      }
    }
    const probe = path.join(abs, `.mood-write-test-${process.pid}`);
    fs.writeFileSync(probe, '');
    fs.unlinkSync(probe);
  } catch (e) {
    fail((e as NodeJS.ErrnoException).code ?? (e as Error).message);
  }
}

/** Model keyword options from the flags (the reference passes these to create_model). */
export function modelOverrides(o: FinetuneOptions, numClasses: number): Partial<BeitOptions> {
  const d = FINETUNE_DEFAULTS;
  return {
    img_size: o.inputSize ?? d.inputSize,
    num_classes: numClasses,
    drop_rate: o.drop ?? d.drop,
    attn_drop_rate: o.attnDropRate ?? d.attnDropRate,
    drop_path_rate: o.dropPath ?? d.dropPath,
    use_mean_pooling: o.useMeanPooling ?? d.useMeanPooling,
    init_scale: o.initScale ?? d.initScale,
    use_rel_pos_bias: o.relPosBias ?? d.relPosBias,
    use_abs_pos_emb: o.absPosEmb ?? d.absPosEmb,
    init_values: o.layerScaleInitValue ?? d.layerScaleInitValue,
    ...(o.device ? { device: o.device as BeitOptions['device'] } : {}),
    ...(o.modelOpts ?? {}),
  };
}

/**
 * The training loader's options: the reference's training transform (crop/flip, --aa, --reprob,
 * mixup), or with `augment: false` the evaluation transform over the same seeded shuffle.
 */
export function trainLoaderOptions(o: FinetuneOptions, common: Omit<LoaderOptions, 'train'>, mixup?: MixupOptions): LoaderOptions {
  const d = FINETUNE_DEFAULTS;
  const order = { shuffle: true, dropLast: true, seed: o.seed ?? d.seed };
  if (o.augment === false) return { ...common, ...order, train: false };
  return {
    ...common,
    ...order,
    train: true,
    reprob: o.reprob ?? d.reprob,
    autoAugment: (o.aa ?? d.aa) === 'none' || o.aa === '' ? undefined : o.aa ?? d.aa,
    mixup,
  };
}

/** Fine-tunes (or with `eval`, evaluates) as run_class_finetuning.py does. */
export async function finetune(o: FinetuneOptions): Promise<FinetuneResult> {
  const { beitConfigNames, createModel, Beit: BeitClass } = await import('../models/beit');
  validateFinetuneOptions(o, beitConfigNames());
  const { buildDataset, createLoader } = await import('../data');
  const { Trainer } = await import('./trainer');
  const d = FINETUNE_DEFAULTS;
  const trainSet = await buildDataset({ dataSet: o.dataSet, dataPath: o.dataPath, train: true, classIdx: o.classIdx });
  const testSet = await buildDataset({ dataSet: o.dataSet, dataPath: o.dataPath, train: false, classIdx: o.classIdx });
  // One-class: the reference evaluates the ID class's test images only (build_dataset filters both splits).
  const valSet = o.classIdx === undefined ? testSet : classOnly(testSet, o.classIdx);
  const numClasses = o.nbClasses ?? trainSet.classes.length;
  if (numClasses < trainSet.classes.length) {
    throw new FinetuneOptionsError(`--nb_classes ${numClasses} is smaller than the ${trainSet.classes.length} classes of ${o.dataSet}`);
  }
  const overrides = modelOverrides(o, numClasses);
  let model: Beit;
  if (o.finetune) {
    const { num_classes, img_size, ...rest } = overrides;
    model = await BeitClass.fromCheckpoint(o.finetune, { config: o.model, ...rest, num_classes, img_size });
  } else {
    model = createModel(o.model, { ...overrides, seed: o.seed ?? d.seed });
  }
  const loaders: DataLoader[] = [];
  try {
    const inputSize = model.options.img_size;
    const batchSize = o.batchSize ?? d.batchSize;
    const mixupOn = (o.mixup ?? d.mixup) > 0 || (o.cutmix ?? d.cutmix) > 0 || o.cutmixMinmax !== undefined;
    const mixup: MixupOptions | undefined = mixupOn
      ? {
          mixup: o.mixup ?? d.mixup,
          cutmix: o.cutmix ?? d.cutmix,
          cutmixMinmax: o.cutmixMinmax,
          mixupProb: o.mixupProb ?? d.mixupProb,
          mixupSwitchProb: o.mixupSwitchProb ?? d.mixupSwitchProb,
          mixupMode: o.mixupMode ?? d.mixupMode,
          smoothing: o.smoothing ?? d.smoothing,
          numClasses,
        }
      : undefined;
    const common = { inputSize, rank: o.rank, worldSize: o.worldSize, workers: o.workers, device: o.device, imagenetDefaultMeanAndStd: o.imagenetDefaultMeanAndStd };
    // Every rank evaluates the whole test split, as the reference without --dist_eval (SequentialSampler):
    // a sharded loader would report rank 0's half as the accuracy.
    const val = createLoader(valSet, { ...common, rank: undefined, worldSize: undefined, batchSize: Math.floor(1.5 * batchSize), train: false, shuffle: false, dropLast: false });
    loaders.push(val);
    const trainerArgs = argsRecord(o, numClasses);
    if (o.eval) {
      if (!o.finetune) {
        const { latestCheckpoint, loadTrainCheckpoint } = await import('./checkpoint');
        const file = o.resume ?? (o.outputDir ? latestCheckpoint(o.outputDir) : null);
        if (!file) throw new FinetuneOptionsError(`--eval: no checkpoint-*.pth in ${o.outputDir}`);
        await loadTrainCheckpoint(file, model);
      }
      const { evaluateModel } = await import('./trainer');
      const evaluation = await evaluateModel(model, val);
      return { history: [], losses: [], evaluation, startEpoch: 0 };
    }
    const train = createLoader(trainSet, trainLoaderOptions(o, { ...common, batchSize }, mixup));
    loaders.push(train);
    const topts: TrainerOptions = {
      model,
      train,
      val,
      epochs: o.epochs ?? d.epochs,
      optimizer: {
        lr: o.lr ?? d.lr,
        weightDecay: o.weightDecay ?? d.weightDecay,
        eps: o.optEps ?? d.optEps,
        betas: o.optBetas,
        layerDecay: o.layerDecay ?? d.layerDecay,
        disableWeightDecayOnRelPosBias: o.disableWeightDecayOnRelPosBias,
        freezeBackbone: o.freezeBackbone,
        clipGrad: o.clipGrad,
        smoothing: mixupOn ? 0 : o.smoothing ?? d.smoothing,
        updateFreq: o.updateFreq ?? d.updateFreq,
        l2Alpha: o.l2Alpha,
        l2Beta: o.l2Beta,
        emaDecay: o.modelEma ? o.modelEmaDecay ?? d.modelEmaDecay : undefined,
      },
      minLr: o.minLr ?? d.minLr,
      warmupLr: o.warmupLr ?? d.warmupLr,
      warmupEpochs: o.warmupEpochs ?? d.warmupEpochs,
      warmupSteps: o.warmupSteps ?? d.warmupSteps,
      weightDecayEnd: o.weightDecayEnd,
      seed: o.seed ?? d.seed,
      outputDir: o.outputDir,
      saveCkptFreq: (o.saveCkpt ?? d.saveCkpt) ? o.saveCkptFreq ?? d.saveCkptFreq : 0,
      resume: o.resume,
      autoResume: o.autoResume ?? d.autoResume,
      args: trainerArgs,
      gradSyncId: o.gradSyncId,
      rank: o.rank,
      progress: o.progress,
      ...(o.logDir ? { tensorboard: { logDir: o.logDir, cadence: 'finetune' as const } } : {}),
    };
    if (o.beforeTrain) await o.beforeTrain(model);
    const trainer = new Trainer({ ...topts, sinks: o.sinks });
    if (o.onEpoch) trainer.on('epoch', o.onEpoch);
    if (o.onStep) trainer.on('step', o.onStep);
    try {
      const r = await trainer.fit();
      return { checkpoint: r.checkpoint, history: r.history, losses: r.losses, maxAccuracy: r.maxAccuracy, startEpoch: r.startEpoch };
    } finally {
      trainer.dispose();
    }
  } finally {
    for (const l of loaders) (l as { dispose?: () => void }).dispose?.();
    disposeDataset(trainSet);
    disposeDataset(testSet);
    model.dispose();
  }
}

/** The samples of class `c` (a view sharing the data set's storage: dispose the data set, not this). */
function classOnly(ds: ImageDataset, c: number): ImageDataset {
  const subset = (ds as { subset?: (indices: Int32Array) => ImageDataset }).subset;
  if (!subset) throw new FinetuneOptionsError(`--class_idx: the ${ds.name} test split cannot be filtered to one class`);
  const idx: number[] = [];
  ds.targets.forEach((t, i) => t === c && idx.push(i));
  if (idx.length === 0) throw new FinetuneOptionsError(`--class_idx ${c}: the ${ds.name} test split has no image of that class`);
  return subset.call(ds, Int32Array.from(idx));
}

function disposeDataset(d: ImageDataset): void {
  (d as { dispose?: () => void }).dispose?.();
}

/** The options as the checkpoint's 'args' (reference flag names, plain values). */
function argsRecord(o: FinetuneOptions, nbClasses: number): Record<string, unknown> {
  const out: Record<string, unknown> = { nb_classes: nbClasses };
  for (const [k, v] of Object.entries(o)) {
    if (typeof v === 'function' || v === undefined) continue;
    out[k.replace(/[A-Z]/g, (c) => `_${c.toLowerCase()}`)] = v;
  }
  return out;
}
