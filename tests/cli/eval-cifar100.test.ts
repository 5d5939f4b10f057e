/**
 * One-class CIFAR-100 (superclass protocol) through lib/data on a synthetic `cifar-100-python` folder
 * written by Debian's python3 (pickles like the real ones: data uint8 [N, 3072], fine/coarse labels):
 * lib/data subsets the training split to superclass 3 (relabelled), the test split keeps fine labels,
 * and the CLI's 19 OOD rows (other superclasses) equal numpy/sklearn recomputed with the reference's
 * superclass list from the cached features.
 */
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { runEval } from '../../lib/cli/eval-common';
import { CIFAR100_SUPERCLASSES } from '../../lib/ood/protocols';
import { SYSTEM_PYTHON } from '../helpers/fixtures';
import { writeMicroCheckpoint } from '../ood-features/memory-data';
import { describeWith } from '../helpers/requirements';

const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'mood-evc100-'));
afterAll(() => fs.rmSync(dir, { recursive: true, force: true }));

describeWith(['sklearn', 'numpy'])('mood eval-features --data_set cifar100 --class_idx (superclasses)', () => {
  const ckpt = path.join(dir, 'm32.pth');
  const groups = JSON.stringify(CIFAR100_SUPERCLASSES);
  beforeAll(async () => {
    const mk = spawnSync(SYSTEM_PYTHON, ['-c', `
import pickle, json, os, sys, numpy as np
G = json.loads(sys.argv[2]); coarse = {f: g for g, fs in enumerate(G) for f in fs}
rng = np.random.default_rng(0); d = os.path.join(sys.argv[1], 'cifar-100-python'); os.makedirs(d)
for split, per in (('train', 3), ('test', 2)):
    fine = [f for f in range(100) for _ in range(per)]
    pickle.dump({'data': rng.integers(0, 256, (len(fine), 3072), dtype=np.uint8), 'fine_labels': fine,
                 'coarse_labels': [coarse[f] for f in fine], 'filenames': ['x'] * len(fine)}, open(os.path.join(d, split), 'wb'), protocol=2)
pickle.dump({'fine_label_names': ['f%d' % i for i in range(100)], 'coarse_label_names': ['c%d' % i for i in range(20)]}, open(os.path.join(d, 'meta'), 'wb'), protocol=2)
`, dir, groups], { encoding: 'utf8' });
    expect(mk.status, mk.stderr).toBe(0);
    await writeMicroCheckpoint(ckpt, 100, 41, 32);
  });

  it('superclass 3: 15 training images, 10 ID and 10 OOD test images per row, numbers equal sklearn', async () => {
    const j = await runEval(
      'features',
      { ckpt, model: 'beit_test_micro', nbClasses: '100', inputSize: '32', dataSet: 'cifar100', dataPath: dir, classIdx: '3', metric: 'mahalanobis,euclidean', cacheDir: path.join(dir, 'cache'), resultsDir: path.join(dir, 'res'), quiet: true },
      { out: () => undefined, err: () => undefined },
    );
    expect(j.id_classes).toEqual([9, 10, 16, 29, 61]);
    expect(j.extraction.map((e) => [e.what, e.rows])).toEqual([
      ['cifar100/train', 15],
      ['cifar100/test', 200],
    ]);
    const py = spawnSync(SYSTEM_PYTHON, ['-c', `
import json, sys, numpy as np
from sklearn.metrics import roc_auc_score
G = json.loads(sys.argv[3]); n = lambda f: f / (np.linalg.norm(f, axis=-1, keepdims=True) + 1e-10)
tr = n(np.load(sys.argv[1] + '/features.npy').astype(np.float64)); te = n(np.load(sys.argv[2] + '/features.npy').astype(np.float64)); y = np.load(sys.argv[2] + '/labels.npy')
P = np.linalg.pinv(np.cov(tr.T, bias=True)); mu = tr.mean(0, keepdims=True)
scores = dict(mahalanobis=np.sum((te - mu) * (P.dot((te - mu).T)).T, axis=-1), euclidean=np.linalg.norm(te - tr.mean(0), axis=-1))
out = {}
for m, s in scores.items():
    din = s[np.isin(y, G[3])]
    out[m] = {str(d): roc_auc_score([0] * len(din) + [1] * int(np.isin(y, G[d]).sum()), np.concatenate([din, s[np.isin(y, G[d])]])) for d in range(20) if d != 3}
print(json.dumps(out))
`, j.extraction[0].entry!, j.extraction[1].entry!, groups], { encoding: 'utf8' });
    expect(py.status, py.stderr).toBe(0);
    const want = JSON.parse(py.stdout) as Record<string, Record<string, number>>;
    expect(j.results.length).toBe(2 * 19);
    for (const r of j.results) {
      expect([r.n_train, r.n_in, r.n_ood]).toEqual([15, 10, 10]);
      // Same cached features, float64 scores both sides: the same ranking of 10 x 10 pairs (weight 0.01
      // each), so float64 rounding of the sums only (~1e-16).
      expect(Math.abs(r.auroc - want[r.metric][r.ood])).toBeLessThanOrEqual(1e-9);
    }
  });
});
