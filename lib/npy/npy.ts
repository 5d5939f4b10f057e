/**
 * .npy read/write (format versions 1-3). The header is a Python dict literal; we parse exactly the
 * three keys numpy writes (descr, fortran_order, shape) with a tiny literal parser, never an eval.
 * Reads are positional (no whole-file read), writes are atomic.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { CheckpointError } from '../io/errors';
import { preadExact } from '../io/fileio';
import { atomicWriteFile, writeAll } from '../io/atomic';
import { NdArray, NpyTypedArray, byteswapInPlace } from './ndarray';
import { NPY_ITEMSIZE, NpyDType, descrOf, parseDescr } from './dtype';

const MAGIC = Buffer.from([0x93, 0x4e, 0x55, 0x4d, 0x50, 0x59]); // \x93NUMPY
const MAX_HEADER = 1 << 20;

export interface NpyHeader {
  descr: string;
  dtype: NpyDType;
  littleEndian: boolean;
  fortranOrder: boolean;
  shape: number[];
  /** Offset of the first data byte from the start of the .npy stream. */
  dataOffset: number;
  /** Bytes of data the header promises. */
  dataLength: number;
}

/** Build an NdArray from a typed array (copied only when its buffer is shared with other data). */
export function ndarray(dtype: NpyDType, shape: number[], data: NpyTypedArray, opts: { fortranOrder?: boolean } = {}): NdArray {
  const n = shape.reduce((a, b) => a * b, 1);
  if (data.length !== n) throw new RangeError(`data has ${data.length} elements, shape [${shape}] needs ${n}`);
  if (data.BYTES_PER_ELEMENT !== NPY_ITEMSIZE[dtype]) throw new RangeError(`a ${data.constructor.name} cannot hold ${dtype}`);
  return new NdArray(dtype, shape, opts.fortranOrder ?? false, new Uint8Array(data.buffer, data.byteOffset, data.byteLength));
}

/** Parse the header from the first bytes of a .npy stream; `avail` = total bytes in the stream. */
export function parseNpyHeader(head: Uint8Array, avail: number, file: string): NpyHeader {
  if (head.length < 10 || !Buffer.from(head.subarray(0, 6)).equals(MAGIC)) throw new CheckpointError(file, 'not a .npy file (bad magic)');
  const major = head[6];
  let hlen: number;
  let start: number;
  if (major === 1) {
    hlen = head[8] | (head[9] << 8);
    start = 10;
  } else if (major === 2 || major === 3) {
    if (head.length < 12) throw new CheckpointError(file, '.npy header truncated');
    hlen = new DataView(head.buffer, head.byteOffset, head.byteLength).getUint32(8, true);
    start = 12;
  } else {
    throw new CheckpointError(file, `unsupported .npy format version ${major}.${head[7]}`);
  }
  if (hlen > MAX_HEADER || start + hlen > avail) throw new CheckpointError(file, `.npy header length ${hlen} is implausible`);
  if (start + hlen > head.length) throw new CheckpointError(file, '.npy header truncated');
  const text = Buffer.from(head.subarray(start, start + hlen)).toString(major === 3 ? 'utf8' : 'latin1');
  const dict = parseHeaderDict(text, file);
  const parsed = parseDescr(dict.descr);
  if (!parsed) throw new CheckpointError(file, `unsupported .npy dtype ${JSON.stringify(dict.descr)}`);
  let n = 1;
  for (const d of dict.shape) n *= d;
  const dataLength = n * NPY_ITEMSIZE[parsed.dtype];
  const dataOffset = start + hlen;
  if (!Number.isSafeInteger(dataLength) || dataOffset + dataLength > avail) {
    throw new CheckpointError(file, `.npy data of shape [${dict.shape}] ${parsed.dtype} (${dataLength} bytes) exceeds the ${avail - dataOffset} bytes present`);
  }
  return { descr: dict.descr, dtype: parsed.dtype, littleEndian: parsed.littleEndian, fortranOrder: dict.fortran_order, shape: dict.shape, dataOffset, dataLength };
}

/** The header dict: {'descr': '<f4', 'fortran_order': False, 'shape': (3, 4), } */
function parseHeaderDict(text: string, file: string): { descr: string; fortran_order: boolean; shape: number[] } {
  const fail = (m: string): never => {
    throw new CheckpointError(file, `bad .npy header (${m}): ${JSON.stringify(text.slice(0, 120))}`);
  };
  const descr = /['"]descr['"]\s*:\s*['"]([^'"]*)['"]/.exec(text);
  const fo = /['"]fortran_order['"]\s*:\s*(True|False)/.exec(text);
  const sh = /['"]shape['"]\s*:\s*\(([^)]*)\)/.exec(text);
  if (!descr) fail('descr');
  if (!fo) fail('fortran_order');
  if (!sh) fail('shape');
  const shape: number[] = [];
  for (const part of sh![1].split(',')) {
    const t = part.trim().replace(/L$/, '');
    if (t === '') continue;
    if (!/^\d{1,15}$/.test(t)) fail(`shape entry ${t}`);
    shape.push(Number(t));
  }
  return { descr: descr![1], fortran_order: fo![1] === 'True', shape };
}

/** Decode a whole .npy held in memory (e.g. an .npz member). */
export function decodeNpy(buf: Uint8Array, file = '<npy>'): NdArray {
  const h = parseNpyHeader(buf, buf.length, file);
  const bytes = buf.slice(h.dataOffset, h.dataOffset + h.dataLength);
  if (!h.littleEndian) byteswapInPlace(bytes, NPY_ITEMSIZE[h.dtype]);
  return new NdArray(h.dtype, h.shape, h.fortranOrder, bytes);
}

/** Read a .npy file with positional reads at `offset` (an npz member's data offset, or 0). */
export function readNpyAt(fd: number, offset: number, size: number, file: string): NdArray {
  const head = preadExact(fd, Math.min(size, 12), offset, file, '.npy header');
  let hlen = 0;
  if (head.length >= 10) hlen = head[6] === 1 ? head[8] | (head[9] << 8) : head.length >= 12 ? head.readUInt32LE(8) : 0;
  const full = preadExact(fd, Math.min(size, (head[6] === 1 ? 10 : 12) + Math.min(hlen, MAX_HEADER)), offset, file, '.npy header');
  const h = parseNpyHeader(full, size, file);
  const bytes = new Uint8Array(preadExact(fd, h.dataLength, offset + h.dataOffset, file, '.npy data'));
  if (!h.littleEndian) byteswapInPlace(bytes, NPY_ITEMSIZE[h.dtype]);
  return new NdArray(h.dtype, h.shape, h.fortranOrder, bytes);
}

export function readNpy(file: string): NdArray {
  const abs = path.resolve(file);
  const fd = fs.openSync(abs, 'r');
  try {
    return readNpyAt(fd, 0, fs.fstatSync(fd).size, abs);
  } finally {
    fs.closeSync(fd);
  }
}

/** Header + data as two parts (no copy of the data). Format 1.0 unless the header needs 2.0. */
export function encodeNpy(arr: NdArray): Uint8Array[] {
  const shape = arr.shape.length === 1 ? `(${arr.shape[0]},)` : `(${arr.shape.join(', ')})`;
  const dict = `{'descr': '${descrOf(arr.dtype)}', 'fortran_order': ${arr.fortranOrder ? 'True' : 'False'}, 'shape': ${shape}, }`;
  const expected = arr.size * NPY_ITEMSIZE[arr.dtype];
  if (arr.bytes.length !== expected) throw new RangeError(`array has ${arr.bytes.length} bytes, expected ${expected}`);
  let major = 1;
  let pre = 10;
  if (dict.length + 1 + pre > 0xffff) {
    major = 2;
    pre = 12;
  }
  // numpy pads with spaces so the data starts on a 64-byte boundary, newline last.
  const total = Math.ceil((pre + dict.length + 1) / 64) * 64;
  const hlen = total - pre;
  const h = Buffer.alloc(total, 0x20);
  MAGIC.copy(h, 0);
  h[6] = major;
  h[7] = 0;
  if (major === 1) h.writeUInt16LE(hlen, 8);
  else h.writeUInt32LE(hlen, 8);
  h.write(dict, pre, 'latin1');
  h[total - 1] = 0x0a;
  return [h, arr.bytes];
}

export function writeNpy(file: string, arr: NdArray): void {
  const parts = encodeNpy(arr);
  atomicWriteFile(file, (fd) => parts.forEach((p) => writeAll(fd, p)));
}
