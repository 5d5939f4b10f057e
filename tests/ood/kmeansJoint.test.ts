/**
 * Several k-means initialisations side by side (ops.cpp `kmeans_plusplus` with `runs`, and
 * `kmeans_lloyd` with R x K x D initial centres: one pass over x per iteration for all live runs)
 * against sklearn run on each initialisation alone:
 * - k-means++: sklearn's _kmeans_plusplus fed the same uniform draws (a stand-in RandomState) picks
 *   the same rows, run by run;
 * - Lloyd: KMeans(init=centres of run r, n_init=1, algorithm='lloyd') takes the same iterations to
 *   the same inertia and centres for every run, also when the runs converge at different iterations
 *   and when one run has an empty cluster to relocate while the others go on with their bounds.
 */
import { expect, it } from 'vitest';
import { Tensor } from '../../lib/tensor';
import { kmeansFit } from '../../lib/ood/detectors';
import { blobRows, centreColumns, expectArrayClose, expectClose, gaussian, rng, runPython } from './helpers';
import { describeWith } from '../helpers/requirements';

const D = 20;
const N = 2500;
const K = 6;
const RUNS = 3;
const TRIALS = 2 + Math.floor(Math.log(K));
const PER = 1 + (K - 1) * TRIALS;
// Bytes: k-means++ then holds one run's distances at a time, Lloyd 2 row blocks' centre sums.
const SMALL_BUDGET = 2 * 8 * RUNS * K * D;

const SCRIPT = String.raw`
import json, sys, os
import numpy as np
from sklearn.cluster import KMeans
from sklearn.cluster._kmeans import _kmeans_plusplus
from sklearn.utils.extmath import row_norms
d = sys.argv[1]
x = np.fromfile(os.path.join(d, 'x.bin'), dtype='<f8').reshape(-1, ${D})
init = np.fromfile(os.path.join(d, 'init.bin'), dtype='<f8').reshape(${RUNS}, ${K}, ${D})
u = np.fromfile(os.path.join(d, 'u.bin'), dtype='<f8').reshape(${RUNS}, ${PER})

class Draws:
    """The RandomState calls _kmeans_plusplus makes, answered from given uniform draws."""
    def __init__(self, u):
        self.u, self.p = list(u), 0
    def randint(self, n):
        v = self.u[self.p]; self.p += 1
        return min(n - 1, int(np.floor(v * n)))
    def uniform(self, size):
        v = np.array(self.u[self.p:self.p + size]); self.p += size
        return v

out = {'pp': [], 'lloyd': {}}
for r in range(${RUNS}):
    _, ids = _kmeans_plusplus(x, ${K}, row_norms(x, squared=True), Draws(u[r]))
    out['pp'].append([int(i) for i in ids])
tol = float(np.mean(np.var(x, axis=0)) * 1e-4)
out['tol'] = tol
for max_iter in (300, 4):
    runs = []
    for r in range(${RUNS}):
        km = KMeans(n_clusters=${K}, init=init[r], n_init=1, max_iter=max_iter, tol=1e-4, algorithm='lloyd').fit(x)
        runs.append(dict(inertia=float(km.inertia_), n_iter=int(km.n_iter_), centres=km.cluster_centers_.ravel().tolist()))
    out['lloyd'][str(max_iter)] = runs
print(json.dumps(out))
`;

interface Py {
  pp: number[][];
  tol: number;
  lloyd: Record<string, Array<{ inertia: number; n_iter: number; centres: number[] }>>;
}

describeWith(['sklearn', 'numpy'])('k-means initialisations side by side equal sklearn run on each alone', () => {
  const r = rng(23);
  const gauss = gaussian(r);
  const blobs = Array.from({ length: K + 1 }, () => Float64Array.from({ length: D }, () => 2.5 * gauss()));
  const x = centreColumns(blobRows(blobs, N, (i) => 0.6 + (i % 4) * 0.25, gauss), D);
  // Run 0: rows moved off; run 1: other rows, moved further (more iterations); run 2: its last
  // centre far from every row, so its first E-step leaves that cluster empty (relocation).
  const init = new Float64Array(RUNS * K * D);
  for (let run = 0; run < RUNS; run++)
    for (let c = 0; c < K; c++)
      for (let f = 0; f < D; f++) {
        const row = (run * 97 + c * 13) % N;
        const off = run === 2 && c === K - 1 ? 100 : (run + 1) * 0.5 * gauss();
        init[(run * K + c) * D + f] = x[row * D + f] + off;
      }
  const u = Float64Array.from({ length: RUNS * PER }, () => r());
  const py = runPython<Py>(SCRIPT, { x, init, u });

  it('kmeans_plusplus with runs = 3 picks the rows sklearn picks from the same draws, run by run', async () => {
    const xt = Tensor.fromArray(x, [N, D]);
    const xn2 = xt.square().sum(1);
    const ut = Tensor.fromArray(u, [u.length], { dtype: 'float64' });
    // A tiny memory budget makes the op take the runs one at a time: the same picks.
    for (const extra of [{}, { budget: SMALL_BUDGET }]) {
      const [ids] = Tensor.runOp('kmeans_plusplus', [xt, xn2, ut], { k: K, runs: RUNS, ...extra });
      expect(ids.shape).toEqual([RUNS, K]);
      const got = Array.from((await ids.data()) as BigInt64Array, Number);
      for (let run = 0; run < RUNS; run++) expect(got.slice(run * K, (run + 1) * K), `run ${run} ${JSON.stringify(extra)}`).toEqual(py.pp[run]);
      ids.dispose();
    }
    // The draws are consumed run after run: too few is an error naming the expected count.
    const few = ut.slice(0, 0, PER);
    const [bad] = Tensor.runOp('kmeans_plusplus', [xt, xn2, few], { k: K, runs: RUNS });
    await expect(bad.data()).rejects.toThrow(new RegExp(`expected ${RUNS * PER} uniform draws`));
    for (const t of [xt, xn2, ut, few, bad]) t.dispose();
  });

  it('kmeans_lloyd with 3 x K x D initial centres: each run has its own iterations, inertia and centres', async () => {
    const xt = Tensor.fromArray(x, [N, D]);
    const xn2 = xt.square().sum(1);
    const it0 = Tensor.fromArray(init, [RUNS, K, D]);
    // The tiny budget: two row blocks of 1280 instead of three of 1024 (per-block centre sums).
    for (const [maxIter, extra] of [[300, {}], [4, {}], [300, { budget: SMALL_BUDGET }]] as const) {
      const ref = py.lloyd[String(maxIter)];
      const [c, inertia, iters] = Tensor.runOp('kmeans_lloyd', [xt, xn2, it0], { max_iter: maxIter, tol: py.tol, ...extra });
      expect(c.shape).toEqual([RUNS, K, D]);
      const cs = (await c.data()) as Float64Array;
      const its = Array.from((await iters.data()) as BigInt64Array, Number);
      const ins = (await inertia.data()) as Float64Array;
      for (let run = 0; run < RUNS; run++) {
        expect(its[run], `iterations run ${run} max_iter ${maxIter}`).toBe(ref[run].n_iter);
        // float64 with the same labels every iteration: sums in other orders, ~n 2^-53 relative (<= 1e-13 seen).
        expectClose(ins[run], ref[run].inertia, 1e-9, `inertia run ${run} max_iter ${maxIter}`);
        expectArrayClose(cs.subarray(run * K * D, (run + 1) * K * D), ref[run].centres, 1e-9, `centres run ${run} max_iter ${maxIter}`);
      }
      for (const t of [c, inertia, iters]) t.dispose();
    }
    // The runs end at different iterations (the joint pass drops the converged ones).
    expect(new Set(py.lloyd['300'].map((q) => q.n_iter)).size).toBeGreaterThan(1);
    for (const t of [xt, xn2, it0]) t.dispose();
  });

  it('kmeansFit rejects nInit < 1 with a clear error', async () => {
    const xt = Tensor.fromArray(x, [N, D]);
    await expect(kmeansFit(xt, K, { nInit: 0 })).rejects.toThrow(/nInit must be a positive integer, got 0/);
    xt.dispose();
  });
});
