/**
 * `mood score`: a detector fitted and saved by `mood eval-features --detector-out` scores an image
 * batch (.npy, through the checkpoint) and precomputed features; the scores equal numpy's Mahalanobis
 * recomputed by Debian's python3 from the features eval-features cached; JSON / JSONL / --out; errors.
 */
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { Command } from 'commander';
import { normalizeFlags } from '../../lib/cli/argv';
import { runEval, type EvalJson } from '../../lib/cli/eval-common';
import { registerScore, runScore, type ScoreResult } from '../../lib/cli/score';
import { readDetectorFile } from '../../lib/ood/detectors/base';
import { ndarray, readNpy, writeNpy } from '../../lib/npy';
import { expectWithin } from '../helpers/bounds';
import { SYSTEM_PYTHON } from '../helpers/fixtures';
import { FASHION_DIR, fashionDataset, MemoryDataProvider, writeMicroCheckpoint } from '../ood-features/memory-data';
import { describeWith, itWith } from '../helpers/requirements';

const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'mood-score-'));
afterAll(() => fs.rmSync(dir, { recursive: true, force: true }));

async function cli(args: string[]): Promise<string> {
  const program = new Command().exitOverride();
  registerScore(program);
  let out = '';
  const orig = process.stdout.write.bind(process.stdout);
  (process.stdout as { write: unknown }).write = (s: string) => {
    out += s;
    return true;
  };
  try {
    await program.parseAsync(normalizeFlags(['score', ...args]), { from: 'user' });
  } finally {
    (process.stdout as { write: unknown }).write = orig;
  }
  return out;
}

// Two float32 forward passes of the same model over the same images (other batch sizes) differ only in
// the order of float32 reductions (<= 4C = 64 terms, a few chained): random-sign rounding of about
// sqrt(64) 2^-24 = 5e-7 per reduction on O(1) activations. Per feature element: FEATURE_NOISE (the
// same model's batchings differ by <= 4.8e-7 in tests/ood-features/extract). The fixture README's
// worst case, 1e-4, would make the Mahalanobis bound below vacuous (its gradient reaches 2e4 here).
const FEATURE_NOISE = 1e-6;

/**
 * How far a Mahalanobis score s = dᵀPd (d = f/‖f‖ - μ, P = pinv(S)) moves when f moves by FEATURE_NOISE per
 * element: d moves by δ <= 2‖δf‖/‖f‖ <= 2 √D FEATURE_NOISE/‖f‖, and s by <= ‖∇s‖ δ + λmax(P) δ², with
 * ‖∇s‖ = 2‖Pd‖ and λmax(P) = 1/λmin(S) from numpy. S is ill-conditioned here (λmin ~ 2.5e-7, ‖∇s‖ 1e2..2e4),
 * hence a bound per sample (3e-4..3e-2 on scores of 4..45; another row's score is O(1) away).
 */
function mahalanobisTol(gnorm: number, lamMin: number, fnorm: number, D: number): number {
  const delta = (2 * Math.sqrt(D) * FEATURE_NOISE) / fnorm;
  return gnorm * delta + delta ** 2 / lamMin;
}

describeWith(['fashion-mnist'])('mood score', () => {
  const ckpt = path.join(dir, 'micro.pth');
  const det = path.join(dir, 'maha.npz');
  const batch = path.join(dir, 'batch.npy');
  const featFile = path.join(dir, 'feats.npy');
  let ev: EvalJson;
  beforeAll(async () => {
    await writeMicroCheckpoint(ckpt, 10, 7);
    ev = await runEval(
      'features',
      {
        ckpt, model: 'beit_test_micro', nbClasses: '10', dataSet: 'fashion_mnist', dataPath: FASHION_DIR, oodDataset: 'noise', metric: 'mahalanobis',
        batchSize: '64', cacheDir: path.join(dir, 'cache'), resultsDir: path.join(dir, 'results'), quiet: true, detectorOut: det,
      },
      { data: new MemoryDataProvider(), out: () => undefined, err: () => undefined },
    );
    // The first 20 test images (dataset order), as the evaluation transform made them.
    const test = fashionDataset('test', 200, 16);
    writeNpy(batch, ndarray('float32', [20, 3, 16, 16], test.images.slice(0, 20 * 3 * 16 * 16)));
    const cached = readNpy(path.join(ev.extraction[1].entry!, 'features.npy'));
    writeNpy(featFile, ndarray('float32', [20, 16], (cached.typed() as Float32Array).slice(0, 20 * 16)));
  });

  itWith(['numpy'])('image batch through --ckpt and precomputed features give numpy Mahalanobis scores', async () => {
    const r = JSON.parse(await cli(['--detector', det, '--ckpt', ckpt, '--model', 'beit_test_micro', '--nb_classes', '10', '--batch_size', '7', batch])) as ScoreResult;
    expect(r.metric).toBe('mahalanobis');
    expect(r.orientation).toBe('higher_is_ood');
    expect(r.n).toBe(20);
    expect(r.samples.map((s) => s.index)).toEqual(Array.from({ length: 20 }, (_, i) => i));
    const py = spawnSync(
      SYSTEM_PYTHON,
      [
        '-c',
        `import sys, json, numpy as np
n = lambda f: f / (np.linalg.norm(f, axis=-1, keepdims=True) + 1e-10)
raw = np.load(sys.argv[2]).astype(np.float64)[:20]
tr = n(np.load(sys.argv[1]).astype(np.float64)); te = n(raw)
S = np.cov(tr.T, bias=True); P = np.linalg.pinv(S); mu = tr.mean(0, keepdims=True); ev = np.linalg.eigvalsh(S)
print(json.dumps(dict(score=np.sum((te - mu) * (P.dot((te - mu).T)).T, axis=-1).tolist(), lam_min=float(ev[0]), cond=float(ev[-1] / ev[0]), fnorm=np.linalg.norm(raw, axis=-1).tolist(), gnorm=np.linalg.norm(2 * P.dot((te - mu).T).T, axis=-1).tolist())))`,
        path.join(ev.extraction[0].entry!, 'features.npy'),
        path.join(ev.extraction[1].entry!, 'features.npy'),
      ],
      { encoding: 'utf8' },
    );
    expect(py.status, py.stderr).toBe(0);
    const { score: want, lam_min: lamMin, cond, fnorm, gnorm } = JSON.parse(py.stdout) as { score: number[]; lam_min: number; cond: number; fnorm: number[]; gnorm: number[] };
    // The batch goes through the model again (batches of 7, not 64): float32 noise only, within
    // mahalanobisTol of the cached features' score (derived there).
    r.samples.forEach((s, i) => expectWithin(Math.abs(s.score - want[i]), mahalanobisTol(gnorm[i], lamMin, fnorm[i], 16), `mahalanobis from images, sample ${i}`));
    const f = await runScore([featFile], { detector: det }, () => undefined);
    expect(f.checkpoint).toBeNull();
    // The same float32 features, float64 on both sides: pinv and the quadratic form lose ~cond(S) 2^-53
    // relative (cond ~ 2e6 here: 2e-10), far below 1e-6 (that premise, with 1000x room for the constants,
    // is checked); a wrong row or centring moves scores by O(1).
    expect(cond * 2 ** -53).toBeLessThanOrEqual(1e-9);
    f.samples.forEach((s, i) => expect(Math.abs(s.score - want[i])).toBeLessThanOrEqual(1e-6 * Math.max(1, Math.abs(want[i]))));
  });

  it('a head detector (vim) saved by eval-features scores the same from images and from features', async () => {
    const vim = path.join(dir, 'vim.npz');
    await runEval(
      'features',
      {
        ckpt, model: 'beit_test_micro', nbClasses: '10', dataSet: 'fashion_mnist', dataPath: FASHION_DIR, classIdx: '2', metric: 'vim',
        batchSize: '64', cacheDir: path.join(dir, 'cache'), resultsDir: path.join(dir, 'results'), quiet: true, detectorOut: vim,
      },
      { data: new MemoryDataProvider(), out: () => undefined, err: () => undefined },
    );
    const a = await runScore([batch], { detector: vim, ckpt, model: 'beit_test_micro', nbClasses: '10' }, () => undefined);
    const b = await runScore([featFile], { detector: vim }, () => undefined);
    expect(a.metric).toBe('vim');
    expect(a.orientation).toBe('higher_is_id');
    expect(new Set(a.samples.map((s) => s.score.toFixed(6))).size).toBeGreaterThan(15);
    // vim on raw features is Lipschitz in them: |δs| <= (‖W‖₂ + α) ‖δf‖ (logsumexp moves by at most
    // max_c |W_c·δf|; the residual's projection is orthonormal). ‖W‖₂ <= ‖W‖_F, and the two forward
    // passes (batch 20 vs 64) differ by FEATURE_NOISE per element: ‖δf‖ <= √16 FEATURE_NOISE.
    const { meta, arrays } = readDetectorFile(vim);
    const wF = Math.hypot(...(arrays.get('weight')!.typed() as Float64Array));
    const vimTol = (wF + (meta.values.alpha as number)) * Math.sqrt(16) * FEATURE_NOISE;
    a.samples.forEach((s, i) => expectWithin(Math.abs(s.score - b.samples[i].score), vimTol, `vim images vs features, sample ${i}`));
  });

  it('image files go through lib/data (decode + eval transform) and score like the same images in the dataset', async () => {
    const det2 = path.join(dir, 'maha-libdata.npz');
    const ev2 = await runEval(
      'features',
      { ckpt, model: 'beit_test_micro', nbClasses: '10', dataSet: 'fashion_mnist', dataPath: FASHION_DIR, classIdx: '0', inputSize: '16', metric: 'mahalanobis', batchSize: '1000', cacheDir: path.join(dir, 'cache'), resultsDir: path.join(dir, 'results'), quiet: true, detectorOut: det2 },
      { out: () => undefined, err: () => undefined },
    );
    const test = readNpy(path.join(ev2.extraction[1].entry!, 'features.npy'));
    const f5 = path.join(dir, 'f5.npy');
    writeNpy(f5, ndarray('float32', [5, 16], (test.typed() as Float32Array).slice(0, 5 * 16)));
    const pngDir = path.join(dir, 'png');
    fs.mkdirSync(pngDir);
    const mk = spawnSync(SYSTEM_PYTHON, ['-c', `
import gzip, sys, json, numpy as np
from PIL import Image
raw = gzip.open(sys.argv[1] + '/t10k-images-idx3-ubyte.gz').read()
x = np.frombuffer(raw, np.uint8, offset=16).reshape(-1, 28, 28)
for i in range(5): Image.fromarray(x[i], 'L').save(f"{sys.argv[2]}/t{i}.png")
n = lambda f: f / (np.linalg.norm(f, axis=-1, keepdims=True) + 1e-10)
tr = n(np.load(sys.argv[3]).astype(np.float64)); te = n(np.load(sys.argv[4]).astype(np.float64)[:5])
S = np.cov(tr.T, bias=True); P = np.linalg.pinv(S); mu = tr.mean(0, keepdims=True)
print(json.dumps(dict(lam_min=float(np.linalg.eigvalsh(S)[0]), gnorm=np.linalg.norm(2 * P.dot((te - mu).T).T, axis=-1).tolist())))
`, FASHION_DIR, pngDir, path.join(ev2.extraction[0].entry!, 'features.npy'), path.join(ev2.extraction[1].entry!, 'features.npy')], { encoding: 'utf8' });
    expect(mk.status, mk.stderr).toBe(0);
    const { lam_min: lamMin, gnorm } = JSON.parse(mk.stdout) as { lam_min: number; gnorm: number[] };
    const tf = test.typed() as Float32Array;
    const fnorm = (i: number) => Math.hypot(...tf.subarray(i * 16, (i + 1) * 16));
    const pngs = [4, 0, 2, 1, 3].map((i) => path.join(pngDir, `t${i}.png`));
    const a = await runScore(pngs, { detector: det2, ckpt, model: 'beit_test_micro', nbClasses: '10', batchSize: '2' }, () => undefined);
    const b = await runScore([f5], { detector: det2 }, () => undefined);
    expect(a.samples.map((x) => [path.basename(x.file), x.index])).toEqual([4, 0, 2, 1, 3].map((i) => [`t${i}.png`, 0]));
    a.samples.forEach((x, k) => {
      const want = b.samples[[4, 0, 2, 1, 3][k]].score;
      // Same pixels; batches of 2 vs 1000 change the float32 features by rounding only (mahalanobisTol).
      expectWithin(Math.abs(x.score - want), mahalanobisTol(gnorm[[4, 0, 2, 1, 3][k]], lamMin, fnorm([4, 0, 2, 1, 3][k]), 16), `mahalanobis png ${k}`);
    });
    await expect(runScore(pngs, { detector: det2 })).rejects.toThrow('image files need the model: give --ckpt C.pth');
    const txt = path.join(dir, 'notes.txt');
    fs.writeFileSync(txt, 'x');
    await expect(runScore([txt], { detector: det2 })).rejects.toThrow(/notes\.txt: expected an image \(\.jpg, .*\) or a \.npy array/);
  });

  it('--jsonl and --out (atomic file)', async () => {
    const out = path.join(dir, 'scores.jsonl');
    expect(await cli(['--detector', det, '--jsonl', '--out', out, featFile])).toBe('');
    const lines = fs.readFileSync(out, 'utf8').trim().split('\n').map((l) => JSON.parse(l) as { file: string; index: number; score: number; metric: string });
    expect(lines.length).toBe(20);
    expect(lines[3]).toMatchObject({ file: featFile, index: 3, metric: 'mahalanobis' });
    expect(Number.isFinite(lines[3].score)).toBe(true);
  });

  it('bad input: clear errors', async () => {
    await expect(runScore([featFile], {})).rejects.toThrow('--detector <file.npz> is required');
    await expect(runScore([featFile], { detector: path.join(dir, 'none.npz') })).rejects.toThrow(/--detector .*none\.npz: no such file/);
    await expect(runScore([featFile], { detector: featFile })).rejects.toThrow(/--detector .*feats\.npy: /);
    await expect(runScore([], { detector: det })).rejects.toThrow(/no input files/);
    await expect(runScore([batch], { detector: det })).rejects.toThrow('image batches (N, C, H, W) need the model: give --ckpt C.pth');
    await expect(runScore([path.join(dir, 'x.png')], { detector: det })).rejects.toThrow(/x\.png: no such file/);
    const wrong = path.join(dir, 'wrong.npy');
    writeNpy(wrong, ndarray('float32', [2, 3, 8, 8], new Float32Array(2 * 3 * 64)));
    await expect(runScore([wrong], { detector: det, ckpt, model: 'beit_test_micro', nbClasses: '10' })).rejects.toThrow(/wrong\.npy: expected shape \(N, 3, 16, 16\), got \(2, 3, 8, 8\) \(8x8 images, the model takes 16x16\)/);
    const dim = path.join(dir, 'dim.npy');
    writeNpy(dim, ndarray('float32', [2, 5], new Float32Array(10)));
    await expect(runScore([dim], { detector: det })).rejects.toThrow(/dim\.npy: .*(16|5)/);
  });
});
