/**
 * k-means' data preparation and its bounds on float32 data like the benchmark's (weakly clustered,
 * MOOD-normalised, centred: every row nearly as far from each centre, the case where rounding and
 * the bounds' allowance matter):
 * - `kmeans_prepare` (normalise + centre + squared norms + sklearn's tolerance scale) against numpy;
 * - `kmeans_lloyd` with its bounds against the same op with every E-step brute force
 *   (`bounds: false`): the same iterations, inertia and centres for each of three runs.
 */
import { expect, it } from 'vitest';
import { Tensor } from '../../lib/tensor';
import { blobRows, expectArrayClose, expectClose, gaussian, rng, runPython } from './helpers';
import { describeWith } from '../helpers/requirements';

const N = 6000;
const D = 96;
const K = 8;
const RUNS = 3;

const SCRIPT = String.raw`
import json, sys, os
import numpy as np
d = sys.argv[1]
raw = np.fromfile(os.path.join(d, 'raw.bin'), dtype='<f8').reshape(-1, ${D}).astype(np.float32)
x = raw / (np.linalg.norm(raw, axis=-1, keepdims=True) + 1e-10)
x64 = x.astype(np.float64)
mean = x64.mean(0)
xc = x64 - mean
print(json.dumps(dict(mean=mean.tolist(), xc=xc.ravel().tolist(), xn2=(xc ** 2).sum(1).tolist(), var=float(np.mean(np.var(x64, axis=0))))))
`;

describeWith(['sklearn', 'numpy'])('kmeans_prepare and the bounds of kmeans_lloyd on weakly clustered float32 data', () => {
  const r = rng(31);
  const gauss = gaussian(r);
  // Class means 0.3 per dimension against unit noise (the benchmark's ratio is 0.1 at D = 768).
  const means = Array.from({ length: K }, () => Float64Array.from({ length: D }, () => 0.3 * gauss()));
  const raw = blobRows(means, N, () => 1, gauss);
  const py = runPython<{ mean: number[]; xc: number[]; xn2: number[]; var: number }>(SCRIPT, { raw });

  it('kmeans_prepare: normalised centred rows, their squared norms, the mean and the variance scale as numpy', async () => {
    const x = Tensor.fromArray(Float32Array.from(raw), [N, D]);
    const [xc, xn2, mean, v] = Tensor.runOp('kmeans_prepare', [x], { normalize: 'mood', eps: 1e-10 });
    expect(xc.dtype).toBe('float32');
    expect(mean.shape).toEqual([1, D]);
    const got = (await xc.data()) as Float32Array;
    // numpy normalises in float32: its norm sums 96 squares in 8 accumulators of 12 then a tree (<= 15 u
    // relative, u = 2^-24), so the norm is within 8 u (with the sqrt) and x/‖x‖ within 8.5 u |x| + half an
    // ulp; ours takes the norm in double, rounds it and the quotient (0.5 u each), then subtracts the
    // float32 mean (half an ulp of |mean| and of |xc|). Per element: u (10.5 max|x| + max|mean| + max|xc|).
    const maxAbs = (a: ArrayLike<number>) => Array.prototype.reduce.call(a, (t: number, v: number) => Math.max(t, Math.abs(v)), 0) as number;
    const maxX = maxAbs(Float64Array.from(py.xc, (v, j) => v + py.mean[j % D]));
    const tolX = 2 ** -24 * (10.5 * maxX + maxAbs(py.mean) + maxAbs(py.xc));
    let worst = 0;
    for (let j = 0; j < got.length; j++) worst = Math.max(worst, Math.abs(got[j] - py.xc[j]));
    expect(worst).toBeLessThanOrEqual(tolX);
    // ‖xc‖² moves by <= 2 ‖xc‖ ‖δxc‖ <= 2 ‖xc‖ √D tolX, relative to ‖xc‖² (>= min): plus its own float32 rounding.
    const minN2 = py.xn2.reduce((t, v) => Math.min(t, v), Infinity);
    expectArrayClose((await xn2.data()) as Float32Array, py.xn2, (2 * Math.sqrt(D) * tolX) / Math.sqrt(minN2) + 2 ** -24, 'squared norms');
    const m = (await mean.data()) as Float32Array;
    // A mean of elements each within tolX of numpy's.
    for (let f = 0; f < D; f++) expect(Math.abs(m[f] - py.mean[f])).toBeLessThanOrEqual(tolX);
    // The variance (a mean of xc², float64 sums on both sides) of values within tolX: it moves by
    // <= 2 mean|xc| tolX (the mean's own change enters squared, negligibly).
    const meanAbsXc = py.xc.reduce((t, x) => t + Math.abs(x), 0) / py.xc.length;
    expectClose(await v.item(), py.var, (2 * meanAbsXc * tolX) / py.var, 'mean feature variance');
    for (const t of [x, xc, xn2, mean, v]) t.dispose();
  });

  it('kmeans_lloyd: the bounds give the brute-force trajectory, run by run', async () => {
    const x = Tensor.fromArray(Float32Array.from(raw), [N, D]);
    const [xc, xn2, , v] = Tensor.runOp('kmeans_prepare', [x], { normalize: 'mood', eps: 1e-10 });
    const tol = 1e-4 * (await v.item());
    const trials = 2 + Math.floor(Math.log(K));
    const u = Float64Array.from({ length: RUNS * (1 + (K - 1) * trials) }, () => r());
    const [ids] = Tensor.runOp('kmeans_plusplus', [xc, xn2, Tensor.fromArray(u, [u.length], { dtype: 'float64' })], { k: K, runs: RUNS });
    const init = xc.indexSelect(0, ids.reshape([RUNS * K])).reshape([RUNS, K, D]);
    const out = async (bounds: boolean) => {
      const [c, inertia, iters] = Tensor.runOp('kmeans_lloyd', [xc, xn2, init], { max_iter: 300, tol, bounds });
      const res = {
        centres: Float64Array.from((await c.data()) as Float32Array),
        inertia: (await inertia.data()) as Float64Array,
        iters: Array.from((await iters.data()) as BigInt64Array, Number),
      };
      for (const t of [c, inertia, iters]) t.dispose();
      return res;
    };
    const fast = await out(true);
    const brute = await out(false);
    expect(fast.iters).toEqual(brute.iters);
    // Enough iterations for the bounds to take over from the first E-step.
    expect(Math.min(...brute.iters)).toBeGreaterThan(5);
    for (let run = 0; run < RUNS; run++) expectClose(fast.inertia[run], brute.inertia[run], 1e-9, `inertia run ${run}`);
    // Centre sums followed incrementally vs recomputed: float64 sums, centres equal to float32 rounding
    // (1 ulp of |c| < 1: <= 2^-23 = 1.2e-7; measured equal).
    let worst = 0;
    for (let j = 0; j < fast.centres.length; j++) worst = Math.max(worst, Math.abs(fast.centres[j] - brute.centres[j]));
    expect(worst).toBeLessThanOrEqual(2 ** -23);
    for (const t of [x, xc, xn2, v, ids, init]) t.dispose();
  });

  it('KMeansDetector scores float32 features (normalised in the op) as the float64 distances computed here', async () => {
    const { KMeansDetector } = await import('../../lib/ood/detectors');
    const x32 = Float32Array.from(raw);
    // Centres: the means of the normalised rows per class, in float32.
    const cen = new Float32Array(K * D);
    const nrm = (i: number) => {
      let s2 = 0;
      for (let f = 0; f < D; f++) s2 += x32[i * D + f] ** 2;
      return Math.sqrt(s2) + 1e-10;
    };
    for (let i = 0; i < N; i++) {
      const q = nrm(i);
      for (let f = 0; f < D; f++) cen[(i % K) * D + f] += x32[i * D + f] / q / (N / K);
    }
    const det = await KMeansDetector.fromCentres({ data: cen, shape: [K, D] });
    const got = await det.score({ features: { data: x32, shape: [N, D] } });
    const want = new Float64Array(N);
    for (let i = 0; i < N; i++) {
      const q = nrm(i);
      let best = Infinity;
      for (let c = 0; c < K; c++) {
        let s2 = 0;
        for (let f = 0; f < D; f++) s2 += (x32[i * D + f] / q - cen[c * D + f]) ** 2;
        best = Math.min(best, s2);
      }
      want[i] = Math.sqrt(best);
    }
    // The kernel's float32 distances ‖x‖² + ‖c‖² - 2x·c: dot products in >= 4 lanes then a pairwise tree,
    // <= (96/4 + 2) u (‖x‖ + ‖c‖)² <= 26 u 4 absolute on d² ~ 0.8 (weakly clustered unit rows), so d is
    // within ~4e-6 relative (half of d²'s); 1e-5 covers it, a wrong centre moves d by >= 1e-2.
    expectArrayClose(got, want, 1e-5, 'kmeans scores');
    det.dispose();
  });

  // Odd shapes for the tiled kernel: D not a multiple of the 64-byte lanes (the scalar tail), K not a
  // multiple of the 5-centre tile, K = 1 (no second centre), float64 lanes of 8.
  it.each([
    [17, 1, 'float32'],
    [17, 7, 'float32'],
    [33, 13, 'float64'],
    [8, 3, 'float64'],
  ] as const)('D = %i, K = %i, %s: the inertia of given centres as computed in float64 here; bounds = brute force', async (d, k, dtype) => {
    const n = 701;
    const rr = rng(d * 100 + k);
    const g = () => Math.sqrt(-2 * Math.log(1 - rr())) * Math.cos(2 * Math.PI * rr());
    const xs = Float64Array.from({ length: n * d }, (_, j) => g() + (Math.floor(j / d) % 3) * 0.8);
    const cs = Float64Array.from({ length: 2 * k * d }, () => g());
    const arr = (a: Float64Array) => (dtype === 'float32' ? Float32Array.from(a) : a);
    const xt = Tensor.fromArray(arr(xs), [n, d]);
    const xn2 = xt.square().sum(1);
    const init = Tensor.fromArray(arr(cs), [2, k, d]);
    // Σ_i min_j ‖x_i − c_j‖² in float64 from the same (rounded) values.
    const xv = Float64Array.from((await xt.data()) as ArrayLike<number>);
    const cv = Float64Array.from((await init.data()) as ArrayLike<number>);
    const out0 = Tensor.runOp('kmeans_lloyd', [xt, xn2, init], { max_iter: 0 });
    const got0 = (await out0[1].data()) as Float64Array;
    for (let run = 0; run < 2; run++) {
      let ref = 0;
      for (let i = 0; i < n; i++) {
        let best = Infinity;
        for (let j = 0; j < k; j++) {
          let s2 = 0;
          for (let f = 0; f < d; f++) s2 += (xv[i * d + f] - cv[(run * k + j) * d + f]) ** 2;
          best = Math.min(best, s2);
        }
        ref += best;
      }
      // Each squared distance through the kernel (<= (d/4 + 2) u (‖x‖ + ‖c‖)² with d <= 33: ~6e-6 relative
      // in float32 on ‖x - c‖² ~ 2d), summed in float64: 1e-5; float64 the same with u = 2^-53: 1e-12.
      expectClose(got0[run], ref, dtype === 'float32' ? 1e-5 : 1e-12, `inertia of the initial centres, run ${run}`);
    }
    const res = async (bounds: boolean) => {
      const [c, inertia, iters] = Tensor.runOp('kmeans_lloyd', [xt, xn2, init], { max_iter: 100, tol: 0, bounds });
      const r2 = { c: Float64Array.from((await c.data()) as ArrayLike<number>), inertia: (await inertia.data()) as Float64Array, iters: Array.from((await iters.data()) as BigInt64Array, Number) };
      for (const t of [c, inertia, iters]) t.dispose();
      return r2;
    };
    const [fast, brute] = [await res(true), await res(false)];
    expect(fast.iters).toEqual(brute.iters);
    // Same labels every iteration: the inertia is a float64 sum of the same N squared distances (computed
    // by the same kernel), in another order at most: ~N 2^-53 relative, far inside 1e-9.
    for (let run = 0; run < 2; run++) expectClose(fast.inertia[run], brute.inertia[run], 1e-9, `inertia run ${run}`);
    let worst = 0;
    for (let j = 0; j < fast.c.length; j++) worst = Math.max(worst, Math.abs(fast.c[j] - brute.c[j]));
    // Same labels each iteration (equal iters): centres from the same float64 sums, equal up to the
    // final rounding (1 ulp of |c| < 8: 1e-6 in float32, ~1e-15 in float64).
    expect(worst).toBeLessThanOrEqual(dtype === 'float32' ? 1e-6 : 1e-12);
    for (const t of [xt, xn2, init, ...out0]) t.dispose();
  });
});
