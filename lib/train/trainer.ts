/**
 * Trainer: the one training loop of mood-ood — the reference's `run_class_finetuning.main` /
 * `run_beit_pretraining.main` epoch loop with `train_one_epoch` (fine-tuning and pre-training share it)
 * and `evaluate`. It runs any TrainStep (step.ts: the fine-tuning step, lib/pretrain's MIM step):
 * per-step cosine lr / wd schedules, gradient accumulation, per-step seeds, the divergence check,
 * evaluation after each epoch (evaluateModel), checkpoints in one layout (checkpoint.ts) with
 * auto-resume, and what it reports goes to sinks (sinks.ts: progress, log.txt, anything attached).
 * TypeScript decides what happens; each micro-step is one native call.
 *
 * Exact resume: data order comes from the loader's (seed, epoch) shuffle, and every micro-step gets
 * the seed stepSeed(seed + rank, global iteration, micro index) (the reference seeds each rank with
 * seed + rank), so a run resumed from checkpoint-<e>.pth repeats epochs e+1.. exactly as the
 * uninterrupted run does.
 */
import { EventEmitter } from 'node:events';
import * as fs from 'node:fs';
import type { Beit } from '../models/beit';
import type { Batch, DataLoader } from '../data/types';
import type { OptimizerOptions } from './optimizer';
import { cosineScheduler } from './schedule';
import { checkpointPath, latestCheckpoint, loadTrainCheckpoint, saveTrainCheckpoint, type TrainableModel } from './checkpoint';
import { FinetuneStep, type TrainStep } from './step';
import { standardSinks, type TensorBoardOptions, type EpochLog, type EpochStart, type EvalStats, type MicroEvent, type ResumeEvent, type StepEvent, type TrainingSink } from './sinks';

export type { EpochLog, EvalStats, MicroEvent, StepEvent, TrainingSink } from './sinks';

export interface TrainerOptions<M extends TrainableModel = Beit> {
  model: M;
  /** The step to run; without it, the fine-tuning step over `model` (a Beit) with `optimizer`. */
  step?: TrainStep;
  /** Fine-tuning: AdamW, groups, loss and clipping settings; `lr` and `weightDecay` are the schedules' peaks. */
  optimizer?: OptimizerOptions;
  train: DataLoader;
  /** Evaluated after every epoch (acc@1, acc@5, loss) when given; the model must be a classifier. */
  val?: DataLoader;
  /**
   * A cheaper evaluation for some epochs (a sample of `val` for a learning curve): the loader to
   * evaluate after `epoch` instead of `val`, or undefined for `val`. Its accuracy is logged but never
   * counts as the best (max_accuracy, the 'best' checkpoint): only `val`'s results compare.
   */
  valSample?: (epoch: number) => DataLoader | undefined;
  epochs: number;
  /** Peak learning rate / weight decay of the schedules (default: the optimizer's). */
  lr?: number;
  weightDecay?: number;
  minLr?: number;
  warmupLr?: number;
  warmupEpochs?: number;
  warmupSteps?: number;
  /** Final weight decay of the cosine wd schedule (default: weightDecay, i.e. constant). */
  weightDecayEnd?: number;
  /** Micro-batches per optimizer step (default: the optimizer's updateFreq, else 1). */
  updateFreq?: number;
  /** Seed of the per-step generator (drop path, dropout). */
  seed?: number;
  outputDir?: string;
  /** Checkpoint file names: `<prefix>-<epoch>.pth` (default 'checkpoint', the reference's). */
  checkpointPrefix?: string;
  /** Save a checkpoint every N epochs and after the last (default 1); 0: never. */
  saveCkptFreq?: number;
  /** With evaluation: also save `<prefix>-best.pth` when test acc@1 improves (default true). */
  saveBest?: boolean;
  /** Resume from this checkpoint file. */
  resume?: string;
  /** Resume from the latest checkpoint in outputDir when `resume` is not given. */
  autoResume?: boolean;
  /** First epoch when no checkpoint says otherwise (the reference's --start_epoch). */
  startEpoch?: number;
  /** Stop after this many optimizer steps in this run, checkpointing the epoch there (0: no limit). */
  maxSteps?: number;
  /** Saved in checkpoints as 'args' (the CLI passes its flags). */
  args?: Record<string, unknown>;
  /** Distributed: GradientSyncRegistry id of the process group's gradient sync. */
  gradSyncId?: number;
  /** Only rank 0 writes files and reports to sinks. */
  rank?: number;
  /** Progress bar / log lines on stderr (default true). */
  progress?: boolean;
  /** log.txt in outputDir (default true). */
  logTxt?: boolean;
  /** TensorBoard event files in the reference's tags and cadence (the reference's --log_dir). */
  tensorboard?: TensorBoardOptions;
  /** Progress label of an epoch (default 'epoch <n>'). */
  label?: (epoch: number) => string;
  /** More sinks, after the standard ones (progress, log.txt). */
  sinks?: TrainingSink[];
  /** Called before every micro-step and before evaluation; throwing stops the run there (Ctrl-C). */
  checkInterrupt?: (epoch: number) => void;
  /** Runs once after any resume, before the first epoch (distributed: broadcast rank 0's weights). */
  beforeTrain?: () => Promise<void>;
}

export interface FitResult {
  history: EpochLog[];
  /** Per optimizer step, in order (this run only). */
  losses: number[];
  /** The last checkpoint written, or resumed from when this run wrote none (undefined: neither). */
  checkpoint?: string;
  /** Best test acc@1, including epochs before a resume (from the checkpoint). */
  maxAccuracy?: number;
  startEpoch: number;
  /** Optimizer steps this run. */
  steps: number;
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
  resume: [ResumeEvent];
  epochStart: [EpochStart];
  micro: [MicroEvent];
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

type EpochSums = { loss: number; n: number; lr: number; minLr: number; wd: number; gn: number; ng: number; metrics: Map<string, number>; steps: number };

export class Trainer<M extends TrainableModel = Beit> extends EventEmitter<TrainerEvents> {
  readonly options: TrainerOptions<M>;
  private step: TrainStep | null;
  private readonly ownStep: boolean;
  private readonly sinks: TrainingSink[];
  readonly updateFreq: number;
  readonly stepsPerEpoch: number;
  readonly lrSchedule: Float64Array;
  readonly wdSchedule: Float64Array;

  constructor(options: TrainerOptions<M>) {
    super();
    this.options = options;
    const o = options;
    if (!Number.isInteger(o.epochs) || o.epochs < 1) throw new RangeError(`Trainer: epochs must be a positive integer, got ${o.epochs}`);
    if (!o.step && !o.optimizer) throw new TypeError('Trainer: give a step, or optimizer options for the fine-tuning step');
    this.step = o.step ?? null;
    this.ownStep = !o.step;
    this.updateFreq = o.updateFreq ?? o.optimizer?.updateFreq ?? 1;
    if (!Number.isInteger(this.updateFreq) || this.updateFreq < 1) throw new RangeError(`Trainer: updateFreq must be an integer >= 1, got ${this.updateFreq}`);
    this.stepsPerEpoch = Math.floor(o.train.numBatches / this.updateFreq);
    if (this.stepsPerEpoch < 1) {
      throw new RangeError(`Trainer: the training loader gives ${o.train.numBatches} batches per epoch, fewer than update_freq ${this.updateFreq}: no optimizer step would run`);
    }
    const lr = o.lr ?? o.optimizer?.lr;
    const wd = o.weightDecay ?? o.optimizer?.weightDecay;
    if (lr === undefined || wd === undefined) throw new TypeError('Trainer: lr and weightDecay (the schedules\' peaks) are required');
    this.lrSchedule = cosineScheduler({
      baseValue: lr,
      finalValue: o.minLr ?? 1e-6,
      epochs: o.epochs,
      stepsPerEpoch: this.stepsPerEpoch,
      warmupEpochs: o.warmupEpochs ?? 0,
      startWarmupValue: o.warmupLr ?? 0,
      warmupSteps: o.warmupSteps ?? -1,
    });
    this.wdSchedule = cosineScheduler({ baseValue: wd, finalValue: o.weightDecayEnd ?? wd, epochs: o.epochs, stepsPerEpoch: this.stepsPerEpoch });
    // Rank 0 alone reports (and opens files: log.txt, the TensorBoard event file).
    this.sinks = this.isMain
      ? [...standardSinks({ outputDir: o.logTxt === false ? undefined : o.outputDir, progress: o.progress, label: o.label, tensorboard: o.tensorboard }), ...(o.sinks ?? [])]
      : [];
  }

  private get isMain(): boolean {
    return (this.options.rank ?? 0) === 0;
  }

  /** Builds the step (the fine-tuning optimizer: after the model's weights are final, as L2-SP and EMA snapshot them). */
  async init(): Promise<TrainStep> {
    if (!this.step) {
      const o = this.options;
      this.step = await FinetuneStep.create(o.model as unknown as Beit, { ...o.optimizer!, gradSyncId: o.gradSyncId ?? o.optimizer!.gradSyncId });
    }
    return this.step;
  }

  get numTrainableParameters(): number {
    return this.step?.numParameters() ?? 0;
  }

  /** Emits the event (every rank) and tells the sinks (rank 0). */
  private notify<K extends keyof TrainerEvents>(kind: K, e: TrainerEvents[K][0]): void {
    (this.emit as (k: K, v: TrainerEvents[K][0]) => boolean)(kind, e);
    for (const s of this.sinks) (s[kind] as ((v: TrainerEvents[K][0]) => void) | undefined)?.call(s, e);
  }

  private async saveCheckpoint(epoch: number | string, maxAccuracy?: number): Promise<string> {
    const o = this.options;
    const file = await saveTrainCheckpoint(checkpointPath(o.outputDir!, epoch, o.checkpointPrefix), { model: o.model, state: this.step!.state, epoch, args: o.args ?? {}, maxAccuracy });
    this.notify('checkpoint', file);
    return file;
  }

  /** Trains epochs [start, epochs); evaluates and checkpoints as configured. */
  async fit(): Promise<FitResult> {
    const o = this.options;
    const step = await this.init();
    try {
      let startEpoch = o.startEpoch ?? 0;
      let maxAccuracy: number | undefined;
      let lastCkpt: string | undefined;
      const resume = o.resume ?? (o.autoResume && o.outputDir ? latestCheckpoint(o.outputDir, o.checkpointPrefix) ?? undefined : undefined);
      if (resume) {
        const info = await loadTrainCheckpoint(resume, o.model, step.state);
        if (info.startEpoch !== undefined) startEpoch = info.startEpoch;
        maxAccuracy = info.maxAccuracy;
        lastCkpt = resume;
        this.notify('resume', { file: resume, startEpoch, restoredOptimizer: info.restoredOptimizer, maxAccuracy });
      }
      await o.beforeTrain?.();
      const saving = Boolean(o.outputDir) && this.isMain;
      if (saving) fs.mkdirSync(o.outputDir!, { recursive: true });
      const freq = o.saveCkptFreq ?? 1;
      const history: EpochLog[] = [];
      const losses: number[] = [];
      const nParams = step.numParameters();
      let steps = 0;
      o.model.train(true);
      for (let epoch = startEpoch; epoch < o.epochs; epoch++) {
        const t0 = Date.now();
        const budget = o.maxSteps ? o.maxSteps - steps : Infinity;
        const sums = await this.trainOneEpoch(epoch, losses, budget);
        steps += sums.steps;
        const stopped = Boolean(o.maxSteps) && steps >= o.maxSteps!;
        const avg = (x: number, n: number) => (n ? x / n : NaN);
        const log = {
          train_loss: avg(sums.loss, sums.n),
          train_lr: avg(sums.lr, sums.ng),
          train_min_lr: avg(sums.minLr, sums.ng),
          train_weight_decay: avg(sums.wd, sums.ng),
          train_grad_norm: avg(sums.gn, sums.ng),
          ...Object.fromEntries([...sums.metrics].map(([k, v]) => [`train_${k}`, avg(v, sums.n)])),
        } as EpochLog;
        let improved = false;
        if (o.val) {
          o.checkInterrupt?.(epoch);
          const sample = o.valSample?.(epoch);
          const s = await this.evaluate(sample ?? o.val);
          Object.assign(log, { test_acc1: s.acc1, test_acc5: s.acc5, test_loss: s.loss });
          if (!sample) {
            improved = maxAccuracy === undefined || s.acc1 > maxAccuracy;
            if (improved) maxAccuracy = s.acc1;
          }
        }
        Object.assign(log, { epoch, n_parameters: nParams });
        if (saving && freq > 0) {
          if ((epoch + 1) % freq === 0 || epoch + 1 === o.epochs || stopped) lastCkpt = await this.saveCheckpoint(epoch, maxAccuracy);
          if (improved && o.saveBest !== false) await this.saveCheckpoint('best', maxAccuracy);
        }
        log.seconds = (Date.now() - t0) / 1000;
        history.push(log);
        this.notify('epoch', log);
        if (stopped) break;
      }
      return { history, losses, checkpoint: lastCkpt, maxAccuracy, startEpoch, steps };
    } finally {
      for (const s of this.sinks) await s.close?.();
    }
  }

  /** One epoch of optimizer steps (at most `budget`); the sums the epoch's log line averages. */
  private async trainOneEpoch(epoch: number, losses: number[], budget: number): Promise<EpochSums> {
    const o = this.options;
    const step = this.step!;
    const uf = this.updateFreq;
    o.train.setEpoch(epoch);
    this.notify('epochStart', { epoch, steps: Math.min(this.stepsPerEpoch, budget) });
    const sums: EpochSums = { loss: 0, n: 0, lr: 0, minLr: 0, wd: 0, gn: 0, ng: 0, metrics: new Map(), steps: 0 };
    let i = 0;
    for await (const batch of o.train) {
      try {
        const s = Math.floor(i / uf);
        if (s >= budget) break;
        if (s >= this.stepsPerEpoch) continue;
        const it = epoch * this.stepsPerEpoch + s;
        const micro = i % uf;
        o.checkInterrupt?.(epoch);
        const r = await step.run(batch, {
          epoch, step: s, it, micro, first: micro === 0, last: micro === uf - 1,
          lr: this.lrSchedule[it], weightDecay: this.wdSchedule[it], seed: stepSeed((o.seed ?? 0) + (o.rank ?? 0), it, micro),
        });
        if (!Number.isFinite(r.loss)) {
          const keep = o.outputDir ? latestCheckpoint(o.outputDir, o.checkpointPrefix) : null;
          throw new TrainingDivergedError(
            `Loss is ${r.loss} at epoch ${epoch}, step ${s} (iteration ${it}), stopping training; the weights were not updated by this step` +
              (keep ? ` and the last good checkpoint ${keep} is intact` : ''),
          );
        }
        sums.loss += r.loss;
        sums.n++;
        for (const [k, v] of Object.entries(r.metrics ?? {})) sums.metrics.set(k, (sums.metrics.get(k) ?? 0) + v);
        const rates = step.rates();
        const extra = r.metrics ? { metrics: r.metrics } : {};
        const last = micro === uf - 1;
        this.notify('micro', { epoch, step: s, it, micro, index: it * uf + micro, loss: r.loss, ...(last ? { gradNorm: r.gradNorm } : {}), ...rates, ...extra });
        if (last) {
          const ev: StepEvent = { epoch, step: s, it, loss: r.loss, ...rates, gradNorm: r.gradNorm, ...extra };
          sums.lr += ev.lr;
          sums.minLr += ev.minLr;
          sums.wd += ev.weightDecay;
          sums.gn += ev.gradNorm;
          sums.ng++;
          sums.steps++;
          losses.push(r.loss);
          this.notify('step', ev);
        }
      } finally {
        disposeBatch(batch);
        i++;
      }
    }
    return sums;
  }

  /** The reference's evaluate() on `loader` (see evaluateModel). */
  async evaluate(loader: DataLoader): Promise<EvalStats> {
    return evaluateModel(this.options.model as unknown as Classifier, loader);
  }

  /** The fine-tuning optimizer (null before init() or with another step). */
  get optimizerInstance(): FinetuneStep['optimizer'] | null {
    return this.step instanceof FinetuneStep ? this.step.optimizer : null;
  }

  /** Releases the step this Trainer built (a step passed in stays the caller's). */
  dispose(): void {
    if (this.ownStep) this.step?.dispose();
    this.step = null;
  }
}

/** What evaluation needs of a model: logits of a batch, and train/eval mode. */
export type Classifier = Pick<Beit, 'forward' | 'eval' | 'train' | 'training'>;

/**
 * The reference's evaluate(): eval mode, cross-entropy per batch (loss = mean of batch losses),
 * acc@1 / acc@5 in percent weighted by batch size (top-k capped at the class count, as timm).
 */
export async function evaluateModel(model: Classifier, loader: DataLoader): Promise<EvalStats> {
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
  b.secondImages?.dispose();
}
