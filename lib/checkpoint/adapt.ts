/**
 * BEiT state-dict adaptation, as MOOD's loading code does it (eval_with_*.py and
 * utils.set_checkpoint_for_finetune), but explicit and loud: pick the state dict, normalise keys,
 * expand a shared relative-position table to every block, resample relative-position tables and the
 * absolute pos_embed to the target resolution, drop what the target cannot use, and report
 * missing/unexpected/mismatched keys like load_state_dict(strict=False).
 *
 * Tensors that pass through unchanged stay TensorRefs (the native loader can still map them
 * straight from the file); anything computed here becomes float32 TensorData.
 */
import { CheckpointError } from './errors';
import { PyDict, PyValue } from './pyvalues';
import { TensorRef } from './tensorref';
import { TensorData, isTensorData } from './writer';
import { materialize } from './materialize';
import { bicubicSplineGrid } from './spline';
import { bicubicResize } from './resize';

/** What adaptation needs to know about the model being loaded. */
export interface TargetModel {
  depth: number;
  numClasses: number;
  /** Mean pooling + fc_norm (MOOD default); the final `norm` then does not exist. */
  useMeanPooling: boolean;
  /** Per-block relative position bias tables. */
  useRelPosBias: boolean;
  /** One shared table (`rel_pos_bias.*`), as BEiT pre-training uses. */
  useSharedRelPosBias?: boolean;
  useAbsPosEmb: boolean;
  /** Patch grid (height, width): the relative-position window. */
  windowSize: [number, number];
  /** Number of patches (windowSize[0] * windowSize[1]). */
  numPatches: number;
  /** Every state-dict key of the model with its shape; enables missing/unexpected/mismatch reports. */
  expectedKeys?: Map<string, number[]>;
}

export type AdaptTensor = TensorRef | TensorData;

export interface AdaptOptions {
  /** Container keys tried in order for the state dict (default ['model', 'module', 'state_dict']); the root itself if none match. */
  stateDictKeys?: string[];
  /**
   * How to remove DDP's 'module.': 'prefix' (default) strips a leading 'module.' only; 'anywhere'
   * does what eval_with_*.py does (`k.replace('module.', '')`, which also mangles e.g. 'submodule.');
   * 'none' keeps keys as they are.
   */
  stripModule?: 'prefix' | 'anywhere' | 'none';
  /** A model prefix to strip from keys that start with it (e.g. 'encoder.'). */
  modelPrefix?: string;
}

export interface KeyMismatch {
  key: string;
  checkpointShape: number[];
  modelShape: number[];
}

export interface AdaptResult {
  /** Adapted state dict in checkpoint order (expanded tables where the shared one was). */
  stateDict: Map<string, AdaptTensor>;
  /** Container key the state dict came from ('' for the root). */
  sourceKey: string;
  /** Model keys the checkpoint does not provide (they keep their fresh init). */
  missingKeys: string[];
  /** Checkpoint keys the model does not use (dropped). */
  unexpectedKeys: string[];
  /** Missing keys that are expected to be missing (relative_position_index buffers the model builds itself). */
  ignoredMissingKeys: string[];
  /** Keys present in both with different shapes: dropped from `stateDict`, reported here. */
  mismatchedKeys: KeyMismatch[];
  /** Human-readable account of what was done (like the official prints). */
  log: string[];
}

const EXTRA_TOKENS = 3; // cls->token, token->cls, cls->cls rows at the end of every table

function shapeOf(t: AdaptTensor): number[] {
  return t.shape;
}

/** float32 values of a tensor (fp16/bf16/fp64 converted), C order. */
function floatValues(t: AdaptTensor): Float32Array {
  if (isTensorData(t)) {
    if (t.data instanceof Float32Array) return t.data;
    if (t.data instanceof Float64Array) return Float32Array.from(t.data);
    throw new CheckpointError('<adapt>', `cannot resample a ${t.dtype} tensor given as ${t.data.constructor.name}`);
  }
  if (!(t.dtype.startsWith('float') || t.dtype === 'bfloat16')) throw new CheckpointError(t.storage.file, `cannot resample a ${t.dtype} tensor`);
  const v = materialize(t);
  return v instanceof Float32Array ? v : Float32Array.from(v as Float64Array);
}

/** Choose the state dict inside a checkpoint root. */
export function pickStateDict(root: PyValue, keys: string[] = ['model', 'module', 'state_dict']): { key: string; dict: PyDict } {
  if (!(root instanceof PyDict)) throw new CheckpointError('<adapt>', 'checkpoint root is not a dict');
  for (const k of keys) {
    const v = root.get(k);
    if (v instanceof PyDict) return { key: k, dict: v };
  }
  return { key: '', dict: root };
}

/**
 * The bisection of MOOD's utils.py (L447-454), verbatim: q in [1.01, 1.5] such that the geometric
 * series 1 + q + ... + q^(k-1) reaches dst_side // 2; the last midpoint computed is the result.
 */
export function relPosBisectionQ(srcSide: number, dstSide: number): number {
  const k = Math.floor(srcSide / 2);
  const goal = Math.floor(dstSide / 2);
  let left = 1.01;
  let right = 1.5;
  let q = left;
  while (right - left > 1e-6) {
    q = (left + right) / 2.0;
    const gp = (1.0 - q ** k) / (1.0 - q);
    if (gp > goal) right = q;
    else left = q;
  }
  return q;
}

/** Source offsets [-d_k..-d_1, 0, d_1..d_k] and integer targets -t..t for a table side change. */
export function relPosOffsets(srcSide: number, dstSide: number): { q: number; source: number[]; target: number[] } {
  const q = relPosBisectionQ(srcSide, dstSide);
  const dis: number[] = [];
  let cur = 1;
  for (let i = 0; i < Math.floor(srcSide / 2); i++) {
    dis.push(cur);
    cur += q ** (i + 1);
  }
  const source = [...dis.map((d) => -d).reverse(), 0, ...dis];
  const t = Math.floor(dstSide / 2);
  const target: number[] = [];
  for (let v = -t; v <= t; v++) target.push(v);
  return { q, source, target };
}

/**
 * Resample a (srcSide^2 + 3, heads) relative position table to (dstSide^2 + 3, heads): per head the
 * grid is fitted with a not-a-knot bicubic spline on geometric offsets; the 3 extra rows are kept.
 */
export function interpolateRelPosTable(table: Float32Array, rows: number, heads: number, dstSide: number): Float32Array {
  const srcSide = Math.round(Math.sqrt(rows - EXTRA_TOKENS));
  if (srcSide * srcSide + EXTRA_TOKENS !== rows) throw new CheckpointError('<adapt>', `table with ${rows} rows is not a square window plus ${EXTRA_TOKENS} extra rows`);
  const { source, target } = relPosOffsets(srcSide, dstSide);
  const out = new Float32Array((dstSide * dstSide + EXTRA_TOKENS) * heads);
  const Z = new Float64Array(srcSide * srcSide);
  for (let h = 0; h < heads; h++) {
    for (let i = 0; i < srcSide * srcSide; i++) Z[i] = table[i * heads + h];
    const g = bicubicSplineGrid(Z, source, source, target, target);
    for (let i = 0; i < dstSide * dstSide; i++) out[i * heads + h] = g[i];
  }
  out.set(table.subarray(srcSide * srcSide * heads), dstSide * dstSide * heads);
  return out;
}

/** Resize pos_embed (1, extra + n*n, C) to (1, extra + m*m, C) with torch's bicubic interpolate. */
export function interpolatePosEmbed(pe: Float32Array, tokens: number, dim: number, extra: number, newSize: number): Float32Array {
  const orig = Math.round(Math.sqrt(tokens - extra));
  if (orig * orig + extra !== tokens) throw new CheckpointError('<adapt>', `pos_embed with ${tokens} tokens is not ${extra} extra tokens plus a square grid`);
  // (n*n, C) token-major -> (C, n, n) channel-major, resize, back to token-major.
  const chw = new Float32Array(dim * orig * orig);
  for (let p = 0; p < orig * orig; p++) for (let c = 0; c < dim; c++) chw[c * orig * orig + p] = pe[(extra + p) * dim + c];
  const r = bicubicResize(chw, dim, orig, orig, newSize, newSize);
  const out = new Float32Array((extra + newSize * newSize) * dim);
  out.set(pe.subarray(0, extra * dim));
  for (let p = 0; p < newSize * newSize; p++) for (let c = 0; c < dim; c++) out[(extra + p) * dim + c] = r[c * newSize * newSize + p];
  return out;
}

function renameKey(key: string, opts: AdaptOptions): string {
  let k = key;
  const mode = opts.stripModule ?? 'prefix';
  if (mode === 'anywhere') k = k.split('module.').join('');
  else if (mode === 'prefix' && k.startsWith('module.')) k = k.slice('module.'.length);
  if (opts.modelPrefix && k.startsWith(opts.modelPrefix)) k = k.slice(opts.modelPrefix.length);
  return k;
}

/** Adapt a checkpoint root (or a state dict) to `target`. Pure: the input is not modified. */
export function adaptStateDict(root: PyValue, target: TargetModel, opts: AdaptOptions = {}): AdaptResult {
  const log: string[] = [];
  const { key: sourceKey, dict } = pickStateDict(root, opts.stateDictKeys);
  log.push(sourceKey ? `Load state_dict by model_key = ${sourceKey}` : 'Checkpoint root used as the state dict');

  let sd = new Map<string, AdaptTensor>();
  for (const [k, v] of dict) {
    if (typeof k !== 'string') continue;
    if (!(v instanceof TensorRef) && !isTensorData(v)) continue; // non-tensor entries are not weights
    sd.set(renameKey(k, opts), v as AdaptTensor);
  }
  const dropped: string[] = [];
  const drop = (k: string): void => {
    if (sd.delete(k)) dropped.push(k);
  };

  // Classifier head: only kept when the class count matches (utils.py L410).
  const head = sd.get('head.weight');
  if (head && shapeOf(head)[0] !== target.numClasses) {
    log.push(`Removing head.weight/head.bias: checkpoint has ${shapeOf(head)[0]} classes, model ${target.numClasses}`);
    sd.delete('head.weight');
    sd.delete('head.bias');
  }

  // Shared table -> one per block (the same TensorRef everywhere: no copy).
  const shared = sd.get('rel_pos_bias.relative_position_bias_table');
  if (shared && target.useRelPosBias && !target.useSharedRelPosBias) {
    log.push('Expand the shared relative position embedding to each transformer block.');
    const next = new Map<string, AdaptTensor>();
    for (const [k, v] of sd) {
      if (k === 'rel_pos_bias.relative_position_bias_table') {
        for (let i = 0; i < target.depth; i++) next.set(`blocks.${i}.attn.relative_position_bias_table`, v);
      } else next.set(k, v);
    }
    sd = next;
  }

  // The model builds its own index buffers from its window.
  for (const k of [...sd.keys()]) if (k.includes('relative_position_index')) sd.delete(k);

  // Relative position tables at another window size.
  const [wh, ww] = target.windowSize;
  const dstSide = 2 * wh - 1;
  for (const [k, v] of sd) {
    if (!k.includes('relative_position_bias_table')) continue;
    const [rows, heads] = shapeOf(v);
    const dstRows = (2 * wh - 1) * (2 * ww - 1) + EXTRA_TOKENS;
    if (rows === dstRows) continue;
    if (wh !== ww) throw new CheckpointError('<adapt>', `relative position interpolation needs a square window, got ${wh}x${ww}`);
    const srcSide = Math.round(Math.sqrt(rows - EXTRA_TOKENS));
    log.push(`Position interpolate for ${k} from ${srcSide}x${srcSide} to ${dstSide}x${dstSide}`);
    const data = interpolateRelPosTable(floatValues(v), rows, heads, dstSide);
    sd.set(k, { dtype: 'float32', shape: [dstRows, heads], data });
  }

  // Absolute position embedding.
  const pe = sd.get('pos_embed');
  if (pe && target.useAbsPosEmb) {
    const [, tokens, dim] = shapeOf(pe);
    const newSize = Math.round(Math.sqrt(target.numPatches));
    const extra = 1; // cls token; BEiT has no distillation token
    const orig = Math.round(Math.sqrt(tokens - extra));
    if (orig !== newSize) {
      log.push(`Position interpolate from ${orig}x${orig} to ${newSize}x${newSize}`);
      const data = interpolatePosEmbed(floatValues(pe), tokens, dim, extra, newSize);
      sd.set('pos_embed', { dtype: 'float32', shape: [1, extra + newSize * newSize, dim], data });
    }
  }

  // Pre-training leftovers the classifier cannot use.
  drop('mask_token');
  for (const k of [...sd.keys()]) if (k.startsWith('lm_head.')) drop(k);
  if (target.useMeanPooling) {
    drop('norm.weight');
    drop('norm.bias');
  }
  if (!target.useAbsPosEmb) drop('pos_embed');
  if (!target.useRelPosBias) for (const k of [...sd.keys()]) if (k.includes('relative_position_bias_table')) drop(k);
  if (target.useRelPosBias && !target.useSharedRelPosBias) drop('rel_pos_bias.relative_position_bias_table');

  // load_state_dict(strict=False)-style report.
  const missingKeys: string[] = [];
  const ignoredMissingKeys: string[] = [];
  const mismatchedKeys: KeyMismatch[] = [];
  const unexpected = new Set<string>(dropped);
  if (target.expectedKeys) {
    for (const [k, shape] of target.expectedKeys) {
      const v = sd.get(k);
      if (!v) {
        (k.includes('relative_position_index') ? ignoredMissingKeys : missingKeys).push(k);
        continue;
      }
      const got = shapeOf(v);
      if (got.length !== shape.length || got.some((d, i) => d !== shape[i])) {
        mismatchedKeys.push({ key: k, checkpointShape: got, modelShape: shape });
        sd.delete(k);
      }
    }
    for (const k of sd.keys()) {
      if (!target.expectedKeys.has(k)) {
        unexpected.add(k);
        sd.delete(k);
      }
    }
  }
  const unexpectedKeys = [...unexpected];
  if (missingKeys.length) log.push(`Weights of VisionTransformer not initialized from pretrained model: ${JSON.stringify(missingKeys)}`);
  if (unexpectedKeys.length) log.push(`Weights from pretrained model not used in VisionTransformer: ${JSON.stringify(unexpectedKeys)}`);
  if (ignoredMissingKeys.length) log.push(`Ignored weights of VisionTransformer not initialized from pretrained model: ${JSON.stringify(ignoredMissingKeys)}`);
  for (const m of mismatchedKeys) log.push(`Size mismatch for ${m.key}: checkpoint [${m.checkpointShape}] vs model [${m.modelShape}] (kept the model's init)`);
  return { stateDict: sd, sourceKey, missingKeys, unexpectedKeys, ignoredMissingKeys, mismatchedKeys, log };
}
