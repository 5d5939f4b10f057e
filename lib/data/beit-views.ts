/**
 * BEiT pre-training's two views (the reference's DataAugmentationForBEiT, datasets.py): one ColorJitter,
 * one RandomHorizontalFlip and ONE RandomResizedCrop box per image, resized twice: the patch view at
 * --input_size with --train_interpolation (then Normalize) and the tokenizer view at
 * --second_input_size with --second_interpolation (then map_pixels). As everywhere in lib/data, the
 * random draws are made here, keyed by (seed, epoch, sample index), and native code only executes the
 * plan (native/core/data_ops.h, BeitPlanCol), so results never depend on the worker count.
 */
import { KeyedRng } from './rng';
import { normAttrs, PLAN, STREAM_SAMPLE } from './plan';

/** Plan columns after the standard ones (flip and RandomResizedCrop columns are PLAN's). */
export const BEIT_PLAN = {
  /** brightness, contrast, saturation factors; < 0: off. */
  jitter: PLAN.cols,
  /** torchvision ColorJitter's op order (randperm(4); 3 = hue, off in the reference). */
  order: PLAN.cols + 3,
  /** --train_interpolation random: 0 bilinear, 1 bicubic. */
  interp: PLAN.cols + 7,
  cols: PLAN.cols + 8,
} as const;

/** Pillow filters by their torchvision / timm names; 'random' = bilinear or bicubic per image (timm). */
export type Interpolation = 'bicubic' | 'bilinear' | 'lanczos' | 'hamming';
export const INTERPOLATIONS: readonly string[] = ['bicubic', 'bilinear', 'lanczos', 'hamming'];

export interface BeitViewsOptions {
  /** --second_input_size: the tokenizer view's side (BEiT: 112). */
  secondSize: number;
  /** --train_interpolation (default bicubic; 'random' as timm). */
  interpolation?: Interpolation | 'random';
  /** --second_interpolation (default lanczos). */
  secondInterpolation?: Interpolation;
  /** ColorJitter(cj, cj, cj) (the reference: 0.4); 0 turns it off. */
  colorJitter?: number;
  /** RandomResizedCrop scale / ratio (the reference: (0.08, 1), (3/4, 4/3)). */
  scale?: readonly [number, number];
  ratio?: readonly [number, number];
  /** Horizontal flip probability (the reference: 0.5). */
  hflip?: number;
}

export interface BeitViewsSpec {
  size: number;
  secondSize: number;
  interpolation: Interpolation | 'random';
  secondInterpolation: Interpolation;
  colorJitter: number;
  scale: readonly [number, number];
  ratio: readonly [number, number];
  hflip: number;
  mean: readonly number[];
  std: readonly number[];
}

/** Checked spec: the patch view at `size` normalised by mean / std, the tokenizer view per `o`. */
export function beitViewsSpec(size: number, o: BeitViewsOptions, mean: readonly number[], std: readonly number[]): BeitViewsSpec {
  const side = (k: string, v: number): void => {
    if (!Number.isInteger(v) || v < 1 || v > 4096) throw new RangeError(`${k} must be an integer in 1..4096, got ${v}`);
  };
  side('inputSize', size);
  side('secondSize', o.secondSize);
  const interpolation = o.interpolation ?? 'bicubic';
  const secondInterpolation = o.secondInterpolation ?? 'lanczos';
  if (interpolation !== 'random' && !INTERPOLATIONS.includes(interpolation)) throw new RangeError(`interpolation must be one of ${INTERPOLATIONS.join(', ')} or random, got '${interpolation}'`);
  if (!INTERPOLATIONS.includes(secondInterpolation)) throw new RangeError(`secondInterpolation must be one of ${INTERPOLATIONS.join(', ')}, got '${secondInterpolation}'`);
  const colorJitter = o.colorJitter ?? 0.4;
  if (!(colorJitter >= 0 && Number.isFinite(colorJitter))) throw new RangeError(`colorJitter must be a number >= 0, got ${colorJitter}`);
  const scale = o.scale ?? [0.08, 1.0];
  const ratio = o.ratio ?? [3 / 4, 4 / 3];
  if (!(scale[0] > 0 && scale[0] <= scale[1]) || !(ratio[0] > 0 && ratio[0] <= ratio[1])) throw new RangeError('scale and ratio must be (min, max) ranges of positive numbers');
  const hflip = o.hflip ?? 0.5;
  if (!(hflip >= 0 && hflip <= 1)) throw new RangeError(`hflip must be a probability, got ${hflip}`);
  return { size, secondSize: o.secondSize, interpolation, secondInterpolation, colorJitter, scale, ratio, hflip, mean, std };
}

/**
 * Sample `index`'s draws for `epoch`, in the reference's order: ColorJitter (op order, then brightness,
 * contrast, saturation factors uniform in [max(0, 1 - cj), 1 + cj]), the flip, the crop's uniforms
 * (timm's 10 attempts), and for 'random' the interpolation.
 */
export function drawBeitPlan(spec: BeitViewsSpec, seed: number, epoch: number, index: number, row: Float64Array): void {
  row.fill(0);
  const rng = new KeyedRng(seed, epoch, index, STREAM_SAMPLE);
  const order = [0, 1, 2, 3];
  for (let i = 3; i > 0; i--) {
    const j = rng.randint(0, i);
    [order[i], order[j]] = [order[j], order[i]];
  }
  for (let k = 0; k < 4; k++) row[BEIT_PLAN.order + k] = order[k];
  const cj = spec.colorJitter;
  for (let k = 0; k < 3; k++) row[BEIT_PLAN.jitter + k] = cj > 0 ? rng.uniform(Math.max(0, 1 - cj), 1 + cj) : -1;
  row[PLAN.flip] = rng.random() < spec.hflip ? 1 : 0;
  row[PLAN.rrcScaleMin] = spec.scale[0];
  row[PLAN.rrcScaleMax] = spec.scale[1];
  row[PLAN.rrcRatioMin] = spec.ratio[0];
  row[PLAN.rrcRatioMax] = spec.ratio[1];
  for (let k = 0; k < 40; k++) row[PLAN.rrcUniforms + k] = rng.random();
  if (spec.interpolation === 'random') row[BEIT_PLAN.interp] = rng.random() < 0.5 ? 0 : 1;
}

/** Plans of a batch: B rows of BEIT_PLAN.cols. */
export function beitBatchPlan(spec: BeitViewsSpec, seed: number, epoch: number, indices: Int32Array): Float64Array {
  const plan = new Float64Array(indices.length * BEIT_PLAN.cols);
  for (let i = 0; i < indices.length; i++) drawBeitPlan(spec, seed, epoch, indices[i], plan.subarray(i * BEIT_PLAN.cols, (i + 1) * BEIT_PLAN.cols));
  return plan;
}

/** Attributes of the native data_beit_batch / image_beit_batch ops. */
export function beitAttrs(spec: BeitViewsSpec, workers: number): Record<string, number | string> {
  return {
    size: spec.size,
    second_size: spec.secondSize,
    interpolation: spec.interpolation,
    second_interpolation: spec.secondInterpolation,
    ...normAttrs(spec.mean, spec.std),
    workers,
  };
}
