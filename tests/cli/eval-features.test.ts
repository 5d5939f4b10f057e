/**
 * `mood eval-features` / `mood eval-logits` end to end on a random micro BEiT checkpoint and a few
 * hundred Fashion-MNIST images (in-memory DataProvider implementing the lib/data contract): the JSON
 * numbers equal numpy/sklearn recomputed by Debian's python3 from the features and logits the CLI
 * cached; the reference's result lines land in eval_results.txt; a second run does no forward pass;
 * a rewritten checkpoint invalidates the cache; bad input gives clear errors.
 */
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { Command } from 'commander';
import { normalizeFlags } from '../../lib/cli/argv';
import { pyFixed2, runEval, type DataProvider, type EvalJson } from '../../lib/cli/eval-common';
import { registerEvalFeatures } from '../../lib/cli/eval-features';
import { registerEvalLogits } from '../../lib/cli/eval-logits';
import { SYSTEM_PYTHON } from '../helpers/fixtures';
import { FASHION_DIR, fashionDataset, MemoryDataProvider as TestData, writeMicroCheckpoint } from '../ood-features/memory-data';
import { describeWith, itWith } from '../helpers/requirements';

const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'mood-eval-'));
afterAll(() => fs.rmSync(dir, { recursive: true, force: true }));

async function cli(name: 'eval-features' | 'eval-logits', args: string[], data: DataProvider): Promise<{ out: string; err: string; json?: EvalJson }> {
  let out = '';
  let err = '';
  const io = { out: (s: string) => void (out += s), err: (s: string) => void (err += s) };
  // Parse with the real command definitions, then run with the test data provider.
  const program = new Command().exitOverride();
  (name === 'eval-features' ? registerEvalFeatures : registerEvalLogits)(program);
  let captured: Record<string, unknown> | undefined;
  program.commands[0].action((opts: Record<string, unknown>) => {
    captured = opts;
  });
  await program.parseAsync(normalizeFlags([name, ...args]), { from: 'user' });
  const json = await runEval(name === 'eval-features' ? 'features' : 'logits', captured!, { data, ...io });
  return { out, err, json };
}

/** numpy/sklearn recomputation from cached entries; prints JSON. */
const PY = String.raw`
import json, sys, numpy as np
from sklearn.metrics import roc_auc_score, average_precision_score
a = json.loads(sys.argv[1])
def load(e, what): return np.load(e + '/' + what + '.npy').astype(np.float64)
def norm(f): return f / (np.linalg.norm(f, axis=-1, keepdims=True) + 1e-10)
out = {}
if a['kind'] == 'mahalanobis':
    tr = norm(load(a['train'], 'features'))
    P = np.linalg.pinv(np.cov(tr.T, bias=True)); mu = tr.mean(0, keepdims=True)
    score = lambda e: (lambda f: np.sum((f - mu) * (P.dot((f - mu).T)).T, axis=-1))(norm(load(e, 'features')))
    idlab = 0
else:
    score = lambda e: load(e, 'logits').max(axis=1)
    idlab = 1
din = score(a['test'])
for name, e in a['ood'].items():
    dood = score(e)
    lab = [idlab] * len(din) + [1 - idlab] * len(dood)
    x = np.concatenate([din, dood])
    fpr = np.sum(dood < np.percentile(din, 95)) / len(dood) if idlab == 0 else np.sum(dood > np.percentile(din, 5)) / len(dood)
    out[name] = dict(auroc=roc_auc_score(lab, x), aupr=average_precision_score(lab, x), fpr95=float(fpr), n_in=len(din), n_ood=len(dood))
print(json.dumps(out))
`;

function sklearn(arg: unknown): Record<string, { auroc: number; aupr: number; fpr95: number; n_in: number; n_ood: number }> {
  const r = spawnSync(SYSTEM_PYTHON, ['-c', PY, JSON.stringify(arg)], { encoding: 'utf8', env: { ...process.env, OMP_NUM_THREADS: '1' } });
  if (r.status !== 0) throw new Error(r.stderr);
  return JSON.parse(r.stdout);
}

// Metrics from the same cached float32 features, scores in float64 on both sides (~cond 2^-53 apart):
// no ID/OOD pair is that close, so both rank alike and differ by float64 summation rounding (~n 2^-53).
// 1e-6 relative is below one pair's weight 1/(n_in n_ood) (>= 1/(200 x 120) = 4e-5), so one misranked
// pair fails; the 1e-3 floor only covers metrics that are 0. Averages of 9 float64 rows: 1e-12.
const close = (a: number, b: number, rel = 1e-6) => expect(Math.abs(a - b)).toBeLessThanOrEqual(rel * Math.max(Math.abs(b), 1e-3));

describeWith(['fashion-mnist'])('mood eval-features / eval-logits', () => {
  const ckpt = path.join(dir, 'micro.pth');
  const cacheDir = path.join(dir, 'cache');
  const resultsDir = path.join(dir, 'results');
  const base = () => ['--ckpt', ckpt, '--model', 'beit_test_micro', '--nb_classes', '10', '--data_set', 'fashion_mnist', '--data_path', FASHION_DIR, '--batch_size', '32', '--cache-dir', cacheDir, '--results-dir', resultsDir, '--quiet'];
  beforeAll(async () => {
    await writeMicroCheckpoint(ckpt, 10, 2);
  });

  itWith(['sklearn', 'numpy'])('multi-class mahalanobis: numbers equal sklearn on the cached features; reference lines; JSON file', async () => {
    const data = new TestData();
    const { out, json } = await cli('eval-features', [...base(), '--metric', 'mahalanobis', '--ood_dataset', 'noise,fashion_inverted'], data);
    const j = json!;
    expect(j.protocol).toBe('multi-class');
    expect(j.train_features).toBe('eval-transform');
    expect(j.extraction.map((e) => e.cache)).toEqual(['miss', 'miss', 'miss', 'miss']);
    expect(j.extraction.map((e) => e.rows)).toEqual([300, 200, 100, 120]);
    const entries = j.extraction.map((e) => e.entry!);
    const py = sklearn({ kind: 'mahalanobis', train: entries[0], test: entries[1], ood: { noise: entries[2], fashion_inverted: entries[3] } });
    expect(j.results.map((r) => r.ood)).toEqual(['noise', 'fashion_inverted']);
    for (const r of j.results) {
      const p = py[r.ood];
      close(r.auroc, p.auroc);
      close(r.aupr_out, p.aupr);
      close(r.fpr95, p.fpr95);
      expect(r.fpr95_convention).toBe('id-positive-percentile');
      expect([r.n_in, r.n_ood]).toEqual([p.n_in, p.n_ood]);
      expect(r.n_train).toBe(300);
      expect(r.train_features).toBe('eval-transform');
      expect(r.reference_aupr).toBe('aupr_out');
    }
    // The model separates noise from clothing at least somewhat (not a constant score).
    expect(j.results[0].auroc).not.toBe(0.5);
    const r0 = j.results[0];
    const line0 = `mahalanobis\tIn-data: fashion_mnist\tOOD: noise          \t\tFPR95: ${pyFixed2(100 * r0.fpr95)}\tAUROC: ${pyFixed2(100 * r0.auroc)}\tAUPR: ${pyFixed2(100 * r0.aupr_out)}`;
    expect(out.split('\n').find((l) => l.startsWith('mahalanobis\t'))).toBe(line0);
    const txt = fs.readFileSync(path.join(resultsDir, 'eval_results.txt'), 'utf8').split('\n');
    expect(txt[0]).toBe(line0);
    expect(txt[1]).toMatch(/^mahalanobis\tIn-data: fashion_mnist\tOOD: fashion_inverted\t\tFPR95: /);
    const file = JSON.parse(fs.readFileSync(path.join(resultsDir, 'eval-features_fashion_mnist_noise+fashion_inverted_mahalanobis.json'), 'utf8')) as EvalJson;
    expect(file.results).toEqual(j.results);
    expect(file.checkpoint.file).toBe(path.resolve(ckpt));
    expect(file.id_dataset).toBe('fashion_mnist');
    expect(file.ood_datasets).toEqual(['noise', 'fashion_inverted']);
  });

  it('second run reads the cache (no forward pass); a rewritten checkpoint invalidates it; --no-cache', async () => {
    const own = path.join(dir, 'cache-test.pth');
    await writeMicroCheckpoint(own, 10, 4);
    const args = [...base().map((x) => (x === ckpt ? own : x)), '--metric', 'euclidean', '--ood_dataset', 'noise'];
    const d1 = new TestData();
    const a = (await cli('eval-features', args, d1)).json!;
    expect(a.extraction.map((e) => e.cache)).toEqual(['miss', 'miss', 'miss']);
    expect(d1.batches).toBe(10 + 7 + 4);
    const d2 = new TestData();
    const b = (await cli('eval-features', args, d2)).json!;
    expect(b.extraction.every((e) => e.cache === 'hit' && e.forwardBatches === 0)).toBe(true);
    expect(d2.batches).toBe(0);
    expect(b.results).toEqual(a.results);
    await writeMicroCheckpoint(own, 10, 5);
    const d3 = new TestData();
    const c = (await cli('eval-features', args, d3)).json!;
    expect(c.extraction.map((e) => e.cache)).toEqual(['miss', 'miss', 'miss']);
    expect(d3.batches).toBe(21);
    expect(c.results[0].auroc).not.toBe(a.results[0].auroc);
    const d4 = new TestData();
    const d = (await cli('eval-features', [...args, '--no-cache'], d4)).json!;
    expect(d.extraction.map((e) => e.cache)).toEqual(['off', 'off', 'off']);
    expect(d4.batches).toBe(21);
    expect(d.results).toEqual(c.results);
  });

  it('--metric all from one extraction; one-class --class_idx lines and averages', async () => {
    const data = new TestData();
    const { json } = await cli('eval-features', [...base(), '--metric', 'all', '--class_idx', '3', '--no-cache'], data);
    const j = json!;
    expect(j.protocol).toBe('one-class');
    expect(j.class_idx).toBe(3);
    expect(j.id_classes).toEqual([3]);
    // One pass over the class-3 training images and one over the test set, for all 8 metrics.
    expect(j.extraction.length).toBe(2);
    const nTrain3 = fashionDataset('train', 300, 16, { keep: (y) => y === 3 }).length;
    expect(j.extraction[0].rows).toBe(nTrain3);
    expect(j.averages.map((a) => a.reference_metric)).toEqual(['mahalanobis', 'cos', 'projection', 'gauss', 'kmeans', 'euclidean', 'minkowski', 'chebyshev']);
    expect(j.results.length).toBe(8 * 9);
    for (const a of j.averages) {
      const rows = j.results.filter((r) => r.reference_metric === a.reference_metric);
      expect(rows.map((r) => r.ood)).toEqual(['0', '1', '2', '4', '5', '6', '7', '8', '9']);
      close(a.auroc, rows.reduce((x, r) => x + r.auroc, 0) / rows.length, 1e-12);
      expect(a.n_train).toBe(nTrain3);
    }
    const maha = j.lines.filter((l) => l.startsWith('mahalanobis\t'));
    expect(maha.length).toBe(10);
    expect(maha[0]).toMatch(/^mahalanobis\tDataset: fashion_mnist\tID: 3\tOOD: 0\tFPR95: \d+\.\d\d\tAUROC: \d+\.\d\d\tAUPR: \d+\.\d\d$/);
    expect(maha[9]).toMatch(/^mahalanobis\tDataset: fashion_mnist\tID: 3\tOOD: all\t/);
  });

  itWith(['sklearn', 'numpy'])('eval-logits softmax (= max logit, AUPR-In as the reference) equals sklearn; one-class lines say MOOD', async () => {
    const data = new TestData();
    const { json } = await cli('eval-logits', [...base(), '--metric', 'softmax', '--ood_dataset', 'noise'], data);
    const j = json!;
    // No training pass for logit metrics.
    expect(j.extraction.map((e) => e.what)).toEqual(['fashion_mnist/test', 'noise (OOD)']);
    const r = j.results[0];
    expect(r.metric).toBe('maxlogit');
    expect(r.reference_aupr).toBe('aupr_in');
    const py = sklearn({ kind: 'maxlogit', test: j.extraction[0].entry, ood: { noise: j.extraction[1].entry } });
    close(r.auroc, py.noise.auroc);
    close(r.aupr_in, py.noise.aupr);
    expect(j.lines[0]).toBe(`softmax\tIn-data: fashion_mnist\tOOD: noise          \t\tFPR95: ${pyFixed2(100 * r.fpr95)}\tAUROC: ${pyFixed2(100 * r.auroc)}\tAUPR: ${pyFixed2(100 * r.aupr_in)}`);
    const all = (await cli('eval-logits', [...base(), '--metric', 'all', '--ood_dataset', 'noise'], new TestData())).json!;
    expect(all.averages.map((a) => [a.reference_metric, a.metric, a.reference_aupr])).toEqual([
      ['softmax', 'maxlogit', 'aupr_in'],
      ['entropy', 'entropy', 'aupr_out'],
      ['energy', 'energy', 'aupr_out'],
      ['gradnorm', 'gradnorm', 'aupr_in'],
    ]);
    expect(all.extraction.every((e) => e.cache === 'hit')).toBe(true);
    expect(all.results.every((r) => r.auroc >= 0 && r.auroc <= 1 && r.n_in === 200 && r.n_ood === 100 && r.n_train === null)).toBe(true);
    const one = (await cli('eval-logits', [...base(), '--metric', 'energy', '--class_idx', '0'], new TestData())).json!;
    expect(one.lines.length).toBe(10);
    expect(one.lines[9]).toMatch(/^MOOD\tDataset: fashion_mnist\tID: 0\tOOD: all\tFPR95: /);
  });

  it('--dist_eval: shards by rank, all-gathers, only rank 0 writes; --train-features train-augment reaches the loader and the results', async () => {
    const { Tensor } = await import('../../lib/tensor');
    const results = path.join(dir, 'dist-results');
    const data = new TestData();
    let destroyed = 0;
    // Rank 1 of 2; the fake all-gather pretends rank 0 had no rows.
    const group = async () => ({
      rank: 1,
      worldSize: 2,
      allGather: (t: InstanceType<typeof Tensor>) => [Tensor.fromArray(t.dtype === 'float64' ? new Float64Array(0) : new Float32Array(0), [0, t.shape[1]]), t.add(0)],
      destroy: async () => void destroyed++,
    });
    let out = '';
    const args = { ckpt, model: 'beit_test_micro', nbClasses: '10', dataSet: 'fashion_mnist', dataPath: FASHION_DIR, oodDataset: 'noise', metric: 'mahalanobis', cacheDir, resultsDir: results, quiet: true, distEval: true, trainFeatures: 'train-augment' };
    const j = await runEval('features', args, { data, group, out: (s) => void (out += s), err: () => undefined });
    expect(data.loaderOptions.every((o) => o.rank === 1 && o.worldSize === 2)).toBe(true);
    expect(data.loaderOptions.map((o) => o.train)).toEqual([false, true, false]);
    expect(j.results[0].train_features).toBe('train-augment');
    expect(j.results[0].n_train).toBe(150);
    expect(out).not.toMatch(/mahalanobis\t/);
    expect(fs.existsSync(results)).toBe(false);
    expect(destroyed).toBe(1);
    await expect(runEval('features', { ...args, trainFeatures: 'augmented' }, { data: new TestData(), group, out: () => undefined, err: () => undefined })).rejects.toThrow(
      "--train-features must be eval-transform or train-augment, got 'augmented'",
    );
  });

  it("the reference's other flags are accepted and each reported as ignored, with the reason; --data_path is optional", async () => {
    const args = base().filter((x, i, a) => x !== '--data_path' && a[i - 1] !== '--data_path');
    const r = await cli('eval-logits', [...args, '--ood_dataset', 'noise', '--drop_path', '0.1', '--no_pin_mem', '--model_ema', '--method', 'MOOD', '--aa', 'rand-m9-mstd0.5-inc1', '--reprob', '0.5'], new TestData());
    const notes = r.err.split('\n').filter((l) => l.startsWith('note: '));
    expect(notes).toEqual([
      'note: --drop_path ignored: dropout and drop-path are inactive in evaluation (the reference runs the model in eval() mode too)',
      "note: --method ignored: eval_with_logits.py parses it and never uses it (its one-class lines say 'MOOD' regardless)",
      'note: --no_pin_mem ignored: DataLoader memory pinning does not change results',
      'note: --model_ema ignored: EMA belongs to fine-tuning; the eval scripts load --ckpt as saved',
      'note: --aa ignored: eval_with_logits.py builds no training set, so no augmentation runs (in the reference either)',
      'note: --reprob ignored: eval_with_logits.py builds no training set, so no augmentation runs (in the reference either)',
    ]);
    expect(r.json!.data_path).toBeNull();
    expect(r.json!.results.length).toBe(1);
    expect(r.json!.train_augment).toBeNull();
  });

  it("train-augment = the reference's training loader: its augmentation flags at their defaults, random order, drop_last", async () => {
    const data = new TestData();
    const r = await cli('eval-features', [...base(), '--ood_dataset', 'noise', '--train-features', 'train-augment', '--seed', '3', '--no-cache'], data);
    const train = data.loaderOptions.find((o) => o.train)!;
    expect(train).toMatchObject({ train: true, shuffle: true, dropLast: true, seed: 3, autoAugment: 'rand-m9-mstd0.5-inc1', trainInterpolation: 'bicubic', reprob: 0.25, remode: 'pixel', recount: 1 });
    expect(train.colorJitter).toBeUndefined();
    expect(data.loaderOptions.filter((o) => !o.train).every((o) => o.shuffle === undefined && o.dropLast === undefined && o.autoAugment === undefined)).toBe(true);
    expect(r.json!.train_augment).toEqual({ aa: 'rand-m9-mstd0.5-inc1', color_jitter: null, train_interpolation: 'bicubic', reprob: 0.25, remode: 'pixel', recount: 1 });
    expect(r.err).not.toContain('note:');
    // --aa '' turns RandAugment off and colour jitter (default 0.4) on, as timm does; the other flags pass through.
    const data2 = new TestData();
    const r2 = await cli('eval-features', [...base(), '--ood_dataset', 'noise', '--train-features', 'train-augment', '--no-cache', '--aa', '', '--train_interpolation', 'random', '--reprob', '1', '--remode', 'const', '--recount', '3'], data2);
    expect(data2.loaderOptions.find((o) => o.train)).toMatchObject({ autoAugment: undefined, colorJitter: 0.4, trainInterpolation: 'random', reprob: 1, remode: 'const', recount: 3 });
    expect(r2.json!.train_augment).toMatchObject({ aa: null, color_jitter: 0.4 });
    // --color_jitter while --aa is on, and augmentation flags with eval-transform features: said, not silent.
    const r3 = await cli('eval-features', [...base(), '--ood_dataset', 'noise', '--train-features', 'train-augment', '--no-cache', '--color_jitter', '0.3'], new TestData());
    expect(r3.err).toContain("note: --color_jitter ignored: timm applies colour jitter only when auto-augment is off (--aa ''), as in the reference");
    const r4 = await cli('eval-features', [...base(), '--ood_dataset', 'noise', '--recount', '2', '--seed', '1'], new TestData());
    expect(r4.err).toContain('note: --recount ignored: the training features go through the evaluation transform (--train-features eval-transform, the default); it applies with --train-features train-augment');
    expect(r4.err).toContain('note: --seed ignored: the training features go through the evaluation transform');
    expect(r4.json!.train_augment).toBeNull();
  });

  it('bad augmentation flags are refused with the reason', async () => {
    const run = (extra: string[]) => cli('eval-features', [...base(), '--ood_dataset', 'noise', '--train-features', 'train-augment', ...extra], new TestData());
    await expect(run(['--aa', 'original'])).rejects.toThrow(/--aa original: .*only RandAugment .*not timm's AutoAugment\/AugMix policies/);
    await expect(run(['--aa', 'rand-m9-q3'])).rejects.toThrow(/--aa rand-m9-q3: .*unknown key 'q'/);
    await expect(run(['--train_interpolation', 'lanczos'])).rejects.toThrow(/--train_interpolation must be bicubic, bilinear or random, got 'lanczos' \(PIL's affine transforms refuse lanczos/);
    await expect(run(['--train_interpolation', 'nearest'])).rejects.toThrow(/timm 0\.3\.2 would silently use bilinear for 'nearest'/);
    await expect(run(['--remode', 'noise'])).rejects.toThrow(/--remode must be pixel, rand or const/);
    await expect(run(['--recount', '9'])).rejects.toThrow(/--recount: expected an integer in \[1, 8\], got '9'/);
    await expect(run(['--reprob', '1.5'])).rejects.toThrow(/--reprob: expected a number in \[0, 1\], got '1.5'/);
    await expect(run(['--color_jitter', '-1'])).rejects.toThrow(/--color_jitter: expected a number >= 0, got '-1'/);
    await expect(run(['--model_prefix', 'backbone.'])).rejects.toThrow(/--model_prefix 'backbone\.': .*not supported/);
  });

  it('bad input: unknown metric, missing dataset, class_idx out of range, ckpt not found', async () => {
    const run = (name: 'eval-features' | 'eval-logits', extra: string[]) => cli(name, [...base(), ...extra], new TestData());
    await expect(run('eval-features', ['--metric', 'nope', '--ood_dataset', 'noise'])).rejects.toThrow(/--metric: unknown feature metric 'nope'.*valid: mahalanobis/);
    await expect(run('eval-features', ['--metric', 'energy', '--ood_dataset', 'noise'])).rejects.toThrow(/'energy' is a logit metric: use mood eval-logits/);
    await expect(run('eval-logits', ['--metric', 'cos', '--ood_dataset', 'noise'])).rejects.toThrow(/unknown logit metric 'cos'.*feature metric: use mood eval-features/);
    await expect(run('eval-features', ['--ood_dataset', 'svhn'])).rejects.toThrow(/--ood_dataset svhn at .*no dataset 'svhn'/);
    await expect(run('eval-features', ['--class_idx', '10'])).rejects.toThrow(/--class_idx 10 is out of range: fashion_mnist has 10 one-class groups \(0\.\.9\)/);
    await expect(run('eval-features', ['--class_idx', '-1'])).rejects.toThrow(/--class_idx: expected an integer >= 0, got '-1'/);
    await expect(run('eval-features', [])).rejects.toThrow(/--ood_dataset <name> is required without --class_idx/);
    const missing = path.join(dir, 'nope.pth');
    await expect(cli('eval-features', [...base().map((x) => (x === ckpt ? missing : x)), '--ood_dataset', 'noise'], new TestData())).rejects.toThrow(`--ckpt ${missing}: no such file`);
    await expect(run('eval-features', ['--ood_dataset', 'noise', '--data_path', path.join(dir, 'nowhere')])).rejects.toThrow(/--data_path .*nowhere: no such directory/);
  });
});

it('result numbers are formatted like Python\'s {:.2f} (exact ties to even), checked against python3', () => {
  const values: number[] = [0.125, 0.375, 0.625, 0.875, -0.125, 2.675, 1.005, 0, 100, 99.995, 12.345, 0.005, 0.015];
  for (let n = 1; n <= 400; n += 7) for (let k = 0; k <= n; k += Math.max(1, Math.floor(n / 13))) values.push((100 * k) / n, 100 * (k / n));
  for (let i = 0; i < 200; i++) values.push(Math.round(Math.random() * 1e5) / 1e3 + 0.0005 * (i % 3));
  const r = spawnSync(SYSTEM_PYTHON, ['-c', 'import json,sys; print(json.dumps(["{:.2f}".format(x) for x in json.loads(sys.stdin.read())]))'], { input: JSON.stringify(values), encoding: 'utf8' });
  expect(r.status, r.stderr).toBe(0);
  const want = JSON.parse(r.stdout) as string[];
  expect(values.map(pyFixed2)).toEqual(want);
  expect(pyFixed2(0.125)).toBe('0.12');
  expect((0.125).toFixed(2)).toBe('0.13'); // why pyFixed2 exists
});
