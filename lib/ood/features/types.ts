/** Shared types of feature extraction, its cache and model-level OOD evaluation. */
import type { ProgressOptions } from '../../util/progress';

/**
 * Which transform the ID *training* features go through.
 * - `'eval-transform'` (our default): the deterministic evaluation transform, like test and OOD images.
 *   Reproducible, cacheable, and what a detector fitted for deployment should see.
 * - `'train-augment'`: the training augmentation (RandAugment, crops, flips, erasing), which is what the
 *   reference's `build_dataset(is_train=True)` feeds `get_features`; use it for parity with published numbers.
 */
export type TrainFeatureTransform = 'eval-transform' | 'train-augment';

export const DEFAULT_TRAIN_FEATURES: TrainFeatureTransform = 'eval-transform';

/** Per-sample outputs of one pass over a dataset, float32, rows in dataset order. */
export interface ExtractedSet {
  /** Rows. */
  n: number;
  /** [n, featureDim] row-major pooled features (`forward_features`). */
  features: Float32Array;
  featureDim: number;
  /** [n, numClasses] row-major logits (`head(features)`). */
  logits: Float32Array;
  numClasses: number;
  /** Label of every row. */
  labels: Int32Array;
  /**
   * Dataset index of every row, ascending. 0..length-1 unless the sampler skipped samples
   * (drop_last) or this is one rank's shard.
   */
  indices: Int32Array;
}

/** How an extraction was satisfied. */
export type CacheStatus = 'hit' | 'miss' | 'off';

export interface ExtractionRecord {
  /** e.g. 'cifar10/train'. */
  what: string;
  cache: CacheStatus;
  /** Cache entry directory (hit or miss with cache on). */
  entry?: string;
  /** Forward passes run (0 on a cache hit). */
  forwardBatches: number;
  rows: number;
  seconds: number;
}

/** Options of one extraction pass. */
export interface ExtractOptions {
  /** Progress label (default '<dataset>/<split>'). */
  label?: string;
  /** false: no progress output; an object: ProgressOptions other than label/total/unit. */
  progress?: boolean | Omit<ProgressOptions, 'label' | 'total' | 'unit'>;
  /**
   * This process's rank and the world size when the loader shards the dataset (--dist_eval). The
   * result then holds this rank's rows only (see `indices`); gathering across ranks is the caller's
   * job (lib/distributed).
   */
  rank?: number;
  worldSize?: number;
}

/** Identity of a checkpoint file without reading all of it. */
export interface CheckpointIdentity {
  path: string;
  size: number;
  mtimeMs: number;
  /** sha256 of the first and the last MiB (the whole file when smaller than 2 MiB). */
  headSha256: string;
  tailSha256: string;
}

/** Where and whether extracted sets are cached. */
export interface FeatureCacheOptions {
  /** Cache directory (created if missing). */
  dir: string;
  /** false: neither read nor write (`--no-cache`). Default true. */
  enabled?: boolean;
  /**
   * The model's identity: a checkpoint file (identified by path, size, mtime and head/tail hashes) or
   * a caller-chosen string. Default: the file of `model.loadReport`, else a hash of the state dict.
   */
  checkpoint?: string | CheckpointIdentity;
}

/** Everything the cache key of one extracted set depends on. */
export interface CacheKeyParts {
  version: number;
  model: { identity: CheckpointIdentity | string; options: Record<string, unknown> };
  dataset: { name: string; root: string; split: string; length: number; classes: number; targetsSha256: string; extra?: Record<string, unknown> };
  transform: { kind: 'eval' | 'train-augment'; inputSize: number; seed?: number; augment?: Record<string, unknown> };
  shard?: { rank: number; worldSize: number };
}
