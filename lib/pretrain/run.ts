/**
 * The pre-training loop of `mood pretrain` (the reference's run_beit_pretraining.py +
 * engine_for_pretraining.train_one_epoch): per-step cosine lr / wd schedules, one native AdamW step per
 * batch with blockwise masks from the seeded plan, checkpoints (atomic) with optimizer moments for
 * resume, and one JSON line per epoch in <output_dir>/log.txt.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { MaskingGenerator, batchMasks } from './masking';
import { MimModel, MimOptions, mimConfig } from './model';
import { Tensor } from '../tensor';
import { Progress } from '../util/progress';
import { cosineScheduler } from '../train/schedule';
import type { Batch, DataLoader, ImageDataset } from '../data/types';
import type { TokenTargets } from './targets';

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
  seed: number;
  resume?: string;
  autoResume: boolean;
  startEpoch: number;
  numWorkers?: number;
  device: string;
  /** Stop after this many optimisation steps in this run (a time budget for demos); 0 = no limit. */
  maxSteps?: number;
  quiet?: boolean;
}

export interface EpochStats {
  train_loss: number;
  train_mlm_acc?: number;
  train_lr: number;
  train_min_lr: number;
  train_weight_decay: number;
  train_grad_norm: number;
  epoch: number;
  n_parameters: number;
}

export class PretrainError extends Error {}

/** The reference's checkpoint names: checkpoint-<epoch>.pth; auto-resume takes the highest epoch. */
export function latestCheckpoint(dir: string): string | undefined {
  if (!fs.existsSync(dir)) return undefined;
  let best = -1;
  for (const f of fs.readdirSync(dir)) {
    const m = /^checkpoint-(\d+)\.pth$/.exec(f);
    if (m && Number(m[1]) > best) best = Number(m[1]);
  }
  return best >= 0 ? path.join(dir, `checkpoint-${best}.pth`) : undefined;
}

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

interface Resumed {
  epoch: number;
}

async function loadCheckpoint(file: string, model: MimModel): Promise<Resumed> {
  const { readCheckpoint, loadTensors, PyDict } = await import('../checkpoint');
  const ckpt = readCheckpoint(file);
  const root = ckpt.root;
  if (!(root instanceof PyDict) || !root.has('model')) throw new PretrainError(`--resume ${file}: not a pre-training checkpoint (no 'model' entry)`);
  const sd = await loadTensors(ckpt, { key: 'model' });
  try {
    const r = await model.loadStateDict(sd, { strict: false });
    const missing = r.missingKeys;
    if (missing.length) throw new PretrainError(`--resume ${file}: the checkpoint lacks ${missing.length} model tensors (${missing.slice(0, 5).join(', ')}${missing.length > 5 ? ', ...' : ''})`);
  } finally {
    for (const t of sd.values()) t.dispose();
  }
  const epochV = root.get('epoch');
  const epoch = typeof epochV === 'number' ? epochV : typeof epochV === 'bigint' ? Number(epochV) : -1;
  const opt = root.get('optimizer');
  if (opt instanceof PyDict && opt.has('exp_avg')) {
    const all = await loadTensors(ckpt, { key: 'optimizer' });
    try {
      const m = new Map<string, [Tensor, Tensor]>();
      for (const [k, t] of all) {
        if (!k.startsWith('exp_avg.')) continue;
        const name = k.slice('exp_avg.'.length);
        const t2 = all.get(`exp_avg_sq.${name}`);
        if (!t2) throw new PretrainError(`--resume ${file}: optimizer.exp_avg_sq lacks ${name}`);
        m.set(name, [t, t2]);
      }
      const steps = Number(opt.get('steps') ?? 0);
      await model.loadMoments(m, steps);
    } finally {
      for (const t of all.values()) t.dispose();
    }
  }
  return { epoch };
}

async function saveCheckpoint(file: string, model: MimModel, epoch: number, args: Record<string, unknown>): Promise<void> {
  const { saveTensors } = await import('../checkpoint');
  const sd = model.stateDict();
  const mo = model.moments();
  const expAvg: Record<string, Tensor> = {}, expAvgSq: Record<string, Tensor> = {};
  for (const [k, [a, b]] of mo.moments) {
    expAvg[k] = a;
    expAvgSq[k] = b;
  }
  try {
    // saveTensors writes atomically (temp file + rename): a crash never leaves half a checkpoint.
    await saveTensors(file, {
      model: sd,
      optimizer: { steps: mo.steps, exp_avg: expAvg, exp_avg_sq: expAvgSq },
      epoch,
      args: JSON.parse(JSON.stringify(args)) as Record<string, unknown>,
    }, { orderedDicts: true });
  } finally {
    for (const t of [...sd.values(), ...Object.values(expAvg), ...Object.values(expAvgSq)]) t.dispose();
  }
}

function parameterCount(model: MimModel): number {
  return model.stateSpec().filter((e) => e[3] === 'parameter').reduce((n, e) => n + e[1].reduce((a, b) => a * b, 1), 0);
}

export interface PretrainResult {
  epochs: EpochStats[];
  lastCheckpoint?: string;
  steps: number;
}

export interface EpochRun {
  sumLoss: number;
  sumAcc: number;
  n: number;
  lastGrad: number;
  lr: number;
  wd: number;
  steps: number;
  /** maxSteps reached inside the epoch. */
  stopped: boolean;
}

/**
 * One epoch of masked-image-modeling steps: the loader's batches, blockwise masks drawn per sample
 * from (seed, epoch, dataset index), per-step lr / wd from the schedules (indexed by global step).
 */
export async function mimEpoch(
  model: MimModel,
  loader: DataLoader,
  masking: MaskingGenerator,
  epoch: number,
  o: {
    seed: number; lr: Float64Array; wd: Float64Array; clipGrad?: number; betas?: [number, number]; eps?: number; quiet?: boolean; maxSteps?: number; label?: string; gradSyncId?: number;
    /** Token targets of a batch (lib/pretrain/targets.ts); none: pixel targets. */
    targets?: (batch: Batch) => Tensor;
  },
): Promise<EpochRun> {
  const stepsPerEpoch = loader.numBatches;
  loader.setEpoch(epoch);
  const progress = new Progress({ label: o.label ?? `pretrain epoch ${epoch}`, total: stepsPerEpoch, unit: 'step', silent: o.quiet });
  const r: EpochRun = { sumLoss: 0, sumAcc: 0, n: 0, lastGrad: 0, lr: 0, wd: 0, steps: 0, stopped: false };
  for await (const batch of loader) {
    const it = epoch * stepsPerEpoch + r.steps;
    r.lr = o.lr[Math.min(it, o.lr.length - 1)];
    r.wd = o.wd[Math.min(it, o.wd.length - 1)];
    const mask = model.maskTensor(batchMasks(masking, o.seed, epoch, batch.indices), batch.indices.length);
    const target = o.targets?.(batch);
    try {
      const s = await model.step(batch.images, mask, target, { lr: r.lr, weightDecay: r.wd, clipGrad: o.clipGrad ?? 0, betas: o.betas, eps: o.eps, gradSyncId: o.gradSyncId });
      r.sumLoss += s.loss;
      if (Number.isFinite(s.accuracy)) r.sumAcc += s.accuracy;
      r.lastGrad = s.gradNorm;
      r.n++;
      progress.tick(1, `loss ${s.loss.toFixed(4)} lr ${r.lr.toExponential(2)}`);
    } finally {
      mask.dispose();
      target?.dispose();
      batch.images.dispose();
      batch.secondImages?.dispose();
      batch.softTargets?.dispose();
    }
    r.steps++;
    if (o.maxSteps && r.steps >= o.maxSteps) {
      r.stopped = true;
      break;
    }
  }
  progress.finish();
  return r;
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
  const dataset: ImageDataset = await buildDataset({ dataSet: o.dataSet, dataPath: o.dataPath, train: true, classIdx: o.classIdx });
  // Under `mood launch` (RANK / WORLD_SIZE set): one process group, sharded sampling, averaged gradients.
  const { initFromEnv } = await import('../distributed');
  const pg = await initFromEnv();
  const rank = pg?.rank ?? 0;
  const world = pg?.worldSize ?? 1;
  const main = rank === 0;
  if (!main) log = () => {};
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
    const lrSchedule = cosineScheduler({ baseValue: o.lr, finalValue: o.minLr, epochs: o.epochs, stepsPerEpoch, warmupEpochs: o.warmupEpochs, startWarmupValue: o.warmupLr, warmupSteps: o.warmupSteps });
    const wdSchedule = cosineScheduler({ baseValue: o.weightDecay, finalValue: o.weightDecayEnd ?? o.weightDecay, epochs: o.epochs, stepsPerEpoch });
    const nParams = parameterCount(model);
    const targetKind = tokens ? `${tokens.vocabSize}-token dall-e targets from ${tokens.encoder.source?.file}` : `${mopts.target} targets`;
    log(`pretrain: ${o.model} (${nParams} parameters, ${targetKind}), ${dataset.name}${o.classIdx !== undefined ? ` class ${o.classIdx}` : ''}: ${dataset.length} images, ${stepsPerEpoch} steps/epoch, mask ${masking}`);

    let startEpoch = o.startEpoch;
    const resumeFrom = o.resume || (o.autoResume && o.outputDir ? latestCheckpoint(o.outputDir) : undefined);
    if (resumeFrom) {
      const r = await loadCheckpoint(resumeFrom, model);
      if (r.epoch >= 0) startEpoch = r.epoch + 1;
      log(`pretrain: resumed from ${resumeFrom} (next epoch ${startEpoch})`);
    }
    if (pg && world > 1) {
      await pg.broadcastModel(model);  // every rank starts from rank 0's weights (fresh or resumed)
      sync = pg.createGradientSync();
    }
    const saving = main ? o.outputDir : undefined;
    if (saving) fs.mkdirSync(saving, { recursive: true });
    const args = { ...o, modelOpts: mopts };

    const result: PretrainResult = { epochs: [], steps: 0 };
    let stepsDone = 0;
    model.train();
    for (let epoch = startEpoch; epoch < o.epochs; epoch++) {
      const ep = await mimEpoch(model, loader, masking, epoch, {
        seed: o.seed, lr: lrSchedule, wd: wdSchedule, clipGrad: o.clipGrad, betas: o.optBetas, eps: o.optEps, quiet: o.quiet || !main, gradSyncId: sync?.id,
        targets: tokens && ((b) => tokens.targets(b)),
        maxSteps: o.maxSteps ? o.maxSteps - stepsDone : 0,
      });
      stepsDone += ep.steps;
      const { sumLoss, sumAcc, n, lastGrad, lr, wd, stopped } = ep;
      const stats: EpochStats = {
        train_loss: n ? sumLoss / n : NaN,
        ...(mopts.target === 'tokens' ? { train_mlm_acc: n ? sumAcc / n : NaN } : {}),
        train_lr: lr,
        train_min_lr: lr,
        train_weight_decay: wd,
        train_grad_norm: lastGrad,
        epoch,
        n_parameters: nParams,
      };
      result.epochs.push(stats);
      if (saving) {
        if ((epoch + 1) % o.saveCkptFreq === 0 || epoch + 1 === o.epochs || stopped) {
          const file = path.join(saving, `checkpoint-${epoch}.pth`);
          await saveCheckpoint(file, model, epoch, args);
          result.lastCheckpoint = file;
        }
        fs.appendFileSync(path.join(saving, 'log.txt'), JSON.stringify(stats) + '\n');
      }
      log(`pretrain: epoch ${epoch} loss ${stats.train_loss.toFixed(4)}${stats.train_mlm_acc !== undefined ? ` mlm_acc ${stats.train_mlm_acc.toFixed(4)}` : ''} lr ${lr.toExponential(3)}`);
      if (stopped) {
        log(`pretrain: stopped after --max_steps ${o.maxSteps}`);
        break;
      }
    }
    result.steps = stepsDone;
    if (pg && world > 1) await pg.barrier();  // rank 0's checkpoint is complete before anyone exits
    return result;
  } finally {
    sync?.release();
    model.dispose();
    await pg?.destroy();
  }
}
