/**
 * A tiny RGB raster: filled rectangles (opaque or blended), thick lines, dots and bitmap-font text.
 * Enough to draw the report's plots as PNG without a canvas dependency; coordinates are in pixels
 * of the bitmap, (0, 0) top-left.
 */
import { GLYPH_ADVANCE, GLYPH_HEIGHT, GLYPH_WIDTH, glyph, textWidth } from './font';

export type Rgb = readonly [number, number, number];

/** '#rrggbb' -> [r, g, b]. */
export function parseColor(c: string): Rgb {
  const m = /^#([0-9a-f]{6})$/i.exec(c);
  if (!m) throw new RangeError(`colour must be '#rrggbb', got '${c}'`);
  const v = parseInt(m[1], 16);
  return [(v >> 16) & 255, (v >> 8) & 255, v & 255];
}

export class Bitmap {
  readonly data: Uint8Array;
  constructor(readonly width: number, readonly height: number, background: Rgb = [255, 255, 255]) {
    this.data = new Uint8Array(width * height * 3);
    // One pixel, then doubling copies: a per-pixel set() took ~15 ms a plot (80 plots in the demo).
    this.data.set(background, 0);
    for (let n = 3; n < this.data.length; n *= 2) this.data.copyWithin(n, 0, Math.min(n, this.data.length - n));
  }

  /** Blends `c` over pixel (x, y) with opacity `a` (1 = replace); off-bitmap pixels are ignored. */
  blend(x: number, y: number, c: Rgb, a = 1): void {
    x = Math.round(x);
    y = Math.round(y);
    if (x < 0 || y < 0 || x >= this.width || y >= this.height) return;
    const o = (y * this.width + x) * 3;
    if (a >= 1) {
      this.data[o] = c[0];
      this.data[o + 1] = c[1];
      this.data[o + 2] = c[2];
      return;
    }
    for (let k = 0; k < 3; k++) this.data[o + k] = Math.round(this.data[o + k] * (1 - a) + c[k] * a);
  }

  get(x: number, y: number): Rgb {
    const o = (y * this.width + x) * 3;
    return [this.data[o], this.data[o + 1], this.data[o + 2]];
  }

  /** Axis-aligned rectangle [x0, x1) x [y0, y1), corners in any order. */
  fillRect(x0: number, y0: number, x1: number, y1: number, c: Rgb, a = 1): void {
    const xa = Math.max(0, Math.round(Math.min(x0, x1)));
    const xb = Math.min(this.width, Math.round(Math.max(x0, x1)));
    const ya = Math.max(0, Math.round(Math.min(y0, y1)));
    const yb = Math.min(this.height, Math.round(Math.max(y0, y1)));
    for (let y = ya; y < yb; y++) for (let x = xa; x < xb; x++) this.blend(x, y, c, a);
  }

  /** Square pen of side `w` along the segment; `dash` = [on, off] lengths in pixels. */
  line(x0: number, y0: number, x1: number, y1: number, c: Rgb, w = 1, dash?: [number, number]): void {
    const len = Math.hypot(x1 - x0, y1 - y0);
    const steps = Math.max(1, Math.ceil(len * 2));
    const h = (w - 1) / 2;
    for (let s = 0; s <= steps; s++) {
      const t = s / steps;
      if (dash) {
        const d = (t * len) % (dash[0] + dash[1]);
        if (d >= dash[0]) continue;
      }
      const x = x0 + (x1 - x0) * t;
      const y = y0 + (y1 - y0) * t;
      this.fillRect(x - h, y - h, x + h + 1, y + h + 1, c);
    }
  }

  polyline(xs: ArrayLike<number>, ys: ArrayLike<number>, c: Rgb, w = 1, dash?: [number, number]): void {
    for (let i = 1; i < xs.length; i++) this.line(xs[i - 1], ys[i - 1], xs[i], ys[i], c, w, dash);
  }

  /** Text with its top-left corner at (x, y); `scale` multiplies the 5x7 font's pixels. */
  text(x: number, y: number, s: string, c: Rgb, scale = 1): void {
    let cx = Math.round(x);
    const cy = Math.round(y);
    for (const ch of s) {
      const g = glyph(ch);
      for (let gy = 0; gy < GLYPH_HEIGHT; gy++) {
        for (let gx = 0; gx < GLYPH_WIDTH; gx++) {
          if (g[gy * GLYPH_WIDTH + gx]) this.fillRect(cx + gx * scale, cy + gy * scale, cx + (gx + 1) * scale, cy + (gy + 1) * scale, c);
        }
      }
      cx += GLYPH_ADVANCE * scale;
    }
  }

  /** Text rotated 90 degrees counter-clockwise (for a y-axis label), reading bottom to top from (x, y). */
  textUp(x: number, y: number, s: string, c: Rgb, scale = 1): void {
    let cy = Math.round(y);
    const cx = Math.round(x);
    for (const ch of s) {
      const g = glyph(ch);
      for (let gy = 0; gy < GLYPH_HEIGHT; gy++) {
        for (let gx = 0; gx < GLYPH_WIDTH; gx++) {
          // glyph (gx, gy) -> bitmap (cx + gy, cy - gx)
          if (g[gy * GLYPH_WIDTH + gx]) this.fillRect(cx + gy * scale, cy - (gx + 1) * scale, cx + (gy + 1) * scale, cy - gx * scale, c);
        }
      }
      cy -= GLYPH_ADVANCE * scale;
    }
  }

  static textWidth(s: string, scale = 1): number {
    return textWidth(s) * scale;
  }
}
