/**
 * SVHN from torchvision's files (train_32x32.mat, test_32x32.mat, extra_32x32.mat): a small MATLAB
 * v5 reader (compressed or plain miMATRIX elements of numeric arrays) — enough for `X` (32x32x3xN
 * uint8, column-major) and `y` (N x 1, labels 1..10 with 10 meaning digit 0, as torchvision maps it).
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import * as zlib from 'node:zlib';
import { Tensor } from '../tensor';
import { DataError } from './errors';
import { InMemoryDataset } from './memory';

export const SVHN_CLASSES = ['0', '1', '2', '3', '4', '5', '6', '7', '8', '9'];

export interface MatArray {
  name: string;
  /** MATLAB class id (6 double, 9 uint8, ...). */
  mxClass: number;
  dims: number[];
  /** Column-major values as stored (typed by the element's data type). */
  data: ArrayLike<number>;
}

const MI = { INT8: 1, UINT8: 2, INT16: 3, UINT16: 4, INT32: 5, UINT32: 6, SINGLE: 7, DOUBLE: 9, INT64: 12, UINT64: 13, MATRIX: 14, COMPRESSED: 15, UTF8: 16 };

function numeric(buf: Buffer, type: number, off: number, n: number, file: string): ArrayLike<number> {
  const b = buf.subarray(off, off + n);
  const copy = (ctor: { new (ab: ArrayBuffer): ArrayLike<number>; BYTES_PER_ELEMENT: number }): ArrayLike<number> => {
    const ab = new ArrayBuffer(n);
    new Uint8Array(ab).set(b);
    return new ctor(ab);
  };
  switch (type) {
    case MI.UINT8: return b;
    case MI.INT8: return copy(Int8Array);
    case MI.INT16: return copy(Int16Array);
    case MI.UINT16: return copy(Uint16Array);
    case MI.INT32: return copy(Int32Array);
    case MI.UINT32: return copy(Uint32Array);
    case MI.SINGLE: return copy(Float32Array);
    case MI.DOUBLE: return copy(Float64Array);
    default: throw new DataError(`${file}: unsupported MATLAB data type ${type}`);
  }
}

/** Reads one tag at off: [type, nbytes, dataOffset, nextOffset] (small-element format included). */
function tag(buf: Buffer, off: number, file: string): [number, number, number, number] {
  if (off + 8 > buf.length) throw new DataError(`${file}: truncated MATLAB element at byte ${off}`);
  const w0 = buf.readUInt32LE(off);
  if (w0 >>> 16 !== 0) return [w0 & 0xffff, w0 >>> 16, off + 4, off + 8];
  const n = buf.readUInt32LE(off + 4);
  if (off + 8 + n > buf.length) throw new DataError(`${file}: MATLAB element at byte ${off} claims ${n} bytes past the end`);
  return [w0, n, off + 8, off + 8 + Math.ceil(n / 8) * 8];
}

function parseMatrix(buf: Buffer, off: number, end: number, file: string): MatArray | null {
  let [t, n, d, next] = tag(buf, off, file); // array flags
  if (t !== MI.UINT32 || n < 8) throw new DataError(`${file}: bad MATLAB array flags`);
  const mxClass = buf.readUInt32LE(d) & 0xff;
  if (mxClass < 6 || mxClass > 15) return null; // cell/struct/char/sparse: not needed here
  [t, n, d, next] = tag(buf, next, file); // dimensions
  const dims = Array.from(numeric(buf, t, d, n, file));
  [t, n, d, next] = tag(buf, next, file); // name
  const name = buf.subarray(d, d + n).toString('latin1');
  [t, n, d, next] = tag(buf, next, file); // real part
  if (next > end + 8) throw new DataError(`${file}: MATLAB array '${name}' overruns its element`);
  return { name, mxClass, dims, data: numeric(buf, t, d, n, file) };
}

/** Every numeric array in a MATLAB v5 .mat file. */
export function readMat(file: string): Map<string, MatArray> {
  let buf: Buffer;
  try {
    buf = fs.readFileSync(file);
  } catch (e) {
    throw new DataError(`cannot read ${file}: ${(e as Error).message}`);
  }
  if (buf.length < 128 || buf.readUInt16LE(126) !== 0x4d49 || buf.readUInt16LE(124) !== 0x0100)
    throw new DataError(`${file}: not a little-endian MATLAB v5 .mat file (v7.3/HDF5 files are not supported)`);
  const out = new Map<string, MatArray>();
  const walk = (b: Buffer, start: number): void => {
    let off = start;
    while (off + 8 <= b.length) {
      const [t, n, d, next] = tag(b, off, file);
      if (t === MI.COMPRESSED) {
        let inner: Buffer;
        try {
          inner = zlib.inflateSync(b.subarray(d, d + n));
        } catch (e) {
          throw new DataError(`${file}: corrupt compressed element at byte ${off} (${(e as Error).message})`);
        }
        walk(inner, 0);
        off = d + n; // compressed elements are not padded
        continue;
      }
      if (t === MI.MATRIX && n > 0) {
        const m = parseMatrix(b, d, d + n, file);
        if (m) out.set(m.name, m);
      }
      off = next;
    }
  };
  walk(buf, 128);
  return out;
}

export async function loadSvhn(root: string, split: 'train' | 'test' | 'extra'): Promise<InMemoryDataset> {
  const file = fs.existsSync(root) && fs.statSync(root).isFile() ? root : path.join(root, `${split}_32x32.mat`);
  if (!fs.existsSync(file)) throw new DataError(`svhn: ${file} not found; expected torchvision's ${split}_32x32.mat in ${root}`);
  const vars = readMat(file);
  const X = vars.get('X');
  const y = vars.get('y');
  if (!X || !y) throw new DataError(`${file}: expected variables X and y, found ${[...vars.keys()].join(', ') || 'none'}`);
  if (X.dims.length !== 4 || X.dims[0] !== 32 || X.dims[1] !== 32 || X.dims[2] !== 3) throw new DataError(`${file}: X must be 32x32x3xN, got ${X.dims.join('x')}`);
  const N = X.dims[3];
  if (y.data.length !== N) throw new DataError(`${file}: ${y.data.length} labels for ${N} images`);
  const targets = new Int32Array(N);
  for (let i = 0; i < N; i++) {
    const v = Number(y.data[i]);
    if (!Number.isInteger(v) || v < 0 || v > 10) throw new DataError(`${file}: label ${v} at ${i} is not 0..10`);
    targets[i] = v === 10 ? 0 : v;
  }
  // Column-major X(r, c, ch, n) -> NCHW [n][ch][r][c] (torchvision's transpose(3, 2, 0, 1)).
  const src = X.data;
  const px = new Uint8Array(N * 3072);
  for (let n = 0; n < N; n++)
    for (let ch = 0; ch < 3; ch++) {
      const sb = n * 3072 + ch * 1024;
      for (let r = 0; r < 32; r++) for (let c = 0; c < 32; c++) px[sb + r * 32 + c] = src[sb + c * 32 + r];
    }
  const pixels = Tensor.fromArray(px, [N, 3, 32, 32]);
  return new InMemoryDataset({ name: 'svhn', root: file, split: split === 'extra' ? 'train' : split, classes: SVHN_CLASSES, targets, pixels });
}
