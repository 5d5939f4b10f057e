import { describe, expect, it } from 'vitest';
import { Tensor } from '../../lib/tensor';
import { createLoader, InMemoryDataset, KeyedRng } from '../../lib/data';
import { cutmixBox, drawMixPlan, mixupTargets } from '../../lib/data/mixup';

const B = 8;
const S = 10;

function makeDs(): InMemoryDataset {
  const px = new Uint8Array(B * 3 * S * S);
  for (let i = 0; i < px.length; i++) px[i] = (i * 37) % 256;
  const targets = Int32Array.from({ length: B }, (_, i) => i % 5);
  return new InMemoryDataset({ name: 'mem', root: 'mem', split: 'train', classes: ['a', 'b', 'c', 'd', 'e'], targets, pixels: Tensor.fromArray(px, [B, 3, S, S]) });
}

async function oneBatch(ds: InMemoryDataset, mixup?: Parameters<typeof createLoader>[1]['mixup'], seed = 4): Promise<{ x: Float32Array; soft?: Float32Array; t: Int32Array }> {
  const loader = createLoader(ds, { batchSize: B, inputSize: S, train: true, seed, reprob: 0, shuffle: false, mixup });
  const it = loader[Symbol.asyncIterator]();
  const { value } = await it.next();
  await it.return?.();
  const x = (await value.images.data()) as Float32Array;
  const soft = value.softTargets ? ((await value.softTargets.data()) as Float32Array) : undefined;
  value.images.dispose();
  value.softTargets?.dispose();
  return { x, soft, t: value.targets };
}

describe('mixup / cutmix (timm semantics)', () => {
  it('batch mixup: x_i = lam x_i + (1 - lam) x_{B-1-i}; soft targets sum to 1 with smoothing', async () => {
    const ds = makeDs();
    const plain = await oneBatch(ds);
    const m = await oneBatch(ds, { mixup: 0.8, smoothing: 0.1 });
    // Recover lam from the soft targets of a pair with different labels.
    const K = 5;
    const soft = m.soft!;
    // float32 values in [0, 1]: a row sum of 5 rounds 4 times (<= 4 * 2^-24 = 2.4e-7), the mixed pixels
    // lam a + (1 - lam) b with |a|, |b| <= 1 three times (<= 2e-7): inside 5 and 6 digits (5e-6, 5e-7).
    // A wrong partner or lam moves them by >= 0.01.
    for (let i = 0; i < B; i++) {
      const row = soft.subarray(i * K, (i + 1) * K);
      expect(row.reduce((a, b) => a + b, 0)).toBeCloseTo(1, 5);
      expect(Math.min(...row)).toBeCloseTo(0.1 / K, 6);
    }
    const plan = drawMixPlan({ mixup: 0.8 }, B, S, S, new KeyedRng(4, 0, 0, 2));
    const lam = plan.lam[0];
    expect(lam).toBeGreaterThan(0);
    expect(lam).toBeLessThan(1);
    const n = 3 * S * S;
    for (let i = 0; i < B; i++)
      for (let k = 0; k < n; k += 13) expect(m.x[i * n + k]).toBeCloseTo(plain.x[i * n + k] * lam + plain.x[(B - 1 - i) * n + k] * (1 - lam), 5);
    const expected = mixupTargets(m.t, K, plan.lam, 0.1);
    for (let k = 0; k < expected.length; k++) expect(soft[k]).toBeCloseTo(expected[k], 6);
    ds.dispose();
  });

  it('cutmix pastes the partner box, lam = 1 - box area; pair mode is symmetric', async () => {
    const ds = makeDs();
    const plain = await oneBatch(ds);
    for (const mode of ['batch', 'pair', 'elem'] as const) {
      const opts = { cutmix: 1.0, mixupMode: mode, smoothing: 0 };
      const m = await oneBatch(ds, opts);
      const plan = drawMixPlan(opts, B, S, S, new KeyedRng(4, 0, 0, 2));
      const n = S * S;
      for (let i = 0; i < B; i++) {
        const [j, kind, lam, yl, yh, xl, xh] = plan.params.subarray(i * 7, i * 7 + 7);
        if (kind === 0) {
          expect(lam === 0 || plan.lam[i] === 1).toBe(true);
          continue;
        }
        expect(kind).toBe(2);
        expect(j).toBe(B - 1 - i);
        expect(0 <= yl && yl <= yh && yh <= S && 0 <= xl && xl <= xh && xh <= S).toBe(true);
        // lam = 1 - box area / image area in float64 both here and in the plan: an ulp or two of a value
        // <= 1 (2.2e-16 each), inside 12 digits; a box one pixel off moves it by >= 1/(S S) = 0.01.
        expect(lam).toBeCloseTo(1 - ((yh - yl) * (xh - xl)) / (S * S), 12);
        for (let c = 0; c < 3; c++)
          for (let y = 0; y < S; y++)
            for (let x = 0; x < S; x++) {
              const inside = y >= yl && y < yh && x >= xl && x < xh;
              const src = inside ? j : i;
              expect(m.x[(i * 3 + c) * n + y * S + x]).toBe(plain.x[(src * 3 + c) * n + y * S + x]);
            }
        if (mode === 'pair') expect(Array.from(plan.params.subarray(j * 7 + 1, j * 7 + 7))).toEqual([kind, lam, yl, yh, xl, xh]);
      }
      for (let i = 0; i < B; i++) {
        const row = m.soft!.subarray(i * 5, (i + 1) * 5);
        // float32 targets summed in float64 here: the 5 float32 roundings of values <= 1 (<= 5 2^-24).
        expect(row.reduce((a, b) => a + b, 0)).toBeCloseTo(1, 5);
      }
    }
    ds.dispose();
  });

  it('cutmix_minmax boxes have sides within [min, max) of the image', () => {
    const rng = new KeyedRng(1, 2, 3);
    for (let k = 0; k < 200; k++) {
      const { box, lam } = cutmixBox(40, 30, 0.5, [0.2, 0.6], rng);
      const [yl, yh, xl, xh] = box;
      expect(yh - yl).toBeGreaterThanOrEqual(8);
      expect(yh - yl).toBeLessThan(24);
      expect(xh - xl).toBeGreaterThanOrEqual(6);
      expect(xh - xl).toBeLessThan(18);
      expect(yh).toBeLessThanOrEqual(40);
      expect(xh).toBeLessThanOrEqual(30);
      // float64 on both sides, as above; one pixel of the 40 x 30 box moves lam by >= 1/1200.
      expect(lam).toBeCloseTo(1 - ((yh - yl) * (xh - xl)) / 1200, 12);
    }
  });

  it('odd batches are refused up front', () => {
    const ds = makeDs();
    expect(() => createLoader(ds, { batchSize: 3, inputSize: S, train: true, mixup: { mixup: 0.8 } })).toThrow(/even batches/);
    ds.dispose();
  });
});
