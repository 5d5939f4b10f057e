/**
 * Transform configuration and per-sample augmentation plans. TypeScript draws every random number
 * (keyed by seed, epoch, sample index); native code only executes the plan (layout: plan-layout.ts).
 */
import { KeyedRng, pyRound } from './rng';
import { drawRandAugment, parseRandAugment, RandAugmentSpec, TrainInterpolation } from './randaugment';
import { checkColorJitter, drawColorJitter } from './color-jitter';
import { DataError } from './errors';
import { ERASE_MODE, EraseMode, PLAN } from './plan-layout';

export { PLAN } from './plan-layout';

export type Geometry = 'eval_small' | 'eval_resize' | 'train_crop' | 'train_rrc';

export const IMAGENET_DEFAULT_MEAN = [0.485, 0.456, 0.406] as const;
export const IMAGENET_DEFAULT_STD = [0.229, 0.224, 0.225] as const;

/** Everything the native transform needs besides the plan. */
export interface TransformSpec {
  geometry: Geometry;
  size: number;
  /** Shorter side before the center crop (eval_resize). */
  resizeShort: number;
  pad: number;
  mean: readonly number[];
  std: readonly number[];
  hflip: number;
  reprob: number;
  scale: readonly [number, number];
  ratio: readonly [number, number];
  /** RandAugment (training), e.g. timm's rand-m9-mstd0.5-inc1. */
  randAugment?: RandAugmentSpec;
  /** torchvision ColorJitter(j, j, j) (training, only without RandAugment, as timm). */
  colorJitter?: number;
  /** Random erasing fill and the most boxes per image (timm RandomErasing mode / max_count). */
  eraseMode: EraseMode;
  eraseCount: number;
  /** Opt-in reduced-DCT JPEG decoding at evaluation. */
  fastDecode: boolean;
}

export interface TransformOptions {
  inputSize: number;
  train: boolean;
  /** Normalisation: mean = std = 0.5 (the reference default) unless ImageNet's is asked for. */
  imagenetDefaultMeanAndStd?: boolean;
  mean?: readonly number[];
  std?: readonly number[];
  /** Evaluation crop fraction (default 224/256 below 384, else 1.0, like the reference). */
  cropPct?: number;
  /** Random erasing probability (training; default 0.25). */
  reprob?: number;
  /** Horizontal flip probability (training; default 0.5). */
  hflip?: number;
  /** RandomResizedCrop scale and ratio ranges (training, inputSize > 32). */
  scale?: readonly [number, number];
  ratio?: readonly [number, number];
  /** timm auto-augment string; only RandAugment ('rand-m9-mstd0.5-inc1', the BEiT/MOOD default) is supported. */
  autoAugment?: string;
  /** Colour jitter strength (training): timm applies ColorJitter(j, j, j) only when autoAugment is off. Default off. */
  colorJitter?: number;
  /** Filter of the RandAugment geometric ops (timm's train interpolation; default bicubic, the reference's). */
  trainInterpolation?: TrainInterpolation;
  /** Random erasing mode (default 'pixel', the reference's) and most boxes per image (default 1). */
  remode?: EraseMode;
  recount?: number;
  fastDecode?: boolean;
}

/** The reference's build_transform decisions for these options. */
export function transformSpec(o: TransformOptions): TransformSpec {
  const S = o.inputSize;
  if (!Number.isInteger(S) || S < 1 || S > 4096) throw new RangeError(`inputSize must be an integer in 1..4096, got ${S}`);
  const mean = o.mean ?? (o.imagenetDefaultMeanAndStd ? IMAGENET_DEFAULT_MEAN : [0.5, 0.5, 0.5]);
  const std = o.std ?? (o.imagenetDefaultMeanAndStd ? IMAGENET_DEFAULT_STD : [0.5, 0.5, 0.5]);
  if (mean.length !== 3 || std.length !== 3) throw new RangeError('mean and std need 3 values (R, G, B)');
  if (std.some((s) => !(s > 0))) throw new RangeError('std values must be positive');
  const cropPct = o.cropPct ?? (S < 384 ? 224 / 256 : 1.0);
  if (!(cropPct > 0 && cropPct <= 1)) throw new RangeError(`cropPct must be in (0, 1], got ${cropPct}`);
  const reprob = o.reprob ?? 0.25;
  const hflip = o.hflip ?? 0.5;
  for (const [k, v] of [['reprob', reprob], ['hflip', hflip]] as const)
    if (!(v >= 0 && v <= 1)) throw new RangeError(`${k} must be a probability in [0, 1], got ${v}`);
  const small = S <= 32;
  const interpolation = o.trainInterpolation ?? 'bicubic';
  if (!['bicubic', 'bilinear', 'random'].includes(interpolation)) throw new DataError(`trainInterpolation must be bicubic, bilinear or random, got '${interpolation}'`);
  if (o.train && !small && interpolation !== 'bicubic')
    throw new DataError(`trainInterpolation '${interpolation}' at inputSize ${S} (> 32) would also change timm's RandomResizedCrop filter, which is bicubic only here; use bicubic, or an inputSize <= 32 where the crop needs no filter`);
  const eraseMode = o.remode ?? 'pixel';
  if (!Object.prototype.hasOwnProperty.call(ERASE_MODE, eraseMode)) throw new DataError(`remode must be pixel, rand or const (timm RandomErasing), got '${eraseMode}'`);
  const eraseCount = o.recount ?? 1;
  if (!Number.isInteger(eraseCount) || eraseCount < 1 || eraseCount > PLAN.maxErase) throw new DataError(`recount must be an integer in 1..${PLAN.maxErase}, got ${eraseCount}`);
  if (o.colorJitter !== undefined) checkColorJitter(o.colorJitter);
  const randAugment = o.train && o.autoAugment ? parseRandAugment(o.autoAugment, interpolation) : undefined;
  return {
    geometry: o.train ? (small ? 'train_crop' : 'train_rrc') : small ? 'eval_small' : 'eval_resize',
    size: S,
    resizeShort: Math.floor(S / cropPct),
    pad: 4,
    mean,
    std,
    hflip,
    reprob,
    scale: o.scale ?? [0.08, 1.0],
    ratio: o.ratio ?? [3 / 4, 4 / 3],
    randAugment,
    colorJitter: o.train && !randAugment && o.colorJitter ? o.colorJitter : undefined,
    eraseMode,
    eraseCount,
    fastDecode: o.fastDecode ?? false,
  };
}

/** Per-channel Normalize as native op attributes (mean0..2, std0..2). */
export function normAttrs(mean: readonly number[], std: readonly number[]): Record<string, number> {
  return { mean0: mean[0], mean1: mean[1], mean2: mean[2], std0: std[0], std1: std[1], std2: std[2] };
}

/** Attributes of the native data_batch op for this spec. */
export function nativeAttrs(spec: TransformSpec, workers: number): Record<string, number | string | boolean> {
  return {
    geometry: spec.geometry,
    size: spec.size,
    resize_short: spec.resizeShort,
    pad: spec.pad,
    ...normAttrs(spec.mean, spec.std),
    // timm's RandAugment fill colour: round(255 * mean) per channel.
    fill0: Math.min(255, pyRound(255 * spec.mean[0])),
    fill1: Math.min(255, pyRound(255 * spec.mean[1])),
    fill2: Math.min(255, pyRound(255 * spec.mean[2])),
    erase_mode: spec.eraseMode,
    fast_decode: spec.fastDecode,
    workers,
  };
}

/** Stream ids keep the sample draws independent of batch-level draws (mixup). */
export const STREAM_SAMPLE = 1;
export const STREAM_BATCH = 2;

/**
 * Fills `row` (PLAN.cols values) with sample `index`'s augmentation for `epoch`, in timm's order:
 * RandomCrop offset (torchvision, padding 4) or RandomResizedCrop uniforms (timm), horizontal flip,
 * RandAugment or colour jitter, and timm RandomErasing (count 1..recount, each box's area
 * 0.02-1/3 of the image divided by the count, log aspect in [log 0.3, log 1/0.3]) on the S x S output.
 */
export function drawSamplePlan(spec: TransformSpec, seed: number, epoch: number, index: number, row: Float64Array): void {
  row.fill(0);
  const rng = new KeyedRng(seed, epoch, index, STREAM_SAMPLE);
  const S = spec.size;
  if (spec.geometry === 'train_crop') {
    row[PLAN.cropY] = rng.randint(0, 2 * spec.pad);
    row[PLAN.cropX] = rng.randint(0, 2 * spec.pad);
  } else if (spec.geometry === 'train_rrc') {
    row[PLAN.rrcScaleMin] = spec.scale[0];
    row[PLAN.rrcScaleMax] = spec.scale[1];
    row[PLAN.rrcRatioMin] = spec.ratio[0];
    row[PLAN.rrcRatioMax] = spec.ratio[1];
    for (let k = 0; k < 40; k++) row[PLAN.rrcUniforms + k] = rng.random();
  }
  row[PLAN.flip] = rng.random() < spec.hflip ? 1 : 0;
  if (spec.randAugment) drawRandAugment(spec.randAugment, rng, row);
  else if (spec.colorJitter) drawColorJitter(spec.colorJitter, rng, row);
  if (spec.reprob > 0 && rng.random() < spec.reprob) {
    const area = S * S;
    const logLo = Math.log(0.3);
    const logHi = Math.log(1 / 0.3);
    const count = spec.eraseCount === 1 ? 1 : rng.randint(1, spec.eraseCount);
    let boxes = 0;
    for (let b = 0; b < count; b++) {
      for (let attempt = 0; attempt < 10; attempt++) {
        const target = (rng.uniform(0.02, 1 / 3) * area) / count;
        const aspect = Math.exp(rng.uniform(logLo, logHi));
        const h = pyRound(Math.sqrt(target * aspect));
        const w = pyRound(Math.sqrt(target / aspect));
        if (w < S && h < S) {
          const at = PLAN.erase + PLAN.eraseStride * boxes++;
          row[at] = rng.randint(0, S - h);
          row[at + 1] = rng.randint(0, S - w);
          row[at + 2] = h;
          row[at + 3] = w;
          row[at + 4] = rng.nextU32();
          break;
        }
      }
    }
    row[PLAN.eraseCount] = boxes;
  }
}
