/**
 * Far-OOD image sets the demo builds from nothing or from ID test images, as uint8 [N, C, H, W]:
 * uniform noise, Gaussian noise (matched to the ID pixels' mean and spread), vertically flipped and
 * intensity-inverted ID images. Seeded, so a resumed run rebuilds exactly the same sets.
 */
import type { FarOodKind } from './options';
import { mulberry32 } from '../util/mulberry32';

export interface PixelBatch {
  /** uint8, row-major [n, c, h, w]. */
  pixels: Uint8Array;
  n: number;
  c: number;
  h: number;
  w: number;
}

export const FAR_OOD_NAMES: Record<FarOodKind, string> = {
  uniform: 'uniform noise',
  gaussian: 'gaussian noise',
  vflip: 'vertically flipped',
  invert: 'inverted',
};

function meanStd(p: Uint8Array): [number, number] {
  let s = 0;
  let s2 = 0;
  for (let i = 0; i < p.length; i++) {
    s += p[i];
    s2 += p[i] * p[i];
  }
  const m = s / p.length;
  return [m, Math.sqrt(Math.max(0, s2 / p.length - m * m))];
}

/** The far-OOD set `kind` made from `src` (same shape); `seed` drives the noise. */
export function farOodPixels(kind: FarOodKind, src: PixelBatch, seed: number): PixelBatch {
  const { n, c, h, w } = src;
  const out = new Uint8Array(src.pixels.length);
  const plane = h * w;
  switch (kind) {
    case 'uniform': {
      const r = mulberry32(seed ^ 0x5eed0001);
      for (let i = 0; i < out.length; i++) out[i] = Math.floor(r() * 256);
      break;
    }
    case 'gaussian': {
      const r = mulberry32(seed ^ 0x5eed0002);
      const [m, sd] = meanStd(src.pixels);
      for (let i = 0; i < out.length; i++) {
        const z = Math.sqrt(-2 * Math.log(1 - r())) * Math.cos(2 * Math.PI * r());
        out[i] = Math.max(0, Math.min(255, Math.round(m + sd * z)));
      }
      break;
    }
    case 'vflip':
      for (let k = 0; k < n * c; k++) {
        for (let y = 0; y < h; y++) out.set(src.pixels.subarray(k * plane + (h - 1 - y) * w, k * plane + (h - y) * w), k * plane + y * w);
      }
      break;
    case 'invert':
      for (let i = 0; i < out.length; i++) out[i] = 255 - src.pixels[i];
      break;
    default:
      throw new RangeError(`unknown far-OOD kind '${String(kind)}'`);
  }
  return { pixels: out, n, c, h, w };
}
