/**
 * loadTensors: checkpoint tensors -> native Tensors, without a JS copy of their data.
 *
 * Every storage is read once, straight from the file into native memory (`Tensor.fromFile`: pread on
 * the executor into pages populated in bulk; from a parsed Checkpoint only the byte range its views
 * touch, from a path the whole storage, queued while the pickle is still being parsed); shared
 * storages are shared. A tensor that covers
 * its whole read range densely becomes a zero-copy reshape of the storage; any other view (offsets,
 * transposed strides) a contiguous copy via `asStrided`. Floating-point tensors are cast to
 * `opts.dtype` once per storage (fp16/bf16 -> float32 is exact). Loading a 1.2 GB checkpoint needs
 * 1.2 GB of native memory and no JS Buffer of that size.
 *
 * Sources: a file path, a `Checkpoint` from `readCheckpoint`, a (Py)dict / Map of TensorRefs and
 * TensorData (e.g. `adaptStateDict(...).stateDict`: untouched tensors stay TensorRefs and are read
 * from the file, computed ones are TensorData and are copied in).
 */
import type { Device, Tensor } from '../tensor';
import { CheckpointError } from './errors';
import { DType, ELEMENT_SIZE, isDType } from './dtypes';
import { PickleRecord, PyDict, PyValue } from './pyvalues';
import { StorageRef, TensorRef, numelOf, viewExtent } from './tensorref';
import { TensorData, isTensorData } from './writer';
import { walkLeaves } from './inspect';
import { Checkpoint, ReadCheckpointOptions, readCheckpoint } from './reader';

export type TensorSource = TensorRef | TensorData;

/**
 * The Tensor class, required on first use: importing the checkpoint layer (inspect, convert, fuzzing)
 * must not load libtorch.
 */
async function TensorClass(): Promise<typeof Tensor> {
  return (await import('../tensor')).Tensor;
}

export interface LoadTensorsOptions {
  /**
   * Cast every floating-point tensor (float16, bfloat16, float32, float64) to this floating dtype,
   * e.g. 'float32' to upcast half-precision checkpoints exactly. Integer and bool tensors (index
   * buffers) keep their dtype. Default: every tensor keeps its stored dtype.
   */
  dtype?: DType;
  /**
   * For a file or Checkpoint: load only the sub-tree under the first of these root keys that exists
   * (e.g. ['model', 'module', 'state_dict']); keys of the result are then relative to it. An error if
   * none exists. Default: the whole tree, keys as dotted paths ('model.blocks.0.attn.qkv.weight').
   */
  key?: string | readonly string[];
  /** Load only the tensors whose (result) key passes. */
  filter?: (key: string) => boolean;
  /** Move the loaded tensors to this device (after reading and casting on the CPU). */
  device?: Device;
  /** Options for `readCheckpoint` when a path is given. */
  read?: ReadCheckpointOptions;
}

type Source = string | Checkpoint | Map<unknown, unknown> | Record<string, unknown>;

function isCheckpoint(v: unknown): v is Checkpoint {
  return typeof v === 'object' && v !== null && 'root' in v && 'storages' in v && 'format' in v && 'file' in v;
}

function isFloating(d: DType): boolean {
  return d === 'float32' || d === 'float64' || d === 'float16' || d === 'bfloat16';
}

/** Dotted key -> tensor source, in tree order. */
export function collectTensorSources(src: Exclude<Source, string>, opts: Pick<LoadTensorsOptions, 'key' | 'filter'> = {}): Array<[string, TensorSource]> {
  const out: Array<[string, TensorSource]> = [];
  const want = (k: string): boolean => !opts.filter || opts.filter(k);
  const addTree = (prefix: string, root: PyValue): void => {
    walkLeaves(root, (p, v) => {
      const k = prefix && p ? `${prefix}.${p}` : prefix || p;
      if ((v instanceof TensorRef || isTensorData(v)) && want(k)) out.push([k, v as TensorSource]);
    });
  };
  if (isCheckpoint(src)) {
    let root: PyValue = src.root;
    if (opts.key !== undefined) {
      const keys = typeof opts.key === 'string' ? [opts.key] : opts.key;
      const found = root instanceof PyDict ? keys.find((k) => root instanceof PyDict && root.has(k)) : undefined;
      if (found === undefined) {
        const have = root instanceof PyDict ? [...root.keys()].map(String).join(', ') : 'the root is not a dict';
        throw new CheckpointError(src.file, `none of the keys ${keys.map((k) => `'${k}'`).join(', ')} is in the checkpoint (root keys: ${have})`);
      }
      root = (root as PyDict).get(found) as PyValue;
    }
    addTree('', root);
    return out;
  }
  const entries: Iterable<[unknown, unknown]> = src instanceof Map ? src.entries() : Object.entries(src);
  for (const [k0, v] of entries) {
    const k = String(k0);
    if (v instanceof TensorRef || isTensorData(v)) {
      if (want(k)) out.push([k, v]);
    } else if (v instanceof PyDict || v instanceof PickleRecord || Array.isArray(v)) {
      addTree(k, v as PyValue);
    }
  }
  return out;
}

/** Per-storage read plan: the element range [lo, hi) its views touch. */
interface StoragePlan {
  storage: StorageRef;
  lo: number;
  hi: number;
}

/**
 * Tensors for `sources` (parallel array). Reads each storage once; on any failure disposes what it
 * made and throws a CheckpointError naming the tensor.
 *
 * `prefetched`: whole-storage reads already queued (see `loadTensors`); this takes ownership of them.
 * Those a source uses serve as its storage; the others are released, and a released read that has
 * not started yet is dropped by the executor rather than run.
 */
export async function loadTensorSources(
  sources: ReadonlyArray<[string, TensorSource]>,
  opts: Pick<LoadTensorsOptions, 'dtype' | 'device'> = {},
  prefetched: ReadonlyMap<StorageRef, Tensor> = new Map(),
): Promise<Tensor[]> {
  const unclaimed = new Map(prefetched);
  try {
    return await loadPlanned(sources, opts, unclaimed);
  } finally {
    for (const t of unclaimed.values()) t.dispose();
  }
}

async function loadPlanned(
  sources: ReadonlyArray<[string, TensorSource]>,
  opts: Pick<LoadTensorsOptions, 'dtype' | 'device'>,
  prefetched: Map<StorageRef, Tensor>,
): Promise<Tensor[]> {
  const target = opts.dtype;
  if (target !== undefined && !(isDType(target) && isFloating(target))) {
    throw new TypeError(`dtype must be a floating-point dtype (float32, float64, float16, bfloat16), got '${String(target)}'`);
  }
  const castTo = (d: DType): DType => (target !== undefined && isFloating(d) ? target : d);

  // Plan: validate every view and find the range of each storage to read.
  const plans = new Map<StorageRef, StoragePlan>();
  for (const [key, s] of sources) {
    if (!(s instanceof TensorRef)) continue;
    const st = s.storage;
    if (s.dtype !== st.dtype) throw new CheckpointError(st.file, `tensor '${key}' is ${s.dtype} but its storage '${st.key}' is ${st.dtype}`);
    if (st.byteOffset < 0) throw new CheckpointError(st.file, `storage '${st.key}' of tensor '${key}' has no location in the file`);
    const extent = viewExtent(s.shape, s.stride, s.storageOffset);
    if (Number.isNaN(extent) || extent > st.numel) {
      throw new CheckpointError(st.file, `tensor '${key}' reaches element ${extent} of storage '${st.key}' with ${st.numel}`);
    }
    if (extent === 0) continue; // empty tensor: nothing to read
    const p = plans.get(st);
    if (!p && prefetched.has(st)) plans.set(st, { storage: st, lo: 0, hi: st.numel }); // read whole
    else if (!p) plans.set(st, { storage: st, lo: s.storageOffset, hi: extent });
    else {
      p.lo = Math.min(p.lo, s.storageOffset);
      p.hi = Math.max(p.hi, extent);
    }
  }

  const Tensor = await TensorClass();
  const made: Tensor[] = [];
  const bases = new Map<StorageRef, Tensor>();
  const result: Tensor[] = new Array(sources.length);
  const owners: string[] = new Array(sources.length);
  try {
    // One read (and at most one cast) per storage, all queued at once on the executor (unless it
    // was already queued while the pickle was parsed).
    for (const p of plans.values()) {
      const st = p.storage;
      const pre = prefetched.get(st);
      prefetched.delete(st); // claimed: disposed below with the other bases
      let t = pre ?? Tensor.fromFile(st.file, { byteOffset: st.byteOffset + p.lo * ELEMENT_SIZE[st.dtype], numel: p.hi - p.lo, dtype: st.dtype });
      if (castTo(st.dtype) !== st.dtype) {
        const c = t.cast(castTo(st.dtype));
        t.dispose(); // the queued cast holds the read
        t = c;
      }
      bases.set(st, t);
    }
    for (let i = 0; i < sources.length; i++) {
      const [key, s] = sources[i];
      owners[i] = key;
      let t: Tensor;
      if (s instanceof TensorRef) {
        const base = bases.get(s.storage);
        if (!base) {
          t = Tensor.zeros(s.shape, { dtype: castTo(s.dtype) }); // empty tensor
        } else {
          const p = plans.get(s.storage) as StoragePlan;
          const dense = s.isContiguous && s.storageOffset === p.lo && s.numel === p.hi - p.lo;
          t = dense ? base.reshape(s.shape) : base.asStrided(s.shape, s.stride, s.storageOffset - p.lo);
        }
      } else {
        t = fromTensorData(Tensor, key, s, castTo(s.dtype));
      }
      made.push(t);
      result[i] = t;
    }
  } catch (e) {
    for (const t of made) t.dispose();
    throw e;
  } finally {
    // Views and copies keep what they need; the storage handles themselves are no longer used.
    for (const b of bases.values()) b.dispose();
  }

  // Surface read errors (file changed, short reads) here rather than at the first use.
  const settled = await Promise.allSettled(result.map((t) => t.ready()));
  const bad = settled.findIndex((r) => r.status === 'rejected');
  if (bad >= 0) {
    for (const t of made) t.dispose();
    const reason = (settled[bad] as PromiseRejectedResult).reason as Error;
    const s = sources[bad][1];
    const file = s instanceof TensorRef ? s.storage.file : '<tensor data>';
    throw new CheckpointError(file, `cannot load tensor '${owners[bad]}': ${reason?.message ?? String(reason)}`, { cause: reason });
  }
  if (opts.device !== undefined && opts.device !== 'cpu') {
    for (let i = 0; i < result.length; i++) {
      const moved = result[i].to(opts.device);
      result[i].dispose();
      result[i] = moved;
    }
    await Promise.all(result.map((t) => t.ready()));
  }
  return result;
}

function fromTensorData(Tensor: typeof import('../tensor').Tensor, key: string, s: TensorData, dtype: DType): Tensor {
  const n = numelOf(s.shape);
  if (s.data.length !== n) throw new CheckpointError('<tensor data>', `tensor '${key}': data has ${s.data.length} elements, shape [${s.shape}] needs ${n}`);
  // float16/bfloat16 given as float32 values (TensorData allows it): build float32, round natively to
  // the declared dtype (nearest even, as the writer does), then cast to the requested one.
  const given: DType = (s.dtype === 'float16' || s.dtype === 'bfloat16') && s.data instanceof Float32Array ? 'float32' : s.dtype;
  let t = Tensor.fromArray(s.data, s.shape, { dtype: given });
  let cur = given;
  for (const d of [s.dtype, dtype]) {
    if (cur === d) continue;
    const c = t.cast(d);
    t.dispose();
    t = c;
    cur = d;
  }
  return t;
}

/**
 * Load the tensors of a checkpoint (path or `readCheckpoint` result) or of a state dict (Map/PyDict/
 * object of TensorRef and TensorData, e.g. from `adaptStateDict`) as native Tensors, keyed by dotted
 * path. The caller owns the tensors (dispose them, or load inside `tidy`).
 */
export async function loadTensors(src: Source, opts: LoadTensorsOptions = {}): Promise<Map<string, Tensor>> {
  if (typeof src !== 'string' && !isCheckpoint(src) && opts.key !== undefined) {
    throw new TypeError('loadTensors: `key` picks a sub-tree of a checkpoint; pass the sub-dict itself for a state dict');
  }
  // From a path, each storage's read is queued the moment the pickle names it, so reading overlaps
  // the rest of the parse (which costs 10-20 ms in a fresh process); reads of storages that `key` or
  // `filter` then leave out are released, and dropped if they have not started.
  const prefetched = new Map<StorageRef, Tensor>();
  let from: Exclude<Source, string>;
  let sources: Array<[string, TensorSource]>;
  try {
    if (typeof src === 'string') {
      const Tensor = await TensorClass();
      const prefetch = (st: StorageRef): void => {
        if (st.numel > 0) prefetched.set(st, Tensor.fromFile(st.file, { byteOffset: st.byteOffset, numel: st.numel, dtype: st.dtype }));
      };
      const theirs = opts.read?.onStorage;
      from = readCheckpoint(src, { ...opts.read, onStorage: theirs ? (st) => (theirs(st), prefetch(st)) : prefetch });
    } else {
      from = src;
    }
    sources = collectTensorSources(from, opts);
  } catch (e) {
    for (const t of prefetched.values()) t.dispose();
    throw e;
  }
  const tensors = await loadTensorSources(sources, opts, prefetched);
  const out = new Map<string, Tensor>();
  sources.forEach(([k], i) => {
    const prev = out.get(k);
    if (prev) prev.dispose(); // duplicate dotted path (e.g. '1' and 1 as keys): last one wins
    out.set(k, tensors[i]);
  });
  return out;
}
