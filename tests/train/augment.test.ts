/**
 * `--no_augment` (FinetuneOptions.augment = false): the training loader keeps the seeded shuffle and
 * drop_last but hands out untransformed images — checked against the Fashion-MNIST idx files decoded
 * by Debian's python3 ((x / 255 - 0.5) / 0.5 on the batch's dataset indices, grey replicated to 3
 * channels); the default still augments (the same indices give different pixels); mixup contradicts it.
 */
import { execFileSync } from 'node:child_process';
import { expect, it } from 'vitest';
import { buildDataset, createLoader } from '../../lib/data';
import { trainLoaderOptions, validateFinetuneOptions } from '../../lib/train/finetune';
import { SYSTEM_PYTHON } from '../helpers/fixtures';
import { describeWith } from '../helpers/requirements';

const ROOT = '/usr/share/datasets/fashion-mnist';

async function firstBatch(augment: boolean | undefined): Promise<{ idx: number[]; pixels: number[]; targets: number[] }> {
  const ds = await buildDataset({ dataSet: 'fashion_mnist', train: true });
  const loader = createLoader(ds, trainLoaderOptions({ model: 'beit_test_micro', dataSet: 'fashion_mnist', augment, aa: 'none', reprob: 0, seed: 3 }, { batchSize: 6, inputSize: 28, workers: 1 }));
  try {
    loader.setEpoch(1);
    const it = loader[Symbol.asyncIterator]();
    const b = (await it.next()).value!;
    const pixels = await b.images.toNumbers();
    expect(b.images.shape).toEqual([6, 3, 28, 28]);
    const out = { idx: Array.from(b.indices), pixels, targets: Array.from(b.targets) };
    b.images.dispose();
    await it.return?.();
    return out;
  } finally {
    (loader as { dispose?: () => void }).dispose?.();
    (ds as { dispose?: () => void }).dispose?.();
  }
}

describeWith(['fashion-mnist'])('finetune --no_augment', () => {
  it('trains on the evaluation transform of shuffled images (truth: python decode of the idx files)', async () => {
    const a = await firstBatch(false);
    // Shuffled (not the first six images) and seeded: the same order twice.
    expect(a.idx).not.toEqual([0, 1, 2, 3, 4, 5]);
    expect((await firstBatch(false)).idx).toEqual(a.idx);
    const py = `
import gzip, json, sys
import numpy as np
idx = json.loads(sys.argv[1])
with gzip.open('${ROOT}/train-images-idx3-ubyte.gz') as f:
    im = np.frombuffer(f.read(), np.uint8, offset=16).reshape(-1, 28, 28)
with gzip.open('${ROOT}/train-labels-idx1-ubyte.gz') as f:
    lb = np.frombuffer(f.read(), np.uint8, offset=8)
x = (im[idx].astype(np.float32) / 255 - 0.5) / 0.5
x = np.repeat(x[:, None], 3, axis=1)
print(json.dumps({'x': x.ravel().tolist(), 'y': lb[idx].tolist()}))`;
    const truth = JSON.parse(execFileSync(SYSTEM_PYTHON, ['-c', py, JSON.stringify(a.idx)]).toString()) as { x: number[]; y: number[] };
    expect(a.targets).toEqual(truth.y);
    let maxErr = 0;
    for (let i = 0; i < truth.x.length; i++) maxErr = Math.max(maxErr, Math.abs(a.pixels[i] - truth.x[i]));
    // numpy's float32 (v/255 - 0.5)/0.5 vs ours: each <= 2.4e-7 from exact (tests/data/helpers PIXEL_TOL).
    expect(maxErr).toBeLessThanOrEqual(1e-6);
    // The default transform (RandomCrop padding 4 + flip) changes the same images.
    const aug = await firstBatch(undefined);
    expect(aug.idx).toEqual(a.idx);
    let diff = 0;
    for (let i = 0; i < aug.pixels.length; i++) diff = Math.max(diff, Math.abs(aug.pixels[i] - truth.x[i]));
    expect(diff).toBeGreaterThan(0.5);
  });

  it('refuses --no_augment with mixup or cutmix, naming the flag', () => {
    const o = { model: 'beit_test_micro', dataSet: 'fashion_mnist', augment: false };
    expect(() => validateFinetuneOptions({ ...o, mixup: 0.8 }, ['beit_test_micro'])).toThrow(/--no_augment: contradicts --mixup\/--cutmix/);
    expect(() => validateFinetuneOptions({ ...o, cutmix: 1 }, ['beit_test_micro'])).toThrow(/--no_augment/);
    expect(() => validateFinetuneOptions(o, ['beit_test_micro'])).not.toThrow();
  });
});
