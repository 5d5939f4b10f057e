/**
 * `mood pretrain` (the reference's run_beit_pretraining.py): the MIM model, its data (the BEiT
 * pre-training transform, seeded shuffle, drop_last) and blockwise masks, run by lib/train's Trainer
 * with the MIM step (step.ts): per-step cosine lr / wd schedules, checkpoints with the AdamW moments,
 * auto-resume, log.txt, and the process group under `mood launch`.
 */
import type { DataLoader, ImageDataset } from '../data/types';
import type { EpochLog, TrainingSink } from '../train/sinks';
import { MaskingGenerator } from './masking';
import { MimModel, MimOptions, mimConfig } from './model';
import { MimStep } from './step';
import type { TokenTargets } from './targets';

export { latestCheckpoint } from '../train/checkpoint';

export type VaeType = 'dall-e' | 'customized' | 'pixel';

export interface PretrainOptions {
  model: string;
  /** Extra constructor options over the named config (e.g. {img_size: 28, patch_size: 4}). */
  modelOpts?: MimOptions;
  dataSet: string;
  dataPath?: string;
  /** One-class: pre-train on one class's training images only. */
  classIdx?: number;
  discreteVaeType: VaeType;
  discreteVaeWeightPath?: string;
  /** Token targets (dall-e): DataAugmentationForBEiT's --train_interpolation, --second_interpolation, --color_jitter. */
  trainInterpolation?: string;
  secondInterpolation?: string;
  colorJitter?: number;
  numMaskPatches: number;
  maxMaskPatchesPerBlock?: number | null;
  minMaskPatchesPerBlock: number;
  inputSize: number;
  secondInputSize: number;
  batchSize: number;
  epochs: number;
  saveCkptFreq: number;
  lr: number;
  warmupLr: number;
  minLr: number;
  warmupEpochs: number;
  warmupSteps: number;
  weightDecay: number;
  weightDecayEnd?: number;
  optBetas: [number, number];
  optEps: number;
  clipGrad?: number;
  layerScaleInitValue: number;
  relPosBias: boolean;
  absPosEmb: boolean;
  dropPath: number;
  imagenetDefaultMeanAndStd: boolean;
  outputDir?: string;
  /** TensorBoard event files here (the reference's --log_dir; rank 0), in run_beit_pretraining.py's tags and cadence. */
  logDir?: string;
  seed: number;
  resume?: string;
  autoResume: boolean;
  startEpoch: number;
  numWorkers?: number;
  device: string;
  /** Stop after this many optimisation steps in this run (a time budget for demos); 0 = no limit. */
  maxSteps?: number;
  quiet?: boolean;
  /** More training sinks (rank 0), next to progress and log.txt. */
  sinks?: TrainingSink[];
}

/** One line of log.txt (the reference's keys; train_mlm_acc with token targets). */
export type EpochStats = EpochLog;

export class PretrainError extends Error {}

/** Model options: named config + the script's flags (+ explicit --model_opts last); token targets take the tokenizer's vocabulary. */
export function modelOptions(o: PretrainOptions, tokens?: Pick<TokenTargets, 'vocabSize'>): MimOptions {
  if (o.discreteVaeType !== 'pixel' && !tokens) throw new PretrainError(`--discrete_vae_type ${o.discreteVaeType}: no tokenizer was opened (lib/pretrain/targets.ts)`);
  const base = mimConfig(o.model);
  const opts: MimOptions = {
    ...base,
    img_size: o.inputSize,
    use_shared_rel_pos_bias: o.relPosBias,
    use_abs_pos_emb: o.absPosEmb,
    init_values: o.layerScaleInitValue,
    drop_path_rate: o.dropPath,
    target: tokens ? 'tokens' : 'pixels',
    ...(tokens ? { vocab_size: tokens.vocabSize } : {}),
    seed: o.seed,
    device: o.device as MimOptions['device'],
    ...(o.modelOpts ?? {}),
  };
  if (tokens && opts.vocab_size !== tokens.vocabSize) throw new PretrainError(`--model_opts vocab_size ${opts.vocab_size} contradicts the tokenizer's vocabulary of ${tokens.vocabSize}`);
  return opts;
}

export interface PretrainResult {
  epochs: EpochStats[];
  /** The last checkpoint written, or the one resumed from when nothing was left to train. */
  lastCheckpoint?: string;
  /** Optimisation steps this run. */
  steps: number;
}

/** The run's stderr lines: what it trains on, resumes, and each epoch's loss. */
function pretrainLog(log: (line: string) => void): TrainingSink {
  return {
    resume: (e) => log(`pretrain: resumed from ${e.file} (next epoch ${e.startEpoch})`),
    epoch: (s) => log(`pretrain: epoch ${s.epoch} loss ${s.train_loss.toFixed(4)}${s.train_mlm_acc !== undefined ? ` mlm_acc ${s.train_mlm_acc.toFixed(4)}` : ''} lr ${s.train_lr.toExponential(3)}`),
  };
}

export async function runPretrain(o: PretrainOptions, log: (line: string) => void = (l) => process.stderr.write(l + '\n')): Promise<PretrainResult> {
  const tokens = await (await import('./targets')).openTokenTargets(o);
  try {
    return await pretrainWith(o, tokens, log);
  } finally {
    tokens?.dispose();
  }
}

async function pretrainWith(o: PretrainOptions, tokens: TokenTargets | undefined, log: (line: string) => void): Promise<PretrainResult> {
  const mopts = modelOptions(o, tokens);
  const { buildDataset, createLoader } = await import('../data');
  const { Trainer } = await import('../train/trainer');
  const dataset: ImageDataset = await buildDataset({ dataSet: o.dataSet, dataPath: o.dataPath, train: true, classIdx: o.classIdx });
  // Under `mood launch` (RANK / WORLD_SIZE set): one process group, sharded sampling, averaged gradients.
  const { initFromEnv } = await import('../distributed');
  const pg = await initFromEnv();
  const rank = pg?.rank ?? 0;
  const world = pg?.worldSize ?? 1;
  let sync: { id: number; release(): void } | undefined;
  const model = new MimModel(mopts);
  try {
    const grid = model.grid;
    tokens?.checkGrid(grid, model.options.patch_size);
    const masking = new MaskingGenerator({
      height: grid,
      width: grid,
      numMaskingPatches: o.numMaskPatches,
      minNumPatches: o.minMaskPatchesPerBlock,
      maxNumPatches: o.maxMaskPatchesPerBlock ?? null,
    });
    const loader: DataLoader = createLoader(dataset, {
      batchSize: o.batchSize,
      train: true,
      inputSize: o.inputSize,
      shuffle: true,
      dropLast: true,
      seed: o.seed,
      reprob: 0,  // the BEiT pre-training transform has no random erasing
      imagenetDefaultMeanAndStd: o.imagenetDefaultMeanAndStd,
      workers: o.numWorkers,
      device: o.device,
      rank,
      worldSize: world,
      ...tokens?.loaderOptions(),
    });
    const stepsPerEpoch = loader.numBatches;
    if (stepsPerEpoch === 0) throw new PretrainError(`--batch_size ${o.batchSize} is larger than the ${dataset.length} training images of ${o.dataSet}: no full batch (drop_last)`);
    if (pg && world > 1) sync = pg.createGradientSync();
    const step = new MimStep(model, {
      masking, seed: o.seed, clipGrad: o.clipGrad, betas: o.optBetas, eps: o.optEps, gradSyncId: sync?.id,
      ...(tokens ? { tokens: async (b) => tokens.targets(b) } : {}),
    });
    const targetKind = tokens ? `${tokens.vocabSize}-token dall-e targets from ${tokens.encoder.source?.file}` : `${mopts.target} targets`;
    if (rank === 0) log(`pretrain: ${o.model} (${step.numParameters()} parameters, ${targetKind}), ${dataset.name}${o.classIdx !== undefined ? ` class ${o.classIdx}` : ''}: ${dataset.length} images, ${stepsPerEpoch} steps/epoch, mask ${masking}`);
    const { sinks, ...flags } = o;
    const trainer = new Trainer({
      model,
      step,
      train: loader,
      epochs: o.epochs,
      lr: o.lr,
      minLr: o.minLr,
      warmupLr: o.warmupLr,
      warmupEpochs: o.warmupEpochs,
      warmupSteps: o.warmupSteps,
      weightDecay: o.weightDecay,
      weightDecayEnd: o.weightDecayEnd,
      seed: o.seed,
      outputDir: o.outputDir,
      ...(o.logDir ? { tensorboard: { logDir: o.logDir, cadence: 'pretrain' as const } } : {}),
      saveCkptFreq: o.saveCkptFreq,
      resume: o.resume,
      autoResume: o.autoResume,
      startEpoch: o.startEpoch,
      maxSteps: o.maxSteps,
      args: { ...flags, modelOpts: mopts },
      rank,
      progress: !o.quiet,
      label: (e) => `pretrain epoch ${e}`,
      sinks: [pretrainLog(log), ...(sinks ?? [])],
      // every rank starts from rank 0's weights (fresh or resumed)
      beforeTrain: pg && world > 1 ? () => pg.broadcastModel(model) : undefined,
    });
    const r = await trainer.fit();
    if (rank === 0 && o.maxSteps && r.steps >= o.maxSteps) log(`pretrain: stopped after --max_steps ${o.maxSteps}`);
    if (pg && world > 1) await pg.barrier();  // rank 0's checkpoint is complete before anyone exits
    return { epochs: r.history, lastCheckpoint: r.checkpoint, steps: r.steps };
  } finally {
    sync?.release();
    model.dispose();
    await pg?.destroy();
  }
}
