/**
 * The layout of one augmentation plan row (float64) and the ids of the pixel ops it names: the
 * contract between the code that draws plans (plan.ts, randaugment.ts, color-jitter.ts) and the native
 * code that executes them (native/core/data_ops.h: PlanCol, PixelOp, Resample), which this mirrors.
 * Both drawing modules depend on this file, never on each other.
 */

export const PLAN = {
  cropY: 0,
  cropX: 1,
  flip: 2,
  rrcScaleMin: 3,
  rrcScaleMax: 4,
  rrcRatioMin: 5,
  rrcRatioMax: 6,
  /** 10 attempts x (area, log-ratio, top, left) uniforms of timm's RandomResizedCrop. */
  rrcUniforms: 7,
  /** Pixel ops after the flip (RandAugment or colour jitter): the count, then (op id or -1 when
   *  skipped, argument, resample) triples. */
  opCount: 47,
  ops: 48,
  opStride: 3,
  maxOps: 8,
  /** Random erasing after normalisation: the count, then (top, left, h, w, noise seed) per box. */
  eraseCount: 72,
  erase: 73,
  eraseStride: 5,
  maxErase: 8,
  cols: 113,
} as const;

/** Native pixel op ids (PixelOp in data_ops.h): timm 0.3's RandAugment ops in _RAND_TRANSFORMS order. */
export const PIXEL_OP = {
  AutoContrast: 0,
  Equalize: 1,
  Invert: 2,
  Rotate: 3,
  Posterize: 4,
  Solarize: 5,
  SolarizeAdd: 6,
  Color: 7,
  Contrast: 8,
  Brightness: 9,
  Sharpness: 10,
  ShearX: 11,
  ShearY: 12,
  TranslateXRel: 13,
  TranslateYRel: 14,
} as const;

export type PixelOpName = keyof typeof PIXEL_OP;

/** PIL's resampling filter constants, as the geometric pixel ops take them. */
export const RESAMPLE = { bilinear: 2, bicubic: 3 } as const;

/** Random erasing fill (timm RandomErasing mode): 0 const (zeros), 1 rand (N(0,1) per channel), 2 pixel. */
export const ERASE_MODE = { const: 0, rand: 1, pixel: 2 } as const;
export type EraseMode = keyof typeof ERASE_MODE;
