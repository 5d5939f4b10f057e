/**
 * The fine-tuning optimizer: reference parameter groups + AdamW + loss/clip/accumulation/EMA settings,
 * executed natively one call per micro-step (NativeTrainer). Its state_dict has PyTorch's AdamW
 * layout ({state: {i: {step, exp_avg, exp_avg_sq}}, param_groups: [{..., params: [i, ...]}]}), so a
 * checkpoint resumes in PyTorch and PyTorch's resumes here.
 */
import { Tensor } from '../tensor';
import type { Beit } from '../models/beit';
import { makeTuple } from '../checkpoint/pyvalues';
import type { PyValue } from '../checkpoint/pyvalues';
import { pyFloat } from '../checkpoint/writer';
import type { TensorTree } from '../checkpoint/save-tensors';
import { NativeTrainerInstance, nativeModelOf, nativeTrainer, type NativeTrainerConfig } from './native-trainer';
import { ParamGroupSpec, parameterGroups } from './param-groups';

/**
 * The fine-tuning optimizer's settings: the native step's (betas, eps, clipGrad, smoothing,
 * updateFreq, l2Alpha/l2Beta, emaDecay, gradSyncId: NativeTrainerConfig) plus what builds its
 * parameter groups. Flags: --opt_betas (default [0.9, 0.999]), --opt_eps (1e-8), --clip_grad
 * (undefined / 0: no clipping), --smoothing (ignored when a batch has soft targets), --model_ema_decay.
 */
export interface OptimizerOptions extends Omit<NativeTrainerConfig, 'groups'> {
  /** Peak learning rate (the schedule sets the current one per step). */
  lr: number;
  weightDecay: number;
  layerDecay?: number;
  disableWeightDecayOnRelPosBias?: boolean;
  /** Train only the head (the rest is frozen and left out of the optimizer). */
  freezeBackbone?: boolean;
}

export interface StepOutput {
  /** Micro-batch loss (plus the L2-SP term), float32 scalar. */
  loss: Tensor;
  /** Gradient norm before clipping on the final micro-step; NaN otherwise. */
  gradNorm: Tensor;
}

export class FinetuneOptimizer {
  readonly groups: ParamGroupSpec[];
  readonly paramNames: string[];
  readonly options: Readonly<OptimizerOptions>;
  /** Current per-group lr and weight decay (as the reference's param_group['lr'/'weight_decay']). */
  lrs: number[];
  wds: number[];
  private native: NativeTrainerInstance | null;
  private readonly device: Tensor['device'];

  private constructor(model: Beit, opts: OptimizerOptions) {
    this.options = { ...opts };
    const spec = model.stateSpec().filter((e) => e[3] === 'parameter');
    const frozen = opts.freezeBackbone ? (n: string) => !n.startsWith('head.') : undefined;
    this.groups = parameterGroups(
      spec.map(([n, s]) => [n, s] as const),
      { weightDecay: opts.weightDecay, layerDecay: opts.layerDecay, numLayers: model.options.depth, disableWeightDecayOnRelPosBias: opts.disableWeightDecayOnRelPosBias, frozen },
    );
    if (this.groups.length === 0) throw new Error('optimizer: no trainable parameter (a frozen backbone needs a head: num_classes > 0)');
    this.paramNames = this.groups.flatMap((g) => g.params);
    this.lrs = this.groups.map((g) => opts.lr * g.lrScale);
    this.wds = this.groups.map((g) => g.weightDecay);
    if (model.device === 'meta') throw new Error('optimizer: a model on the meta device cannot train');
    this.device = model.device;
    const Native = nativeTrainer();
    this.native = new Native(nativeModelOf(model), {
      groups: this.groups.map((g) => g.params),
      betas: opts.betas,
      eps: opts.eps,
      clipGrad: opts.clipGrad ?? 0,
      smoothing: opts.smoothing ?? 0,
      updateFreq: opts.updateFreq ?? 1,
      l2Alpha: opts.l2Alpha ?? 0,
      l2Beta: opts.l2Beta ?? 0,
      emaDecay: opts.emaDecay ?? -1,
      gradSyncId: opts.gradSyncId ?? 0,
    });
  }

  /**
   * Builds the optimizer for `model` (snapshotting the L2-SP reference weights and the EMA start
   * after every load already queued on the model).
   */
  static async create(model: Beit, opts: OptimizerOptions): Promise<FinetuneOptimizer> {
    const o = new FinetuneOptimizer(model, opts);
    const ready = Tensor.fromNativeHandle(o.live('create').ready(), o.device);
    try {
      await ready.ready();
    } finally {
      ready.dispose();
    }
    return o;
  }

  private live(op: string): NativeTrainerInstance {
    if (!this.native) throw new Error(`optimizer.${op}: used after dispose()`);
    return this.native;
  }

  /** The reference's per-iteration update: lr = schedule * lr_scale; wd = schedule where the group decays. */
  setSchedule(lr: number, wd?: number): void {
    this.lrs = this.groups.map((g) => lr * g.lrScale);
    if (wd !== undefined) this.wds = this.groups.map((g) => (g.weightDecay > 0 ? wd : g.weightDecay));
  }

  /**
   * One micro-step: forward, loss, backward (accumulating), and on `last` the sync, clip and AdamW
   * update with the current lrs/wds. `first` starts a new accumulation (gradients from zero).
   */
  step(images: Tensor, targets: Int32Array | Tensor, opts: { first?: boolean; last?: boolean; softTargets?: Tensor; seed?: number } = {}): StepOutput {
    const t = targets instanceof Tensor ? targets : Tensor.fromArray(targets, [targets.length], { dtype: 'int32' });
    try {
      const r = this.live('step').step(images.nativeHandle('optimizer.step'), t.nativeHandle('optimizer.step'), opts.softTargets ? opts.softTargets.nativeHandle('optimizer.step') : null, {
        first: opts.first ?? true,
        last: opts.last ?? true,
        lrs: this.lrs,
        wds: this.wds,
        seed: opts.seed,
      });
      return { loss: Tensor.fromNativeHandle(r.loss, this.device), gradNorm: Tensor.fromNativeHandle(r.gradNorm, this.device) };
    } finally {
      if (t !== targets) t.dispose();
    }
  }

  /** PyTorch's AdamW state_dict (Tensors for saveTensors; the caller disposes them after saving). */
  async stateDict(): Promise<{ state: Map<number, Record<string, Tensor>>; param_groups: Record<string, unknown>[]; tensors: Tensor[] }> {
    const s = this.live('stateDict').state();
    const wrap = (h: import('../native').NativeTensorHandle) => Tensor.fromNativeHandle(h, this.device);
    const has = wrap(s.has);
    const hasData = await has.data();
    has.dispose();
    const state = new Map<number, Record<string, Tensor>>();
    const tensors: Tensor[] = [];
    for (let i = 0; i < s.steps.length; i++) {
      const trio = [wrap(s.steps[i]), wrap(s.expAvg[i]), wrap(s.expAvgSq[i])];
      if (Number(hasData[i])) {
        state.set(i, { step: trio[0], exp_avg: trio[1], exp_avg_sq: trio[2] });
        tensors.push(...trio);
      } else trio.forEach((x) => x.dispose());
    }
    const [b1, b2] = this.options.betas ?? [0.9, 0.999];
    let next = 0;
    const param_groups = this.groups.map((g, gi) => {
      const params = g.params.map(() => next++);
      return {
        weight_decay: pyFloat(this.wds[gi]),
        lr_scale: pyFloat(g.lrScale),
        lr: pyFloat(this.lrs[gi]),
        // PyFloat keeps 0 / 1 betas Python floats inside the tuple (the writer walks tuple items).
        betas: makeTuple([pyFloat(b1), pyFloat(b2)] as unknown as PyValue[]),
        eps: pyFloat(this.options.eps ?? 1e-8),
        amsgrad: false,
        maximize: false,
        foreach: null,
        capturable: false,
        params,
      };
    });
    return { state, param_groups, tensors };
  }

  /**
   * Restores the state saved by stateDict (or by PyTorch's AdamW over the same groups): `tensors`
   * holds 'state.<i>.<step|exp_avg|exp_avg_sq>' keys (loadTensors(file, {key: 'optimizer'})),
   * `groupSizes` the length of each saved group's params (checked against ours).
   */
  async loadStateDict(tensors: Map<string, Tensor>, groupSizes: number[], groupValues?: Array<{ lr?: number; weight_decay?: number }>, file = '<optimizer>'): Promise<void> {
    const ours = this.groups.map((g) => g.params.length);
    if (groupSizes.length !== ours.length || groupSizes.some((n, i) => n !== ours[i])) {
      throw new Error(`${file}: optimizer param groups [${groupSizes.join(', ')}] do not match this model's [${ours.join(', ')}] (same model, --layer_decay, --weight_decay and freezing needed to resume)`);
    }
    const idx: number[] = [];
    const steps: Tensor[] = [];
    const m: Tensor[] = [];
    const v: Tensor[] = [];
    const byIndex = new Map<number, Record<string, Tensor>>();
    for (const [k, t] of tensors) {
      const mm = /^state\.(\d+)\.(step|exp_avg|exp_avg_sq)$/.exec(k);
      if (!mm) continue;
      const i = Number(mm[1]);
      if (!byIndex.has(i)) byIndex.set(i, {});
      byIndex.get(i)![mm[2]] = t;
    }
    for (const [i, e] of byIndex) {
      if (!e.step || !e.exp_avg || !e.exp_avg_sq) throw new Error(`${file}: optimizer state ${i} lacks step, exp_avg or exp_avg_sq`);
      idx.push(i);
      steps.push(e.step);
      m.push(e.exp_avg);
      v.push(e.exp_avg_sq);
    }
    const h = (t: Tensor) => t.nativeHandle('optimizer.loadStateDict');
    const done = Tensor.fromNativeHandle(this.live('loadStateDict').setState(idx, steps.map(h), m.map(h), v.map(h)), this.device);
    try {
      await done.ready();
    } finally {
      done.dispose();
    }
    if (groupValues) {
      groupValues.forEach((g, i) => {
        if (typeof g.lr === 'number') this.lrs[i] = g.lr;
        if (typeof g.weight_decay === 'number') this.wds[i] = g.weight_decay;
      });
    }
  }

  /** Current gradients by parameter name (after a final micro-step: clipped, L2-SP included). */
  grads(): Map<string, Tensor> {
    const hs = this.live('grads').grads();
    return new Map(this.paramNames.map((k, i) => [k, Tensor.fromNativeHandle(hs[i], this.device)]));
  }

  /** The EMA weights in state-dict order (empty without --model_ema). The caller disposes them. */
  emaStateDict(): Map<string, Tensor> {
    const n = this.live('emaStateDict');
    const names = n.emaNames();
    const hs = n.emaState();
    return new Map(names.map((k, i) => [k, Tensor.fromNativeHandle(hs[i], this.device)]));
  }

  async loadEma(sd: Map<string, Tensor>): Promise<void> {
    const rec: Record<string, import('../native').NativeTensorHandle> = {};
    for (const [k, t] of sd) rec[k] = t.nativeHandle('optimizer.loadEma');
    const done = Tensor.fromNativeHandle(this.live('loadEma').setEma(rec), this.device);
    try {
      await done.ready();
    } finally {
      done.dispose();
    }
  }

  get hasEma(): boolean {
    return this.live('hasEma').emaNames().length > 0;
  }

  dispose(): void {
    this.native?.dispose();
    this.native = null;
  }
}

export type { TensorTree };
