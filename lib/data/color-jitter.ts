/**
 * torchvision's ColorJitter(b, c, s) on PIL images as plan entries (timm 0.3.2 adds it, with
 * b = c = s = --color_jitter and no hue, only when no auto-augment policy is set): the three
 * adjustments in a random order, each with a factor uniform in [max(0, 1 - j), 1 + j]. They are PIL's
 * ImageEnhance Brightness / Contrast / Color — the same native pixel ops RandAugment uses.
 */
import { PIXEL_OP, PLAN } from './plan-layout';
import { writePixelOp } from './randaugment';
import type { KeyedRng } from './rng';
import { DataError } from './errors';

export function checkColorJitter(j: number): void {
  if (!(Number.isFinite(j) && j >= 0)) throw new DataError(`colorJitter must be a non-negative number (torchvision ColorJitter), got ${j}`);
}

/** Writes the colour-jitter ops of one plan row (nothing for j = 0: ColorJitter(0, 0, 0) is the identity). */
export function drawColorJitter(j: number, rng: KeyedRng, row: Float64Array): void {
  if (!(j > 0)) return;
  const ops = [PIXEL_OP.Brightness, PIXEL_OP.Contrast, PIXEL_OP.Color];
  // The order is a random permutation (torch.randperm in ColorJitter.forward): Fisher-Yates.
  for (let i = ops.length - 1; i > 0; i--) {
    const k = Math.min(i, Math.floor(rng.random() * (i + 1)));
    [ops[i], ops[k]] = [ops[k], ops[i]];
  }
  row[PLAN.opCount] = ops.length;
  ops.forEach((op, k) => writePixelOp(row, k, op, rng.uniform(Math.max(0, 1 - j), 1 + j)));
}
