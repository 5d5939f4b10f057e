/**
 * extractFeatures / extractCached on a random micro BEiT over 200 Fashion-MNIST images: rows in
 * dataset order from a shuffled loader equal one direct forward pass; the cache returns identical
 * arrays without touching the loader, is keyed by checkpoint (rewritten file -> miss), transform and
 * dataset, can be disabled, and a broken entry is replaced.
 */
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { Beit } from '../../lib/models/beit';
import { Tensor, tensorStats } from '../../lib/tensor';
import type { Batch, DataLoader } from '../../lib/data/types';
import { extractCached, extractFeatures, readEntry, cacheKeyParts } from '../../lib/ood/features';
import { fashionDataset, MemoryLoader, writeMicroCheckpoint, type MemoryDataset } from './memory-data';
import { describeWith } from '../helpers/requirements';

const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'mood-feat-'));
afterAll(() => fs.rmSync(dir, { recursive: true, force: true }));

describeWith(['fashion-mnist'])('feature extraction (Fashion-MNIST at /usr/share/datasets/fashion-mnist)', () => {
  let ds: MemoryDataset;
  let model: Beit;
  const ckpt = path.join(dir, 'micro.pth');
  beforeAll(async () => {
    ds = fashionDataset('test', 200);
    await writeMicroCheckpoint(ckpt, 10, 1);
    model = await Beit.fromCheckpoint(ckpt, { config: 'beit_test_micro', num_classes: 10 });
  });
  afterAll(() => model?.dispose());

  it('rows follow Batch.indices (shuffled loader) and equal one direct forward pass', async () => {
    const loader = new MemoryLoader(ds, 32, { shuffle: true, seed: 3 });
    const r = await extractFeatures(model, loader, { progress: false });
    expect(r.n).toBe(200);
    expect(r.forwardBatches).toBe(7);
    expect(r.featureDim).toBe(16);
    expect(r.numClasses).toBe(10);
    expect(Array.from(r.labels)).toEqual(Array.from(ds.targets));
    expect(Array.from(r.indices)).toEqual(Array.from({ length: 200 }, (_, i) => i));
    const x = Tensor.fromArray(ds.images, [200, 3, 16, 16]);
    const both = model.forwardBoth(x);
    const f = (await both.features.data()) as Float32Array;
    const l = (await both.logits.data()) as Float32Array;
    x.dispose();
    both.features.dispose();
    both.logits.dispose();
    let maxF = 0;
    for (let i = 0; i < f.length; i++) maxF = Math.max(maxF, Math.abs(f[i] - r.features[i]));
    let maxL = 0;
    for (let i = 0; i < l.length; i++) maxL = Math.max(maxL, Math.abs(l[i] - r.logits[i]));
    // Batches of 32 vs one of 200: float32 reduction order only (sqrt(64) 2^-24 = 5e-7 per reduction,
    // measured 4.8e-7); 1e-5 sits below the fixture README's worst-case 1e-4, far below another row (O(1)).
    expect(maxF).toBeLessThanOrEqual(1e-5);
    expect(maxL).toBeLessThanOrEqual(1e-5);
    // Features vary across images (a broken copy would leave zero rows).
    expect(new Set(Array.from({ length: 200 }, (_, i) => r.features[i * 16].toFixed(5))).size).toBeGreaterThan(150);
  });

  it('cache: miss then hit without a forward pass; keyed by transform and dataset; --no-cache', async () => {
    const cache = { dir: path.join(dir, 'cache') };
    const l1 = new MemoryLoader(ds, 50);
    const a = await extractCached(model, l1, { train: false, inputSize: 16 }, cache, { progress: false });
    expect(a.record.cache).toBe('miss');
    expect(l1.yielded).toBe(4);
    expect(fs.existsSync(path.join(a.record.entry!, 'features.npy'))).toBe(true);
    const l2 = new MemoryLoader(ds, 50);
    const b = await extractCached(model, l2, { train: false, inputSize: 16 }, cache, { progress: false });
    expect(b.record.cache).toBe('hit');
    expect(b.record.forwardBatches).toBe(0);
    expect(l2.yielded).toBe(0);
    expect(b.record.entry).toBe(a.record.entry);
    expect(Array.from(b.set.features)).toEqual(Array.from(a.set.features));
    expect(Array.from(b.set.logits)).toEqual(Array.from(a.set.logits));
    expect(Array.from(b.set.labels)).toEqual(Array.from(a.set.labels));
    // Another transform kind or another subset of the data is another entry.
    const l3 = new MemoryLoader(ds, 50);
    const c = await extractCached(model, l3, { train: true, inputSize: 16, seed: 0 }, cache, { progress: false });
    expect(c.record.cache).toBe('miss');
    const sub = fashionDataset('test', 200, 16, { keep: (y) => y < 5 });
    const d = await extractCached(model, new MemoryLoader(sub, 50), { train: false, inputSize: 16 }, cache, { progress: false });
    expect(d.record.cache).toBe('miss');
    expect(d.record.entry).not.toBe(a.record.entry);
    // An unwritable cache directory (here: a file) costs a warning, not the extraction.
    const blocker = path.join(dir, 'not-a-dir');
    fs.writeFileSync(blocker, 'x');
    const warnings: string[] = [];
    const w = await extractCached(model, new MemoryLoader(ds, 50), { train: false, inputSize: 16 }, { dir: blocker }, { progress: false, warn: (m) => warnings.push(m) });
    expect(w.record.cache).toBe('miss');
    expect(w.record.entry).toBeUndefined();
    expect(w.set.n).toBe(200);
    expect(warnings[0]).toMatch(/feature cache: could not write an entry under .*not-a-dir .*continuing without caching fashion_mnist\/test/);
    // Disabled cache: neither read nor written.
    const l4 = new MemoryLoader(ds, 50);
    const e = await extractCached(model, l4, { train: false, inputSize: 16 }, { ...cache, enabled: false }, { progress: false });
    expect(e.record.cache).toBe('off');
    expect(l4.yielded).toBe(4);
  });

  it('cache is invalidated when the checkpoint file changes, and a broken entry is replaced', async () => {
    const cache = { dir: path.join(dir, 'cache2') };
    const file = path.join(dir, 'changing.pth');
    await writeMicroCheckpoint(file, 10, 5);
    let m = await Beit.fromCheckpoint(file, { config: 'beit_test_micro', num_classes: 10 });
    const a = await extractCached(m, new MemoryLoader(ds, 100), { train: false, inputSize: 16 }, cache, { progress: false });
    m.dispose();
    expect(a.record.cache).toBe('miss');
    await writeMicroCheckpoint(file, 10, 6);
    m = await Beit.fromCheckpoint(file, { config: 'beit_test_micro', num_classes: 10 });
    try {
      const b = await extractCached(m, new MemoryLoader(ds, 100), { train: false, inputSize: 16 }, cache, { progress: false });
      expect(b.record.cache).toBe('miss');
      expect(b.record.entry).not.toBe(a.record.entry);
      expect(Array.from(b.set.features.subarray(0, 16))).not.toEqual(Array.from(a.set.features.subarray(0, 16)));
      // Corrupt the entry: it is reported, ignored and rewritten.
      fs.writeFileSync(path.join(b.record.entry!, 'features.npy'), 'garbage');
      const warnings: string[] = [];
      const parts = await cacheKeyParts(m, new MemoryLoader(ds, 100), { train: false, inputSize: 16 }, cache);
      expect(readEntry(cache.dir, parts, (w) => warnings.push(w))).toBeUndefined();
      expect(warnings[0]).toMatch(/ignoring unreadable entry/);
      const l = new MemoryLoader(ds, 100);
      const c = await extractCached(m, l, { train: false, inputSize: 16 }, cache, { progress: false });
      expect(c.record.cache).toBe('miss');
      expect(l.yielded).toBe(2);
      expect(Array.from(c.set.features)).toEqual(Array.from(b.set.features));
      expect(readEntry(cache.dir, parts)).toBeDefined();
    } finally {
      m.dispose();
    }
  });

  it('bad batches and failing loaders: clear errors, every tensor disposed, train mode restored', async () => {
    const wrap = (make: (i: number, b: Batch) => Batch | never): DataLoader => {
      const inner = new MemoryLoader(ds, 40);
      return {
        dataset: ds,
        numBatches: inner.numBatches,
        numSamples: inner.numSamples,
        setEpoch: () => undefined,
        async *[Symbol.asyncIterator]() {
          let i = 0;
          for await (const b of inner) yield make(i++, b);
        },
      };
    };
    const before = tensorStats().live;
    model.train();
    await expect(
      extractFeatures(model, wrap((i, b) => (i === 2 ? { ...b, indices: b.indices.map((x) => x + 1000) } : b)), { progress: false }),
    ).rejects.toThrow(/batch index 1080 outside the dataset \(length 200\)/);
    expect(model.training).toBe(true);
    await expect(
      extractFeatures(model, wrap((i, b) => {
        if (i === 3) {
          b.images.dispose();
          throw new Error('decode failed: broken.png');
        }
        return b;
      }), { progress: false }),
    ).rejects.toThrow('decode failed: broken.png');
    await expect(extractFeatures(model, wrap((i, b) => ({ ...b, targets: b.targets.subarray(1) })), { progress: false })).rejects.toThrow(/batch 0 has 40 indices but 39 targets/);
    model.eval();
    expect(tensorStats().live).toBe(before);
  });
});
