/**
 * saveCheckpoint: write a zip-format checkpoint that `torch.load` reads in PyTorch 1.13 and 2.x,
 * including `weights_only=True` for state dicts (tensors, ints, strings, bools, None, lists, tuples,
 * dicts). Layout as torch.save: `<stem>/data.pkl` (protocol 2), `<stem>/byteorder`, `<stem>/data/<n>`
 * (raw little-endian storages, uncompressed, 64-byte aligned), `<stem>/version` = 3. Atomic.
 */
import * as path from 'node:path';
import { CheckpointError } from './errors';
import { DType, DTYPE_TO_STORAGE_CLASS, ELEMENT_SIZE, RawArray, floatToBFloat16Bits, floatToHalfBits, isDType } from './dtypes';
import { bytesOf } from '../io/crc32';
import { atomicWriteFile } from '../io/atomic';
import { ZipWriter, ZipWriterOptions } from '../io/zipwrite';
import { PickleBuilder } from './pickle-writer';
import { PickleRecord, PyComplex, PyDict, PyGlobal, isTuple } from './pyvalues';
import { StorageRef, TensorRef, numelOf } from './tensorref';
import { materialize } from './materialize';
import { NdArray } from '../npy/ndarray';

/**
 * A tensor to write. `data` holds the elements in C order: Float32Array for float32, Float64Array
 * for float64, BigInt64Array for int64, Int32Array/Int16Array/Int8Array/Uint8Array for the others
 * (bool as 0/1 bytes); float16/bfloat16 accept their raw bits as Uint16Array, or a Float32Array that
 * is rounded to nearest even.
 */
export interface TensorData {
  dtype: DType;
  shape: number[];
  data: RawArray;
}

/** Forces a Python float where a JS number is integral (e.g. `scale: pyFloat(65536)`). */
export class PyFloat {
  constructor(readonly value: number) {}
}
export function pyFloat(v: number): PyFloat {
  return new PyFloat(v);
}

export type SaveValue =
  | null
  | undefined
  | boolean
  | number
  | bigint
  | string
  | PyFloat
  | Uint8Array
  | TensorData
  | TensorRef
  | PickleRecord
  | PyComplex
  | SaveValue[]
  | readonly SaveValue[]
  | Map<unknown, unknown>
  | Set<unknown>
  | { [key: string]: SaveValue };

export interface SaveOptions {
  /** Record prefix inside the zip; default: the target file name without its last extension (as torch). */
  archiveName?: string;
  /** Write plain objects / Maps as collections.OrderedDict (default false: plain dict). PyDicts keep their class. */
  orderedDicts?: boolean;
  /** Deepest nesting accepted (cycles are refused regardless). */
  maxDepth?: number;
  /** Passed to the zip writer (alignment, forced zip64 for tests). */
  zip?: ZipWriterOptions;
}

export function isTensorData(v: unknown): v is TensorData {
  if (v === null || typeof v !== 'object' || v instanceof TensorRef || v instanceof Map) return false;
  const o = v as Record<string, unknown>;
  return isDType(o.dtype) && Array.isArray(o.shape) && ArrayBuffer.isView(o.data) && Object.keys(o).length === 3;
}

interface PendingStorage {
  key: string;
  dtype: DType;
  numel: number;
  bytes: Uint8Array;
}

/** Serialises values into a pickle while collecting the storages they reference. */
class CheckpointPickler {
  readonly p = new PickleBuilder();
  readonly storages: PendingStorage[] = [];
  private readonly byArray = new Map<object, PendingStorage>();
  private readonly byRef = new Map<StorageRef, PendingStorage>();
  private readonly active = new Set<object>();
  constructor(private readonly file: string, private readonly opts: SaveOptions) {}

  private fail(msg: string, where: string): never {
    throw new CheckpointError(this.file, msg, { where: `value at '${where || '<root>'}'` });
  }

  private addStorage(dtype: DType, numel: number, bytes: Uint8Array): PendingStorage {
    const s: PendingStorage = { key: String(this.storages.length), dtype, numel, bytes };
    this.storages.push(s);
    return s;
  }

  /** Contiguous element bytes for a TensorData, converting float32 input for half types. */
  private tensorStorage(t: TensorData, where: string): PendingStorage {
    const hit = this.byArray.get(t.data);
    if (hit) {
      if (hit.dtype !== t.dtype) this.fail('the same data array is used with two dtypes', where);
      return hit;
    }
    const n = numelOf(t.shape);
    if (!t.shape.every((d) => Number.isSafeInteger(d) && d >= 0)) this.fail(`bad shape [${t.shape}]`, where);
    if (t.data.length !== n) this.fail(`data has ${t.data.length} elements, shape [${t.shape}] needs ${n}`, where);
    let bytes: Uint8Array;
    const d = t.data;
    const want = expectedArray(t.dtype);
    if ((t.dtype === 'float16' || t.dtype === 'bfloat16') && d instanceof Float32Array) {
      const bits = new Uint16Array(n);
      const conv = t.dtype === 'float16' ? floatToHalfBits : floatToBFloat16Bits;
      for (let i = 0; i < n; i++) bits[i] = conv(d[i]);
      bytes = bytesOf(bits);
    } else if (d.constructor.name === want) {
      bytes = bytesOf(d);
    } else {
      this.fail(`dtype ${t.dtype} needs a ${want}, got ${d.constructor.name}`, where);
    }
    const s = this.addStorage(t.dtype, n, bytes);
    this.byArray.set(t.data, s);
    return s;
  }

  /** A TensorRef keeps its view; its whole storage is copied once (sharing preserved). */
  private refStorage(r: TensorRef): PendingStorage {
    const hit = this.byRef.get(r.storage);
    if (hit) return hit;
    const st = r.storage;
    const whole = new TensorRef({ dtype: st.dtype, shape: [st.numel], stride: [1], storageOffset: 0, storage: st });
    const s = this.addStorage(st.dtype, st.numel, bytesOf(materialize(whole, { raw16: true })));
    this.byRef.set(st, s);
    return s;
  }

  private tensor(s: PendingStorage, offset: number, shape: number[], stride: number[], requiresGrad: boolean): void {
    const p = this.p;
    p.global('torch._utils', '_rebuild_tensor_v2');
    p.mark();
    // persistent id ('storage', torch.<T>Storage, key, 'cpu', numel)
    p.mark().str('storage').global('torch', DTYPE_TO_STORAGE_CLASS[s.dtype]).str(s.key).str('cpu').int(s.numel).op(0x74).binpersid();
    p.int(offset);
    p.tupleOf(shape.length, () => shape.forEach((x) => p.int(x)));
    p.tupleOf(stride.length, () => stride.forEach((x) => p.int(x)));
    p.bool(requiresGrad);
    p.global('collections', 'OrderedDict').op(0x29).reduce(); // backward hooks: empty OrderedDict
    p.op(0x74).reduce();
  }

  value(v: unknown, where: string, depth: number): void {
    const p = this.p;
    if (depth > (this.opts.maxDepth ?? 512)) this.fail('nesting too deep', where);
    if (v === null || v === undefined) return void p.none();
    if (typeof v === 'boolean') return void p.bool(v);
    if (typeof v === 'number') {
      if (Number.isSafeInteger(v) && !Object.is(v, -0)) return void p.int(v);
      return void p.float(v);
    }
    if (typeof v === 'bigint') return void p.int(v);
    if (typeof v === 'string') return void p.str(v);
    if (v instanceof PyFloat) return void p.float(v.value);
    if (typeof v !== 'object') this.fail(`cannot pickle a ${typeof v}`, where);

    if (v instanceof TensorRef) {
      const s = this.refStorage(v);
      return this.tensor(s, v.storageOffset, v.shape, v.stride, v.requiresGrad);
    }
    if (isTensorData(v)) {
      const s = this.tensorStorage(v, where);
      const stride = contiguousStride(v.shape);
      return this.tensor(s, 0, v.shape, stride, false);
    }
    if (v instanceof Uint8Array) return void p.bytes(v);
    if (v instanceof NdArray) this.fail('numpy arrays cannot go into a checkpoint: convert to {dtype, shape, data}', where);
    if (v instanceof PyComplex) {
      p.global('builtins', 'complex');
      p.tupleOf(2, () => p.float(v.re).float(v.im));
      return void p.reduce();
    }
    if (v instanceof PyGlobal || v instanceof StorageRef) this.fail(`cannot write a bare ${v.constructor.name}`, where);

    if (this.active.has(v)) this.fail('cyclic structure', where);
    this.active.add(v);
    try {
      if (v instanceof PickleRecord) {
        // Foreign objects go back as plain data: their attribute dict, or a descriptive dict.
        if (v.state instanceof PyDict) return this.dict(v.state, where, depth, false);
        return this.dict(new Map<unknown, unknown>([['__class__', v.__class__], ['args', v.args], ['state', v.state ?? null]]), where, depth, false);
      }
      if (Array.isArray(v)) {
        const items = v as readonly unknown[];
        if (isTuple(v)) {
          return void p.tupleOf(items.length, () => items.forEach((x, i) => this.value(x, `${where}.${i}`, depth + 1)));
        }
        p.emptyList();
        if (items.length) {
          p.mark();
          items.forEach((x, i) => this.value(x, `${where}.${i}`, depth + 1));
          p.appends();
        }
        return;
      }
      if (v instanceof Set) {
        p.global('builtins', 'set');
        p.tupleOf(1, () => {
          p.emptyList();
          if (v.size) {
            p.mark();
            let i = 0;
            for (const x of v) this.value(x, `${where}.{${i++}}`, depth + 1);
            p.appends();
          }
        });
        return void p.reduce();
      }
      if (v instanceof Map) {
        const ordered = v instanceof PyDict ? v.pyClass === 'collections.OrderedDict' : this.opts.orderedDicts === true;
        return this.dict(v, where, depth, ordered);
      }
      if (ArrayBuffer.isView(v)) this.fail(`a bare ${v.constructor.name} is not a value: wrap it as {dtype, shape, data}`, where);
      return this.dict(new Map(Object.entries(v)), where, depth, this.opts.orderedDicts === true);
    } finally {
      this.active.delete(v);
    }
  }

  private dict(m: Map<unknown, unknown>, where: string, depth: number, ordered: boolean): void {
    const p = this.p;
    if (ordered) p.global('collections', 'OrderedDict').op(0x29).reduce();
    else p.emptyDict();
    if (m.size) {
      p.mark();
      for (const [k, x] of m) {
        this.value(k, `${where}[key]`, depth + 1);
        this.value(x, where ? `${where}.${String(k)}` : String(k), depth + 1);
      }
      p.setitems();
    }
    // OrderedDict state (torch's `_metadata`) goes back via BUILD, as torch writes it; the
    // weights_only unpickler allows BUILD on OrderedDict only, so plain dicts never get one.
    if (ordered && m instanceof PyDict && m.attributes !== undefined && m.attributes !== null) {
      this.value(m.attributes, `${where}.__dict__`, depth + 1);
      p.build();
    }
  }
}

function expectedArray(d: DType): string {
  switch (d) {
    case 'float32': return 'Float32Array';
    case 'float64': return 'Float64Array';
    case 'float16':
    case 'bfloat16': return 'Uint16Array';
    case 'int64': return 'BigInt64Array';
    case 'int32': return 'Int32Array';
    case 'int16': return 'Int16Array';
    case 'int8': return 'Int8Array';
    case 'uint8':
    case 'bool': return 'Uint8Array';
  }
}

export function contiguousStride(shape: readonly number[]): number[] {
  const s = new Array<number>(shape.length);
  let acc = 1;
  for (let i = shape.length - 1; i >= 0; i--) {
    s[i] = acc;
    acc *= shape[i];
  }
  return s;
}

/** Serialise `value` into a torch zip checkpoint at `file` (atomically replaced). */
export function saveCheckpoint(file: string, value: SaveValue, opts: SaveOptions = {}): void {
  const abs = path.resolve(file);
  const stem = opts.archiveName ?? path.basename(abs).replace(/\.[^.]*$/, '');
  if (!stem || stem.includes('/')) throw new CheckpointError(abs, `bad archive name '${stem}'`);
  const pk = new CheckpointPickler(abs, opts);
  pk.p.proto(2);
  pk.value(value, '', 0);
  pk.p.stop();
  const pkl = pk.p.result();
  for (const s of pk.storages) {
    if (s.bytes.length !== s.numel * ELEMENT_SIZE[s.dtype]) throw new CheckpointError(abs, `internal: storage ${s.key} size mismatch`);
  }
  atomicWriteFile(abs, (fd) => {
    const z = new ZipWriter(fd, opts.zip);
    z.add(`${stem}/data.pkl`, pkl);
    z.add(`${stem}/byteorder`, Buffer.from('little'));
    for (const s of pk.storages) z.add(`${stem}/data/${s.key}`, s.bytes);
    z.add(`${stem}/version`, Buffer.from('3\n'));
    z.finish();
  });
}
