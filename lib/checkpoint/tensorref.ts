/**
 * TensorRef: the single description of a tensor inside a checkpoint file — where its storage's bytes
 * are (absolute offset in the file) and how the tensor views them. The JS `materialize()` and the
 * native zero-copy loader both start from this, so it stays plain data.
 */
import { DType, ELEMENT_SIZE } from './dtypes';

export class StorageRef {
  /** Storage key as the checkpoint names it (zip record `data/<key>`, or a legacy address-like key). */
  readonly key: string;
  readonly dtype: DType;
  /** Number of elements of `dtype` in the storage. */
  readonly numel: number;
  /** Absolute path of the checkpoint file. */
  readonly file: string;
  /** Absolute byte offset of element 0 in `file` (filled in after the storage table is read, for legacy files). */
  byteOffset: number;
  /** numel * element size. */
  readonly byteLength: number;
  /** Device the storage was saved from ('cpu', 'cuda:0', ...): informational, we always load to CPU first. */
  readonly location: string;
  constructor(init: { key: string; dtype: DType; numel: number; file: string; byteOffset: number; location: string }) {
    this.key = init.key;
    this.dtype = init.dtype;
    this.numel = init.numel;
    this.file = init.file;
    this.byteOffset = init.byteOffset;
    this.byteLength = init.numel * ELEMENT_SIZE[init.dtype];
    this.location = init.location;
  }
}

export class TensorRef {
  readonly dtype: DType;
  readonly shape: number[];
  /** Strides in elements (PyTorch convention). */
  readonly stride: number[];
  /** Offset of element [0,...,0] into the storage, in elements. */
  readonly storageOffset: number;
  /** Shared between every tensor that views the same storage (identity comparison works). */
  readonly storage: StorageRef;
  requiresGrad: boolean;
  /** True when the pickle wrapped it in `torch.nn.Parameter`. */
  isParameter: boolean;
  constructor(init: { dtype: DType; shape: number[]; stride: number[]; storageOffset: number; storage: StorageRef; requiresGrad?: boolean }) {
    this.dtype = init.dtype;
    this.shape = init.shape;
    this.stride = init.stride;
    this.storageOffset = init.storageOffset;
    this.storage = init.storage;
    this.requiresGrad = init.requiresGrad ?? false;
    this.isParameter = false;
  }
  get numel(): number {
    return numelOf(this.shape);
  }
  /** True when the view is dense row-major (C order), i.e. one contiguous byte range of the storage. */
  get isContiguous(): boolean {
    let expected = 1;
    for (let i = this.shape.length - 1; i >= 0; i--) {
      if (this.shape[i] !== 1 && this.stride[i] !== expected) return false;
      expected *= this.shape[i];
    }
    return true;
  }
}

export function numelOf(shape: readonly number[]): number {
  let n = 1;
  for (const d of shape) n *= d;
  return n;
}

/**
 * Highest element index (exclusive) a view touches, relative to the storage start; 0 for empty
 * tensors. Returns NaN when the arithmetic leaves the safe-integer range (a hostile header).
 */
export function viewExtent(shape: readonly number[], stride: readonly number[], storageOffset: number): number {
  let last = storageOffset;
  for (let i = 0; i < shape.length; i++) {
    if (shape[i] === 0) return 0;
    last += (shape[i] - 1) * stride[i];
  }
  return Number.isSafeInteger(last + 1) ? last + 1 : NaN;
}
