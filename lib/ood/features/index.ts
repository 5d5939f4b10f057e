/**
 * Feature extraction for OOD evaluation: features and logits in one pass, cached on disk, and
 * `evaluateOod` (extract once, evaluate every metric, multi-class or one-class).
 */
export * from './types';
export { extractFeatures, extractCached, cacheKeyParts, modelIdentity, stateDictHash, FeatureExtractionError, type LoaderDescription } from './extract';
export { checkpointIdentity, cacheKey, entryDir, readEntry, writeEntry, canonicalJson, CACHE_FORMAT_VERSION } from './cache';
export { evaluateOod, oneClassGroups, OodEvaluationError, type EvaluateOodInput, type EvaluateOodResult, type OodLoader, type OodMetricResult } from './evaluate';
export { gatherShards, assembleRows, type RowGatherer } from './gather';
