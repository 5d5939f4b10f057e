/**
 * NdArray: a numpy array as plain data — dtype, shape, memory order, and its little-endian bytes.
 * Produced by the .npy/.npz reader and by the pickle VM (numpy arrays inside pickles, e.g. CIFAR).
 */
import { NPY_ITEMSIZE, NpyDType } from './dtype';

export type NpyTypedArray =
  | Float32Array
  | Float64Array
  | Int8Array
  | Int16Array
  | Int32Array
  | BigInt64Array
  | Uint8Array
  | Uint16Array
  | Uint32Array
  | BigUint64Array;

export class NdArray {
  readonly dtype: NpyDType;
  readonly shape: number[];
  /** True when `bytes` are in Fortran (column-major) order. */
  readonly fortranOrder: boolean;
  /** Raw element bytes, little-endian, in `fortranOrder` order. */
  readonly bytes: Uint8Array;
  constructor(dtype: NpyDType, shape: number[], fortranOrder: boolean, bytes: Uint8Array) {
    this.dtype = dtype;
    this.shape = shape;
    this.fortranOrder = fortranOrder;
    this.bytes = bytes;
  }
  get size(): number {
    return this.shape.reduce((a, b) => a * b, 1);
  }
  /**
   * The elements as a typed array in storage order (float16 as raw Uint16 bit patterns). Copies only
   * when the bytes are not aligned for the element type.
   */
  typed(): NpyTypedArray {
    const size = NPY_ITEMSIZE[this.dtype];
    let b = this.bytes;
    if (b.byteOffset % size !== 0) b = b.slice();
    const n = b.byteLength / size;
    const buf = b.buffer;
    const off = b.byteOffset;
    switch (this.dtype) {
      case 'float16': return new Uint16Array(buf, off, n);
      case 'float32': return new Float32Array(buf, off, n);
      case 'float64': return new Float64Array(buf, off, n);
      case 'int8': return new Int8Array(buf, off, n);
      case 'int16': return new Int16Array(buf, off, n);
      case 'int32': return new Int32Array(buf, off, n);
      case 'int64': return new BigInt64Array(buf, off, n);
      case 'uint8':
      case 'bool': return new Uint8Array(buf, off, n);
      case 'uint16': return new Uint16Array(buf, off, n);
      case 'uint32': return new Uint32Array(buf, off, n);
      case 'uint64': return new BigUint64Array(buf, off, n);
    }
  }
  /** Same values laid out in C (row-major) order; returns `this` when already C order. */
  toCOrder(): NdArray {
    if (!this.fortranOrder || this.shape.length <= 1) {
      return this.fortranOrder ? new NdArray(this.dtype, this.shape, false, this.bytes) : this;
    }
    const size = NPY_ITEMSIZE[this.dtype];
    const nd = this.shape.length;
    const out = new Uint8Array(this.bytes.length);
    // Fortran strides (elements): stride[0] = 1, stride[i] = stride[i-1]*shape[i-1].
    const fstride = new Array<number>(nd);
    fstride[0] = 1;
    for (let i = 1; i < nd; i++) fstride[i] = fstride[i - 1] * this.shape[i - 1];
    const idx = new Array<number>(nd).fill(0);
    const total = this.size;
    for (let c = 0; c < total; c++) {
      let f = 0;
      for (let i = 0; i < nd; i++) f += idx[i] * fstride[i];
      out.set(this.bytes.subarray(f * size, f * size + size), c * size);
      for (let i = nd - 1; i >= 0; i--) {
        if (++idx[i] < this.shape[i]) break;
        idx[i] = 0;
      }
    }
    return new NdArray(this.dtype, this.shape, false, out);
  }
}

/** Reverse each element's bytes in place (big-endian input). */
export function byteswapInPlace(bytes: Uint8Array, itemsize: number): void {
  if (itemsize === 1) return;
  for (let i = 0; i + itemsize <= bytes.length; i += itemsize) {
    for (let a = i, b = i + itemsize - 1; a < b; a++, b--) {
      const t = bytes[a];
      bytes[a] = bytes[b];
      bytes[b] = t;
    }
  }
}
