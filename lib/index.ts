/** mood-ood: OOD detection with masked-image-modeling vision transformers (MOOD) on libtorch. */
export { Tensor, tensorStats, halfBitsToNumber } from './tensor';
export type { Device, Shape, CreateOptions, NestedNumbers } from './tensor';
export type { DType, TypedArrayOf, AnyTypedArray } from './dtype';
export { tidy, keep } from './scope';
export * as linalg from './linalg';
export { info, setNumThreads, getNumThreads, cuda } from './runtime';
export type { RuntimeInfo } from './runtime';
export * as ood from './ood';
export * as checkpoint from './checkpoint';
export * as npy from './npy';
export { createModel, Beit } from './models/beit';
export * as data from './data';
export type { ImageDataset, Batch, LoaderOptions, DataLoader } from './data/types';
export * as train from './train';
export * as distributed from './distributed';
export * as pretrain from './pretrain';
export * as report from './report';
export * as tensorboard from './tensorboard';
