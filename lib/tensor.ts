/**
 * Tensor: an asynchronous handle over a native libtorch tensor.
 *
 * Operations enqueue work on the device's executor and return a new Tensor at once; `await t.data()`
 * resolves when the work is done, and an op's error (bad shapes, dtypes) rejects it with a message
 * naming the op and its inputs. Small CPU ops whose inputs are ready run inline, where a thread hop
 * would cost more than the arithmetic. Free memory with `dispose()` or `tidy()`; a
 * FinalizationRegistry releases what is only garbage-collected.
 */
import { AnyTypedArray, DType, TypedArrayOf, dtypeOfArray, isDType } from './dtype';
import type { NativeAttrs } from './binding';
import { NativeTensorHandle, collectedOwnedHandles, loadNative } from './native';
import { track, Disposable } from './scope';

export type Device = 'cpu' | 'cuda' | `cuda:${number}`;
export type Shape = readonly number[];

export interface CreateOptions {
  dtype?: DType;
  device?: Device;
}

const native = loadNative();

/** Counts live handles and those reclaimed by the garbage collector without dispose(). */
// (The garbage-collection safety net itself is the handle's, in lib/native.ts.)
const stats = { live: 0, created: 0 };

export function tensorStats(): { live: number; created: number; collectedWithoutDispose: number } {
  const gone = collectedOwnedHandles();
  return { live: stats.live - gone, created: stats.created, collectedWithoutDispose: gone };
}

/** Handles for the id(s) a native op returned. */
function handlesOf(out: number | number[]): NativeTensorHandle[] {
  if (typeof out === 'number') return [new NativeTensorHandle(out)];
  return out.map((id) => new NativeTensorHandle(id));
}

function checkDevice(d: string): Device {
  if (d === 'cpu' || d === 'cuda' || /^cuda:\d+$/.test(d)) return d as Device;
  throw new Error(`unknown device '${d}': expected 'cpu', 'cuda' or 'cuda:N'`);
}

function checkShape(shape: Shape, what = 'shape'): number[] {
  if (!Array.isArray(shape)) throw new TypeError(`${what} must be an array of non-negative integers`);
  return shape.map((s, i) => {
    if (!Number.isInteger(s) || s < 0) throw new TypeError(`${what}[${i}] must be a non-negative integer, got ${String(s)}`);
    return s;
  });
}

function numelOf(shape: Shape): number {
  return shape.reduce((a, b) => a * b, 1);
}

type Operand = Tensor | number;
type DimArg = number | readonly number[];

export class Tensor implements Disposable {
  private handle: NativeTensorHandle | null;
  private meta: { dtype: DType; shape: number[] } | null = null;
  /** Known without waiting: where the work runs. */
  readonly device: Device;

  private constructor(handle: NativeTensorHandle, device: Device, meta?: { dtype: DType; shape: number[] }) {
    this.handle = handle;
    this.device = device;
    if (meta) this.meta = meta;
    stats.live++;
    stats.created++;
    handle.adopt();
    track(this);
  }

  // ---- creation -------------------------------------------------------------

  /** Copies `data` into a new tensor. `dtype` defaults from the array type (Uint16Array: float16 bits). */
  static fromArray(data: ArrayBufferView, shape?: Shape, opts: CreateOptions = {}): Tensor {
    if (!ArrayBuffer.isView(data) || data instanceof DataView) throw new TypeError('data must be a TypedArray');
    const dtype = opts.dtype ?? dtypeOfArray(data);
    if (!isDType(dtype)) throw new TypeError(`unknown dtype '${String(dtype)}'`);
    const s = shape === undefined ? [(data as AnyTypedArray).length] : checkShape(shape);
    const device = checkDevice(opts.device ?? 'cpu');
    const h = new NativeTensorHandle(native.NativeTensor.fromTypedArray(data, s, dtype, device));
    return new Tensor(h, device, { dtype, shape: s });
  }

  /** A float32 (or `dtype`) tensor from nested JS numbers, e.g. `Tensor.of([[1, 2], [3, 4]])`. */
  static of(values: number | NestedNumbers, opts: CreateOptions = {}): Tensor {
    const shape: number[] = [];
    let v: unknown = values;
    while (Array.isArray(v)) {
      shape.push(v.length);
      v = v[0];
    }
    const flat = (Array.isArray(values) ? (values as unknown[]).flat(Infinity) : [values]) as number[];
    if (flat.length !== numelOf(shape)) throw new RangeError('nested arrays are ragged: every row needs the same length');
    const dtype = opts.dtype ?? 'float32';
    return Tensor.fromArray(arrayFromNumbers(flat, dtype), shape, { ...opts, dtype });
  }

  static zeros(shape: Shape, opts: CreateOptions = {}): Tensor {
    return Tensor.create('zeros', { shape: checkShape(shape) }, opts);
  }
  static ones(shape: Shape, opts: CreateOptions = {}): Tensor {
    return Tensor.create('ones', { shape: checkShape(shape) }, opts);
  }
  static full(shape: Shape, value: number, opts: CreateOptions = {}): Tensor {
    return Tensor.create('full', { shape: checkShape(shape), value }, opts);
  }
  static arange(start: number, end?: number, step = 1, opts: CreateOptions = {}): Tensor {
    if (end === undefined) [start, end] = [0, start];
    return Tensor.create('arange', { start, end, step }, { dtype: opts.dtype ?? (Number.isInteger(start) && Number.isInteger(end) && Number.isInteger(step) ? 'int64' : 'float32'), device: opts.device });
  }
  static eye(n: number, opts: CreateOptions = {}): Tensor {
    return Tensor.create('eye', { n }, opts);
  }
  /** Standard normal values from a seeded generator: the same seed gives the same tensor everywhere. */
  static randn(shape: Shape, opts: CreateOptions & { seed?: number } = {}): Tensor {
    return Tensor.create('randn', { shape: checkShape(shape), seed: opts.seed ?? 0 }, opts);
  }
  static rand(shape: Shape, opts: CreateOptions & { seed?: number } = {}): Tensor {
    return Tensor.create('rand', { shape: checkShape(shape), seed: opts.seed ?? 0 }, opts);
  }

  /**
   * Reads `numel` elements of `dtype` stored at `byteOffset` in `path` into a 1-D tensor, on the
   * executor with positional reads: no JS buffer of the file is ever made (checkpoint storages).
   */
  static fromFile(path: string, opts: { byteOffset: number; numel: number; dtype: DType }): Tensor {
    if (!Number.isSafeInteger(opts.byteOffset) || opts.byteOffset < 0) throw new RangeError(`byteOffset must be a non-negative integer, got ${opts.byteOffset}`);
    if (!Number.isSafeInteger(opts.numel) || opts.numel < 0) throw new RangeError(`numel must be a non-negative integer, got ${opts.numel}`);
    if (!isDType(opts.dtype)) throw new TypeError(`unknown dtype '${String(opts.dtype)}'`);
    const [h] = handlesOf(native.NativeTensor.op('read_storage', [], { path, offset: opts.byteOffset, numel: opts.numel, dtype: opts.dtype }));
    return new Tensor(h, 'cpu');
  }

  /** A contiguous copy of the strided view (shape, stride, element offset) of this 1-D storage. */
  asStrided(shape: Shape, stride: Shape, offset = 0): Tensor {
    return this.op1('as_strided', { shape: checkShape(shape), stride: checkShape(stride, 'stride'), offset });
  }

  private static create(op: string, attrs: NativeAttrs, opts: CreateOptions): Tensor {
    const device = checkDevice(opts.device ?? 'cpu');
    const dtype = opts.dtype ?? 'float32';
    if (!isDType(dtype)) throw new TypeError(`unknown dtype '${String(dtype)}'`);
    const [h] = handlesOf(native.NativeTensor.op(op, [], { ...attrs, dtype, device }));
    return new Tensor(h, device);
  }

  /**
   * A Tensor over a handle that another native class returned (models, process groups).
   * @internal library modules only; users create tensors with the static constructors.
   */
  static fromNativeHandle(handle: NativeTensorHandle, device: Device): Tensor {
    return new Tensor(handle, device);
  }

  /**
   * The live native handle, for passing to other native classes; throws after dispose().
   * @internal library modules only.
   */
  nativeHandle(op?: string): NativeTensorHandle {
    return this.live(op);
  }

  /**
   * Wraps the outputs of a native op. Exposed for library modules (models, detectors). `attrs` may
   * name only the attributes the op declares (its OpInfo::attrs in native/core); any other name
   * throws here, naming the op and the names it takes. Undefined values count as absent.
   */
  static runOp(name: string, inputs: readonly Tensor[], attrs?: NativeAttrs, device?: Device): Tensor[] {
    const ids: number[] = new Array(inputs.length);
    for (let i = 0; i < inputs.length; i++) {
      const t = inputs[i];
      if (!(t instanceof Tensor)) throw new TypeError(`${name}: input ${i} is not a Tensor`);
      ids[i] = t.live(name).id;
    }
    const dev = device ?? (inputs.length ? inputs[0].device : 'cpu');
    return handlesOf(native.NativeTensor.op(name, ids, attrs, dev)).map((h) => new Tensor(h, dev));
  }

  // ---- metadata -------------------------------------------------------------

  private live(op?: string): NativeTensorHandle {
    if (!this.handle) throw new Error(op ? `${op}: tensor used after dispose()` : 'tensor used after dispose()');
    return this.handle;
  }

  private resolveMeta(): { dtype: DType; shape: number[] } {
    const handle = this.live();
    if (!this.meta) {
      // Waits for the producing op; throws its error (naming the op and shapes) if it failed.
      const m = handle.meta();
      this.meta = { dtype: m.dtype as DType, shape: m.shape };
    }
    return this.meta;
  }

  /** Element type. Waits for the producing op when it is still running. */
  get dtype(): DType {
    return this.resolveMeta().dtype;
  }
  /** Shape. Waits for the producing op when it is still running. */
  get shape(): number[] {
    return this.resolveMeta().shape.slice();
  }
  get rank(): number {
    return this.resolveMeta().shape.length;
  }
  get size(): number {
    return numelOf(this.resolveMeta().shape);
  }
  get isDisposed(): boolean {
    return this.handle === null;
  }
  /** True once the producing op has finished (successfully or not). */
  get isReady(): boolean {
    return this.live().isReady();
  }

  // ---- reading --------------------------------------------------------------

  /** Copies the values out (to CPU first if needed). Rejects with the producing op's error. */
  data<D extends DType = DType>(): Promise<TypedArrayOf[D]> {
    if (!this.handle) return Promise.reject(new Error('data: tensor used after dispose()'));
    return this.handle.read() as Promise<TypedArrayOf[D]>;
  }
  /** The single value of a one-element tensor. */
  async item(): Promise<number> {
    const n = this.size;
    if (n !== 1) throw new RangeError(`item() needs a tensor with one element, got shape [${this.shape.join(', ')}]`);
    const d = await this.data();
    const v = d[0];
    if (this.dtype === 'float16' || this.dtype === 'bfloat16') return halfBitsToNumber(v as number, this.dtype);
    return Number(v);
  }
  /** Values as nested JS arrays of numbers (convenient for small tensors and tests). */
  async array(): Promise<number | NestedNumbers> {
    const flat = await this.toNumbers();
    const shape = this.shape;
    if (shape.length === 0) return flat[0];
    return nest(flat, shape);
  }
  /** Values as a flat array of JS numbers (float16/bfloat16 decoded). */
  async toNumbers(): Promise<number[]> {
    const d = await this.data();
    const dt = this.dtype;
    if (dt === 'float16' || dt === 'bfloat16') return Array.from(d as Uint16Array, (b) => halfBitsToNumber(b, dt));
    return Array.from(d as ArrayLike<number | bigint>, Number);
  }
  /** Resolves when the value is computed; rejects with the op's error. */
  ready(): Promise<void> {
    return this.live('ready').whenReady();
  }

  dispose(): void {
    if (!this.handle) return;
    this.handle.dispose();
    this.handle = null;
    stats.live--;
  }

  // ---- ops ------------------------------------------------------------------

  private op1(name: string, attrs?: NativeAttrs): Tensor {
    return Tensor.runOp(name, [this], attrs)[0];
  }
  private binary(name: string, other: Operand): Tensor {
    if (typeof other === 'number') return Tensor.runOp(name, [this], { other })[0];
    return Tensor.runOp(name, [this, other])[0];
  }

  to(device: Device): Tensor;
  to(opts: { device?: Device; dtype?: DType }): Tensor;
  to(arg: Device | { device?: Device; dtype?: DType }): Tensor {
    const o = typeof arg === 'string' ? { device: arg } : arg;
    const device = checkDevice(o.device ?? this.device);
    if (o.dtype !== undefined && !isDType(o.dtype)) throw new TypeError(`unknown dtype '${String(o.dtype)}'`);
    return Tensor.runOp('to', [this], { device, dtype: o.dtype }, this.device).map((t) => Tensor.rehome(t, device))[0];
  }
  cast(dtype: DType): Tensor {
    return this.to({ dtype });
  }
  private static rehome(t: Tensor, device: Device): Tensor {
    (t as { device: Device }).device = device;
    return t;
  }

  add(o: Operand): Tensor { return this.binary('add', o); }
  sub(o: Operand): Tensor { return this.binary('sub', o); }
  mul(o: Operand): Tensor { return this.binary('mul', o); }
  div(o: Operand): Tensor { return this.binary('div', o); }
  pow(o: Operand): Tensor { return this.binary('pow', o); }
  maximum(o: Operand): Tensor { return this.binary('maximum', o); }
  minimum(o: Operand): Tensor { return this.binary('minimum', o); }
  eq(o: Operand): Tensor { return this.binary('eq', o); }
  ne(o: Operand): Tensor { return this.binary('ne', o); }
  lt(o: Operand): Tensor { return this.binary('lt', o); }
  le(o: Operand): Tensor { return this.binary('le', o); }
  gt(o: Operand): Tensor { return this.binary('gt', o); }
  ge(o: Operand): Tensor { return this.binary('ge', o); }
  logicalAnd(o: Operand): Tensor { return this.binary('logical_and', o); }
  logicalOr(o: Operand): Tensor { return this.binary('logical_or', o); }

  neg(): Tensor { return this.op1('neg'); }
  abs(): Tensor { return this.op1('abs'); }
  exp(): Tensor { return this.op1('exp'); }
  log(): Tensor { return this.op1('log'); }
  log1p(): Tensor { return this.op1('log1p'); }
  sqrt(): Tensor { return this.op1('sqrt'); }
  rsqrt(): Tensor { return this.op1('rsqrt'); }
  square(): Tensor { return this.op1('square'); }
  reciprocal(): Tensor { return this.op1('reciprocal'); }
  sign(): Tensor { return this.op1('sign'); }
  floor(): Tensor { return this.op1('floor'); }
  ceil(): Tensor { return this.op1('ceil'); }
  round(): Tensor { return this.op1('round'); }
  sigmoid(): Tensor { return this.op1('sigmoid'); }
  tanh(): Tensor { return this.op1('tanh'); }
  relu(): Tensor { return this.op1('relu'); }
  isnan(): Tensor { return this.op1('isnan'); }
  isfinite(): Tensor { return this.op1('isfinite'); }
  /** A 0-d bool tensor: true when no element is NaN or ±Inf (one native pass, no masks). */
  allFinite(): Tensor { return this.op1('all_finite'); }
  logicalNot(): Tensor { return this.op1('logical_not'); }
  clone(): Tensor { return this.op1('clone'); }
  contiguous(): Tensor { return this.op1('contiguous'); }
  clamp(min?: number, max?: number): Tensor { return this.op1('clamp', { min, max }); }
  /** `cond ? this : other` elementwise (cond is a bool tensor). */
  where(cond: Tensor, other: Tensor): Tensor { return Tensor.runOp('where', [cond, this, other], {}, this.device)[0]; }

  sum(dim?: DimArg, keepdim = false): Tensor { return this.op1('sum', { dim: dims(dim), keepdim }); }
  mean(dim?: DimArg, keepdim = false): Tensor { return this.op1('mean', { dim: dims(dim), keepdim }); }
  /** Max over dims (values only, like torch.amax); `maxDim` also gives indices. */
  max(dim?: DimArg, keepdim = false): Tensor { return this.op1('amax', { dim: dims(dim), keepdim }); }
  min(dim?: DimArg, keepdim = false): Tensor { return this.op1('amin', { dim: dims(dim), keepdim }); }
  maxDim(dim: number, keepdim = false): { values: Tensor; indices: Tensor } {
    const [values, indices] = Tensor.runOp('max_dim', [this], { dim, keepdim });
    return { values, indices };
  }
  minDim(dim: number, keepdim = false): { values: Tensor; indices: Tensor } {
    const [values, indices] = Tensor.runOp('min_dim', [this], { dim, keepdim });
    return { values, indices };
  }
  argmax(dim?: number, keepdim = false): Tensor { return this.op1('argmax', { dim, keepdim }); }
  argmin(dim?: number, keepdim = false): Tensor { return this.op1('argmin', { dim, keepdim }); }
  prod(dim?: number, keepdim = false): Tensor { return this.op1('prod', { dim, keepdim }); }
  /** Variance; correction 1 = unbiased (PyTorch's default), 0 = population. */
  var(dim?: DimArg, opts: { correction?: number; keepdim?: boolean } = {}): Tensor {
    return this.op1('var', { dim: dims(dim), correction: opts.correction ?? 1, keepdim: opts.keepdim ?? false });
  }
  std(dim?: DimArg, opts: { correction?: number; keepdim?: boolean } = {}): Tensor {
    return this.op1('std', { dim: dims(dim), correction: opts.correction ?? 1, keepdim: opts.keepdim ?? false });
  }
  all(): Tensor { return this.op1('all'); }
  any(): Tensor { return this.op1('any'); }
  logsumexp(dim: DimArg, keepdim = false): Tensor { return this.op1('logsumexp', { dim: dims(dim), keepdim }); }
  /** Vector p-norm (p = Infinity for max-abs) over dims, like torch.linalg.vector_norm. */
  norm(p = 2, dim?: DimArg, keepdim = false): Tensor { return this.op1('norm', { p, dim: dims(dim), keepdim }); }
  softmax(dim = -1): Tensor { return this.op1('softmax', { dim }); }
  logSoftmax(dim = -1): Tensor { return this.op1('log_softmax', { dim }); }

  topk(k: number, opts: { dim?: number; largest?: boolean; sorted?: boolean } = {}): { values: Tensor; indices: Tensor } {
    const [values, indices] = Tensor.runOp('topk', [this], { k, dim: opts.dim ?? -1, largest: opts.largest ?? true, sorted: opts.sorted ?? true });
    return { values, indices };
  }
  sort(opts: { dim?: number; descending?: boolean; stable?: boolean } = {}): { values: Tensor; indices: Tensor } {
    const [values, indices] = Tensor.runOp('sort', [this], { dim: opts.dim ?? -1, descending: opts.descending ?? false, stable: opts.stable ?? true });
    return { values, indices };
  }

  reshape(shape: Shape): Tensor { return this.op1('reshape', { shape: [...shape] }); }
  view(shape: Shape): Tensor { return this.reshape(shape); }
  transpose(dim0 = -2, dim1 = -1): Tensor { return this.op1('transpose', { dim0, dim1 }); }
  /** Matrix transpose of a 2-D tensor. */
  get T(): Tensor { return this.transpose(0, 1); }
  permute(order: readonly number[]): Tensor { return this.op1('permute', { dims: [...order] }); }
  squeeze(dim?: number): Tensor { return this.op1('squeeze', { dim }); }
  unsqueeze(dim: number): Tensor { return this.op1('unsqueeze', { dim }); }
  flatten(startDim = 0, endDim = -1): Tensor { return this.op1('flatten', { start_dim: startDim, end_dim: endDim }); }
  expand(shape: Shape): Tensor { return this.op1('expand', { shape: [...shape] }); }
  /** Elements start..end (exclusive) with step along dim, like Python's `x[start:end:step]`. */
  slice(dim: number, start?: number, end?: number, step = 1): Tensor { return this.op1('slice', { dim, start, end, step }); }
  select(dim: number, index: number): Tensor { return this.op1('select', { dim, index }); }
  indexSelect(dim: number, index: Tensor): Tensor { return Tensor.runOp('index_select', [this, index], { dim })[0]; }
  gather(dim: number, index: Tensor): Tensor { return Tensor.runOp('gather', [this, index], { dim })[0]; }
  maskedSelect(mask: Tensor): Tensor { return Tensor.runOp('masked_select', [this, mask])[0]; }

  matmul(o: Tensor): Tensor { return Tensor.runOp('matmul', [this, o])[0]; }

  static cat(tensors: readonly Tensor[], dim = 0): Tensor {
    if (tensors.length === 0) throw new RangeError('cat needs at least one tensor');
    return Tensor.runOp('cat', tensors, { dim })[0];
  }
  static stack(tensors: readonly Tensor[], dim = 0): Tensor {
    if (tensors.length === 0) throw new RangeError('stack needs at least one tensor');
    return Tensor.runOp('stack', tensors, { dim })[0];
  }
}

export type NestedNumbers = number[] | NestedNumbers[];

function dims(d: DimArg | undefined): number[] | undefined {
  if (d === undefined) return undefined;
  return typeof d === 'number' ? [d] : [...d];
}

function nest(flat: number[], shape: number[]): NestedNumbers {
  if (shape.length === 1) return flat.slice(0, shape[0]);
  const inner = numelOf(shape.slice(1));
  const out: NestedNumbers[] = [];
  for (let i = 0; i < shape[0]; i++) out.push(nest(flat.slice(i * inner, (i + 1) * inner), shape.slice(1)));
  return out as NestedNumbers;
}

function arrayFromNumbers(values: number[], dtype: DType): ArrayBufferView {
  switch (dtype) {
    case 'float32': return Float32Array.from(values);
    case 'float64': return Float64Array.from(values);
    case 'int64': return BigInt64Array.from(values, (v) => BigInt(Math.trunc(v)));
    case 'int32': return Int32Array.from(values);
    case 'int16': return Int16Array.from(values);
    case 'int8': return Int8Array.from(values);
    case 'uint8':
    case 'bool': return Uint8Array.from(values);
    case 'float16':
    case 'bfloat16':
      throw new TypeError(`Tensor.of cannot encode ${dtype}: create float32 and .cast('${dtype}')`);
  }
}

/** Decodes IEEE half or bfloat16 bits exactly. */
export function halfBitsToNumber(bits: number, dtype: 'float16' | 'bfloat16'): number {
  if (dtype === 'bfloat16') {
    const f = new Float32Array(new Uint32Array([bits << 16]).buffer);
    return f[0];
  }
  const sign = bits & 0x8000 ? -1 : 1;
  const exp = (bits >> 10) & 0x1f;
  const frac = bits & 0x3ff;
  if (exp === 0) return sign * frac * 2 ** -24;
  if (exp === 31) return frac ? NaN : sign * Infinity;
  return sign * (1 + frac / 1024) * 2 ** (exp - 15);
}
