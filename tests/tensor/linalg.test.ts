import { execFileSync } from 'node:child_process';
import { describe, expect, it } from 'vitest';
import { Tensor, linalg } from '../../lib';
import { SYSTEM_PYTHON } from '../helpers/fixtures';

function maxAbs(a: ArrayLike<number>, b: ArrayLike<number>): number {
  expect(a.length).toBe(b.length);
  let m = 0;
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i] - b[i]));
  return m;
}

// A fixed, well-conditioned test matrix built from a seeded tensor (independent of the python side).
async function randMatrix(rows: number, cols: number, seed: number): Promise<Float64Array> {
  return (await Tensor.randn([rows, cols], { seed, dtype: 'float64' }).data()) as Float64Array;
}

// float64 on small seeded matrices of entries O(1) (spd = X Xᵀ + I: entries <= ~60, condition ~5): every
// identity holds to a few ulps times the condition and the sizes, ~1e-14 (measured <= 6e-14); 1e-10 (1e-9
// for reconstructions from eigenvectors and for log-determinants ~18) leaves room for an unlucky seed and
// is far below any wrong factor or transpose (O(1)).
describe('linear algebra: identities', () => {
  it('pinv satisfies the Moore-Penrose conditions, also for a rank-deficient matrix', async () => {
    const a0 = await randMatrix(6, 3, 1);
    // Rank 2: third column = first + second.
    for (let r = 0; r < 6; r++) a0[r * 3 + 2] = a0[r * 3] + a0[r * 3 + 1];
    const a = Tensor.fromArray(a0, [6, 3]);
    const p = linalg.pinv(a);
    expect(p.shape).toEqual([3, 6]);
    const apa = await a.matmul(p).matmul(a).data();
    const pap = await p.matmul(a).matmul(p).data();
    expect(maxAbs(apa as Float64Array, a0)).toBeLessThanOrEqual(1e-10);
    expect(maxAbs(pap as Float64Array, (await p.data()) as Float64Array)).toBeLessThanOrEqual(1e-10);
    // A·P is symmetric.
    const ap = a.matmul(p);
    expect(maxAbs((await ap.data()) as Float64Array, (await ap.T.contiguous().data()) as Float64Array)).toBeLessThanOrEqual(1e-12);
  });

  it('cholesky, solve, cholesky_solve and eigh reconstruct their inputs', async () => {
    const x = Tensor.fromArray(await randMatrix(5, 40, 2), [5, 40]);
    const spd = x.matmul(x.T).add(Tensor.eye(5, { dtype: 'float64' }));
    const spdData = (await spd.data()) as Float64Array;
    const l = linalg.cholesky(spd);
    expect(maxAbs((await l.matmul(l.T).data()) as Float64Array, spdData)).toBeLessThanOrEqual(1e-10);
    const b = Tensor.fromArray(await randMatrix(5, 2, 3), [5, 2]);
    const sol = linalg.solve(spd, b);
    expect(maxAbs((await spd.matmul(sol).data()) as Float64Array, (await b.data()) as Float64Array)).toBeLessThanOrEqual(1e-10);
    const sol2 = linalg.choleskySolve(b, l);
    expect(maxAbs((await sol2.data()) as Float64Array, (await sol.data()) as Float64Array)).toBeLessThanOrEqual(1e-10);
    const { eigenvalues, eigenvectors } = linalg.eigh(spd);
    const ev = (await eigenvalues.data()) as Float64Array;
    for (let i = 1; i < ev.length; i++) expect(ev[i]).toBeGreaterThanOrEqual(ev[i - 1]);
    const recon = eigenvectors.mul(eigenvalues).matmul(eigenvectors.T);
    expect(maxAbs((await recon.data()) as Float64Array, spdData)).toBeLessThanOrEqual(1e-9);
    const inv = linalg.inv(spd);
    expect(maxAbs((await spd.matmul(inv).data()) as Float64Array, (await Tensor.eye(5, { dtype: 'float64' }).data()) as Float64Array)).toBeLessThanOrEqual(1e-10);
    const { sign, logabsdet } = linalg.slogdet(spd);
    expect(await sign.item()).toBe(1);
    expect(Math.abs((await logabsdet.item()) - ev.reduce((s, v) => s + Math.log(v), 0))).toBeLessThanOrEqual(1e-9);
  });

  it('cov with correction 0 equals the numpy bias=True definition', async () => {
    const d = await randMatrix(3, 30, 4);
    const c = (await linalg.cov(Tensor.fromArray(d, [3, 30]), { correction: 0 }).data()) as Float64Array;
    const mean = [0, 1, 2].map((r) => d.slice(r * 30, r * 30 + 30).reduce((s, v) => s + v, 0) / 30);
    for (let i = 0; i < 3; i++)
      for (let j = 0; j < 3; j++) {
        let s = 0;
        for (let k = 0; k < 30; k++) s += (d[i * 30 + k] - mean[i]) * (d[j * 30 + k] - mean[j]);
        expect(Math.abs(c[i * 3 + j] - s / 30)).toBeLessThanOrEqual(1e-12);
      }
  });
});

// The same LAPACK/BLAS-backed ops in PyTorch on the same float64 inputs (usually equal bits). Bounds from
// float64 rounding: pinv/cholesky/cov/cdist of 7 x 4 Gaussians (condition ~3, values <= 4) ~1e-15 -> 1e-12;
// eigenvalues of a 4 x 4 spd (<= ~15) -> 1e-10; softmax: exp (<= 1 ulp, Sleef or libm, whichever
// capability each side runs), 3 sums and a division: <= 6 ulps per side on p <= 1, so 12 2^-53 = 1.3e-15;
// logsumexp of 7 values ~2: a few ulps of 2 -> 1e-14.
describe('linear algebra: equal to PyTorch (Debian python3-torch)', () => {
  it('pinv, eigh, cholesky, cov, cdist, softmax, topk match torch outputs', async () => {
    const a = await randMatrix(7, 4, 11);
    const b = await randMatrix(5, 4, 12);
    const script = `
import json, sys, torch
inp = json.load(sys.stdin)
a = torch.tensor(inp['a'], dtype=torch.float64).reshape(7, 4)
b = torch.tensor(inp['b'], dtype=torch.float64).reshape(5, 4)
spd = a.T @ a + torch.eye(4, dtype=torch.float64)
out = {
  'pinv': torch.linalg.pinv(a).flatten().tolist(),
  'eigvals': torch.linalg.eigh(spd)[0].tolist(),
  'chol': torch.linalg.cholesky(spd).flatten().tolist(),
  'cov': torch.cov(a.T, correction=0).flatten().tolist(),
  'cdist': torch.cdist(a, b).flatten().tolist(),
  'softmax': torch.softmax(a, dim=1).flatten().tolist(),
  'topk': torch.topk(a, 2, dim=1).indices.flatten().tolist(),
  'logsumexp': torch.logsumexp(a, dim=0).tolist(),
}
json.dump(out, sys.stdout)
`;
    const py = JSON.parse(execFileSync(SYSTEM_PYTHON, ['-c', script], { input: JSON.stringify({ a: Array.from(a), b: Array.from(b) }), encoding: 'utf8' })) as Record<string, number[]>;
    const A = Tensor.fromArray(a, [7, 4]);
    const B = Tensor.fromArray(b, [5, 4]);
    const spd = A.T.matmul(A).add(Tensor.eye(4, { dtype: 'float64' }));
    expect(maxAbs(await linalg.pinv(A).toNumbers(), py.pinv)).toBeLessThanOrEqual(1e-12);
    expect(maxAbs(await linalg.eigh(spd).eigenvalues.toNumbers(), py.eigvals)).toBeLessThanOrEqual(1e-10);
    expect(maxAbs(await linalg.cholesky(spd).toNumbers(), py.chol)).toBeLessThanOrEqual(1e-12);
    expect(maxAbs(await linalg.cov(A.T, { correction: 0 }).toNumbers(), py.cov)).toBeLessThanOrEqual(1e-12);
    expect(maxAbs(await linalg.cdist(A, B).toNumbers(), py.cdist)).toBeLessThanOrEqual(1e-12);
    expect(maxAbs(await A.softmax(1).toNumbers(), py.softmax)).toBeLessThanOrEqual(12 * 2 ** -53);
    expect(await A.topk(2, { dim: 1 }).indices.toNumbers()).toEqual(py.topk);
    expect(maxAbs(await A.logsumexp(0).toNumbers(), py.logsumexp)).toBeLessThanOrEqual(1e-14);
  });
});
