/**
 * The NativeBeit addon class and the bridge between its raw tensor handles and `Tensor`.
 *
 * Handles cross through `Tensor.fromNativeHandle` / `tensor.nativeHandle()`, in one place.
 */
import { loadNative, NativeTensorHandle } from '../native';
import { Device, Tensor } from '../tensor';

/** Options as the native constructor takes them: the reference constructor's keyword names. */
export interface NativeBeitOptions {
  img_size?: number;
  patch_size?: number;
  in_chans?: number;
  num_classes?: number;
  embed_dim?: number;
  depth?: number;
  num_heads?: number;
  mlp_ratio?: number;
  qkv_bias?: boolean;
  init_values?: number | null;
  use_abs_pos_emb?: boolean;
  use_rel_pos_bias?: boolean;
  use_shared_rel_pos_bias?: boolean;
  use_mean_pooling?: boolean;
  drop_rate?: number;
  attn_drop_rate?: number;
  drop_path_rate?: number;
  layer_norm_eps?: number;
  init_scale?: number;
  /** 'cpu', 'cuda', 'cuda:N', or 'meta' (names and shapes only, nothing allocated). */
  device?: Device | 'meta';
  dtype?: 'float32' | 'float64';
  /** >= 0: deterministic initialisation. */
  seed?: number;
  /**
   * 'auto': on the CPU in float32 the native attention core where it pays (tokens^2 * head_dim >=
   * 2^20, e.g. BEiT at 224 px: one op per layer, values as 'exact' to float32 rounding, ~2x faster),
   * elsewhere fused SDPA when libtorch >= 2.0, else 'exact'; 'exact': the reference's float32 math;
   * 'fused': SDPA (libtorch >= 2.0); 'core': the native CPU core at any size (CPU float32 only).
   */
  attention?: 'auto' | 'exact' | 'fused' | 'core';
  /** CUDA only: autocast dtype for the blocks. */
  autocast?: 'float16' | 'bfloat16' | null;
}

export type StateSpecEntry = [name: string, shape: number[], dtype: string, kind: 'parameter' | 'buffer'];

export interface NativeForwardRequest {
  features?: boolean;
  logits?: boolean;
  tokens?: boolean;
  blocks?: boolean;
  pooledPrenorm?: boolean;
}

export interface NativeForwardResult {
  features?: NativeTensorHandle;
  logits?: NativeTensorHandle;
  tokens?: NativeTensorHandle;
  pooledPrenorm?: NativeTensorHandle;
  blocks?: NativeTensorHandle[];
}

export interface NativeBeitInstance {
  options(): Required<Omit<NativeBeitOptions, 'autocast' | 'seed'>> & { autocast: 'float16' | 'bfloat16' | null };
  stateSpec(): StateSpecEntry[];
  namedParameters(): Record<string, NativeTensorHandle>;
  stateDict(): Record<string, NativeTensorHandle>;
  loadStateDict(sd: Record<string, NativeTensorHandle>, strict: boolean): { missingKeys: string[]; unexpectedKeys: string[]; done: NativeTensorHandle };
  forward(input: NativeTensorHandle, req: NativeForwardRequest): NativeForwardResult;
  trainStep(input: NativeTensorHandle, target: NativeTensorHandle): NativeTensorHandle;
  train(mode: boolean): void;
  isTraining(): boolean;
  dispose(): void;
}

export interface NativeBeitStatic {
  new (options: NativeBeitOptions): NativeBeitInstance;
  configNames(): string[];
  config(name: string): Required<Omit<NativeBeitOptions, 'autocast' | 'seed'>>;
  fusedAttentionAvailable(): boolean;
}

export function nativeBeit(): NativeBeitStatic {
  return loadNative().NativeBeit;
}

/** A Tensor over a handle the addon returned. */
export function wrapHandle(h: NativeTensorHandle, device: Device): Tensor {
  return Tensor.fromNativeHandle(h, device);
}

/** The live native handle of a Tensor (throws "op: tensor used after dispose()"). */
export function handleOf(t: Tensor, op: string): NativeTensorHandle {
  if (!(t instanceof Tensor)) throw new TypeError(`${op}: expected a Tensor`);
  return t.nativeHandle(op);
}

/** What every native module with a state dict (NativeBeit, NativeMim, NativeDalleEncoder) offers. */
export interface NativeStateful {
  stateDict(): Record<string, NativeTensorHandle>;
  loadStateDict(sd: Record<string, NativeTensorHandle>, strict: boolean): { missingKeys: string[]; unexpectedKeys: string[]; done: NativeTensorHandle };
}

/** The module's state dict as Tensors on `device`, in state-dict order (views: the caller disposes them). */
export function nativeStateDict(m: NativeStateful, device: Device): Map<string, Tensor> {
  return new Map(Object.entries(m.stateDict()).map(([k, h]) => [k, wrapHandle(h, device)]));
}

/** loadStateDict on a native module, awaited; `what` names the caller in errors ('MimModel.loadStateDict'). */
export async function loadNativeStateDict(m: NativeStateful, sd: Map<string, Tensor>, strict: boolean, what: string): Promise<{ missingKeys: string[]; unexpectedKeys: string[] }> {
  const obj: Record<string, NativeTensorHandle> = {};
  for (const [k, t] of sd) obj[k] = handleOf(t, `${what} '${k}'`);
  const r = m.loadStateDict(obj, strict);
  const done = wrapHandle(r.done, 'cpu');
  try {
    await done.ready();
  } finally {
    done.dispose();
  }
  return { missingKeys: r.missingKeys, unexpectedKeys: r.unexpectedKeys };
}
