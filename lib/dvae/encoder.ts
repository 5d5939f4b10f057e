/**
 * The DALL-E dVAE encoder over the native `NativeDalleEncoder` (native/core/dvae.*): BEiT's visual
 * tokenizer. `DalleEncoder.fromFile(dir)` reads OpenAI's encoder.pkl safely (lib/dvae/encoder-file.ts),
 * builds the encoder its structure describes and loads its weights; `tokens(x)` gives the ids BEiT's
 * pre-training takes as targets (argmax of the logits over the vocabulary).
 */
import { loadNative, NativeTensorHandle } from '../native';
import { Device, Tensor } from '../tensor';
import { loadNativeStateDict, nativeStateDict, StateSpecEntry } from '../models/native-beit';
import { NativeModule } from '../models/native-module';
import { DalleEncoderFile, DalleEncoderStructure, readDalleEncoderFile } from './encoder-file';
import { DvaeError } from './errors';

/** 'auto' = the reference (float32 on the CPU, float16 convs on CUDA as dall_e's use_float16); float16/bfloat16 need CUDA. */
export type DvaePrecision = 'auto' | 'float32' | 'float16' | 'bfloat16';

/** Constructor options: the reference's attribute names, the pooling, the float16 flags, and ours. */
export interface DalleEncoderOptions {
  input_channels?: number;
  n_hid?: number;
  n_blk_per_group?: number;
  group_count?: number;
  vocab_size?: number;
  pool_kernel?: number;
  pool_stride?: number;
  pool_padding?: number;
  pool_dilation?: number;
  pool_ceil_mode?: boolean;
  /** Convs with use_float16 set (default: dall_e's, every conv but blocks.output.conv). */
  float16_convs?: string[];
  device?: Device;
  precision?: DvaePrecision;
  /** >= 0: deterministic random init (the reference's: N(0, 1/sqrt(n_in*kw^2)) weights, zero biases). */
  seed?: number;
}

export interface ResolvedDalleEncoderOptions {
  input_channels: number;
  n_hid: number;
  n_blk_per_group: number;
  group_count: number;
  vocab_size: number;
  n_layers: number;
  post_gain: number;
  pool_kernel: number;
  pool_stride: number;
  pool_padding: number;
  pool_dilation: number;
  pool_ceil_mode: boolean;
  device: Device;
  precision: DvaePrecision;
}

export interface NativeDalleEncoderInstance {
  options(): ResolvedDalleEncoderOptions;
  stateSpec(): StateSpecEntry[];
  stateDict(): Record<string, NativeTensorHandle>;
  loadStateDict(sd: Record<string, NativeTensorHandle>, strict: boolean): { missingKeys: string[]; unexpectedKeys: string[]; done: NativeTensorHandle };
  forward(x: NativeTensorHandle, o: { mapPixels: boolean; logits: boolean; ids: boolean }): [NativeTensorHandle | null, NativeTensorHandle | null];
  outputSide(side: number): number;
  dispose(): void;
}

export type NativeDalleEncoderClass = new (options: DalleEncoderOptions) => NativeDalleEncoderInstance;

function nativeClass(): NativeDalleEncoderClass {
  return loadNative().NativeDalleEncoder;
}

/** Constructor options for the encoder a file describes. */
export function optionsFromStructure(s: DalleEncoderStructure): DalleEncoderOptions {
  return {
    input_channels: s.inputChannels,
    n_hid: s.nHid,
    n_blk_per_group: s.nBlkPerGroup,
    group_count: s.groupCount,
    vocab_size: s.vocabSize,
    pool_kernel: s.pool.kernelSize,
    pool_stride: s.pool.stride,
    pool_padding: s.pool.padding,
    pool_dilation: s.pool.dilation,
    pool_ceil_mode: s.pool.ceilMode,
    float16_convs: s.float16Convs,
  };
}

export interface ForwardOptions {
  /** Apply the reference's map_pixels ((1 - 2*0.1) * x + 0.1) first: x is then in [0, 1]. */
  mapPixels?: boolean;
  /** Return the logits (default true). */
  logits?: boolean;
  /** Return the token ids (default false). */
  ids?: boolean;
}

export class DalleEncoder extends NativeModule<NativeDalleEncoderInstance> {
  readonly options: ResolvedDalleEncoderOptions;
  /** The file it was loaded from (fromFile). */
  readonly source?: DalleEncoderFile;

  constructor(options: DalleEncoderOptions = {}, source?: DalleEncoderFile) {
    const Native = nativeClass();
    const o = Object.fromEntries(Object.entries(options).filter(([, v]) => v !== undefined)) as DalleEncoderOptions;
    const native = new Native(o);
    super(native, 'DalleEncoder', 'encoder');
    this.options = native.options();
    this.source = source;
  }

  /**
   * The encoder in `p` (a folder holding encoder.pkl, BEiT's --discrete_vae_weight_path, or the file),
   * structure and weights from the file. Nothing in the file is executed.
   */
  static async fromFile(p: string, opts: { device?: Device; precision?: DvaePrecision } = {}): Promise<DalleEncoder> {
    const file = readDalleEncoderFile(p);
    const { loadTensors } = await import('../checkpoint/load-tensors');
    const enc = new DalleEncoder({ ...optionsFromStructure(file.structure), device: opts.device, precision: opts.precision }, file);
    try {
      const sd = await loadTensors(file.parameters, { dtype: 'float32' });
      try {
        await enc.loadStateDict(sd, { strict: true });
      } finally {
        for (const t of sd.values()) t.dispose();
      }
    } catch (e) {
      enc.dispose();
      throw new DvaeError(`${file.file}: ${(e as Error).message}`, { cause: e });
    }
    return enc;
  }

  get device(): Device {
    return this.options.device;
  }

  /** Token grid side for an input side (112 -> 14 for the reference's 4 groups). */
  tokenGrid(inputSide: number): number {
    return this.live('tokenGrid').outputSide(inputSide);
  }

  /** [name, shape, dtype, kind] in state-dict order (the pickle's parameter names). */
  stateSpec(): StateSpecEntry[] {
    return this.live('stateSpec').stateSpec();
  }

  /** Parameters by name (views: the caller disposes them). */
  stateDict(): Map<string, Tensor> {
    return nativeStateDict(this.live('stateDict'), this.device);
  }

  async loadStateDict(sd: Map<string, Tensor>, opts: { strict?: boolean } = {}): Promise<{ missingKeys: string[]; unexpectedKeys: string[] }> {
    return loadNativeStateDict(this.live('loadStateDict'), sd, opts.strict ?? true, 'DalleEncoder.loadStateDict');
  }

  /** Logits float32 [N, vocab, h, w] and / or ids int64 [N, h, w] of x float32 [N, C, H, W] (queued; on the encoder's device). */
  forward(x: Tensor, o: ForwardOptions = {}): { logits?: Tensor; ids?: Tensor } {
    const want = { mapPixels: o.mapPixels ?? false, logits: o.logits ?? true, ids: o.ids ?? false };
    const [l, i] = this.live('forward').forward(x.nativeHandle('DalleEncoder.forward'), want);
    return {
      ...(l ? { logits: Tensor.fromNativeHandle(l, this.device) } : {}),
      ...(i ? { ids: Tensor.fromNativeHandle(i, this.device) } : {}),
    };
  }

  /** Token ids int64 [N, h, w]: Dalle_VAE.get_codebook_indices (x already through map_pixels unless mapPixels). */
  tokens(x: Tensor, mapPixels = false): Tensor {
    return this.forward(x, { mapPixels, logits: false, ids: true }).ids!;
  }
}
