/**
 * The native nearest-neighbour scan behind `cos`, `projection` and `knn` (ops.cpp `nn_scan`): the
 * bfloat16-screened float32 path must give the exact answer (the float64 brute force of numpy on the
 * same float32 values), also where many train rows tie or nearly tie with the best ones (exact and
 * 1e-4-perturbed duplicates, so many candidates fall inside the screening window), and agree with the
 * unscreened float32 path. Screening is forced here ('bf16'); 'auto' uses it for large products only.
 */
import { expect, it } from 'vitest';
import { kthNearestDistance, maxInnerProduct } from '../../lib/ood/detectors';
import { Tensor } from '../../lib/tensor';
import { rng, runPython } from './helpers';
import { describeWith } from '../helpers/requirements';

const D = 96;
const N_TRAIN = 3000;
const N_TEST = 400;

/** Clustered float32 rows; a third of the train rows are duplicates (exact or 1e-4 apart) of others, and some test rows are train rows. */
function makeData(): { train: Float32Array; test: Float32Array } {
  const r = rng(7);
  const gauss = () => Math.sqrt(-2 * Math.log(1 - r())) * Math.cos(2 * Math.PI * r());
  const centres = Array.from({ length: 6 }, () => Float64Array.from({ length: D }, gauss));
  const row = (out: Float32Array, i: number) => {
    const c = centres[Math.floor(r() * centres.length)];
    for (let f = 0; f < D; f++) out[i * D + f] = c[f] + 0.3 * gauss();
  };
  const train = new Float32Array(N_TRAIN * D);
  for (let i = 0; i < N_TRAIN; i++) {
    if (i >= 1000 && i % 3 === 0) {
      const src = Math.floor(r() * 1000);
      const jitter = i % 2 === 0 ? 0 : 1e-4;
      for (let f = 0; f < D; f++) train[i * D + f] = train[src * D + f] + jitter * gauss();
    } else row(train, i);
  }
  const test = new Float32Array(N_TEST * D);
  for (let i = 0; i < N_TEST; i++) {
    if (i % 5 === 0) test.set(train.subarray((i * 7) * D, (i * 7 + 1) * D), i * D);
    else row(test, i);
  }
  return { train, test };
}

const SCRIPT = String.raw`
import json, sys, os
import numpy as np
d = sys.argv[1]
D = ${D}
tr = np.fromfile(os.path.join(d, 'train.bin'), dtype='<f8').reshape(-1, D)
te = np.fromfile(os.path.join(d, 'test.bin'), dtype='<f8').reshape(-1, D)
ip = te @ tr.T
out = {'maxip': ip.max(1).tolist()}
d2 = (te ** 2).sum(1)[:, None] + (tr ** 2).sum(1)[None, :] - 2 * ip
srt = np.sort(d2, axis=1)
for k in (1, 5, 50):
    out['knn%d' % k] = srt[:, k - 1].tolist()
print(json.dumps(out))
`;

describeWith(['sklearn', 'numpy'])('nn_scan: bfloat16 screening gives the exact float32 answer', () => {
  const { train, test } = makeData();
  const py = runPython<Record<string, number[]>>(SCRIPT, { train: Float64Array.from(train), test: Float64Array.from(test) });
  const tr = Tensor.fromArray(train, [N_TRAIN, D]);
  const te = Tensor.fromArray(test, [N_TEST, D]);
  const norm2 = (a: Float32Array, i: number) => {
    let s = 0;
    for (let f = 0; f < D; f++) s += a[i * D + f] ** 2;
    return s;
  };
  let tmax2 = 0;
  for (let j = 0; j < N_TRAIN; j++) tmax2 = Math.max(tmax2, norm2(train, j));
  // Bounds (u = 2^-24; numpy's float64 reference is exact to ~D 2^-53, covered by 2^-40 ‖x‖‖t‖):
  // - screened ('bf16'): the candidates are recomputed with double accumulation and rounded to float32
  //   once, so max_ip is within u |ref|; knn adds ‖t‖² and ‖x‖² summed in float32 by ATen (>= 8 lanes of
  //   <= 12 terms, then a tree: <= 16 u per sum), the float32 add and the sqrt: within
  //   24 u (‖x‖² + max‖t‖²) on the squared distance.
  // - unscreened ('off'): x·t from an OpenBLAS sgemm that may sum the D = 96 products in sequence:
  //   within γ_D ‖x‖‖t‖ (γ_D = D u / (1 - D u), Cauchy-Schwarz), so 97 u ‖x‖ max‖t‖ for max_ip and
  //   120 u (‖x‖² + max‖t‖²) for the squared distance.
  const u = 2 ** -24;

  it('max inner product (screened, unscreened, small blocks) equals the float64 brute force', async () => {
    for (const [screen, budget] of [['bf16', 256 * 1024 * 1024], ['off', 256 * 1024 * 1024], ['bf16', 4 * 400 * 257]] as const) {
      const got = (await (await maxInnerProduct(te, tr, budget, screen)).data()) as Float32Array;
      expect(got).toBeInstanceOf(Float32Array);
      for (let i = 0; i < N_TEST; i++) {
        const xt = Math.sqrt(norm2(test, i) * tmax2);
        const tol = screen === 'bf16' ? u * Math.abs(py.maxip[i]) + 2 ** -40 * xt : 97 * u * xt;
        if (!(Math.abs(got[i] - py.maxip[i]) <= tol)) expect.fail(`${screen}/${budget} maxip[${i}]: got ${got[i]}, expected ${py.maxip[i]}`);
      }
    }
  });

  it('k-th nearest distance (k = 1, 5, 50; screened and not) equals the float64 brute force, ties included', async () => {
    for (const k of [1, 5, 50]) {
      const ref = py[`knn${k}`];
      const a = (await (await kthNearestDistance(te, tr, k, 256 * 1024 * 1024, 'bf16')).data()) as Float32Array;
      const b = (await (await kthNearestDistance(te, tr, k, 256 * 1024 * 1024, 'off')).data()) as Float32Array;
      for (let i = 0; i < N_TEST; i++) {
        // Squared distances through ‖x‖² + ‖t‖² − 2x·t in float32: compare them on the scale of the norms.
        for (const [name, got] of [['bf16', a], ['off', b]] as const) {
          const tol = (name === 'bf16' ? 24 : 120) * u * (norm2(test, i) + tmax2);
          if (!(Math.abs(got[i] ** 2 - Math.max(0, ref[i])) <= tol)) expect.fail(`knn${k} ${name}[${i}]: got ${got[i] ** 2}, expected ${ref[i]}`);
        }
      }
    }
  });

  it('float64 input is never screened and stays float64', async () => {
    const t64 = tr.cast('float64');
    const x64 = te.cast('float64');
    const got = (await (await maxInnerProduct(x64, t64, 256 * 1024 * 1024, 'bf16')).data()) as Float64Array;
    expect(got).toBeInstanceOf(Float64Array);
    // float64 on both sides: within ~2 D 2^-53 = 2e-14 of each other on the ‖x‖ max‖t‖ scale.
    for (let i = 0; i < N_TEST; i++) expect(Math.abs(got[i] - py.maxip[i])).toBeLessThanOrEqual(1e-12 * Math.sqrt(norm2(test, i) * tmax2));
    t64.dispose();
    x64.dispose();
  });

  it('bad arguments are refused with the reason', async () => {
    const run = (inputs: Tensor[], attrs: Record<string, string | number>) => Tensor.runOp('nn_scan', inputs, attrs)[0].data();
    await expect(run([te, tr], { mode: 'knn', k: N_TRAIN + 1 })).rejects.toThrow(/k = 3001 with 3000 train rows/);
    await expect(run([te, tr], { mode: 'cosine' })).rejects.toThrow(/mode must be 'max_ip' or 'knn'/);
    const t64 = tr.cast('float64');
    await expect(run([te, t64], {})).rejects.toThrow(/both be float32 or both float64/);
    t64.dispose();
  });
});
