/**
 * saveTensors: write native Tensors (a Map<string, Tensor> state dict, or any nested object / Map /
 * array holding Tensors next to plain values, e.g. {model, optimizer, epoch, args}) as a zip-format
 * checkpoint that `torch.load` reads (also with weights_only=True). Values are read with
 * `await t.data()`; the same Tensor object used twice is written as one shared storage. The file is
 * replaced atomically (saveCheckpoint): readers see the old file or the complete new one.
 */
import type { Tensor } from '../tensor';
import { CheckpointError } from './errors';
import { DType, RawArray, isDType } from './dtypes';
import { PickleRecord, PyComplex, PyDict, PyGlobal, isTuple } from './pyvalues';
import { TensorRef } from './tensorref';
import { PyFloat, SaveOptions, SaveValue, TensorData, isTensorData, saveCheckpoint } from './writer';

export interface SaveTensorsOptions extends SaveOptions {
  /** Cast floating-point tensors to this dtype before writing (natively, as torch's `.to(dtype)` rounds). */
  dtype?: DType;
}

/** Anything saveTensors accepts: SaveValue leaves plus Tensors anywhere in the tree. */
export type TensorTree = SaveValue | Tensor | Map<unknown, unknown> | TensorTree[] | { [key: string]: unknown };

function isTensor(v: unknown): v is Tensor {
  // Checked structurally so this module does not load libtorch on import.
  if (typeof v !== 'object' || v === null) return false;
  const c = (v as { constructor?: { name?: string; fromFile?: unknown } }).constructor;
  return c !== undefined && c.name === 'Tensor' && typeof c.fromFile === 'function' && typeof (v as Tensor).data === 'function';
}

function isFloating(d: DType): boolean {
  return d === 'float32' || d === 'float64' || d === 'float16' || d === 'bfloat16';
}

/** Replace every Tensor in `v` by TensorData (values copied out once per Tensor object). */
export async function tensorsToData(v: TensorTree, opts: { dtype?: DType; file?: string } = {}): Promise<SaveValue> {
  const target = opts.dtype;
  if (target !== undefined && !(isDType(target) && isFloating(target))) {
    throw new TypeError(`dtype must be a floating-point dtype (float32, float64, float16, bfloat16), got '${String(target)}'`);
  }
  const file = opts.file ?? '<save>';
  const cache = new Map<Tensor, TensorData>();
  const active = new Set<object>();

  const tensorData = async (t: Tensor, where: string): Promise<TensorData> => {
    const hit = cache.get(t);
    if (hit) return hit;
    if (t.isDisposed) throw new CheckpointError(file, 'tensor was disposed before saving', { where: `value at '${where || '<root>'}'` });
    await t.ready(); // rejects with the producing op's error; then dtype/shape do not block
    let src = t;
    let dtype = t.dtype;
    if (t.device !== 'cpu' || (target !== undefined && isFloating(dtype) && dtype !== target)) {
      dtype = target !== undefined && isFloating(dtype) ? target : dtype;
      src = t.to({ device: 'cpu', dtype });
    }
    try {
      const data = (await src.data()) as RawArray;
      const d: TensorData = { dtype, shape: src.shape, data };
      cache.set(t, d);
      return d;
    } finally {
      if (src !== t) src.dispose();
    }
  };

  const walk = async (x: unknown, where: string, depth: number): Promise<SaveValue> => {
    if (depth > 512) throw new CheckpointError(file, 'nesting too deep', { where: `value at '${where || '<root>'}'` });
    if (x === null || typeof x !== 'object') return x as SaveValue;
    if (isTensor(x)) return tensorData(x, where);
    // Leaf values the writer knows (explicit Python floats, complex numbers, globals) pass through whole.
    if (x instanceof TensorRef || isTensorData(x) || x instanceof PickleRecord || ArrayBuffer.isView(x)) return x as SaveValue;
    if (x instanceof PyFloat || x instanceof PyComplex || x instanceof PyGlobal) return x as SaveValue;
    if (active.has(x)) throw new CheckpointError(file, 'cyclic structure', { where: `value at '${where || '<root>'}'` });
    active.add(x);
    try {
      const sub = (k: unknown): string => (where ? `${where}.${String(k)}` : String(k));
      if (Array.isArray(x)) {
        const items: SaveValue[] = [];
        for (let i = 0; i < x.length; i++) items.push(await walk(x[i], sub(i), depth + 1));
        return isTuple(x) ? Object.freeze(items) : items;
      }
      if (x instanceof Map) {
        const m = x instanceof PyDict ? new PyDict(x.pyClass) : new Map<unknown, unknown>();
        if (x instanceof PyDict && x.attributes !== undefined) (m as PyDict).attributes = x.attributes;
        for (const [k, val] of x) m.set(k as never, (await walk(val, sub(k), depth + 1)) as never);
        return m as SaveValue;
      }
      if (x instanceof Set) return x as SaveValue;
      const o: { [key: string]: SaveValue } = {};
      for (const [k, val] of Object.entries(x)) o[k] = await walk(val, sub(k), depth + 1);
      return o;
    } finally {
      active.delete(x);
    }
  };
  return walk(v, '', 0);
}

/**
 * Save Tensors (and plain values around them) to `file` as a torch zip checkpoint, atomically.
 * `opts.orderedDicts` writes Maps/objects as collections.OrderedDict (what `model.state_dict()` is).
 */
export async function saveTensors(file: string, value: TensorTree, opts: SaveTensorsOptions = {}): Promise<void> {
  const { dtype, ...save } = opts;
  const data = await tensorsToData(value, { dtype, file });
  saveCheckpoint(file, data, save);
}
