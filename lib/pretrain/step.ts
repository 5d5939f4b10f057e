/**
 * The masked-image-modeling step the training loop (lib/train's Trainer) runs for `mood pretrain` and
 * the demo's MIM init: blockwise masks drawn per sample from (seed, epoch, dataset index), the MIM
 * model's one-call forward + loss + backward + AdamW (the reference's parameter groups, no layer
 * decay), pixel or token targets. Its checkpoint entry 'optimizer' holds the AdamW moments by
 * parameter name: {steps, exp_avg: {name: tensor}, exp_avg_sq: {name: tensor}}.
 */
import type { Batch } from '../data/types';
import type { Tensor } from '../tensor';
import { loadTensors } from '../checkpoint/load-tensors';
import { tensorsToData } from '../checkpoint/save-tensors';
import { PyDict } from '../checkpoint/pyvalues';
import type { OptimizerState } from '../train/checkpoint';
import { countParameters, type MicroStep, type StepResult, type TrainStep } from '../train/step';
import { batchMasks, type MaskingGenerator } from './masking';
import type { MimModel } from './model';

export interface MimStepOptions {
  masking: MaskingGenerator;
  /** Seed of the masks (with the epoch and each sample's dataset index). */
  seed: number;
  /** > 0: clip the global gradient norm. */
  clipGrad?: number;
  betas?: [number, number];
  eps?: number;
  /** Distributed: the process group's GradientSync id. */
  gradSyncId?: number;
  /** Token targets: the tokenizer's ids of the batch, int64 [B, patches] (the step disposes them). */
  tokens?: (batch: Batch) => Promise<Tensor>;
}

export class MimStep implements TrainStep {
  readonly state: OptimizerState;
  private lr = 0;
  private wd = 0;

  constructor(readonly model: MimModel, private readonly o: MimStepOptions) {
    this.state = mimOptimizerState(model, { betas: o.betas, eps: o.eps });
    if (model.options.target === 'tokens' && !o.tokens) throw new TypeError('MimStep: token targets need a tokenizer (options.tokens)');
  }

  async run(batch: Batch, s: MicroStep): Promise<StepResult> {
    if (!s.first || !s.last) throw new RangeError('MIM pre-training has no gradient accumulation: update_freq must be 1');
    this.lr = s.lr;
    this.wd = s.weightDecay;
    const mask = this.model.maskTensor(batchMasks(this.o.masking, this.o.seed, s.epoch, batch.indices), batch.indices.length);
    const target = this.o.tokens ? await this.o.tokens(batch) : undefined;
    try {
      const r = await this.model.step(batch.images, mask, target, { lr: s.lr, weightDecay: s.weightDecay, clipGrad: this.o.clipGrad ?? 0, betas: this.o.betas, eps: this.o.eps, gradSyncId: this.o.gradSyncId, seed: s.seed });
      return { loss: r.loss, gradNorm: r.gradNorm, ...(target ? { metrics: { mlm_acc: r.accuracy } } : {}) };
    } finally {
      mask.dispose();
      target?.dispose();
    }
  }

  /** One lr for every group (no layer decay in pre-training); the schedule's weight decay. */
  rates(): { lr: number; minLr: number; weightDecay: number } {
    return { lr: this.lr, minLr: this.lr, weightDecay: this.wd };
  }

  numParameters(): number {
    return countParameters(this.model);
  }

  dispose(): void {}
}

/**
 * The MIM model's AdamW moments as the checkpoint's 'optimizer' entry, and back. Loading creates the
 * native optimizer, whose betas/eps are fixed from then on: they must be the run's, not the defaults.
 */
export function mimOptimizerState(model: MimModel, adam: { betas?: [number, number]; eps?: number } = {}): OptimizerState {
  return {
    async save(file) {
      const mo = model.moments();
      const expAvg = new Map<string, Tensor>();
      const expAvgSq = new Map<string, Tensor>();
      for (const [k, [a, b]] of mo.moments) {
        expAvg.set(k, a);
        expAvgSq.set(k, b);
      }
      try {
        return { optimizer: await tensorsToData({ steps: mo.steps, exp_avg: expAvg, exp_avg_sq: expAvgSq }, { file }) };
      } finally {
        for (const t of [...expAvg.values(), ...expAvgSq.values()]) t.dispose();
      }
    },
    async load(ckpt, file) {
      const opt = (ckpt.root as PyDict).get('optimizer') as PyDict;
      if (!opt.has('exp_avg') || !opt.has('exp_avg_sq')) throw new Error(`${file}: 'optimizer' has no exp_avg / exp_avg_sq moments (not a mood pretrain checkpoint)`);
      const all = await loadTensors(ckpt, { key: 'optimizer' });
      try {
        const m = new Map<string, [Tensor, Tensor]>();
        for (const [k, t] of all) {
          if (!k.startsWith('exp_avg.')) continue;
          const name = k.slice('exp_avg.'.length);
          const t2 = all.get(`exp_avg_sq.${name}`);
          if (!t2) throw new Error(`${file}: optimizer.exp_avg_sq lacks ${name}`);
          m.set(name, [t, t2]);
        }
        await model.loadMoments(m, Number(opt.get('steps') ?? 0), adam);
      } finally {
        for (const t of all.values()) t.dispose();
      }
      return { ema: false };
    },
  };
}
