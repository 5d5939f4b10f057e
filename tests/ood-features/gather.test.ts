/**
 * Distributed evaluation pieces without a distributed build: shards of a DistributedSampler-style
 * loader (3 ranks, padded tail) reassemble into the single-process extraction (assembleRows,
 * gatherShards over a fake all-gather), and evaluateOod with a group gives the single-process numbers.
 */
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { Beit } from '../../lib/models/beit';
import { Tensor, tensorStats } from '../../lib/tensor';
import { assembleRows, evaluateOod, extractFeatures, gatherShards, type ExtractedSet, type RowGatherer } from '../../lib/ood/features';
import { fashionDataset, MemoryLoader, noiseDataset, writeMicroCheckpoint, type MemoryDataset } from './memory-data';
import { describeWith } from '../helpers/requirements';

const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'mood-gather-'));
afterAll(() => fs.rmSync(dir, { recursive: true, force: true }));

function expectSameSet(a: ExtractedSet, b: ExtractedSet): void {
  expect(a.n).toBe(b.n);
  expect(Array.from(a.indices)).toEqual(Array.from(b.indices));
  expect(Array.from(a.labels)).toEqual(Array.from(b.labels));
  let m = 0;
  for (let i = 0; i < a.features.length; i++) m = Math.max(m, Math.abs(a.features[i] - b.features[i]));
  for (let i = 0; i < a.logits.length; i++) m = Math.max(m, Math.abs(a.logits[i] - b.logits[i]));
  // The same float32 model over other batches: only the order of float32 reductions differs (<= 4C = 64
  // terms, random-sign rounding ~ sqrt(64) 2^-24 = 5e-7 per reduction on O(1) activations; measured
  // 7e-7). 1e-5 sits between that and the fixture README's worst-case 1e-4; a row from another image
  // differs by O(1).
  expect(m).toBeLessThanOrEqual(1e-5);
}

describeWith(['fashion-mnist'])('distributed extraction: shards and gather', () => {
  let model: Beit;
  let ds: MemoryDataset;
  beforeAll(async () => {
    const ckpt = path.join(dir, 'm.pth');
    await writeMicroCheckpoint(ckpt, 10, 11);
    model = await Beit.fromCheckpoint(ckpt, { config: 'beit_test_micro', num_classes: 10 });
    ds = fashionDataset('test', 200);
  });
  afterAll(() => model?.dispose());

  it('3 padded shards reassemble into the single-process set (assembleRows, gatherShards)', async () => {
    const full = await extractFeatures(model, new MemoryLoader(ds, 50), { progress: false });
    const shards: ExtractedSet[] = [];
    for (let r = 0; r < 3; r++) {
      const s = await extractFeatures(model, new MemoryLoader(ds, 32, { rank: r, worldSize: 3 }), { progress: false, rank: r, worldSize: 3 });
      // ceil(200 / 3) = 67 rows each; rank 2's last row is the padding copy of row 0.
      expect(s.n).toBe(67);
      shards.push(s);
    }
    expect(Array.from(shards[2].indices.subarray(0, 2))).toEqual([0, 2]);
    expectSameSet(assembleRows(shards, 200), full);
    // A fake all-gather that hands every rank's tensor of the same kind (told apart by width).
    const live = tensorStats().live;
    const group: RowGatherer = {
      rank: 1,
      worldSize: 3,
      allGather(t: Tensor): Tensor[] {
        const w = t.shape[1];
        return shards.map((s) => {
          const data = w === 2 ? Float64Array.from({ length: s.n * 2 }, (_, i) => (i % 2 ? s.labels[i >> 1] : s.indices[i >> 1])) : w === s.featureDim ? s.features : s.logits;
          return Tensor.fromArray(data, [s.n, w]);
        });
      },
    };
    expectSameSet(await gatherShards(shards[1], group, 200), full);
    expect(tensorStats().live).toBe(live);
  });

  it('evaluateOod with a group: same numbers as one process', async () => {
    const train = fashionDataset('train', 200);
    const noise = noiseDataset(60);
    const args = { model, metrics: ['mahalanobis', 'msp'], progress: false } as const;
    const one = await evaluateOod({ ...args, idTrain: new MemoryLoader(train, 64), idTest: new MemoryLoader(ds, 64), oods: [{ name: 'noise', loader: new MemoryLoader(noise, 64) }] });
    // World of 2 where the other rank contributed nothing: the gather path must give the same sets.
    const group: RowGatherer = { rank: 0, worldSize: 2, allGather: (t) => [t.add(0), Tensor.fromArray(t.dtype === 'float64' ? new Float64Array(0) : new Float32Array(0), [0, t.shape[1]])] };
    const two = await evaluateOod({ ...args, group, idTrain: new MemoryLoader(train, 64), idTest: new MemoryLoader(ds, 64), oods: [{ name: 'noise', loader: new MemoryLoader(noise, 64) }] });
    expect(two.results.map((r) => r.rows)).toEqual(one.results.map((r) => r.rows));
  });
});
