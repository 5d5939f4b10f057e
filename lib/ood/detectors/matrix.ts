/**
 * Input handling shared by the detectors: feature/logit matrices from Tensors, numpy arrays (NdArray)
 * or plain row-major typed arrays; label vectors; validation with clear messages (dimension mismatch,
 * NaN/Inf, empty sets).
 */
import { Tensor } from '../../tensor';
import { NdArray } from '../../npy/ndarray';

/** A row-major N x D matrix as a typed array with its shape. */
export interface MatrixData {
  data: Float64Array | Float32Array;
  shape: readonly [number, number] | readonly number[];
}

/** What detectors accept as features or logits: one row per sample. */
export type MatrixInput = Tensor | NdArray | MatrixData;

/** Labels: integer class ids, one per training row. */
export type LabelInput = ArrayLike<number> | BigInt64Array | Int32Array | NdArray | Tensor;

export class DetectorInputError extends RangeError {
  constructor(message: string) {
    super(message);
    this.name = 'DetectorInputError';
  }
}

/** A validated matrix on the CPU as a Tensor (float32 or float64), with its shape known. */
export interface CheckedMatrix {
  tensor: Tensor;
  rows: number;
  cols: number;
  /** dtype of the arithmetic (the tensor's own, unless `pending` says it is still to be applied). */
  dtype: 'float32' | 'float64';
  /**
   * 'mood': `tensor` is the validated input as given; casting to `dtype` and MOOD's normalisation are
   * left to the detector's native ops, which apply them chunk by chunk (no normalised N x D copy).
   */
  pending?: 'mood';
}

function checkFiniteArray(a: Float64Array | Float32Array, cols: number, what: string, caller: string): void {
  for (let i = 0; i < a.length; i++) {
    const v = a[i];
    // v - v is NaN for NaN and ±Inf: one comparison per element.
    if (v - v !== 0) {
      throw new DetectorInputError(`${caller}: ${what}[${Math.floor(i / cols)}, ${i % cols}] is ${String(v)}; features must be finite (no NaN/Inf)`);
    }
  }
}

/** Row-major JS view of a matrix input (reads Tensor data; converts NdArray to C order). */
export async function matrixToArray(
  x: MatrixInput,
  what: string,
  caller: string,
  opts: { checkFinite?: boolean } = {},
): Promise<{ data: Float64Array | Float32Array; rows: number; cols: number }> {
  const finite = opts.checkFinite ?? true;
  if (x instanceof Tensor) {
    const shape = x.shape;
    if (shape.length !== 2) throw new DetectorInputError(`${caller}: ${what} must be 2-D (N x D), got shape [${shape.join(', ')}]`);
    const t = x.dtype === 'float32' || x.dtype === 'float64' ? x : x.cast('float64');
    const data = (await t.data()) as Float64Array | Float32Array;
    if (t !== x) t.dispose();
    return checked({ data, rows: shape[0], cols: shape[1] }, what, caller, finite);
  }
  if (x instanceof NdArray) {
    const a = x.toCOrder();
    if (a.shape.length !== 2) throw new DetectorInputError(`${caller}: ${what} must be 2-D (N x D), got shape [${a.shape.join(', ')}]`);
    let data: Float64Array | Float32Array;
    if (a.dtype === 'float64' || a.dtype === 'float32') data = a.typed() as Float64Array | Float32Array;
    else if (a.dtype === 'float16') throw new DetectorInputError(`${caller}: ${what} is float16; convert to float32 first`);
    else data = Float64Array.from(a.typed() as ArrayLike<number>, Number);
    return checked({ data, rows: a.shape[0], cols: a.shape[1] }, what, caller, finite);
  }
  if (x && typeof x === 'object' && 'data' in x && 'shape' in x) {
    const { data, shape } = x;
    if (!(data instanceof Float64Array || data instanceof Float32Array)) throw new TypeError(`${caller}: ${what}.data must be a Float64Array or Float32Array`);
    if (shape.length !== 2) throw new DetectorInputError(`${caller}: ${what} must be 2-D (N x D), got shape [${shape.join(', ')}]`);
    if (shape[0] * shape[1] !== data.length) throw new DetectorInputError(`${caller}: ${what} has ${data.length} values but shape [${shape.join(', ')}]`);
    return checked({ data, rows: shape[0], cols: shape[1] }, what, caller, finite);
  }
  throw new TypeError(`${caller}: ${what} must be a Tensor, an NdArray or { data, shape }`);
}

function checked<T extends { data: Float64Array | Float32Array; rows: number; cols: number }>(m: T, what: string, caller: string, finite = true): T {
  if (m.rows === 0) throw new DetectorInputError(`${caller}: ${what} is empty (0 samples)`);
  if (m.cols === 0) throw new DetectorInputError(`${caller}: ${what} has 0 feature columns`);
  if (finite) checkFiniteArray(m.data, m.cols, what, caller);
  return m;
}

/** True when no value of t is NaN or ±Inf (one native pass). */
async function allFinite(t: Tensor): Promise<boolean> {
  const fin = t.allFinite();
  try {
    return (await fin.item()) !== 0;
  } finally {
    fin.dispose();
  }
}

/** Validate and bring a matrix to a CPU tensor (float32/float64 kept unless `dtype` is given). */
export async function toMatrix(x: MatrixInput, what: string, caller: string, dtype?: 'float32' | 'float64'): Promise<CheckedMatrix> {
  if (x instanceof Tensor) {
    const shape = x.shape;
    if (shape.length !== 2) throw new DetectorInputError(`${caller}: ${what} must be 2-D (N x D), got shape [${shape.join(', ')}]`);
    if (shape[0] === 0) throw new DetectorInputError(`${caller}: ${what} is empty (0 samples)`);
    if (shape[1] === 0) throw new DetectorInputError(`${caller}: ${what} has 0 feature columns`);
    const src = x.dtype;
    const target = dtype ?? (src === 'float64' ? 'float64' : 'float32');
    const t = src === target ? x.clone() : x.cast(target);
    if (!(await allFinite(t))) {
      t.dispose();
      throw new DetectorInputError(`${caller}: ${what} contains NaN or Inf; features must be finite`);
    }
    return { tensor: t, rows: shape[0], cols: shape[1], dtype: target };
  }
  // Finiteness is checked natively on the copy (two threads, no JS loop over N·D values); the JS
  // scan runs only to name the first bad element.
  const a = await matrixToArray(x, what, caller, { checkFinite: false });
  const target = dtype ?? (a.data instanceof Float64Array ? 'float64' : 'float32');
  const tensor = Tensor.fromArray(a.data, [a.rows, a.cols], { dtype: a.data instanceof Float64Array ? 'float64' : 'float32' });
  if (!(await allFinite(tensor))) {
    tensor.dispose();
    checkFiniteArray(a.data, a.cols, what, caller);
  }
  const t = (a.data instanceof Float64Array ? 'float64' : 'float32') === target ? tensor : tensor.cast(target);
  if (t !== tensor) tensor.dispose();
  return { tensor: t, rows: a.rows, cols: a.cols, dtype: target };
}

/** Labels as a JS Int32Array, checked against the row count. */
export async function toLabels(y: LabelInput, rows: number, caller: string): Promise<Int32Array> {
  let raw: ArrayLike<number | bigint>;
  if (y instanceof Tensor) raw = (await y.data()) as ArrayLike<number | bigint>;
  else if (y instanceof NdArray) {
    if (y.shape.length !== 1) throw new DetectorInputError(`${caller}: labels must be 1-D, got shape [${y.shape.join(', ')}]`);
    raw = y.typed() as ArrayLike<number | bigint>;
  } else raw = y as ArrayLike<number | bigint>;
  if (raw.length !== rows) throw new DetectorInputError(`${caller}: ${raw.length} labels for ${rows} training samples`);
  const out = new Int32Array(raw.length);
  for (let i = 0; i < raw.length; i++) {
    const v = Number(raw[i]);
    if (!Number.isInteger(v) || v < 0 || v > 0x7fffffff) throw new DetectorInputError(`${caller}: label[${i}] = ${String(raw[i])} is not a non-negative integer class id`);
    out[i] = v;
  }
  return out;
}

/** Sorted distinct class ids and, per class, the row indices. */
export function groupByClass(labels: Int32Array): { classes: number[]; rows: Int32Array[] } {
  const map = new Map<number, number[]>();
  for (let i = 0; i < labels.length; i++) {
    let a = map.get(labels[i]);
    if (!a) map.set(labels[i], (a = []));
    a.push(i);
  }
  const classes = [...map.keys()].sort((a, b) => a - b);
  return { classes, rows: classes.map((c) => Int32Array.from(map.get(c)!)) };
}

/**
 * MOOD's normalisation (eval_with_features.py L32-40): f / (||f||_2 + 1e-10), row-wise, in `dtype`
 * (default: x's). One native op over row chunks: the same torch arithmetic as casting x and then
 * dividing by its row norms, without full-size temporaries.
 */
export function moodNormalize(x: Tensor, dtype?: 'float32' | 'float64'): Tensor {
  return Tensor.runOp('row_normalize', [x], { mode: 'mood', eps: 1e-10, dtype: dtype ?? x.dtype })[0];
}

/** sklearn's `normalize` (cosine_similarity): x / ||x||_2 with zero rows left as they are. */
export function unitNormalize(x: Tensor): Tensor {
  return Tensor.runOp('row_normalize', [x], { mode: 'unit', dtype: x.dtype })[0];
}

/** Reads a 1-D float tensor into a Float64Array. */
export async function toFloat64(t: Tensor): Promise<Float64Array> {
  const d = await t.data();
  if (d instanceof Float64Array) return d;
  return Float64Array.from(d as ArrayLike<number>);
}
