/**
 * materialize: the plain-JS way to get a TensorRef's values — read exactly the storage bytes the
 * view touches (one positional read), then gather them into a contiguous row-major typed array.
 * float16/bfloat16 are widened to float32 exactly. The native loader replaces this on hot paths.
 */
import * as fs from 'node:fs';
import { CheckpointError } from './errors';
import { DType, ELEMENT_SIZE, MaterializedArray, RawArray, allocMaterialized, halfToFloat, rawArrayFor } from './dtypes';
import { preadInto } from '../io/fileio';
import { TensorRef, viewExtent } from './tensorref';

export interface MaterializeOptions {
  /** Reuse an open descriptor of `ref.storage.file` (many tensors in a row). */
  fd?: number;
  /** Keep fp16/bf16 as raw 16-bit patterns (Uint16Array) instead of widening to float32. */
  raw16?: boolean;
}

let halfTable: Float32Array | undefined;
/** All 65536 half values: one table lookup per element beats bit fiddling on big tables. */
function halfLUT(): Float32Array {
  if (!halfTable) {
    halfTable = new Float32Array(65536);
    for (let i = 0; i < 65536; i++) halfTable[i] = halfToFloat(i);
  }
  return halfTable;
}

/** Values of `ref` as a new contiguous (C-order) typed array. */
export function materialize(ref: TensorRef, opts: MaterializeOptions & { raw16: true }): RawArray;
export function materialize(ref: TensorRef, opts?: MaterializeOptions): MaterializedArray;
export function materialize(ref: TensorRef, opts: MaterializeOptions = {}): RawArray {
  const st = ref.storage;
  const es = ELEMENT_SIZE[ref.dtype];
  const n = ref.numel;
  const extent = viewExtent(ref.shape, ref.stride, ref.storageOffset);
  if (Number.isNaN(extent) || extent > st.numel) {
    throw new CheckpointError(st.file, `tensor view reaches element ${extent} of storage '${st.key}' with ${st.numel}`);
  }
  if (st.byteOffset < 0) throw new CheckpointError(st.file, `storage '${st.key}' has no location in the file`);
  if (n === 0) return ref.dtype === 'float16' || ref.dtype === 'bfloat16' ? (opts.raw16 ? new Uint16Array(0) : new Float32Array(0)) : allocMaterialized(ref.dtype, 0);

  // Read [storageOffset, extent) of the storage: exactly the bytes the view can touch.
  const first = ref.storageOffset;
  const span = extent - first;
  const bytes = new Uint8Array(span * es);
  const fd = opts.fd ?? fs.openSync(st.file, 'r');
  try {
    preadInto(fd, bytes, st.byteOffset + first * es, st.file, `storage '${st.key}'`);
  } finally {
    if (opts.fd === undefined) fs.closeSync(fd);
  }
  const src = rawArrayFor(ref.dtype, bytes.buffer, 0, span);
  const gathered = ref.isContiguous ? src : gather(src, ref.dtype, ref.shape, ref.stride, n);
  return widen(gathered, ref.dtype, opts.raw16 === true);
}

/** Strided view -> contiguous row-major copy (same element type). */
function gather(src: RawArray, dtype: DType, shape: number[], stride: number[], n: number): RawArray {
  const out = (dtype === 'float16' || dtype === 'bfloat16' ? new Uint16Array(n) : allocMaterialized(dtype, n)) as RawArray;
  const nd = shape.length;
  const idx = new Array<number>(nd).fill(0);
  let off = 0;
  const o = out as unknown as { [i: number]: number | bigint };
  const s = src as unknown as { [i: number]: number | bigint };
  for (let i = 0; i < n; i++) {
    o[i] = s[off];
    for (let d = nd - 1; d >= 0; d--) {
      if (++idx[d] < shape[d]) {
        off += stride[d];
        break;
      }
      off -= (shape[d] - 1) * stride[d];
      idx[d] = 0;
    }
  }
  return out;
}

function widen(a: RawArray, dtype: DType, keep16: boolean): RawArray {
  if (keep16 || (dtype !== 'float16' && dtype !== 'bfloat16')) {
    // Copy views of the read buffer only when they are not already a fresh contiguous array.
    return a;
  }
  const bits = a as Uint16Array;
  const out = new Float32Array(bits.length);
  if (dtype === 'float16') {
    const lut = halfLUT();
    for (let i = 0; i < bits.length; i++) out[i] = lut[bits[i]];
  } else {
    // bf16 -> f32 is a 16-bit shift: do it on the integer view.
    const u = new Uint32Array(out.buffer);
    for (let i = 0; i < bits.length; i++) u[i] = bits[i] << 16;
  }
  return out;
}

