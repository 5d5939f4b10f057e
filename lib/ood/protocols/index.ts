/** Evaluation protocols over precomputed features/logits: multi-class and one-class (MOOD's loops). */
export type { SampleSet, MetricChoice, MetricRow, OodRow, ProtocolHeader } from './types';
export { multiClassProtocol, type MultiClassInput, type MultiClassResult } from './multiClass';
export { oneClassProtocol, superclassList, CIFAR100_SUPERCLASSES, type OneClassInput, type OneClassResult, type OneClassGroupResult } from './oneClass';
