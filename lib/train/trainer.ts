/**
 * Trainer: the epoch loop of the reference fine-tuning (`run_class_finetuning.main` +
 * `engine_for_finetuning.train_one_epoch` / `evaluate`). TypeScript decides what happens (schedules,
 * accumulation boundaries, logging, checkpoints); each micro-step is one native call.
 *
 * Exact resume: data order comes from the loader's (seed, epoch) shuffle, and every micro-step reseeds
 * the native generator from (seed, global iteration, micro index), so a run resumed from
 * checkpoint-<e>.pth repeats epochs e+1.. exactly as the uninterrupted run does.
 */
import { EventEmitter } from 'node:events';
import * as fs from 'node:fs';
import * as path from 'node:path';
import type { Beit } from '../models/beit';
import type { Batch, DataLoader } from '../data/types';
import { Progress } from '../util/progress';
import { FinetuneOptimizer, OptimizerOptions } from './optimizer';
import { cosineScheduler } from './schedule';
import { checkpointPath, latestCheckpoint, loadTrainCheckpoint, saveTrainCheckpoint } from './checkpoint';

export interface TrainerOptions {
  model: Beit;
  train: DataLoader;
  /** Evaluated after every epoch (acc@1, acc@5, loss) when given. */
  val?: DataLoader;
  epochs: number;
  /** AdamW, groups, loss and clipping settings; `lr` and `weightDecay` are the schedules' peaks. */
  optimizer: OptimizerOptions;
  minLr?: number;
  warmupLr?: number;
  warmupEpochs?: number;
  warmupSteps?: number;
  /** Final weight decay of the cosine wd schedule (default: weightDecay, i.e. constant). */
  weightDecayEnd?: number;
  /** Seed of the per-step generator (drop path, dropout). */
  seed?: number;
  outputDir?: string;
  /** Save checkpoint-<epoch>.pth every N epochs and after the last (default 1); 0: never. */
  saveCkptFreq?: number;
  /** Resume from this checkpoint file. */
  resume?: string;
  /** Resume from the latest checkpoint-N.pth in outputDir when `resume` is not given. */
  autoResume?: boolean;
  /** Saved in checkpoints as 'args' (the CLI passes its flags). */
  args?: Record<string, unknown>;
  /** Distributed: GradientSyncRegistry id of the process group's gradient sync. */
  gradSyncId?: number;
  /** Only rank 0 writes files and logs. */
  rank?: number;
  /** Progress bar / log lines on stderr (default true on rank 0). */
  progress?: boolean;
}

export interface StepEvent {
  epoch: number;
  /** Optimizer step within the epoch. */
  step: number;
  /** Global optimizer iteration (the schedules' index). */
  it: number;
  loss: number;
  lr: number;
  minLr: number;
  weightDecay: number;
  gradNorm: number;
}

export interface EvalStats {
  acc1: number;
  acc5: number;
  loss: number;
  n: number;
}

export interface EpochLog {
  epoch: number;
  train_loss: number;
  train_lr: number;
  train_min_lr: number;
  train_weight_decay: number;
  train_grad_norm: number;
  test_acc1?: number;
  test_acc5?: number;
  test_loss?: number;
  n_parameters: number;
  seconds: number;
}

export interface FitResult {
  history: EpochLog[];
  /** Per optimizer step, in order (this run only). */
  losses: number[];
  /** The last checkpoint written (undefined when none). */
  checkpoint?: string;
  maxAccuracy?: number;
  startEpoch: number;
}

export class TrainingDivergedError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'TrainingDivergedError';
  }
}

interface TrainerEvents {
  step: [StepEvent];
  epoch: [EpochLog];
  checkpoint: [string];
  resume: [{ file: string; startEpoch: number }];
}

/** A 31-bit seed per (seed, iteration, micro-step), stable across resumes. */
export function stepSeed(seed: number, it: number, micro: number): number {
  let h = (seed ^ 0x9e3779b9) >>> 0;
  for (const v of [it, micro]) {
    h = Math.imul(h ^ v, 0x85ebca6b) >>> 0;
    h = (h ^ (h >>> 13)) >>> 0;
    h = Math.imul(h, 0xc2b2ae35) >>> 0;
    h = (h ^ (h >>> 16)) >>> 0;
  }
  return h & 0x7fffffff;
}

export class Trainer extends EventEmitter<TrainerEvents> {
  readonly options: TrainerOptions;
  private optimizer: FinetuneOptimizer | null = null;
  readonly updateFreq: number;
  readonly stepsPerEpoch: number;
  readonly lrSchedule: Float64Array;
  readonly wdSchedule: Float64Array;

  constructor(options: TrainerOptions) {
    super();
    this.options = options;
    const o = options;
    if (!Number.isInteger(o.epochs) || o.epochs < 1) throw new RangeError(`Trainer: epochs must be a positive integer, got ${o.epochs}`);
    this.updateFreq = o.optimizer.updateFreq ?? 1;
    if (!Number.isInteger(this.updateFreq) || this.updateFreq < 1) throw new RangeError(`Trainer: updateFreq must be an integer >= 1, got ${this.updateFreq}`);
    this.stepsPerEpoch = Math.floor(o.train.numBatches / this.updateFreq);
    if (this.stepsPerEpoch < 1) {
      throw new RangeError(`Trainer: the training loader gives ${o.train.numBatches} batches per epoch, fewer than update_freq ${this.updateFreq}: no optimizer step would run`);
    }
    this.lrSchedule = cosineScheduler({
      baseValue: o.optimizer.lr,
      finalValue: o.minLr ?? 1e-6,
      epochs: o.epochs,
      stepsPerEpoch: this.stepsPerEpoch,
      warmupEpochs: o.warmupEpochs ?? 0,
      startWarmupValue: o.warmupLr ?? 0,
      warmupSteps: o.warmupSteps ?? -1,
    });
    const wd = o.optimizer.weightDecay;
    this.wdSchedule = cosineScheduler({ baseValue: wd, finalValue: o.weightDecayEnd ?? wd, epochs: o.epochs, stepsPerEpoch: this.stepsPerEpoch });
  }

  private get isMain(): boolean {
    return (this.options.rank ?? 0) === 0;
  }

  /** Builds the optimizer (after the model's weights are final: L2-SP and EMA snapshot them). */
  async init(): Promise<FinetuneOptimizer> {
    if (!this.optimizer) this.optimizer = await FinetuneOptimizer.create(this.options.model, { ...this.options.optimizer, gradSyncId: this.options.gradSyncId ?? this.options.optimizer.gradSyncId });
    return this.optimizer;
  }

  get numTrainableParameters(): number {
    const names = new Set(this.optimizer?.paramNames ?? []);
    return this.options.model
      .stateSpec()
      .filter(([n, , , kind]) => kind === 'parameter' && names.has(n))
      .reduce((a, [, s]) => a + s.reduce((x, y) => x * y, 1), 0);
  }

  /** Trains epochs [start, epochs); evaluates and checkpoints as configured. */
  async fit(): Promise<FitResult> {
    const o = this.options;
    const opt = await this.init();
    let startEpoch = 0;
    let resume = o.resume;
    if (!resume && o.autoResume && o.outputDir) resume = latestCheckpoint(o.outputDir) ?? undefined;
    if (resume) {
      const info = await loadTrainCheckpoint(resume, o.model, opt);
      if (info.startEpoch !== undefined) startEpoch = info.startEpoch;
      this.emit('resume', { file: resume, startEpoch });
    }
    if (o.outputDir && this.isMain) fs.mkdirSync(o.outputDir, { recursive: true });
    const history: EpochLog[] = [];
    const losses: number[] = [];
    let lastCkpt: string | undefined;
    let maxAccuracy: number | undefined;
    const nParams = this.numTrainableParameters;
    for (let epoch = startEpoch; epoch < o.epochs; epoch++) {
      const t0 = Date.now();
      const train = await this.trainOneEpoch(epoch, losses);
      const log: EpochLog = { epoch, ...train, n_parameters: nParams, seconds: (Date.now() - t0) / 1000 };
      const freq = o.saveCkptFreq ?? 1;
      if (o.outputDir && this.isMain && freq > 0 && ((epoch + 1) % freq === 0 || epoch + 1 === o.epochs)) {
        lastCkpt = await saveTrainCheckpoint(checkpointPath(o.outputDir, epoch), { model: o.model, optimizer: opt, epoch, args: o.args ?? {} });
        this.emit('checkpoint', lastCkpt);
      }
      if (o.val) {
        const s = await this.evaluate(o.val);
        log.test_acc1 = s.acc1;
        log.test_acc5 = s.acc5;
        log.test_loss = s.loss;
        if (maxAccuracy === undefined || s.acc1 > maxAccuracy) {
          maxAccuracy = s.acc1;
          if (o.outputDir && this.isMain && freq > 0) {
            const best = await saveTrainCheckpoint(checkpointPath(o.outputDir, 'best'), { model: o.model, optimizer: opt, epoch: 'best', args: o.args ?? {} });
            this.emit('checkpoint', best);
          }
        }
      }
      log.seconds = (Date.now() - t0) / 1000;
      history.push(log);
      if (o.outputDir && this.isMain) fs.appendFileSync(path.join(o.outputDir, 'log.txt'), JSON.stringify(log) + '\n');
      this.emit('epoch', log);
    }
    return { history, losses, checkpoint: lastCkpt, maxAccuracy, startEpoch };
  }

  private async trainOneEpoch(epoch: number, losses: number[]): Promise<Pick<EpochLog, 'train_loss' | 'train_lr' | 'train_min_lr' | 'train_weight_decay' | 'train_grad_norm'>> {
    const o = this.options;
    const opt = this.optimizer!;
    const uf = this.updateFreq;
    o.train.setEpoch(epoch);
    const progress = new Progress({ label: `epoch ${epoch}`, total: this.stepsPerEpoch, unit: 'step', silent: !(o.progress ?? this.isMain) });
    const sums = { loss: 0, lr: 0, minLr: 0, wd: 0, gn: 0, n: 0, ng: 0 };
    let i = 0;
    try {
      for await (const batch of o.train) {
        try {
          const step = Math.floor(i / uf);
          if (step >= this.stepsPerEpoch) continue;
          const it = epoch * this.stepsPerEpoch + step;
          const micro = i % uf;
          if (micro === 0) opt.setSchedule(this.lrSchedule[it], this.wdSchedule[it]);
          const r = opt.step(batch.images, batch.targets, { first: micro === 0, last: micro === uf - 1, softTargets: batch.softTargets, seed: stepSeed(o.seed ?? 0, it, micro) });
          let loss: number;
          let gn: number;
          try {
            loss = await r.loss.item();
            gn = await r.gradNorm.item();
          } finally {
            r.loss.dispose();
            r.gradNorm.dispose();
          }
          if (!Number.isFinite(loss)) {
            const keep = o.outputDir ? latestCheckpoint(o.outputDir) : null;
            throw new TrainingDivergedError(
              `Loss is ${loss} at epoch ${epoch}, step ${step} (iteration ${it}), stopping training; the weights were not updated by this step` +
                (keep ? ` and the last good checkpoint ${keep} is intact` : ''),
            );
          }
          sums.loss += loss;
          sums.n++;
          if (micro === uf - 1) {
            const lrs = opt.lrs;
            const ev: StepEvent = { epoch, step, it, loss, lr: Math.max(...lrs), minLr: Math.min(...lrs), weightDecay: Math.max(...opt.wds.filter((w) => w > 0), 0), gradNorm: gn };
            sums.lr += ev.lr;
            sums.minLr += ev.minLr;
            sums.wd += ev.weightDecay;
            sums.gn += gn;
            sums.ng++;
            losses.push(loss);
            this.emit('step', ev);
            progress.tick(1, `loss ${loss.toFixed(4)} lr ${ev.lr.toExponential(2)}`);
          }
        } finally {
          disposeBatch(batch);
          i++;
        }
      }
    } finally {
      progress.finish();
    }
    const avg = (x: number, n: number) => (n ? x / n : NaN);
    return {
      train_loss: avg(sums.loss, sums.n),
      train_lr: avg(sums.lr, sums.ng),
      train_min_lr: avg(sums.minLr, sums.ng),
      train_weight_decay: avg(sums.wd, sums.ng),
      train_grad_norm: avg(sums.gn, sums.ng),
    };
  }

  /** The reference's evaluate() on `loader` (see evaluateModel). */
  async evaluate(loader: DataLoader): Promise<EvalStats> {
    return evaluateModel(this.options.model, loader);
  }

  get optimizerInstance(): FinetuneOptimizer | null {
    return this.optimizer;
  }

  dispose(): void {
    this.optimizer?.dispose();
    this.optimizer = null;
  }
}

/**
 * The reference's evaluate(): eval mode, cross-entropy per batch (loss = mean of batch losses),
 * acc@1 / acc@5 in percent weighted by batch size (top-k capped at the class count, as timm).
 */
export async function evaluateModel(model: Beit, loader: DataLoader): Promise<EvalStats> {
  const wasTraining = model.training;
  model.eval();
  let lossSum = 0;
  let batches = 0;
  let c1 = 0;
  let c5 = 0;
  let n = 0;
  try {
    for await (const batch of loader) {
      try {
        const logits = model.forward(batch.images);
        let z: Float32Array | Float64Array;
        let k: number;
        try {
          z = (await logits.data()) as Float32Array | Float64Array;
          k = logits.shape[1];
        } finally {
          logits.dispose();
        }
        const s = scoreBatch(z, k, batch.targets);
        lossSum += s.loss;
        batches++;
        c1 += s.top1;
        c5 += s.top5;
        n += batch.targets.length;
      } finally {
        disposeBatch(batch);
      }
    }
  } finally {
    model.train(wasTraining);
  }
  return { acc1: n ? (100 * c1) / n : NaN, acc5: n ? (100 * c5) / n : NaN, loss: batches ? lossSum / batches : NaN, n };
}

/** Mean cross-entropy, top-1 and top-min(5, K) hits of one batch of logits (row-major [B, K]). */
export function scoreBatch(z: ArrayLike<number>, k: number, targets: Int32Array): { loss: number; top1: number; top5: number } {
  const b = targets.length;
  let loss = 0;
  let top1 = 0;
  let top5 = 0;
  const kk = Math.min(5, k);
  for (let i = 0; i < b; i++) {
    let mx = -Infinity;
    for (let j = 0; j < k; j++) mx = Math.max(mx, z[i * k + j]);
    let se = 0;
    for (let j = 0; j < k; j++) se += Math.exp(z[i * k + j] - mx);
    const t = targets[i];
    const zt = z[i * k + t];
    loss += mx + Math.log(se) - zt;
    // rank of the target: classes scoring strictly higher (ties resolved toward lower index, as topk)
    let higher = 0;
    for (let j = 0; j < k; j++) {
      const v = z[i * k + j];
      if (v > zt || (v === zt && j < t)) higher++;
    }
    if (higher < 1) top1++;
    if (higher < kk) top5++;
  }
  return { loss: loss / b, top1, top5 };
}

function disposeBatch(b: Batch): void {
  b.images.dispose();
  b.softTargets?.dispose();
}
