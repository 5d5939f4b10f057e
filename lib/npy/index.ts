export { NdArray, byteswapInPlace } from './ndarray';
export type { NpyTypedArray } from './ndarray';
export { parseDescr, descrOf, NPY_ITEMSIZE } from './dtype';
export type { NpyDType, ParsedDescr } from './dtype';
export { ndarray, readNpy, writeNpy, decodeNpy, encodeNpy, parseNpyHeader, readNpyAt } from './npy';
export type { NpyHeader } from './npy';
export { readNpz, writeNpz } from './npz';
export type { WriteNpzOptions } from './npz';
