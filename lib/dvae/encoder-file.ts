/**
 * OpenAI's DALL-E `encoder.pkl` (a whole `dall_e.encoder.Encoder` written by `torch.save(module)`),
 * read without running anything: the checkpoint reader in strict mode with the DALL-E allow-list
 * (lib/checkpoint/globals-dalle.ts: inert records for exactly the encoder's classes), then a walk of
 * the module tree that takes the structure from the file (widths, blocks per group, group count,
 * vocabulary, pooling, the per-conv float16 flags) and checks every module, attribute and tensor
 * against the architecture those numbers define. Anything else is an error naming the file, the
 * module path and what was found.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { CheckpointError } from '../checkpoint/errors';
import { DALLE_ENCODER_CLASSES, DALLE_ENCODER_GLOBALS } from '../checkpoint/globals-dalle';
import { describe } from '../checkpoint/pickle';
import { PickleRecord, PyDict, PyValue, isTuple } from '../checkpoint/pyvalues';
import { readCheckpoint } from '../checkpoint/reader';
import { TensorRef } from '../checkpoint/tensorref';
import { DvaeError } from './errors';

/** nn.MaxPool2d between groups (the reference: kernel 2, stride 2). */
export interface MaxPoolSpec {
  kernelSize: number;
  stride: number;
  padding: number;
  dilation: number;
  ceilMode: boolean;
}

/** The encoder's structure as the file states it. */
export interface DalleEncoderStructure {
  inputChannels: number;
  nHid: number;
  nBlkPerGroup: number;
  /** Groups of residual blocks (the reference class fixes 4; here: the `group_N` modules found). */
  groupCount: number;
  vocabSize: number;
  /** group_count * n_blk_per_group, stored in every block. */
  nLayers: number;
  /** 1 / n_layers^2, the residual branch's gain, stored in every block. */
  postGain: number;
  /** The pooling after every group but the last (all identical). */
  pool: MaxPoolSpec;
  useMixedPrecision: boolean;
  requiresGrad: boolean;
  training: boolean;
  /** The device the module was saved from ('cpu', 'cuda:0'); informational. */
  device: string | null;
  /** Conv2d modules (dotted paths such as 'blocks.input') whose use_float16 is set: the reference runs them in float16 on CUDA. */
  float16Convs: string[];
}

export interface DalleEncoderFile {
  /** Absolute path of encoder.pkl. */
  file: string;
  structure: DalleEncoderStructure;
  /** Parameters by state-dict key ('blocks.input.w', 'blocks.group_1.block_1.res_path.conv_1.b', ...), in module order. */
  parameters: Map<string, TensorRef>;
}

/** `DIR` (BEiT's --discrete_vae_weight_path) or a file -> the encoder.pkl to read. */
export function encoderPath(p: string): string {
  let st: fs.Stats;
  try {
    st = fs.statSync(p);
  } catch {
    throw new DvaeError(`${p}: no such file or folder (expected a folder holding encoder.pkl, or encoder.pkl itself)`);
  }
  if (!st.isDirectory()) return path.resolve(p);
  const f = path.resolve(p, 'encoder.pkl');
  if (!fs.existsSync(f)) throw new DvaeError(`${p}: no encoder.pkl in this folder (BEiT's dall-e tokenizer reads <weight_path>/encoder.pkl, OpenAI's DALL-E encoder)`);
  return f;
}

const MODULE_INTERNALS = new Set(['_parameters', '_buffers', '_modules']);

/** Public attributes of each class as the reference defines them (attrs fields, then what __attrs_post_init__ sets). */
const ATTRIBUTES: Record<string, readonly string[]> = {
  'dall_e.encoder.Encoder': ['n_hid', 'n_blk_per_group', 'input_channels', 'vocab_size', 'device', 'requires_grad', 'use_mixed_precision', 'training', 'group_count'],
  'dall_e.encoder.EncoderBlock': ['n_in', 'n_out', 'n_layers', 'device', 'requires_grad', 'n_hid', 'post_gain', 'training'],
  'dall_e.utils.Conv2d': ['n_in', 'n_out', 'kw', 'use_float16', 'device', 'requires_grad', 'training'],
  'torch.nn.modules.container.Sequential': ['training'],
  'torch.nn.modules.activation.ReLU': ['inplace', 'training'],
  'torch.nn.modules.pooling.MaxPool2d': ['kernel_size', 'stride', 'padding', 'dilation', 'return_indices', 'ceil_mode', 'training'],
  'torch.nn.modules.linear.Identity': ['training'],
};

/** Hook dicts, flags and sets torch keeps on every module (their names change across versions): inert only when empty. */
function emptyInternal(v: PyValue): boolean {
  return v === null || typeof v === 'boolean' || (v instanceof Map && v.size === 0) || (v instanceof Set && v.size === 0) || (Array.isArray(v) && v.length === 0);
}

interface Module {
  where: string;
  cls: string;
  attrs: PyDict;
}

class Walker {
  readonly parameters = new Map<string, TensorRef>();
  readonly float16Convs: string[] = [];
  constructor(readonly file: string) {}

  fail(where: string, message: string): never {
    throw new DvaeError(`${this.file}: ${where}: ${message}`);
  }

  module(v: PyValue | undefined, cls: string, where: string): Module {
    if (!(v instanceof PickleRecord)) this.fail(where, `expected a ${cls} module, found ${v === undefined ? 'nothing' : describe(v)}`);
    const rec = v as PickleRecord;
    if (rec.__class__ !== cls) this.fail(where, `expected a ${cls} module, found ${rec.__class__}`);
    if (!(rec.state instanceof PyDict)) this.fail(where, `${cls} has no attribute dict (found ${rec.state === undefined ? 'none' : describe(rec.state)})`);
    const attrs = rec.state as PyDict;
    const allowed = ATTRIBUTES[cls];
    for (const [k, val] of attrs) {
      const name = k as string;
      if (allowed.includes(name) || MODULE_INTERNALS.has(name)) continue;
      if (name.startsWith('_') && emptyInternal(val)) continue;
      this.fail(where, `unexpected attribute '${name}' (${describe(val)}) on ${cls}`);
    }
    const buffers = attrs.get('_buffers');
    if (buffers !== undefined && !(buffers instanceof PyDict && buffers.size === 0)) this.fail(where, `${cls} has buffers (${describe(buffers)}); the reference's has none`);
    for (const k of ['_parameters', '_modules']) if (!(attrs.get(k) instanceof PyDict)) this.fail(where, `${cls} lacks its '${k}' dict`);
    return { where, cls, attrs };
  }

  int(m: Module, key: string, min: number, why = ''): number {
    const v = m.attrs.get(key);
    if (typeof v !== 'number' || !Number.isSafeInteger(v)) this.fail(m.where, `attribute '${key}' must be an int, found ${v === undefined ? 'nothing' : describe(v)}`);
    if ((v as number) < min) this.fail(m.where, `attribute '${key}' is ${v as number}${why || `, expected >= ${min}`}`);
    return v as number;
  }

  bool(m: Module, key: string, dflt?: boolean): boolean {
    const v = m.attrs.get(key);
    if (v === undefined && dflt !== undefined) return dflt;
    if (typeof v !== 'boolean') this.fail(m.where, `attribute '${key}' must be a bool, found ${v === undefined ? 'nothing' : describe(v)}`);
    return v as boolean;
  }

  device(m: Module): string | null {
    const v = m.attrs.get('device');
    if (v === undefined || v === null) return null;
    if (typeof v !== 'string') this.fail(m.where, `attribute 'device' must be a torch.device, found ${describe(v)}`);
    return v as string;
  }

  /** Pooling sizes are ints or (n, n) pairs. */
  square(m: Module, key: string, min: number): number {
    const v = m.attrs.get(key);
    if (isTuple(v) && v.length === 2 && v[0] === v[1]) return this.int({ ...m, attrs: new PyDict('builtins.dict', [[key, v[0]]]) }, key, min);
    return this.int(m, key, min);
  }

  children(m: Module, expected: readonly string[]): PyDict {
    const mods = m.attrs.get('_modules') as PyDict;
    const found = [...mods.keys()] as string[];
    if (found.length !== expected.length || found.some((k, i) => k !== expected[i])) {
      this.fail(m.where, `expected submodules [${expected.join(', ')}], found [${found.join(', ')}]`);
    }
    return mods;
  }

  noParameters(m: Module): void {
    const p = m.attrs.get('_parameters') as PyDict;
    if (p.size) this.fail(m.where, `${m.cls} has parameters [${[...p.keys()].join(', ')}]; the reference's has none`);
  }

  leaf(v: PyValue | undefined, cls: string, where: string): Module {
    const m = this.module(v, cls, where);
    this.children(m, []);
    this.noParameters(m);
    return m;
  }

  conv(v: PyValue | undefined, where: string, nIn: number, nOut: number, kw: number): void {
    const m = this.module(v, 'dall_e.utils.Conv2d', where);
    this.children(m, []);
    for (const [key, want] of [['n_in', nIn], ['n_out', nOut], ['kw', kw]] as const) {
      const got = this.int(m, key, 1);
      if (got !== want) this.fail(where, `${key} is ${got}, the encoder's structure needs ${want}`);
    }
    if (this.bool(m, 'use_float16', true)) this.float16Convs.push(where);
    this.bool(m, 'requires_grad', false);
    this.device(m);
    const params = m.attrs.get('_parameters') as PyDict;
    const keys = [...params.keys()] as string[];
    if (keys.length !== 2 || !params.has('w') || !params.has('b')) this.fail(where, `expected parameters [w, b], found [${keys.join(', ')}]`);
    for (const [name, shape] of [['w', [nOut, nIn, kw, kw]], ['b', [nOut]]] as const) {
      const t = params.get(name);
      if (!(t instanceof TensorRef)) this.fail(`${where}.${name}`, `expected a tensor, found ${describe(t)}`);
      const ref = t as TensorRef;
      if (ref.shape.length !== shape.length || ref.shape.some((d, i) => d !== shape[i])) {
        this.fail(`${where}.${name}`, `shape [${ref.shape.join(', ')}], expected [${shape.join(', ')}]`);
      }
      if (!['float32', 'float16', 'bfloat16', 'float64'].includes(ref.dtype)) this.fail(`${where}.${name}`, `dtype ${ref.dtype}, expected a floating-point tensor`);
      this.parameters.set(`${where}.${name}`, ref);
    }
  }

  pool(v: PyValue | undefined, where: string): MaxPoolSpec {
    const m = this.leaf(v, 'torch.nn.modules.pooling.MaxPool2d', where);
    if (this.bool(m, 'return_indices', false)) this.fail(where, 'return_indices is set: the pooling must return values only');
    return {
      kernelSize: this.square(m, 'kernel_size', 1),
      stride: this.square(m, 'stride', 1),
      padding: this.square(m, 'padding', 0),
      dilation: this.square(m, 'dilation', 1),
      ceilMode: this.bool(m, 'ceil_mode', false),
    };
  }

  relu(v: PyValue | undefined, where: string): void {
    const m = this.leaf(v, 'torch.nn.modules.activation.ReLU', where);
    this.bool(m, 'inplace', false);
  }

  block(v: PyValue | undefined, where: string, nIn: number, nOut: number, nLayers: number): void {
    const m = this.module(v, 'dall_e.encoder.EncoderBlock', where);
    this.noParameters(m);
    const gotIn = this.int(m, 'n_in', 1);
    const gotOut = this.int(m, 'n_out', 1);
    if (gotIn !== nIn || gotOut !== nOut) this.fail(where, `n_in/n_out are ${gotIn}/${gotOut}, the encoder's structure needs ${nIn}/${nOut}`);
    if (nOut % 4 !== 0) this.fail(where, `n_out ${nOut} is not a multiple of 4 (the reference's validator)`);
    const hid = nOut / 4;
    const gotHid = this.int(m, 'n_hid', 1);
    if (gotHid !== hid) this.fail(where, `n_hid is ${gotHid}, expected n_out // 4 = ${hid}`);
    const layers = this.int(m, 'n_layers', 1);
    if (layers !== nLayers) this.fail(where, `n_layers is ${layers}, expected group_count * n_blk_per_group = ${nLayers}`);
    const gain = m.attrs.get('post_gain');
    if (typeof gain !== 'number' || gain !== 1 / (nLayers * nLayers)) this.fail(where, `post_gain is ${describe(gain)} ${String(gain)}, expected 1 / n_layers^2 = ${1 / (nLayers * nLayers)}`);
    this.bool(m, 'requires_grad', false);
    this.device(m);
    const kids = this.children(m, ['id_path', 'res_path']);
    if (nIn !== nOut) this.conv(kids.get('id_path'), `${where}.id_path`, nIn, nOut, 1);
    else this.leaf(kids.get('id_path'), 'torch.nn.modules.linear.Identity', `${where}.id_path`);
    const rp = `${where}.res_path`;
    const res = this.module(kids.get('res_path'), 'torch.nn.modules.container.Sequential', rp);
    this.noParameters(res);
    const r = this.children(res, ['relu_1', 'conv_1', 'relu_2', 'conv_2', 'relu_3', 'conv_3', 'relu_4', 'conv_4']);
    const convs: Array<[number, number, number]> = [[nIn, hid, 3], [hid, hid, 3], [hid, hid, 3], [hid, nOut, 1]];
    convs.forEach(([a, b, k], i) => {
      this.relu(r.get(`relu_${i + 1}`), `${rp}.relu_${i + 1}`);
      this.conv(r.get(`conv_${i + 1}`), `${rp}.conv_${i + 1}`, a, b, k);
    });
  }
}

/** Reads and checks an encoder.pkl (or DIR/encoder.pkl). Throws DvaeError naming the file and what was found. */
export function readDalleEncoderFile(p: string): DalleEncoderFile {
  const file = encoderPath(p);
  let root: PyValue;
  try {
    const ckpt = readCheckpoint(file, {
      strict: true,
      extraGlobals: DALLE_ENCODER_GLOBALS,
      allowListName: `tensors and the DALL-E encoder's own classes (${DALLE_ENCODER_CLASSES.join(', ')})`,
    });
    root = ckpt.root;
  } catch (e) {
    if (e instanceof CheckpointError) throw new DvaeError(`not a loadable DALL-E encoder.pkl: ${e.message}`, { cause: e });
    throw e;
  }
  const w = new Walker(file);
  const enc = w.module(root, 'dall_e.encoder.Encoder', 'Encoder');
  w.noParameters(enc);
  // The reference's attrs validators (a file the reference could not have built is refused).
  const nHid = w.int(enc, 'n_hid', 64, ', the reference requires n_hid >= 64');
  const nBlk = w.int(enc, 'n_blk_per_group', 1);
  const inputChannels = w.int(enc, 'input_channels', 1);
  const vocabSize = w.int(enc, 'vocab_size', 512, ', the reference requires vocab_size >= 512');
  const useMixedPrecision = w.bool(enc, 'use_mixed_precision', true);
  const requiresGrad = w.bool(enc, 'requires_grad', false);
  const training = w.bool(enc, 'training', false);
  const device = w.device(enc);

  const top = w.children(enc, ['blocks']);
  const blocks = w.module(top.get('blocks'), 'torch.nn.modules.container.Sequential', 'blocks');
  w.noParameters(blocks);
  const names = [...(blocks.attrs.get('_modules') as PyDict).keys()] as string[];
  const groupCount = names.length - 2;
  if (groupCount < 1) w.fail('blocks', `expected [input, group_1, ..., output], found [${names.join(', ')}]`);
  const kids = w.children(blocks, ['input', ...Array.from({ length: groupCount }, (_, g) => `group_${g + 1}`), 'output']);
  const declared = enc.attrs.get('group_count');
  if (declared !== undefined && declared !== groupCount) w.fail('Encoder', `group_count is ${describe(declared)} ${String(declared)} but the file holds ${groupCount} groups`);
  const nLayers = groupCount * nBlk;

  w.conv(kids.get('input'), 'blocks.input', inputChannels, nHid, 7);
  let pool: MaxPoolSpec | undefined;
  let width = nHid;
  for (let g = 1; g <= groupCount; g++) {
    const where = `blocks.group_${g}`;
    const grp = w.module(kids.get(`group_${g}`), 'torch.nn.modules.container.Sequential', where);
    w.noParameters(grp);
    const last = g === groupCount;
    const blockNames = Array.from({ length: nBlk }, (_, i) => `block_${i + 1}`);
    const gk = w.children(grp, last ? blockNames : [...blockNames, 'pool']);
    const out = nHid * 2 ** (g - 1);
    for (let i = 0; i < nBlk; i++) w.block(gk.get(blockNames[i]), `${where}.${blockNames[i]}`, i === 0 ? width : out, out, nLayers);
    width = out;
    if (!last) {
      const p = w.pool(gk.get('pool'), `${where}.pool`);
      if (pool && JSON.stringify(p) !== JSON.stringify(pool)) w.fail(`${where}.pool`, `pooling ${JSON.stringify(p)} differs from the first group's ${JSON.stringify(pool)}`);
      pool = p;
    }
  }
  const outMod = w.module(kids.get('output'), 'torch.nn.modules.container.Sequential', 'blocks.output');
  w.noParameters(outMod);
  const ok = w.children(outMod, ['relu', 'conv']);
  w.relu(ok.get('relu'), 'blocks.output.relu');
  w.conv(ok.get('conv'), 'blocks.output.conv', width, vocabSize, 1);
  return {
    file,
    structure: {
      inputChannels,
      nHid,
      nBlkPerGroup: nBlk,
      groupCount,
      vocabSize,
      nLayers,
      postGain: 1 / (nLayers * nLayers),
      pool: pool ?? { kernelSize: 2, stride: 2, padding: 0, dilation: 1, ceilMode: false },
      useMixedPrecision,
      requiresGrad,
      training,
      device,
      float16Convs: w.float16Convs,
    },
    parameters: w.parameters,
  };
}
