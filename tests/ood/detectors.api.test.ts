/** Registry, input validation, input forms (typed arrays, Tensor, NdArray, float32), save/load. */
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { createDetector, DETECTOR_NAMES, listDetectors, loadDetector, KMeansDetector } from '../../lib/ood/detectors';
import { ndarray } from '../../lib/npy';
import { Tensor } from '../../lib/tensor';
import { expectArrayClose, rng } from './helpers';

function gaussian(n: number, d: number, seed: number, shift = 0): Float64Array {
  const r = rng(seed);
  const a = new Float64Array(n * d);
  for (let i = 0; i < a.length; i++) a[i] = Math.sqrt(-2 * Math.log(1 - r())) * Math.cos(2 * Math.PI * r()) + shift + (i % d) * 0.1;
  return a;
}

const D = 8;
const N = 300;
const train = { data: gaussian(N, D, 1), shape: [N, D] };
const labels = Int32Array.from({ length: N }, (_, i) => i % 3);
const test = { data: gaussian(50, D, 2, 0.3), shape: [50, D] };
const W = { data: gaussian(3, D, 3), shape: [3, D] };
const b = [0.1, -0.2, 0.3];
const logits = { data: gaussian(50, 3, 4), shape: [50, 3] };
const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'mood-det-'));
afterAll(() => fs.rmSync(tmp, { recursive: true, force: true }));

function make(name: string) {
  return createDetector(name, { weight: W, bias: b, k: name === 'knn' ? 5 : undefined });
}

describe('detector registry and inputs', () => {
  it('lists every metric with an orientation; unknown names list the valid ones', () => {
    expect(DETECTOR_NAMES).toEqual(expect.arrayContaining(['mahalanobis', 'cc', 'avgcc', 'cos', 'projection', 'gauss', 'gauss_logp', 'kmeans', 'euclidean', 'minkowski', 'chebyshev', 'msp', 'maxlogit', 'entropy', 'energy', 'gradnorm', 'knn', 'mds', 'rmds', 'vim', 'residual', 'react']));
    for (const d of listDetectors()) {
      expect(['higher_is_id', 'higher_is_ood']).toContain(d.orientation);
      expect(make(d.name).orientation).toBe(d.orientation);
    }
    expect(() => createDetector('mahalanobiss')).toThrow(/unknown OOD metric 'mahalanobiss'.*valid metrics: mahalanobis, cc, avgcc/);
    expect(() => createDetector('softmax')).toThrow(/maxlogit/);
    expect(() => createDetector('__proto__')).toThrow(/unknown OOD metric/);
  });

  it('feature dimension mismatch, NaN/Inf, empty sets, one class, missing labels: clear errors', async () => {
    const det = createDetector('mahalanobis');
    await expect(det.score({ features: test })).rejects.toThrow(/fit\(\)/);
    await det.fit({ features: train });
    await expect(det.score({ features: { data: new Float64Array(20), shape: [2, 10] } })).rejects.toThrow(/dimension mismatch: fitted on 8-D features, got 10-D/);
    const bad = test.data.slice();
    bad[13] = NaN;
    await expect(det.score({ features: { data: bad, shape: test.shape } })).rejects.toThrow(/features\[1, 5\] is NaN/);
    bad[13] = Infinity;
    await expect(det.fit({ features: { data: bad, shape: test.shape } })).rejects.toThrow(/Infinity/);
    await expect(det.score({ features: { data: new Float64Array(0), shape: [0, D] } })).rejects.toThrow(/empty/);
    await expect(det.fit({})).rejects.toThrow(/train.features are required/);
    const t = Tensor.fromArray(bad, test.shape);
    await expect(det.score({ features: t })).rejects.toThrow(/NaN or Inf/);
    t.dispose();
    for (const name of ['cc', 'avgcc', 'mds', 'rmds']) {
      const d = createDetector(name);
      await expect(d.fit({ features: train })).rejects.toThrow(/needs train labels/);
      await expect(d.fit({ features: train, labels: new Int32Array(N) })).rejects.toThrow(/at least 2 classes.*mahalanobis/);
      await expect(d.fit({ features: train, labels: new Int32Array(N - 1) })).rejects.toThrow(/299 labels for 300/);
    }
    await expect(createDetector('vim').fit({ features: train })).rejects.toThrow(/head weight/);
    await expect(createDetector('kmeans').fit({ features: train })).rejects.toThrow(/give k, or training labels/);
    await expect(createDetector('msp').score({ features: test })).rejects.toThrow(/needs logits/);
    await expect(createDetector('gradnorm').score({ logits })).rejects.toThrow(/raw features/);
    const msp = createDetector('msp');
    await msp.fit({ logits });
    await expect(msp.score({ logits: { data: new Float64Array(10), shape: [2, 5] } })).rejects.toThrow(/fitted on 3 classes, got 5/);
  });

  it('Tensor, NdArray and float32 inputs give the float64 answer', async () => {
    const ref = createDetector('mahalanobis');
    await ref.fit({ features: train });
    const want = await ref.score({ features: test });
    const t = Tensor.fromArray(train.data, train.shape);
    const d2 = createDetector('mahalanobis');
    await d2.fit({ features: t });
    // The same float64 numbers handed over as a Tensor / ndarray: the same computation (measured equal);
    // 1e-12 relative admits another gemm blocking on ~cond 2 data (~D 2^-53 = 2e-15).
    expectArrayClose(await d2.score({ features: ndarray('float64', [50, D], test.data) }), want, 1e-12, 'tensor/ndarray');
    const f32 = createDetector('mahalanobis');
    await f32.fit({ features: { data: Float32Array.from(train.data), shape: train.shape } });
    // Only the inputs' float32 rounding (2^-24 relative per element) differs; 300 iid Gaussian rows in 8-D
    // have cond(S) ~ 2, so a score moves by <~ 4 cond 2^-24 = 5e-7 relative (measured 1.3e-8).
    expectArrayClose(await f32.score({ features: { data: Float32Array.from(test.data), shape: test.shape } }), want, 1e-5, 'float32');
    t.dispose();
    // cos/knn/kmeans compute in float32 for float32 input.
    const c64 = createDetector('cos');
    await c64.fit({ features: train });
    const c32 = createDetector('cos');
    await c32.fit({ features: { data: Float32Array.from(train.data), shape: train.shape } });
    // float32 cosines of 8-D rows: dot (γ_8) and the two normalisations, ~12 u = 7e-7 on |cos| <= 1 near
    // its max (~0.9): 1e-5 relative covers it (measured 1.1e-7).
    expectArrayClose(await c32.score({ features: test }), await c64.score({ features: test }), 1e-5, 'cos f32');
  });

  it('save/load round-trips every detector (scores identical)', async () => {
    for (const name of DETECTOR_NAMES) {
      const det = make(name);
      await det.fit({ features: train, labels, logits });
      const input = { features: test, logits };
      const before = await det.score(input);
      const file = path.join(tmp, `${name}.npz`);
      await det.save(file);
      det.dispose();
      const back = loadDetector(file);
      expect(back.name).toBe(name);
      expect(back.fitted).toBe(true);
      expectArrayClose(await back.score(input), before, 0, `${name} reloaded`);
      back.dispose();
    }
    await expect(createDetector('cos').save(path.join(tmp, 'x.npz'))).rejects.toThrow(/not fitted/);
  });

  it('kmeans: fromCentres scores, own fit with labels picks k = classes, seeded = reproducible', async () => {
    const a = new KMeansDetector({ nInit: 2 });
    await a.fit({ features: train, labels });
    const b2 = new KMeansDetector({ nInit: 2 });
    await b2.fit({ features: train, labels });
    expectArrayClose(await a.score({ features: test }), await b2.score({ features: test }), 0, 'seeded');
    const file = path.join(tmp, 'km.npz');
    await a.save(file);
    const back = loadDetector(file) as KMeansDetector;
    expect(back.inertia).toBe(a.inertia);
  });
});

describe('blocked Gram matrix', () => {
  it('equals cᵀc for D >= 256 (odd sizes, uneven blocks), symmetric', async () => {
    const { gram } = await import('../../lib/ood/detectors');
    for (const [n, d] of [[40, 301], [7, 256]]) {
      const c = Tensor.fromArray(gaussian(n, d, 9), [n, d]);
      const g = gram(c);
      const want = c.T.matmul(c);
      expect(g.shape).toEqual([d, d]);
      // Each entry is a float64 sum of the same n products on both sides, in whatever order: within
      // 2 γ_n (|c|ᵀ|c|)_ij of each other (γ_n = n 2^-53 / (1 - n 2^-53)), also where the sum cancels.
      const absC = c.abs();
      const mag = (await absC.T.matmul(absC).data()) as Float64Array;
      const [gv, wv] = [(await g.data()) as Float64Array, (await want.data()) as Float64Array];
      const gamma = (n * 2 ** -53) / (1 - n * 2 ** -53);
      for (let k = 0; k < gv.length; k++) if (!(Math.abs(gv[k] - wv[k]) <= 2 * gamma * mag[k])) expect.fail(`gram ${n}x${d}[${k}]: ${gv[k]} vs ${wv[k]}`);
      absC.dispose();
      const gd = (await g.data()) as Float64Array;
      for (let i = 0; i < d; i += 37) for (let j = 0; j < d; j += 41) if (Math.floor(i / Math.ceil(d / 4)) !== Math.floor(j / Math.ceil(d / 4))) expect(gd[i * d + j]).toBe(gd[j * d + i]);
      for (const t of [c, g, want]) t.dispose();
    }
  });
});
