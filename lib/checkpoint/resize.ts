/**
 * PyTorch's `F.interpolate(mode='bicubic', align_corners=False)` for (C, H, W) float data: Keys'
 * cubic convolution with a = -0.75, source coordinate (o + 0.5) * in/out - 0.5 (not clamped at 0 for
 * bicubic), neighbour indices clamped to the border. Computed in float64 and rounded once: this is
 * bit-identical to torch's float64 kernel (checked in tests); torch's float32 kernel rounds its
 * intermediates, so against a float32 reference we differ by <= 1 ulp-ish (7.2e-7 on the fixture).
 */

const A = -0.75;

function cubicWeights(t: number): [number, number, number, number] {
  const w0 = ((A * (t + 1) - 5 * A) * (t + 1) + 8 * A) * (t + 1) - 4 * A;
  const w1 = ((A + 2) * t - (A + 3)) * t * t + 1;
  const u = 1 - t;
  const w2 = ((A + 2) * u - (A + 3)) * u * u + 1;
  const w3 = ((A * (u + 1) - 5 * A) * (u + 1) + 8 * A) * (u + 1) - 4 * A;
  return [w0, w1, w2, w3];
}

/** Per output index: the 4 clamped source indices and their weights along one axis. */
function axisTaps(inSize: number, outSize: number): Array<{ idx: number[]; w: number[] }> {
  const scale = inSize / outSize;
  const taps: Array<{ idx: number[]; w: number[] }> = [];
  for (let o = 0; o < outSize; o++) {
    const src = (o + 0.5) * scale - 0.5;
    const f = Math.floor(src);
    const t = src - f;
    const w = cubicWeights(t);
    const idx = [f - 1, f, f + 1, f + 2].map((i) => Math.min(Math.max(i, 0), inSize - 1));
    taps.push({ idx, w });
  }
  return taps;
}

/** Resize `channels` planes of (inH, inW) to (outH, outW); input/output are channel-major (C, H, W). */
export function bicubicResize(
  src: ArrayLike<number>,
  channels: number,
  inH: number,
  inW: number,
  outH: number,
  outW: number,
): Float32Array {
  const ty = axisTaps(inH, outH);
  const tx = axisTaps(inW, outW);
  const out = new Float32Array(channels * outH * outW);
  for (let c = 0; c < channels; c++) {
    const base = c * inH * inW;
    for (let oy = 0; oy < outH; oy++) {
      const { idx: iy, w: wy } = ty[oy];
      for (let ox = 0; ox < outW; ox++) {
        const { idx: ix, w: wx } = tx[ox];
        let s = 0;
        for (let a = 0; a < 4; a++) {
          const row = base + iy[a] * inW;
          let r = 0;
          for (let b = 0; b < 4; b++) r += wx[b] * src[row + ix[b]];
          s += wy[a] * r;
        }
        out[(c * outH + oy) * outW + ox] = s;
      }
    }
  }
  return out;
}
