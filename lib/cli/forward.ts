/**
 * `mood forward`: run a BEiT checkpoint on a numpy .npy batch (float32 NCHW; float64 converted) and
 * write the pooled features and/or logits as float32 .npy, so tensors move between Python and Node.
 *
 * Every user mistake (missing file, bad shape, bad JSON, nothing to write, an output that would
 * overwrite the input) is a `ForwardCliError`: main() prints its message, no stack trace.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { ndarray, readNpy, writeNpy } from '../npy';
import type { NdArray } from '../npy';
import { intFlag } from '../util/flags';
import { checkImageShape, fmtShape, forwardInBatches, modelFromFlags } from './model';

export class ForwardCliError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'ForwardCliError';
  }
}

const fail = (message: string): Error => new ForwardCliError(message);

export interface ForwardCliOptions {
  ckpt?: string;
  model?: string;
  modelOpts?: string;
  input?: string;
  featuresOut?: string;
  logitsOut?: string;
  batchSize?: string;
  json?: boolean;
}

/** The reference constructor's keywords (modeling_finetune.VisionTransformer) and their JSON types. */
const MODEL_OPTION_TYPES: Readonly<Record<string, 'int' | 'number' | 'boolean' | 'number|null'>> = {
  img_size: 'int',
  patch_size: 'int',
  in_chans: 'int',
  num_classes: 'int',
  embed_dim: 'int',
  depth: 'int',
  num_heads: 'int',
  mlp_ratio: 'number',
  qkv_bias: 'boolean',
  init_values: 'number|null',
  use_abs_pos_emb: 'boolean',
  use_rel_pos_bias: 'boolean',
  use_shared_rel_pos_bias: 'boolean',
  use_mean_pooling: 'boolean',
  drop_rate: 'number',
  attn_drop_rate: 'number',
  drop_path_rate: 'number',
  layer_norm_eps: 'number',
  init_scale: 'number',
};

/**
 * Parses `--model-opts`: a JSON object with the reference's keyword names. As a convenience, what a
 * user pastes from Python also parses: a dict literal (`{'img_size': 32, 'qkv_bias': True}`) or
 * keyword arguments (`img_size=32, qkv_bias=True, init_values=None`).
 */
export function parseModelOpts(text: string): Record<string, unknown> {
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch (jsonError) {
    let t = text.trim();
    if (!t.startsWith('{')) t = `{${t.replace(/([A-Za-z_][A-Za-z0-9_]*)\s*=/g, '"$1":')}}`;
    t = t.replace(/'/g, '"').replace(/\bTrue\b/g, 'true').replace(/\bFalse\b/g, 'false').replace(/\bNone\b/g, 'null').replace(/,\s*}/g, '}');
    try {
      value = JSON.parse(t);
    } catch {
      throw new ForwardCliError(`--model-opts is not valid JSON (${(jsonError as Error).message}): ${text}`);
    }
  }
  if (typeof value !== 'object' || value === null || Array.isArray(value)) {
    throw new ForwardCliError(`--model-opts must be a JSON object such as {"img_size": 224, "num_classes": 1000}, got ${JSON.stringify(value)}`);
  }
  const out: Record<string, unknown> = {};
  const problems: string[] = [];
  for (const [k, v] of Object.entries(value as Record<string, unknown>)) {
    const type = MODEL_OPTION_TYPES[k];
    if (!type) {
      problems.push(`unknown option '${k}' (known: ${Object.keys(MODEL_OPTION_TYPES).join(', ')})`);
      continue;
    }
    const ok =
      type === 'boolean'
        ? typeof v === 'boolean'
        : type === 'int'
          ? typeof v === 'number' && Number.isInteger(v) && v >= 0
          : type === 'number|null'
            ? v === null || (typeof v === 'number' && Number.isFinite(v))
            : typeof v === 'number' && Number.isFinite(v);
    if (!ok) problems.push(`${k}: expected ${type === 'int' ? 'a non-negative integer' : type === 'number|null' ? 'a number or null' : `a ${type}`}, got ${JSON.stringify(v)}`);
    else out[k] = v;
  }
  if (problems.length) throw new ForwardCliError(`--model-opts: ${problems.join('; ')}`);
  return out;
}

/** Same file (after symlinks and hard links) as any of `others`? */
export function sameFile(a: string, b: string): boolean {
  const ra = path.resolve(a);
  const rb = path.resolve(b);
  if (ra === rb) return true;
  try {
    const sa = fs.statSync(ra);
    const sb = fs.statSync(rb);
    return sa.dev === sb.dev && sa.ino === sb.ino;
  } catch {
    return false;
  }
}

export function checkOutputPath(flag: string, file: string, protectedFiles: Array<[string, string]>): void {
  for (const [what, p] of protectedFiles) {
    if (sameFile(file, p)) throw new ForwardCliError(`${flag} ${file} is the ${what}: refusing to overwrite it`);
  }
  const dir = path.dirname(path.resolve(file));
  if (!fs.existsSync(dir) || !fs.statSync(dir).isDirectory()) throw new ForwardCliError(`${flag} ${file}: directory ${dir} does not exist`);
  if (fs.existsSync(file) && fs.statSync(file).isDirectory()) throw new ForwardCliError(`${flag} ${file} is a directory`);
}

export function requireFile(flag: string, file: string | undefined): string {
  if (!file) throw new ForwardCliError(`${flag} <file> is required`);
  if (!fs.existsSync(file)) throw new ForwardCliError(`${flag} ${file}: no such file`);
  if (!fs.statSync(file).isFile()) throw new ForwardCliError(`${flag} ${file}: not a regular file`);
  return file;
}


/** Reads the input batch as float32 C-order values. */
function readInput(file: string): { arr: NdArray; values: Float32Array; converted: boolean } {
  let arr: NdArray;
  try {
    arr = readNpy(file);
  } catch (e) {
    throw new ForwardCliError(`--input ${file}: ${(e as Error).message.replace(`${path.resolve(file)}: `, '')}`);
  }
  if (arr.dtype !== 'float32' && arr.dtype !== 'float64') {
    throw new ForwardCliError(`--input ${file}: expected dtype float32 (or float64, converted), got ${arr.dtype}`);
  }
  if (arr.shape.length !== 4) {
    throw new ForwardCliError(`--input ${file}: expected a 4-d NCHW batch (N, C, H, W), got shape ${fmtShape(arr.shape)}${arr.shape.length === 3 ? ' (for one image use x[None])' : ''}`);
  }
  if (arr.shape[0] === 0) throw new ForwardCliError(`--input ${file}: the batch is empty, shape ${fmtShape(arr.shape)}`);
  const c = arr.toCOrder();
  const typed = c.typed();
  const values = typed instanceof Float32Array ? typed : Float32Array.from(typed as Float64Array);
  return { arr, values, converted: arr.dtype === 'float64' };
}

interface OutputRecord {
  file: string;
  dtype: 'float32';
  shape: number[];
}

export interface ForwardSummary {
  model: { config: string | null; options: Record<string, unknown> };
  checkpoint: {
    file: string;
    sourceKey: string;
    inferred: Record<string, unknown>;
    missingKeys: string[];
    unexpectedKeys: string[];
    ignoredMissingKeys: string[];
    log: string[];
  };
  input: { file: string; dtype: string; shape: number[]; convertedToFloat32: boolean };
  outputs: { features?: OutputRecord; logits?: OutputRecord };
  batchSize: number;
  seconds: number;
}

/** Runs `mood forward` and returns what it did (also printed). Throws ForwardCliError for bad input. */
export async function runForward(opts: ForwardCliOptions): Promise<ForwardSummary> {
  const t0 = process.hrtime.bigint();
  const ckpt = requireFile('--ckpt', opts.ckpt);
  const input = requireFile('--input', opts.input);
  if (!opts.featuresOut && !opts.logitsOut) throw new ForwardCliError('no output requested: give --features-out F.npy and/or --logits-out L.npy');
  const protectedFiles: Array<[string, string]> = [
    ['input file', input],
    ['checkpoint', ckpt],
  ];
  if (opts.featuresOut) checkOutputPath('--features-out', opts.featuresOut, protectedFiles);
  if (opts.logitsOut) checkOutputPath('--logits-out', opts.logitsOut, protectedFiles);
  if (opts.featuresOut && opts.logitsOut && sameFile(opts.featuresOut, opts.logitsOut)) {
    throw new ForwardCliError(`--features-out and --logits-out name the same file ${opts.featuresOut}`);
  }
  const batchSize = intFlag('--batch-size', opts.batchSize, { min: 1 }) ?? 32;
  const given = opts.modelOpts !== undefined ? parseModelOpts(opts.modelOpts) : {};
  const { arr, values, converted } = readInput(input);

  // libtorch loads only now, after the cheap checks.
  const model = await modelFromFlags({ ckpt, model: opts.model, options: given }, fail);
  try {
    model.eval();
    const o = model.options;
    const n = arr.shape[0];
    checkImageShape(`--input ${input}`, arr.shape, model, fail);
    const rows = await forwardInBatches(model, values, arr.shape, batchSize, { features: !!opts.featuresOut, logits: !!opts.logitsOut });
    const outputs: ForwardSummary['outputs'] = {};
    if (opts.featuresOut && rows.features) {
      writeNpy(opts.featuresOut, ndarray('float32', [n, rows.features.dim], rows.features.data));
      outputs.features = { file: opts.featuresOut, dtype: 'float32', shape: [n, rows.features.dim] };
    }
    if (opts.logitsOut && rows.logits) {
      writeNpy(opts.logitsOut, ndarray('float32', [n, rows.logits.dim], rows.logits.data));
      outputs.logits = { file: opts.logitsOut, dtype: 'float32', shape: [n, rows.logits.dim] };
    }
    const rep = model.loadReport!;
    const options: Record<string, unknown> = {};
    for (const k of Object.keys(MODEL_OPTION_TYPES)) options[k] = (o as unknown as Record<string, unknown>)[k];
    const summary: ForwardSummary = {
      model: { config: opts.model ?? null, options },
      checkpoint: {
        file: rep.file,
        sourceKey: rep.sourceKey,
        inferred: rep.inferred as Record<string, unknown>,
        missingKeys: rep.missingKeys,
        unexpectedKeys: rep.unexpectedKeys,
        ignoredMissingKeys: rep.ignoredMissingKeys,
        log: rep.log,
      },
      input: { file: input, dtype: arr.dtype, shape: arr.shape, convertedToFloat32: converted },
      outputs,
      batchSize,
      seconds: Number(process.hrtime.bigint() - t0) / 1e9,
    };
    return summary;
  } finally {
    model.dispose();
  }
}

export function formatSummary(s: ForwardSummary): string {
  const o = s.model.options;
  const list = (a: string[]): string => (a.length ? a.join(', ') : 'none');
  const pos = [o.use_abs_pos_emb ? 'abs pos emb' : '', o.use_rel_pos_bias ? 'rel pos bias per block' : '', o.use_shared_rel_pos_bias ? 'shared rel pos bias' : '']
    .filter(Boolean)
    .join(' + ') || 'no position encoding';
  const lines = [
    `model      ${s.model.config ?? 'BEiT'}: img ${o.img_size}, patch ${o.patch_size}, embed ${o.embed_dim}, depth ${o.depth}, heads ${o.num_heads}, ` +
      `${o.use_mean_pooling ? 'mean pooling' : 'cls pooling'}, ${pos}, ${o.num_classes} classes`,
    `checkpoint ${s.checkpoint.file}${s.checkpoint.sourceKey ? ` ['${s.checkpoint.sourceKey}']` : ''}`,
    `inferred   ${list(Object.entries(s.checkpoint.inferred).map(([k, v]) => `${k}=${JSON.stringify(v)}`))}`,
    `missing    ${list(s.checkpoint.missingKeys)}`,
    `unexpected ${list(s.checkpoint.unexpectedKeys)}`,
    ...s.checkpoint.log.map((l, i) => `${i ? '          ' : 'adaptation'} ${l}`),
    `input      ${s.input.file} ${s.input.dtype} ${fmtShape(s.input.shape)}${s.input.convertedToFloat32 ? ' (converted to float32)' : ''}`,
  ];
  if (s.outputs.features) lines.push(`features   ${s.outputs.features.file} float32 ${fmtShape(s.outputs.features.shape)}`);
  if (s.outputs.logits) lines.push(`logits     ${s.outputs.logits.file} float32 ${fmtShape(s.outputs.logits.shape)}`);
  lines.push(`time       ${s.seconds.toFixed(2)} s (batch size ${s.batchSize})`);
  return lines.join('\n') + '\n';
}

/** The command's action: prints the summary (or JSON). */
export async function runForwardCommand(opts: ForwardCliOptions): Promise<void> {
  const s = await runForward(opts);
  process.stdout.write(opts.json ? JSON.stringify(s, null, 2) + '\n' : formatSummary(s));
}
