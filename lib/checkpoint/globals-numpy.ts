/**
 * numpy names that appear in pickles of arrays (CIFAR python batches, scalars in training logs):
 * `_reconstruct` + BUILD, `dtype` + BUILD, `scalar`, and protocol-5 `_frombuffer`. They build
 * NdArray values from the pickled bytes; numpy itself is never involved.
 */
import type { Buildable, GlobalHandler, HandlerContext } from './pickle';
import { PyGlobal, PyValue } from './pyvalues';
import { NdArray, byteswapInPlace } from '../npy/ndarray';
import { NPY_ITEMSIZE, parseDescr } from '../npy/dtype';

/** numpy.dtype(...) before and after its BUILD (which supplies the byte order). */
export class NpDTypeValue implements Buildable {
  code: string;
  order = '=';
  constructor(code: string) {
    this.code = code;
  }
  get descr(): string {
    return this.order + this.code;
  }
  pickleBuild(state: PyValue, ctx: HandlerContext): void {
    if (!Array.isArray(state) || state.length < 2) ctx.fail('numpy dtype state must be a tuple');
    const st = state as PyValue[];
    if (typeof st[1] === 'string') this.order = st[1];
    // st[3] = field names: structured dtypes carry fields we do not model.
    if (st.length > 3 && st[3] !== null && st[3] !== undefined) ctx.fail(`structured numpy dtype ${this.code} is not supported`);
  }
}

/** numpy.core.multiarray._reconstruct(ndarray, (0,), b'b') before its BUILD fills shape, dtype, bytes. */
export class NdArrayPending implements Buildable {
  pickleBuild(state: PyValue, ctx: HandlerContext): NdArray {
    if (!Array.isArray(state)) ctx.fail('ndarray state must be a tuple');
    let st = state as PyValue[];
    if (st.length === 5) st = st.slice(1); // (version, shape, dtype, is_fortran, data)
    if (st.length !== 4) ctx.fail(`ndarray state has ${st.length} items, expected 4 or 5`);
    const [shape, dtype, fortran, raw] = st;
    return ndarrayFrom(shape, dtype, fortran === true, raw, ctx);
  }
}

function ndarrayFrom(shapeV: PyValue, dtypeV: PyValue, fortran: boolean, raw: PyValue, ctx: HandlerContext): NdArray {
  if (!(dtypeV instanceof NpDTypeValue)) ctx.fail('ndarray dtype must be a numpy.dtype');
  const parsed = parseDescr((dtypeV as NpDTypeValue).descr);
  if (!parsed) ctx.fail(`numpy dtype ${(dtypeV as NpDTypeValue).descr} is not supported (object/string/structured arrays are refused)`);
  if (!Array.isArray(shapeV)) ctx.fail('ndarray shape must be a tuple');
  const shape: number[] = [];
  let n = 1;
  for (const d of shapeV as PyValue[]) {
    if (typeof d !== 'number' || !Number.isSafeInteger(d) || d < 0) ctx.fail('ndarray shape must hold non-negative ints');
    shape.push(d as number);
    n *= d as number;
  }
  let bytes: Uint8Array;
  if (raw instanceof Uint8Array) bytes = raw;
  else if (typeof raw === 'string') bytes = Uint8Array.from(Buffer.from(raw, 'latin1')); // py2 str data under encoding='latin1'
  else ctx.fail('ndarray data must be bytes (object arrays are refused)');
  const size = NPY_ITEMSIZE[parsed!.dtype];
  if (bytes!.length !== n * size) ctx.fail(`ndarray data has ${bytes!.length} bytes, shape [${shape}] of ${parsed!.dtype} needs ${n * size}`);
  if (!parsed!.littleEndian) {
    bytes = new Uint8Array(bytes!);
    byteswapInPlace(bytes, size);
  }
  return new NdArray(parsed!.dtype, shape, fortran, bytes!);
}

function scalarValue(dtypeV: PyValue, raw: PyValue, ctx: HandlerContext): PyValue {
  const arr = ndarrayFrom([], dtypeV, false, raw, ctx);
  const t = arr.typed();
  if (arr.dtype === 'bool') return t[0] !== 0;
  if (arr.dtype === 'float16') return halfBits(t[0] as number);
  const v = t[0];
  if (typeof v === 'bigint') return v <= BigInt(Number.MAX_SAFE_INTEGER) && v >= -BigInt(Number.MAX_SAFE_INTEGER) ? Number(v) : v;
  return v as number;
}

function halfBits(h: number): number {
  const e = (h >> 10) & 0x1f;
  const f = h & 0x3ff;
  const s = h & 0x8000 ? -1 : 1;
  if (e === 0) return s * f * 2 ** -24;
  if (e === 31) return f ? NaN : s * Infinity;
  return s * (1024 + f) * 2 ** (e - 25);
}

const handlers: Record<string, GlobalHandler> = {
  'multiarray._reconstruct': {
    call: (a, ctx) => {
      const cls = a[0];
      if (!(cls instanceof PyGlobal) || cls.name !== 'ndarray') ctx.fail('only numpy.ndarray can be reconstructed');
      return new NdArrayPending() as unknown as PyValue;
    },
  },
  'multiarray.scalar': { call: (a, ctx) => scalarValue(a[0], a[1] ?? null, ctx) },
  'numeric._frombuffer': {
    // protocol 5: (buffer, dtype, shape, order)
    call: (a, ctx) => ndarrayFrom(a[2], a[1], a[3] === 'F', a[0], ctx),
  },
};

const list: Array<[string, GlobalHandler]> = [
  ['numpy.ndarray', {}],
  [
    'numpy.dtype',
    {
      call: (a, ctx) => {
        if (typeof a[0] !== 'string') ctx.fail('numpy.dtype expects a type string');
        return new NpDTypeValue(a[0] as string) as unknown as PyValue;
      },
    },
  ],
];
for (const core of ['numpy.core', 'numpy._core']) {
  for (const [k, h] of Object.entries(handlers)) list.push([`${core}.${k}`, h]);
}

export const NUMPY_GLOBALS: ReadonlyMap<string, GlobalHandler> = new Map(list);
