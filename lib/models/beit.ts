/**
 * BEiT, the vision transformer of MOOD, over the native libtorch module (native/core/beit.*).
 *
 * Every method returns Tensors at once; the work runs on the model device's executor in call order
 * (forwards, loads and train steps of one model never overlap). Options use the reference
 * constructor's keyword names (`modeling_finetune.VisionTransformer`).
 */
import { readCheckpoint } from '../checkpoint/reader';
import { AdaptOptions, AdaptResult, AdaptTensor, adaptStateDict, pickStateDict } from '../checkpoint/adapt';
import { TensorRef, StorageRef } from '../checkpoint/tensorref';
import { PyDict } from '../checkpoint/pyvalues';
import { Device, Tensor } from '../tensor';
import { DType } from '../dtype';
import { NativeBeitInstance, NativeBeitOptions, StateSpecEntry, handleOf, nativeBeit, wrapHandle } from './native-beit';
import { TrainableNativeModule } from './native-module';

export type { NativeBeitOptions as BeitOptions, StateSpecEntry } from './native-beit';
type BeitOptions = NativeBeitOptions;

export type BeitConfigName =
  | 'beit_base_patch16_224'
  | 'beit_base_patch16_384'
  | 'beit_large_patch16_224'
  | 'beit_large_patch16_384'
  | 'beit_large_patch16_512'
  | 'beit_test_tiny'
  | 'beit_test_micro';

export type ResolvedBeitOptions = ReturnType<NativeBeitInstance['options']>;

/** Names of the built-in configurations. */
export function beitConfigNames(): BeitConfigName[] {
  return nativeBeit().configNames() as BeitConfigName[];
}

/** The full options of a named configuration. */
export function beitConfig(name: BeitConfigName | string): ResolvedBeitOptions {
  return nativeBeit().config(name) as ResolvedBeitOptions;
}

/** Whether libtorch has fused scaled_dot_product_attention (>= 2.0). */
export function fusedAttentionAvailable(): boolean {
  return nativeBeit().fusedAttentionAvailable();
}

function stripUndefined<T extends object>(o: T): T {
  return Object.fromEntries(Object.entries(o).filter(([, v]) => v !== undefined)) as T;
}

/** Builds a model from a named configuration and/or options (options win). */
export function createModel(nameOrOptions: BeitConfigName | string | BeitOptions = 'beit_base_patch16_224', overrides: BeitOptions = {}): Beit {
  const base: BeitOptions = typeof nameOrOptions === 'string' ? beitConfig(nameOrOptions) : {};
  const extra = typeof nameOrOptions === 'string' ? {} : nameOrOptions;
  const opts = { ...base, ...stripUndefined(extra), ...stripUndefined(overrides) };
  if (opts.init_values === null) opts.init_values = 0;
  return new Beit(opts);
}

export interface ForwardOutputs {
  features?: Tensor;
  logits?: Tensor;
  tokens?: Tensor;
  pooledPrenorm?: Tensor;
  blocks?: Tensor[];
}

export interface LoadStateDictResult {
  missingKeys: string[];
  unexpectedKeys: string[];
}

export interface FromCheckpointOptions extends BeitOptions {
  /** A named configuration to start from (checkpoint-implied values must agree with it). */
  config?: BeitConfigName | string;
  /** Container keys tried for the state dict (default ['model', 'module', 'state_dict']). */
  stateDictKeys?: string[];
  /** How to remove DDP's 'module.' (default 'prefix'). */
  stripModule?: AdaptOptions['stripModule'];
  /** Fail on missing/unexpected keys after adaptation (default false, like MOOD's loader). */
  strict?: boolean;
}

/** What fromCheckpoint did: the adaptation report plus the options it inferred. */
export interface CheckpointLoadReport extends Omit<AdaptResult, 'stateDict'> {
  file: string;
  inferred: Partial<BeitOptions>;
}

export class Beit extends TrainableNativeModule<NativeBeitInstance> {
  readonly options: ResolvedBeitOptions;
  readonly device: Device | 'meta';
  /** Set by fromCheckpoint. */
  loadReport?: CheckpointLoadReport;

  constructor(options: BeitOptions = {}) {
    const Native = nativeBeit();
    const native = new Native(stripUndefined({ ...options, init_values: options.init_values ?? undefined }));
    super(native, 'Beit');
    this.options = native.options();
    this.device = this.options.device as Device | 'meta';
  }

  /**
   * @internal The live native module, for other native wrappers that schedule work on this model
   * (the fine-tuning step). Throws once the model is disposed.
   */
  nativeModule(user: string): NativeBeitInstance {
    if (!this.native) throw new Error(`${user}: BEiT model used after dispose()`);
    return this.native;
  }

  private get tensorDevice(): Device {
    if (this.device === 'meta') throw new Error('a model on the meta device has no values: build it on cpu or cuda to run it');
    return this.device;
  }

  /** One pass giving everything asked for. */
  run(x: Tensor, req: { features?: boolean; logits?: boolean; tokens?: boolean; blocks?: boolean; pooledPrenorm?: boolean }): ForwardOutputs {
    const dev = this.tensorDevice;
    const r = this.live('forward').forward(handleOf(x, 'Beit.forward'), req);
    const out: ForwardOutputs = {};
    if (r.features) out.features = wrapHandle(r.features, dev);
    if (r.logits) out.logits = wrapHandle(r.logits, dev);
    if (r.tokens) out.tokens = wrapHandle(r.tokens, dev);
    if (r.pooledPrenorm) out.pooledPrenorm = wrapHandle(r.pooledPrenorm, dev);
    if (r.blocks) out.blocks = r.blocks.map((h) => wrapHandle(h, dev));
    return out;
  }

  /** Pooled features (`forward_features`): fc_norm(mean of patch tokens), or norm(x)[:, 0] with cls pooling. */
  forwardFeatures(x: Tensor): Tensor {
    return this.run(x, { features: true }).features!;
  }
  /** Logits: head(features) (the features themselves when num_classes is 0). */
  forward(x: Tensor): Tensor {
    return this.run(x, { logits: true }).logits!;
  }
  /** Features and logits from one pass. */
  forwardBoth(x: Tensor): { features: Tensor; logits: Tensor } {
    const r = this.run(x, { features: true, logits: true });
    return { features: r.features!, logits: r.logits! };
  }
  /** Last block output before any final norm: [B, N+1, C] (token 0 = cls). */
  forwardTokens(x: Tensor): Tensor {
    return this.run(x, { tokens: true }).tokens!;
  }
  /** Every block's output (`get_intermediate_layers`). */
  intermediateLayers(x: Tensor): Tensor[] {
    return this.run(x, { blocks: true }).blocks!;
  }

  /**
   * Benchmark / smoke-test step: train mode, logits, cross-entropy against int64 `target`,
   * backward (gradients replace earlier ones; no optimizer update). Returns the loss.
   */
  trainStep(x: Tensor, target: Tensor): Tensor {
    const h = this.live('trainStep').trainStep(handleOf(x, 'Beit.trainStep'), handleOf(target, 'Beit.trainStep'));
    return wrapHandle(h, this.tensorDevice);
  }

  /** [name, shape, dtype, 'parameter' | 'buffer'] in state-dict order; needs no values (works on meta). */
  stateSpec(): StateSpecEntry[] {
    return this.live('stateSpec').stateSpec();
  }
  /** Parameters in state-dict order. The Tensors alias the live parameters. */
  namedParameters(): Map<string, Tensor> {
    return this.wrapAll(this.live('namedParameters').namedParameters());
  }
  /** Parameters and buffers in state-dict order (aliases, like PyTorch's state_dict()). */
  stateDict(): Map<string, Tensor> {
    return this.wrapAll(this.live('stateDict').stateDict());
  }
  private wrapAll(r: Record<string, import('../native').NativeTensorHandle>): Map<string, Tensor> {
    const dev = this.tensorDevice;
    return new Map(Object.entries(r).map(([k, h]) => [k, wrapHandle(h, dev)]));
  }

  /**
   * Copies tensors into the parameters and buffers (dtype converted, e.g. float16 -> float32).
   * Every shape is checked before anything is copied; a mismatch rejects naming each key.
   * strict (default true): missing or unexpected keys throw. Missing relative_position_index
   * buffers are never reported (the model builds its own).
   */
  async loadStateDict(sd: Map<string, Tensor> | Record<string, Tensor>, opts: { strict?: boolean } = {}): Promise<LoadStateDictResult> {
    const entries = sd instanceof Map ? [...sd.entries()] : Object.entries(sd);
    const handles: Record<string, import('../native').NativeTensorHandle> = {};
    for (const [k, t] of entries) handles[k] = handleOf(t, `Beit.loadStateDict('${k}')`);
    const r = this.live('loadStateDict').loadStateDict(handles, opts.strict ?? true);
    await r.done.whenReady();
    r.done.dispose();
    return { missingKeys: r.missingKeys, unexpectedKeys: r.unexpectedKeys };
  }

  /**
   * Loads an official (or our own) BEiT checkpoint: reads it without executing any pickle code,
   * picks the state dict (`model`, `module`, `state_dict`), strips `module.`, infers what the
   * checkpoint implies (embed_dim, depth, patch_size, in_chans, mlp_ratio, qkv_bias, layer scale,
   * num_heads, num_classes, pooling, position scheme, img_size) where `opts` does not say, refuses
   * contradictions, adapts (shared rel-pos expansion, table / pos_embed interpolation, head drop on a
   * class-count change) and loads. `model.loadReport` says what happened.
   */
  static async fromCheckpoint(file: string, opts: FromCheckpointOptions = {}): Promise<Beit> {
    const ckpt = readCheckpoint(file);
    const { config, stateDictKeys, stripModule, strict, ...given } = opts;
    const base: BeitOptions = config ? beitConfig(config) : {};
    const { dict } = pickStateDict(ckpt.root, stateDictKeys);
    const shapes = checkpointShapes(dict, stripModule ?? 'prefix');
    const { options, inferred } = inferOptions(shapes, { ...base, ...stripUndefined(given) }, ckpt.file);
    const model = new Beit(options);
    try {
      const spec = model.stateSpec();
      const o = model.options;
      const grid = o.img_size / o.patch_size;
      const adapted = adaptStateDict(
        ckpt.root,
        {
          depth: o.depth,
          numClasses: o.num_classes,
          useMeanPooling: o.use_mean_pooling,
          useRelPosBias: o.use_rel_pos_bias,
          useSharedRelPosBias: o.use_shared_rel_pos_bias,
          useAbsPosEmb: o.use_abs_pos_emb,
          windowSize: [grid, grid],
          numPatches: grid * grid,
          expectedKeys: new Map(spec.map(([k, s]) => [k, s])),
        },
        { stateDictKeys, stripModule },
      );
      if (adapted.mismatchedKeys.length) {
        const lines = adapted.mismatchedKeys.map((m) => `  ${m.key}: checkpoint [${m.checkpointShape.join(', ')}], model [${m.modelShape.join(', ')}]`);
        throw new Error(`Beit.fromCheckpoint(${ckpt.file}): shapes the adaptation cannot reconcile:\n${lines.join('\n')}`);
      }
      if (strict && (adapted.missingKeys.length || adapted.unexpectedKeys.length)) {
        throw new Error(
          `Beit.fromCheckpoint(${ckpt.file}) strict: missing [${adapted.missingKeys.join(', ')}], unexpected [${adapted.unexpectedKeys.join(', ')}]`,
        );
      }
      const tensors = checkpointTensors(adapted.stateDict);
      try {
        await model.loadStateDict(tensors, { strict: false });
      } finally {
        for (const t of tensors.values()) t.dispose();
      }
      const { stateDict: _sd, ...report } = adapted;
      void _sd;
      model.loadReport = { ...report, file: ckpt.file, inferred };
      return model;
    } catch (e) {
      model.dispose();
      throw e;
    }
  }
}

// ---- checkpoint -> tensors -----------------------------------------------------------------------

/** Native tensors for adapted entries: storages read once each on the executor, views taken natively. */
function checkpointTensors(sd: Map<string, AdaptTensor>): Map<string, Tensor> {
  const storages = new Map<StorageRef, Tensor>();
  const out = new Map<string, Tensor>();
  try {
    for (const [k, v] of sd) {
      if (v instanceof TensorRef) {
        const st = v.storage;
        let base = storages.get(st);
        if (!base) {
          base = Tensor.fromFile(st.file, { byteOffset: st.byteOffset, numel: st.numel, dtype: st.dtype as DType });
          storages.set(st, base);
        }
        out.set(k, base.asStrided(v.shape, v.stride, v.storageOffset));
      } else {
        out.set(k, Tensor.fromArray(v.data, v.shape, { dtype: v.dtype as DType }));
      }
    }
  } finally {
    for (const t of storages.values()) t.dispose();
  }
  return out;
}

type Shapes = Map<string, number[]>;

function checkpointShapes(dict: PyDict, strip: 'prefix' | 'anywhere' | 'none'): Shapes {
  const m: Shapes = new Map();
  for (const [k, v] of dict) {
    if (typeof k !== 'string' || !(v instanceof TensorRef)) continue;
    let key = k;
    if (strip === 'prefix' && key.startsWith('module.')) key = key.slice('module.'.length);
    else if (strip === 'anywhere') key = key.split('module.').join('');
    m.set(key, v.shape);
  }
  return m;
}

/**
 * Options from what the checkpoint's keys and shapes imply, merged with the given ones. A given
 * value that contradicts the checkpoint is an error; values the adaptation legitimately changes
 * (img_size: interpolation, num_classes: head re-init) are not contradictions.
 */
export function inferOptions(shapes: Shapes, given: BeitOptions, file = '<checkpoint>'): { options: BeitOptions; inferred: Partial<BeitOptions> } {
  const implied: Partial<BeitOptions> = {};
  const why: Partial<Record<keyof BeitOptions, string>> = {};
  const set = <K extends keyof BeitOptions>(k: K, v: BeitOptions[K], evidence: string): void => {
    implied[k] = v;
    why[k] = evidence;
  };
  const conv = shapes.get('patch_embed.proj.weight');
  const cls = shapes.get('cls_token');
  if (conv) {
    set('embed_dim', conv[0], `patch_embed.proj.weight ${fmt(conv)}`);
    set('in_chans', conv[1], `patch_embed.proj.weight ${fmt(conv)}`);
    set('patch_size', conv[2], `patch_embed.proj.weight ${fmt(conv)}`);
  } else if (cls) {
    set('embed_dim', cls[2], `cls_token ${fmt(cls)}`);
  }
  let depth = 0;
  for (const k of shapes.keys()) {
    const m = /^blocks\.(\d+)\./.exec(k);
    if (m) depth = Math.max(depth, Number(m[1]) + 1);
  }
  if (depth) set('depth', depth, `keys blocks.0 .. blocks.${depth - 1}`);
  const fc1 = shapes.get('blocks.0.mlp.fc1.weight');
  if (fc1) set('mlp_ratio', fc1[0] / fc1[1], `blocks.0.mlp.fc1.weight ${fmt(fc1)}`);
  if (depth) {
    set('qkv_bias', shapes.has('blocks.0.attn.q_bias'), shapes.has('blocks.0.attn.q_bias') ? 'blocks.0.attn.q_bias present' : 'no blocks.0.attn.q_bias');
    if (shapes.has('blocks.0.gamma_1')) set('init_values', given.init_values || 0.1, 'blocks.0.gamma_1 present (layer scale)');
    else set('init_values', 0, 'no blocks.0.gamma_1 (no layer scale)');
  }
  const blockTable = shapes.get('blocks.0.attn.relative_position_bias_table');
  const sharedTable = shapes.get('rel_pos_bias.relative_position_bias_table');
  const table = blockTable ?? sharedTable;
  if (table) set('num_heads', table[1], `${blockTable ? 'blocks.0.attn' : 'rel_pos_bias'}.relative_position_bias_table ${fmt(table)}`);
  const pos = shapes.get('pos_embed');
  set('use_abs_pos_emb', !!pos, pos ? `pos_embed ${fmt(pos)}` : 'no pos_embed');
  if (blockTable) {
    set('use_rel_pos_bias', true, 'per-block relative_position_bias_table');
    set('use_shared_rel_pos_bias', false, 'per-block relative_position_bias_table');
  } else if (sharedTable) {
    // MOOD fine-tuning expands the pre-trained shared table into every block (set_checkpoint_for_finetune),
    // unless the caller keeps it shared.
    if (given.use_shared_rel_pos_bias) set('use_rel_pos_bias', false, 'shared rel_pos_bias table kept shared');
    else set('use_rel_pos_bias', true, 'shared rel_pos_bias table (expanded per block for fine-tuning)');
  } else {
    set('use_rel_pos_bias', false, 'no relative_position_bias_table');
    set('use_shared_rel_pos_bias', false, 'no relative_position_bias_table');
  }
  const pretraining = shapes.has('mask_token') || [...shapes.keys()].some((k) => k.startsWith('lm_head.'));
  if (shapes.has('fc_norm.weight')) set('use_mean_pooling', true, 'fc_norm present');
  else if (shapes.has('norm.weight') && !pretraining) set('use_mean_pooling', false, 'final norm present, no fc_norm (cls pooling)');
  const head = shapes.get('head.weight');
  if (head) set('num_classes', head[0], `head.weight ${fmt(head)}`);
  // Image size from the position scheme (when not given: a change means interpolation).
  const p = (implied.patch_size ?? given.patch_size) as number | undefined;
  if (p) {
    if (pos) set('img_size', Math.round(Math.sqrt(pos[1] - 1)) * p, `pos_embed ${fmt(pos)}`);
    else if (table) set('img_size', ((Math.round(Math.sqrt(table[0] - 3)) + 1) / 2) * p, `relative_position_bias_table ${fmt(table)}`);
  }

  const adaptable = new Set<keyof BeitOptions>(['img_size', 'num_classes']);
  const problems: string[] = [];
  const options: BeitOptions = { ...given };
  for (const k of Object.keys(implied) as (keyof BeitOptions)[]) {
    const v = implied[k];
    const g = given[k];
    if (g === undefined || (k === 'init_values' && g === null)) {
      (options as Record<string, unknown>)[k] = v;
      continue;
    }
    if (adaptable.has(k)) continue;
    const same = k === 'init_values' ? (Number(g) > 0) === (Number(v) > 0) : k === 'mlp_ratio' ? Math.abs(Number(g) - Number(v)) < 1e-9 : g === v;
    if (!same) problems.push(`${k}: given ${JSON.stringify(g)}, the checkpoint implies ${JSON.stringify(v)} (${why[k]})`);
  }
  if (given.use_shared_rel_pos_bias && blockTable) problems.push('use_shared_rel_pos_bias: given true, the checkpoint has per-block tables');
  if (problems.length) throw new Error(`Beit.fromCheckpoint(${file}): options contradict the checkpoint:\n  ${problems.join('\n  ')}`);
  if (options.num_heads === undefined && options.embed_dim !== undefined) {
    const e = options.embed_dim;
    if (e % 64 !== 0) throw new Error(`Beit.fromCheckpoint(${file}): num_heads cannot be inferred (no relative position table) and embed_dim ${e} is not a multiple of 64: pass num_heads`);
    options.num_heads = e / 64; // BEiT's head dim
  }
  if (options.num_classes === undefined) options.num_classes = 0;
  const inferred = Object.fromEntries(Object.keys(implied).filter((k) => given[k as keyof BeitOptions] === undefined).map((k) => [k, implied[k as keyof BeitOptions]]));
  return { options, inferred };
}

function fmt(s: number[]): string {
  return `[${s.join(', ')}]`;
}
