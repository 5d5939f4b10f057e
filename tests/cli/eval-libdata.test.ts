/**
 * `mood eval-features` end to end through the real data layer (lib/data's buildDataset/createLoader,
 * native batch assembly) on Fashion-MNIST with a random micro BEiT: one-class class 0 (6,000 training
 * images of class 0, all 10,000 test images). Every per-class AUROC / AUPR / FPR95 equals numpy+sklearn
 * (Debian's python3) recomputed from the .npy files the CLI cached; the second run reads the cache.
 */
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { runEval } from '../../lib/cli/eval-common';
import { SYSTEM_PYTHON } from '../helpers/fixtures';
import { FASHION_DIR, writeMicroCheckpoint } from '../ood-features/memory-data';
import { describeWith } from '../helpers/requirements';

const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'mood-evlib-'));
afterAll(() => fs.rmSync(dir, { recursive: true, force: true }));

const PY = String.raw`
import json, sys, numpy as np
from sklearn.metrics import roc_auc_score, average_precision_score
tr_dir, te_dir = sys.argv[1], sys.argv[2]
n = lambda f: f / (np.linalg.norm(f, axis=-1, keepdims=True) + 1e-10)
tr = n(np.load(tr_dir + '/features.npy').astype(np.float64))
te = n(np.load(te_dir + '/features.npy').astype(np.float64)); y = np.load(te_dir + '/labels.npy')
P = np.linalg.pinv(np.cov(tr.T, bias=True)); mu = tr.mean(0, keepdims=True)
s = np.sum((te - mu) * (P.dot((te - mu).T)).T, axis=-1)
din = s[y == 0]; out = {}
for d in range(1, 10):
    dood = s[y == d]; lab = [0] * len(din) + [1] * len(dood); x = np.concatenate([din, dood])
    out[str(d)] = dict(auroc=roc_auc_score(lab, x), aupr=average_precision_score(lab, x), fpr95=float(np.sum(dood < np.percentile(din, 95)) / len(dood)), n_in=len(din), n_ood=len(dood))
print(json.dumps(dict(rows=out, n_train=len(tr), train_labels=sorted(set(np.load(tr_dir + '/labels.npy').tolist())))))
`;

describeWith(['fashion-mnist', 'sklearn', 'numpy'])('mood eval-features through lib/data (Fashion-MNIST)', () => {
  const ckpt = path.join(dir, 'micro.pth');
  beforeAll(async () => {
    await writeMicroCheckpoint(ckpt, 10, 21);
  });

  it('one-class class 0: numbers equal sklearn on the cached features; second run hits the cache', async () => {
    const opts = {
      ckpt, model: 'beit_test_micro', nbClasses: '10', dataSet: 'fashion_mnist', dataPath: FASHION_DIR, classIdx: '0', inputSize: '16',
      batchSize: '500', metric: 'mahalanobis', cacheDir: path.join(dir, 'cache'), resultsDir: path.join(dir, 'res'), quiet: true,
    };
    const quiet = { out: () => undefined, err: () => undefined };
    const j = await runEval('features', opts, quiet);
    expect(j.extraction.map((e) => [e.what, e.cache, e.rows])).toEqual([
      ['fashion_mnist/train', 'miss', 6000],
      ['fashion_mnist/test', 'miss', 10000],
    ]);
    const py = spawnSync(SYSTEM_PYTHON, ['-c', PY, j.extraction[0].entry!, j.extraction[1].entry!], { encoding: 'utf8', env: { ...process.env, OMP_NUM_THREADS: '2' } });
    expect(py.status, py.stderr).toBe(0);
    const want = JSON.parse(py.stdout) as { rows: Record<string, { auroc: number; aupr: number; fpr95: number; n_in: number; n_ood: number }>; n_train: number; train_labels: number[] };
    expect(want.train_labels).toEqual([0]);
    expect(j.results.map((r) => r.ood)).toEqual(['1', '2', '3', '4', '5', '6', '7', '8', '9']);
    // sklearn on the same cached float32 features, float64 scores on both sides (~cond(S) 2^-53 apart):
    // no ID/OOD pair is that close, so both rank the samples alike and the metrics differ by float64
    // summation rounding only (~n 2^-53 = 2e-13). 1e-6 x the value is below one pair's weight
    // 1/(n_in n_ood) = 1e-6 (a single misranked pair fails); FPR95 is a ratio of counts.
    for (const r of j.results) {
      const w = want.rows[r.ood];
      expect(Math.abs(r.auroc - w.auroc)).toBeLessThanOrEqual(1e-6 * w.auroc);
      expect(Math.abs(r.aupr_out - w.aupr)).toBeLessThanOrEqual(1e-6 * w.aupr);
      expect(Math.abs(r.fpr95 - w.fpr95)).toBeLessThanOrEqual(1e-9);
      expect([r.n_in, r.n_ood, r.n_train]).toEqual([1000, 1000, 6000]);
    }
    const again = await runEval('features', opts, quiet);
    expect(again.extraction.map((e) => e.cache)).toEqual(['hit', 'hit']);
    expect(again.results).toEqual(j.results);
  });

  it('multi-class: an unknown --ood_dataset name reads --ood_data_path as an image folder (the reference fallback); sklearn parity', async () => {
    const ood = path.join(dir, 'ood', 'images');
    fs.mkdirSync(ood, { recursive: true });
    const mk = spawnSync(SYSTEM_PYTHON, ['-c', `
import numpy as np, sys
from PIL import Image
rng = np.random.default_rng(0)
for i in range(40):
    Image.fromarray(rng.integers(0, 256, (16, 16, 3), dtype=np.uint8)).save(f"{sys.argv[1]}/n{i:03d}.png")
`, ood], { encoding: 'utf8' });
    expect(mk.status, mk.stderr).toBe(0);
    const j = await runEval(
      'features',
      {
        ckpt, model: 'beit_test_micro', nbClasses: '10', dataSet: 'fashion_mnist', dataPath: FASHION_DIR, oodDataset: 'noise_pngs', oodDataPath: path.dirname(ood),
        inputSize: '16', batchSize: '1000', metric: 'mahalanobis', cacheDir: path.join(dir, 'cache'), resultsDir: path.join(dir, 'res'), quiet: true,
      },
      { out: () => undefined, err: () => undefined },
    );
    expect(j.extraction.map((e) => e.rows)).toEqual([60000, 10000, 40]);
    const PYM = String.raw`
import json, sys, numpy as np
from sklearn.metrics import roc_auc_score, average_precision_score
n = lambda f: f / (np.linalg.norm(f, axis=-1, keepdims=True) + 1e-10)
tr, te, oo = [n(np.load(d + '/features.npy').astype(np.float64)) for d in sys.argv[1:4]]
P = np.linalg.pinv(np.cov(tr.T, bias=True)); mu = tr.mean(0, keepdims=True)
sc = lambda f: np.sum((f - mu) * (P.dot((f - mu).T)).T, axis=-1)
din, dood = sc(te), sc(oo); lab = [0] * len(din) + [1] * len(dood); x = np.concatenate([din, dood])
print(json.dumps(dict(auroc=roc_auc_score(lab, x), aupr=average_precision_score(lab, x), fpr95=float(np.sum(dood < np.percentile(din, 95)) / len(dood)))))
`;
    const py = spawnSync(SYSTEM_PYTHON, ['-c', PYM, ...j.extraction.map((e) => e.entry!)], { encoding: 'utf8', env: { ...process.env, OMP_NUM_THREADS: '2' } });
    expect(py.status, py.stderr).toBe(0);
    const w = JSON.parse(py.stdout) as { auroc: number; aupr: number; fpr95: number };
    const r = j.results[0];
    expect(r.ood).toBe('noise_pngs');
    // As above: the same ranking, so float64 summation rounding only; 1e-6 x the value < one pair's weight.
    expect(Math.abs(r.auroc - w.auroc)).toBeLessThanOrEqual(1e-6 * w.auroc);
    expect(Math.abs(r.aupr_out - w.aupr)).toBeLessThanOrEqual(1e-6 * w.aupr);
    expect(Math.abs(r.fpr95 - w.fpr95)).toBeLessThanOrEqual(1e-9);
    expect(j.lines[0]).toMatch(/^mahalanobis\tIn-data: fashion_mnist\tOOD: noise_pngs     \t\tFPR95: /);
  });
});
