/**
 * What the training loop drives: a TrainStep runs one micro-batch (forward, loss, backward and, on
 * the last micro-batch of an optimizer step, the update) and knows how its optimizer state goes into a
 * checkpoint. The loop (trainer.ts) owns everything around it: epochs, data order, schedules,
 * accumulation boundaries, per-step seeds, divergence checks, evaluation, checkpoints and sinks.
 * FinetuneStep is the fine-tuning step (lib/train's AdamW with layer decay, one native call per
 * micro-step); lib/pretrain's MimStep is the masked-image-modeling step.
 */
import type { Batch } from '../data/types';
import type { Beit } from '../models/beit';
import { finetuneOptimizerState, type OptimizerState, type TrainableModel } from './checkpoint';
import { FinetuneOptimizer, type OptimizerOptions } from './optimizer';

/** Where a micro-step stands and what the schedules say for it. */
export interface MicroStep {
  epoch: number;
  /** Optimizer step within the epoch. */
  step: number;
  /** Global optimizer iteration (the schedules' index). */
  it: number;
  /** Micro-batch within the optimizer step (gradient accumulation). */
  micro: number;
  /** First micro-batch: gradients start from zero; the schedule values apply from here. */
  first: boolean;
  /** Last micro-batch: the optimizer updates. */
  last: boolean;
  lr: number;
  weightDecay: number;
  /** Seed of this micro-step's random draws (drop path, dropout), stable across resumes. */
  seed: number;
}

export interface StepResult {
  loss: number;
  /** Gradient norm before clipping (meaningful on the last micro-batch). */
  gradNorm: number;
  /** Extra per-step numbers (e.g. mlm_acc), averaged into log.txt as train_<name>. */
  metrics?: Record<string, number>;
}

export interface TrainStep {
  readonly model: TrainableModel;
  /** The optimizer's checkpoint entries; absent: checkpoints hold the weights only. */
  readonly state?: OptimizerState;
  run(batch: Batch, s: MicroStep): Promise<StepResult>;
  /** Current learning rates and weight decay over the parameter groups (for logging). */
  rates(): { lr: number; minLr: number; weightDecay: number };
  /** Parameters the optimizer updates (n_parameters in log.txt). */
  numParameters(): number;
  dispose(): void;
}

/** Elements of the model's parameters whose names pass `keep`. */
export function countParameters(model: TrainableModel, keep: (name: string) => boolean = () => true): number {
  return model
    .stateSpec()
    .filter(([n, , , kind]) => kind === 'parameter' && keep(n))
    .reduce((a, [, s]) => a + s.reduce((x, y) => x * y, 1), 0);
}

/** The fine-tuning step: cross-entropy (label smoothing / soft targets), L2-SP, clipping, AdamW, EMA. */
export class FinetuneStep implements TrainStep {
  readonly state: OptimizerState;

  private constructor(readonly model: Beit, readonly optimizer: FinetuneOptimizer) {
    this.state = finetuneOptimizerState(optimizer);
  }

  /** Builds the optimizer (after the model's weights are final: L2-SP and EMA snapshot them). */
  static async create(model: Beit, o: OptimizerOptions): Promise<FinetuneStep> {
    return new FinetuneStep(model, await FinetuneOptimizer.create(model, o));
  }

  async run(batch: Batch, s: MicroStep): Promise<StepResult> {
    if (s.first) this.optimizer.setSchedule(s.lr, s.weightDecay);
    const r = this.optimizer.step(batch.images, batch.targets, { first: s.first, last: s.last, softTargets: batch.softTargets, seed: s.seed });
    try {
      return { loss: await r.loss.item(), gradNorm: await r.gradNorm.item() };
    } finally {
      r.loss.dispose();
      r.gradNorm.dispose();
    }
  }

  rates(): { lr: number; minLr: number; weightDecay: number } {
    const lrs = this.optimizer.lrs;
    return { lr: Math.max(...lrs), minLr: Math.min(...lrs), weightDecay: Math.max(...this.optimizer.wds.filter((w) => w > 0), 0) };
  }

  numParameters(): number {
    const names = new Set(this.optimizer.paramNames);
    return countParameters(this.model, (n) => names.has(n));
  }

  dispose(): void {
    this.optimizer.dispose();
  }
}
