/**
 * Tensor element types as PyTorch names them, their sizes, and how torch's pickles spell them
 * (typed storage classes such as `torch.FloatStorage`, dtype globals such as `torch.float32`).
 */

export type DType =
  | 'float32'
  | 'float64'
  | 'float16'
  | 'bfloat16'
  | 'int64'
  | 'int32'
  | 'int16'
  | 'int8'
  | 'uint8'
  | 'bool';

export const ELEMENT_SIZE: Readonly<Record<DType, number>> = {
  float32: 4,
  float64: 8,
  float16: 2,
  bfloat16: 2,
  int64: 8,
  int32: 4,
  int16: 2,
  int8: 1,
  uint8: 1,
  bool: 1,
};

/** `torch.<Name>Storage` class name -> dtype (legacy typed storages, still what torch.save writes). */
export const STORAGE_CLASS_TO_DTYPE: Readonly<Record<string, DType>> = {
  FloatStorage: 'float32',
  DoubleStorage: 'float64',
  HalfStorage: 'float16',
  BFloat16Storage: 'bfloat16',
  LongStorage: 'int64',
  IntStorage: 'int32',
  ShortStorage: 'int16',
  CharStorage: 'int8',
  ByteStorage: 'uint8',
  BoolStorage: 'bool',
};

export const DTYPE_TO_STORAGE_CLASS: Readonly<Record<DType, string>> = Object.fromEntries(
  Object.entries(STORAGE_CLASS_TO_DTYPE).map(([k, v]) => [v, k]),
) as Record<DType, string>;

/** `torch.float32`-style globals (used by `_rebuild_tensor_v3` and UntypedStorage paths). */
export const TORCH_DTYPE_GLOBALS: Readonly<Record<string, DType>> = {
  float32: 'float32',
  float: 'float32',
  float64: 'float64',
  double: 'float64',
  float16: 'float16',
  half: 'float16',
  bfloat16: 'bfloat16',
  int64: 'int64',
  long: 'int64',
  int32: 'int32',
  int: 'int32',
  int16: 'int16',
  short: 'int16',
  int8: 'int8',
  uint8: 'uint8',
  bool: 'bool',
};

/** PyTorch's printed dtype name (`torch.float32`), for summaries. */
export function torchDTypeName(d: DType): string {
  return `torch.${d}`;
}

export function isDType(s: unknown): s is DType {
  return typeof s === 'string' && Object.prototype.hasOwnProperty.call(ELEMENT_SIZE, s);
}

/** Typed array a dtype materialises into. fp16/bf16 are widened to float32 (exactly). */
export type MaterializedArray =
  | Float32Array
  | Float64Array
  | BigInt64Array
  | Int32Array
  | Int16Array
  | Int8Array
  | Uint8Array;

/** The typed array type that holds the *raw* elements of a dtype (fp16/bf16 as their 16-bit patterns). */
export type RawArray = MaterializedArray | Uint16Array;

export function rawArrayFor(dtype: DType, buf: ArrayBuffer, byteOffset: number, length: number): RawArray {
  switch (dtype) {
    case 'float32': return new Float32Array(buf, byteOffset, length);
    case 'float64': return new Float64Array(buf, byteOffset, length);
    case 'float16':
    case 'bfloat16': return new Uint16Array(buf, byteOffset, length);
    case 'int64': return new BigInt64Array(buf, byteOffset, length);
    case 'int32': return new Int32Array(buf, byteOffset, length);
    case 'int16': return new Int16Array(buf, byteOffset, length);
    case 'int8': return new Int8Array(buf, byteOffset, length);
    case 'uint8':
    case 'bool': return new Uint8Array(buf, byteOffset, length);
  }
}

/** Allocate the materialised (contiguous, widened) array for `n` elements of `dtype`. */
export function allocMaterialized(dtype: DType, n: number): MaterializedArray {
  switch (dtype) {
    case 'float32':
    case 'float16':
    case 'bfloat16': return new Float32Array(n);
    case 'float64': return new Float64Array(n);
    case 'int64': return new BigInt64Array(n);
    case 'int32': return new Int32Array(n);
    case 'int16': return new Int16Array(n);
    case 'int8': return new Int8Array(n);
    case 'uint8':
    case 'bool': return new Uint8Array(n);
  }
}

/**
 * IEEE binary16 bit pattern -> number. Every half value is exactly representable in float32, so
 * storing the result into a Float32Array is exact (what `tensor.float()` does).
 */
export function halfToFloat(h: number): number {
  const sign = h & 0x8000 ? -1 : 1;
  const exp = (h >> 10) & 0x1f;
  const frac = h & 0x3ff;
  if (exp === 0) return sign * frac * 2 ** -24; // zero / subnormal
  if (exp === 0x1f) return frac ? NaN : sign * Infinity;
  return sign * (1024 + frac) * 2 ** (exp - 25);
}

/** bfloat16 is the top half of a float32: shifting the pattern up is the exact upcast. */
const bf16Scratch = new Uint32Array(1);
const bf16View = new Float32Array(bf16Scratch.buffer);
export function bfloat16ToFloat(b: number): number {
  bf16Scratch[0] = (b & 0xffff) << 16;
  return bf16View[0];
}

const f32Scratch = new Float32Array(1);
const u32Scratch = new Uint32Array(f32Scratch.buffer);

/** float32 -> bfloat16 bits, round to nearest even (what `tensor.bfloat16()` does); NaN stays NaN. */
export function floatToBFloat16Bits(x: number): number {
  f32Scratch[0] = x;
  const u = u32Scratch[0];
  if ((u & 0x7f800000) === 0x7f800000 && u & 0x7fffff) return ((u >>> 16) | 0x40) & 0xffff;
  return ((u + 0x7fff + ((u >>> 16) & 1)) >>> 16) & 0xffff;
}

/** float32 -> IEEE half bits, round to nearest even, overflow to infinity (what `tensor.half()` does). */
export function floatToHalfBits(x: number): number {
  f32Scratch[0] = x;
  const u = u32Scratch[0];
  const sign = (u >>> 16) & 0x8000;
  const exp = (u >>> 23) & 0xff;
  let mant = u & 0x7fffff;
  if (exp === 0xff) return sign | 0x7c00 | (mant ? 0x200 : 0);
  const e = exp - 127 + 15;
  if (e >= 0x1f) return sign | 0x7c00;
  if (e <= 0) {
    if (e < -10) return sign; // underflows to zero
    mant |= 0x800000;
    const shift = 14 - e;
    const half = 1 << (shift - 1);
    const rest = mant & ((1 << shift) - 1);
    let r = mant >>> shift;
    if (rest > half || (rest === half && r & 1)) r++;
    return sign | r;
  }
  let r = (e << 10) | (mant >>> 13);
  const rest = mant & 0x1fff;
  if (rest > 0x1000 || (rest === 0x1000 && r & 1)) r++; // may carry into the exponent: still correct
  return sign | r;
}
