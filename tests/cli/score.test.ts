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
import { ndarray, readNpy, writeNpy } from '../../lib/npy';
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
tr = n(np.load(sys.argv[1]).astype(np.float64)); te = n(np.load(sys.argv[2]).astype(np.float64)[:20])
P = np.linalg.pinv(np.cov(tr.T, bias=True)); mu = tr.mean(0, keepdims=True)
print(json.dumps(np.sum((te - mu) * (P.dot((te - mu).T)).T, axis=-1).tolist()))`,
        path.join(ev.extraction[0].entry!, 'features.npy'),
        path.join(ev.extraction[1].entry!, 'features.npy'),
      ],
      { encoding: 'utf8' },
    );
    expect(py.status, py.stderr).toBe(0);
    const want = JSON.parse(py.stdout) as number[];
    // The batch goes through the model again (batches of 7, not 64): float32 noise only.
    r.samples.forEach((s, i) => expect(Math.abs(s.score - want[i])).toBeLessThan(1e-4 * Math.max(1, Math.abs(want[i]))));
    const f = await runScore([featFile], { detector: det }, () => undefined);
    expect(f.checkpoint).toBeNull();
    f.samples.forEach((s, i) => expect(Math.abs(s.score - want[i])).toBeLessThan(1e-6 * Math.max(1, Math.abs(want[i]))));
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
    a.samples.forEach((s, i) => expect(Math.abs(s.score - b.samples[i].score)).toBeLessThan(1e-4 * Math.max(1, Math.abs(s.score))));
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
import gzip, sys, numpy as np
from PIL import Image
raw = gzip.open(sys.argv[1] + '/t10k-images-idx3-ubyte.gz').read()
x = np.frombuffer(raw, np.uint8, offset=16).reshape(-1, 28, 28)
for i in range(5): Image.fromarray(x[i], 'L').save(f"{sys.argv[2]}/t{i}.png")
`, FASHION_DIR, pngDir], { encoding: 'utf8' });
    expect(mk.status, mk.stderr).toBe(0);
    const pngs = [4, 0, 2, 1, 3].map((i) => path.join(pngDir, `t${i}.png`));
    const a = await runScore(pngs, { detector: det2, ckpt, model: 'beit_test_micro', nbClasses: '10', batchSize: '2' }, () => undefined);
    const b = await runScore([f5], { detector: det2 }, () => undefined);
    expect(a.samples.map((x) => [path.basename(x.file), x.index])).toEqual([4, 0, 2, 1, 3].map((i) => [`t${i}.png`, 0]));
    a.samples.forEach((x, k) => {
      const want = b.samples[[4, 0, 2, 1, 3][k]].score;
      // Same pixels; batches of 2 vs 1000 change the float32 features in the last bits only.
      expect(Math.abs(x.score - want)).toBeLessThan(1e-4 * Math.max(1, Math.abs(want)));
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
