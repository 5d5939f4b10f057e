/**
 * The data contract every consumer codes against (trainer, feature extraction, demo). lib/data
 * implements it; pixels stay native until a batch tensor comes out.
 */
import type { Tensor } from '../tensor';
import type { BeitViewsOptions } from './beit-views';

/** A labelled image dataset in a fixed order (the reference's dataset order). */
export interface ImageDataset {
  /** The reference's name: 'fashion_mnist', 'cifar10', 'cifar100', 'imagenet30', 'image_folder', 'svhn', ... */
  readonly name: string;
  /** Where it was read from (a folder or file), for messages and cache keys. */
  readonly root: string;
  readonly split: 'train' | 'test';
  /** Class names, index = label. */
  readonly classes: readonly string[];
  readonly length: number;
  /** Label of every sample, in dataset order. */
  readonly targets: Int32Array;
  /** One-class subsets (`classIdx`): the in-distribution class (CIFAR-100: superclass) — addition. */
  readonly classIdx?: number;
}

/** One batch as the model consumes it. */
export interface Batch {
  /** float32 [B, 3, S, S], normalised, on the loader's device. */
  images: Tensor;
  /** Hard labels (int32), one per image. */
  targets: Int32Array;
  /** Dataset indices of the images, in batch order. */
  indices: Int32Array;
  /** Soft targets [B, numClasses] float32 when mixup/cutmix/label smoothing made them. */
  softTargets?: Tensor;
  /** BEiT pre-training (LoaderOptions.beitViews): the tokenizer view float32 [B, 3, S2, S2] after map_pixels; `images` is then the patch view of the same crop. */
  secondImages?: Tensor;
}

/** Options of a loader over one dataset. */
export interface LoaderOptions {
  batchSize: number;
  /** Training augmentation (timm create_transform for the BEiT flags) instead of the evaluation transform. */
  train?: boolean;
  /** Model input side; <= 32 skips resize/crop at evaluation like the reference. */
  inputSize: number;
  shuffle?: boolean;
  dropLast?: boolean;
  seed?: number;
  /** Distributed sampling (torch DistributedSampler semantics). */
  rank?: number;
  worldSize?: number;
  /** Batches prepared ahead (default 2). */
  prefetch?: number;
  /** Native decode/transform threads (default: all cores). */
  workers?: number;
  device?: string;

  // ---- additions (data layer) ----
  /** DistributedSampler's drop_last (default false: shards padded by repeating from the start). */
  samplerDropLast?: boolean;
  /** ImageNet mean/std instead of the reference's default mean = std = 0.5. */
  imagenetDefaultMeanAndStd?: boolean;
  /** Explicit per-channel normalisation (overrides the above). */
  mean?: readonly number[];
  std?: readonly number[];
  /** Evaluation crop fraction (default 224/256 below 384, else 1.0). */
  cropPct?: number;
  /** Random erasing probability in training (default 0.25). */
  reprob?: number;
  /** Horizontal flip probability in training (default 0.5). */
  hflip?: number;
  /** Evaluation of JPEG files: decode at a reduced DCT scale (1/2, 1/4 or 1/8) when the image is at
   *  least twice the resize target (faster, no longer bit-identical to PIL; default false). */
  fastDecode?: boolean;
  /** timm auto-augment for training, e.g. 'rand-m9-mstd0.5-inc1' (the reference's default); off when unset. */
  autoAugment?: string;
  /** Colour jitter strength in training, applied (as timm) only when autoAugment is off; default off. */
  colorJitter?: number;
  /** Filter of RandAugment's rotate/shear/translate: 'bicubic' (default, the reference's), 'bilinear', 'random'. */
  trainInterpolation?: 'bicubic' | 'bilinear' | 'random';
  /** Random erasing fill: 'pixel' (default, the reference's), 'rand' (one N(0,1) colour per box), 'const' (zeros). */
  remode?: 'pixel' | 'rand' | 'const';
  /** Random erasing: up to this many boxes per image (timm max_count; default 1). */
  recount?: number;
  /** Batch mixup/cutmix (training); produces Batch.softTargets. */
  mixup?: MixupOptions;
  /** Show a progress bar/log lines over the epoch with this label. */
  progress?: string;
  /**
   * BEiT pre-training's two views (DataAugmentationForBEiT, training only): colour jitter, flip and one
   * random resized crop shared by the patch view (`images`, inputSize) and the tokenizer view
   * (`secondImages`). Replaces the training transform's crop / flip / RandAugment / erasing.
   */
  beitViews?: BeitViewsOptions;
}

/** timm Mixup options (names as timm's, camelCase). */
export interface MixupOptions {
  /** Mixup alpha (0 = off). */
  mixup?: number;
  /** CutMix alpha (0 = off). */
  cutmix?: number;
  /** CutMix box area bounds [min, max] as fractions; overrides cutmix alpha when set. */
  cutmixMinmax?: readonly [number, number];
  /** Probability of applying mixup or cutmix to a batch/pair/element (default 1). */
  mixupProb?: number;
  /** Probability of cutmix instead of mixup when both are on (default 0.5). */
  mixupSwitchProb?: number;
  /** 'batch' (default), 'pair' or 'elem'. */
  mixupMode?: 'batch' | 'pair' | 'elem';
  /** Label smoothing (default 0.1). */
  smoothing?: number;
  /** Number of classes of the soft targets (default: the dataset's). */
  numClasses?: number;
}

export interface DataLoader extends AsyncIterable<Batch> {
  readonly dataset: ImageDataset;
  /** Batches per epoch for this rank. */
  readonly numBatches: number;
  /** Samples per epoch for this rank (after padding/drop_last). */
  readonly numSamples: number;
  /** Reshuffles for epoch e (seed + epoch), like DistributedSampler.set_epoch. */
  setEpoch(epoch: number): void;
}
