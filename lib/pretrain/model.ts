/**
 * The BEiT masked-image-modeling model (the reference's VisionTransformerForMaskedImageModeling) over
 * the native `NativeMim` class: forward with a mask, loss + backward, one-call AdamW steps, state dicts
 * named as the official `beit_*_patch16_224_8k_vocab` checkpoints.
 */
import { loadNative, NativeTensorHandle } from '../native';
import { Device, Tensor } from '../tensor';
import { loadNativeStateDict, nativeStateDict } from '../models/native-beit';
import type { NativeBeitOptions, StateSpecEntry } from '../models/native-beit';
import { TrainableNativeModule } from '../models/native-module';

/** The backbone keywords the MIM model shares with BEiT (same names, types and meaning). */
type MimBackboneOptions = Pick<
  NativeBeitOptions,
  | 'img_size' | 'patch_size' | 'in_chans' | 'embed_dim' | 'depth' | 'num_heads' | 'mlp_ratio' | 'qkv_bias'
  | 'init_values' | 'use_abs_pos_emb' | 'use_rel_pos_bias' | 'use_shared_rel_pos_bias' | 'drop_rate'
  | 'attn_drop_rate' | 'drop_path_rate' | 'layer_norm_eps' | 'device' | 'dtype' | 'seed' | 'attention'
>;

/** Constructor options: the reference's keyword names, plus the target kind. */
export interface MimOptions extends MimBackboneOptions {
  /** Token targets: the tokenizer's vocabulary (8192 for DALL-E). */
  vocab_size?: number;
  /** 'tokens' (cross-entropy on tokenizer ids) or 'pixels' (normalised pixel regression). */
  target?: 'tokens' | 'pixels';
  /** Pixel targets: normalise each patch by its own mean / std (default true). */
  norm_pix?: boolean;
  init_std?: number;
}

export type ResolvedMimOptions = Required<Omit<MimOptions, 'seed' | 'init_values'>> & { init_values: number; head_dim: number };

export interface StepOptions {
  lr: number;
  weightDecay: number;
  /** > 0: clip the global gradient norm. */
  clipGrad?: number;
  /** AdamW betas / eps (fixed at the first step). */
  betas?: [number, number];
  eps?: number;
  /** Distributed: lib/distributed GradientSync id (`pg.createGradientSync().id`); gradients averaged over ranks. */
  gradSyncId?: number;
  /** >= 0: reseed the native generator first, so drop path depends on the step alone (exact resume). */
  seed?: number;
}

export interface StepStats {
  loss: number;
  /** Token targets: share of masked positions predicted right (the reference's mlm_acc); pixels: NaN. */
  accuracy: number;
  gradNorm: number;
  masked: number;
}

export interface NativeMimInstance {
  options(): ResolvedMimOptions;
  stateSpec(): StateSpecEntry[];
  stateDict(): Record<string, NativeTensorHandle>;
  loadStateDict(sd: Record<string, NativeTensorHandle>, strict: boolean): { missingKeys: string[]; unexpectedKeys: string[]; done: NativeTensorHandle };
  forward(x: NativeTensorHandle, mask: NativeTensorHandle, allTokens: boolean): NativeTensorHandle;
  lossBackward(x: NativeTensorHandle, mask: NativeTensorHandle, target?: NativeTensorHandle): NativeTensorHandle;
  grads(): Record<string, NativeTensorHandle>;
  step(x: NativeTensorHandle, mask: NativeTensorHandle, target: NativeTensorHandle | undefined, o: StepOptions): NativeTensorHandle;
  moments(o?: Partial<StepOptions>): { steps: number; moments: Record<string, [NativeTensorHandle, NativeTensorHandle]> };
  loadMoments(m: Record<string, [NativeTensorHandle, NativeTensorHandle]>, steps: number, o?: Partial<StepOptions>): NativeTensorHandle;
  train(mode: boolean): void;
  isTraining(): boolean;
  dispose(): void;
}

export interface NativeMimStatic {
  new (options: MimOptions): NativeMimInstance;
  configNames(): string[];
  config(name: string): ResolvedMimOptions;
}

function nativeMim(): NativeMimStatic {
  return loadNative().NativeMim;
}

function stripUndefined<T extends object>(o: T): T {
  return Object.fromEntries(Object.entries(o).filter(([, v]) => v !== undefined)) as T;
}

/** Named pre-training configurations: beit_{base,large}_patch16_224_8k_vocab, beit_test_{tiny,micro}_8k_vocab. */
export function mimConfigNames(): string[] {
  return nativeMim().configNames();
}

export function mimConfig(name: string): MimOptions {
  const o = nativeMim().config(name) as Partial<ResolvedMimOptions>;
  delete o.head_dim;
  return o as MimOptions;
}

export class MimModel extends TrainableNativeModule<NativeMimInstance> {
  readonly options: ResolvedMimOptions;
  readonly device: Device;

  constructor(options: MimOptions = {}) {
    const Native = nativeMim();
    const native = new Native(stripUndefined({ ...options, init_values: options.init_values ?? undefined }));
    super(native, 'MimModel');
    this.options = native.options();
    this.device = this.options.device as Device;
  }

  /** Patch grid side (img_size / patch_size) and patches per image. */
  get grid(): number {
    return this.options.img_size / this.options.patch_size;
  }
  get numPatches(): number {
    return this.grid * this.grid;
  }

  /** Masks [B, N] (0/1 bytes, row-major patches) as the native bool_masked_pos. */
  maskTensor(mask: Uint8Array, batch: number): Tensor {
    if (mask.length !== batch * this.numPatches) {
      throw new RangeError(`mask: expected ${batch} x ${this.numPatches} entries (batch x patches), got ${mask.length}`);
    }
    return Tensor.fromArray(mask, [batch, this.numPatches], { dtype: 'bool', device: this.device });
  }

  /** lm_head of the masked tokens [M, head_dim], or of every patch token [B, N, head_dim]. */
  forward(x: Tensor, mask: Tensor, allTokens = false): Tensor {
    return Tensor.fromNativeHandle(this.live('forward').forward(x.nativeHandle('MimModel.forward'), mask.nativeHandle('MimModel.forward'), allTokens), this.device);
  }

  /** Loss and backward of one batch without an update (gradients replace earlier ones; see grads()). */
  async lossBackward(x: Tensor, mask: Tensor, target?: Tensor): Promise<{ loss: number; accuracy: number; masked: number }> {
    const h = this.live('lossBackward').lossBackward(x.nativeHandle('MimModel.lossBackward'), mask.nativeHandle('MimModel.lossBackward'), target?.nativeHandle('MimModel.lossBackward'));
    const t = Tensor.fromNativeHandle(h, 'cpu');
    try {
      const [loss, accuracy, masked] = Array.from((await t.data()) as Float32Array);
      return { loss, accuracy, masked };
    } finally {
      t.dispose();
    }
  }

  /** Gradients of the last backward, by parameter name (the caller disposes them). */
  grads(): Map<string, Tensor> {
    return new Map(Object.entries(this.live('grads').grads()).map(([k, h]) => [k, Tensor.fromNativeHandle(h, this.device)]));
  }

  /** One optimisation step: forward, loss, backward, optional clipping, AdamW (reference param groups). */
  async step(x: Tensor, mask: Tensor, target: Tensor | undefined, o: StepOptions): Promise<StepStats> {
    const h = this.live('step').step(x.nativeHandle('MimModel.step'), mask.nativeHandle('MimModel.step'), target?.nativeHandle('MimModel.step'), o);
    const t = Tensor.fromNativeHandle(h, 'cpu');
    try {
      const [loss, accuracy, gradNorm, masked] = Array.from((await t.data()) as Float32Array);
      return { loss, accuracy, gradNorm, masked };
    } finally {
      t.dispose();
    }
  }

  stateSpec(): StateSpecEntry[] {
    return this.live('stateSpec').stateSpec();
  }

  /** Parameters and buffers by official name, in PyTorch's state_dict order (views: the caller disposes them). */
  stateDict(): Map<string, Tensor> {
    return nativeStateDict(this.live('stateDict'), this.device);
  }

  async loadStateDict(sd: Map<string, Tensor>, opts: { strict?: boolean } = {}): Promise<{ missingKeys: string[]; unexpectedKeys: string[] }> {
    return loadNativeStateDict(this.live('loadStateDict'), sd, opts.strict ?? true, 'MimModel.loadStateDict');
  }

  /** AdamW moments by parameter name and the step count (views: the caller disposes them). */
  moments(o?: Partial<StepOptions>): { steps: number; moments: Map<string, [Tensor, Tensor]> } {
    const r = this.live('moments').moments(o);
    const m = new Map<string, [Tensor, Tensor]>();
    for (const [k, [a, b]] of Object.entries(r.moments)) m.set(k, [Tensor.fromNativeHandle(a, this.device), Tensor.fromNativeHandle(b, this.device)]);
    return { steps: r.steps, moments: m };
  }

  async loadMoments(m: Map<string, [Tensor, Tensor]>, steps: number, o?: Partial<StepOptions>): Promise<void> {
    const obj: Record<string, [NativeTensorHandle, NativeTensorHandle]> = {};
    for (const [k, [a, b]] of m) obj[k] = [a.nativeHandle('MimModel.loadMoments'), b.nativeHandle('MimModel.loadMoments')];
    const done = Tensor.fromNativeHandle(this.live('loadMoments').loadMoments(obj, steps, o), 'cpu');
    try {
      await done.ready();
    } finally {
      done.dispose();
    }
  }
}
