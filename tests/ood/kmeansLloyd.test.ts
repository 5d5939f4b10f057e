/**
 * The native Lloyd loop (ops.cpp `kmeans_lloyd`, Hamerly's bounds after the first E-step) against
 * sklearn's KMeans(algorithm='lloyd') started from the same centres on the same (centred, float64)
 * data: same iteration count, inertia and centres. Clustered data so that most rows are settled by
 * the bounds and only some are recomputed.
 */
import { expect, it } from 'vitest';
import { Tensor } from '../../lib/tensor';
import { blobRows, centreColumns, expectArrayClose, expectClose, gaussian, rng, runPython } from './helpers';
import { describeWith } from '../helpers/requirements';

const D = 24;
const N = 3000;
const K = 7;

const SCRIPT = String.raw`
import json, sys, os
import numpy as np
from sklearn.cluster import KMeans
d = sys.argv[1]
x = np.fromfile(os.path.join(d, 'x.bin'), dtype='<f8').reshape(-1, ${D})
init = np.fromfile(os.path.join(d, 'init.bin'), dtype='<f8').reshape(-1, ${D})
out = {}
for max_iter in (300, 3):
    km = KMeans(n_clusters=${K}, init=init, n_init=1, max_iter=max_iter, tol=1e-4, algorithm='lloyd').fit(x)
    out[str(max_iter)] = dict(inertia=float(km.inertia_), n_iter=int(km.n_iter_), centres=km.cluster_centers_.ravel().tolist())
out['tol'] = float(np.mean(np.var(x, axis=0)) * 1e-4)
print(json.dumps(out))
`;

describeWith(['sklearn', 'numpy'])('kmeans_lloyd equals sklearn lloyd from the same initial centres', () => {
  const r = rng(11);
  const gauss = gaussian(r);
  const centres = Array.from({ length: K + 2 }, () => Float64Array.from({ length: D }, () => 3 * gauss()));
  // Centred as kmeansFit centres the data; initial centres = rows 0..K-1 moved off (so it iterates).
  const x = centreColumns(blobRows(centres, N, (i) => 0.5 + (i % 3) * 0.3, gauss), D);
  const init = new Float64Array(K * D);
  for (let c = 0; c < K; c++) for (let f = 0; f < D; f++) init[c * D + f] = x[(c * 5) * D + f] + 0.7 * gauss();
  const py = runPython<Record<string, { inertia: number; n_iter: number; centres: number[] }> & { tol: number }>(SCRIPT, { x, init });

  it('same iterations, inertia and centres (converged, and stopped at max_iter = 3)', async () => {
    const xt = Tensor.fromArray(x, [N, D]);
    const xn2 = xt.square().sum(1);
    const it0 = Tensor.fromArray(init, [K, D]);
    for (const maxIter of [300, 3]) {
      const ref = py[String(maxIter)];
      const [c, inertia, iters] = Tensor.runOp('kmeans_lloyd', [xt, xn2, it0], { max_iter: maxIter, tol: py.tol });
      expect(await iters.item()).toBe(ref.n_iter);
      // float64, the same labels every iteration (equal n_iter): centres are means of the same rows,
      // the inertia a sum of N squared distances, in other orders: ~n 2^-53 relative (measured <= 2e-14).
      expectClose(await inertia.item(), ref.inertia, 1e-9, `inertia max_iter ${maxIter}`);
      expectArrayClose((await c.data()) as Float64Array, ref.centres, 1e-9, `centres max_iter ${maxIter}`);
      for (const t of [c, inertia, iters]) t.dispose();
    }
    expect(py['300'].n_iter).toBeGreaterThan(3);
    for (const t of [xt, xn2, it0]) t.dispose();
  });
});
