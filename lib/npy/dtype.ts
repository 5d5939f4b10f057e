/**
 * numpy dtype descriptors ('<f4', '|u1', '|b1', ...) for the element types we exchange with numpy.
 * Structured, string and object dtypes are deliberately out of scope.
 */

export type NpyDType =
  | 'float16'
  | 'float32'
  | 'float64'
  | 'int8'
  | 'int16'
  | 'int32'
  | 'int64'
  | 'uint8'
  | 'uint16'
  | 'uint32'
  | 'uint64'
  | 'bool';

const CODE_TO_DTYPE: Readonly<Record<string, NpyDType>> = {
  f2: 'float16',
  f4: 'float32',
  f8: 'float64',
  i1: 'int8',
  i2: 'int16',
  i4: 'int32',
  i8: 'int64',
  u1: 'uint8',
  u2: 'uint16',
  u4: 'uint32',
  u8: 'uint64',
  b1: 'bool',
};

export const NPY_ITEMSIZE: Readonly<Record<NpyDType, number>> = {
  float16: 2,
  float32: 4,
  float64: 8,
  int8: 1,
  int16: 2,
  int32: 4,
  int64: 8,
  uint8: 1,
  uint16: 2,
  uint32: 4,
  uint64: 8,
  bool: 1,
};

export interface ParsedDescr {
  dtype: NpyDType;
  /** False only for explicit big-endian ('>'); '|' and '=' are treated as little-endian (x86/arm hosts). */
  littleEndian: boolean;
}

/** Parse a numpy typestr such as '<f4'; returns undefined for anything we do not support. */
export function parseDescr(descr: string): ParsedDescr | undefined {
  let order = '=';
  let code = descr;
  if (descr.length > 0 && '<>|='.includes(descr[0])) {
    order = descr[0];
    code = descr.slice(1);
  }
  // numpy also spells some types with one letter ('f' = float32 here would be ambiguous): accept the
  // explicit sized forms plus the aliases numpy's own pickles use ('?' for bool, 'b'/'B' bytes).
  const alias: Record<string, string> = { '?': 'b1', b: 'i1', B: 'u1', e: 'f2', f: 'f4', d: 'f8', h: 'i2', H: 'u2', l: 'i8', q: 'i8', L: 'u8', Q: 'u8' };
  const dtype = CODE_TO_DTYPE[code] ?? CODE_TO_DTYPE[alias[code] ?? ''];
  if (!dtype) return undefined;
  return { dtype, littleEndian: order !== '>' };
}

/** numpy descr string for writing (always little-endian; '|' for single bytes as numpy does). */
export function descrOf(dtype: NpyDType): string {
  const size = NPY_ITEMSIZE[dtype];
  const kind = dtype === 'bool' ? 'b' : dtype.startsWith('float') ? 'f' : dtype.startsWith('uint') ? 'u' : 'i';
  return `${size === 1 ? '|' : '<'}${kind}${size}`;
}
