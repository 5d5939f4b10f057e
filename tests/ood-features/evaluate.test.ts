/**
 * evaluateOod (the demo's entry point) on a micro BEiT and Fashion-MNIST: one-class results equal
 * lib/ood's oneClassProtocol (the reference's loops) on the same extracted features, whether the
 * training loader covers every class or was subset (and relabelled) to the ID group; multi-class
 * equals multiClassProtocol; every result names its training-feature transform; bad input is refused
 * before any extraction.
 */
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { Beit } from '../../lib/models/beit';
import { evaluateOod } from '../../lib/ood/features';
import { multiClassProtocol, oneClassProtocol } from '../../lib/ood/protocols';
import { fashionDataset, MemoryLoader, noiseDataset, writeMicroCheckpoint, type MemoryDataset } from './memory-data';
import { describeWith } from '../helpers/requirements';

const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'mood-evalood-'));
afterAll(() => fs.rmSync(dir, { recursive: true, force: true }));

describeWith(['fashion-mnist'])('evaluateOod', () => {
  let model: Beit;
  let train: MemoryDataset;
  let test: MemoryDataset;
  beforeAll(async () => {
    const ckpt = path.join(dir, 'm.pth');
    await writeMicroCheckpoint(ckpt, 10, 9);
    model = await Beit.fromCheckpoint(ckpt, { config: 'beit_test_micro', num_classes: 10 });
    train = fashionDataset('train', 300);
    test = fashionDataset('test', 200);
  });
  afterAll(() => model?.dispose());

  it('one-class equals oneClassProtocol on the same features (full or pre-subset training set)', async () => {
    const metrics = ['mahalanobis', 'euclidean', 'msp', 'energy'];
    const r = await evaluateOod({ model, idTrain: new MemoryLoader(train, 64), idTest: new MemoryLoader(test, 64), metrics, classIdx: 3, progress: false });
    expect(r.results.map((x) => x.protocol)).toEqual(['one-class', 'one-class', 'one-class', 'one-class']);
    expect(r.results.map((x) => x.train_features)).toEqual(['eval-transform', 'eval-transform', null, null]);
    const tr = r.sets.train!;
    const te = r.sets.test;
    for (const [i, m] of metrics.entries()) {
      const want = await oneClassProtocol({
        metric: m,
        train: { features: { data: tr.features, shape: [tr.n, tr.featureDim] }, logits: { data: tr.logits, shape: [tr.n, tr.numClasses] }, labels: tr.labels },
        test: { features: { data: te.features, shape: [te.n, te.featureDim] }, logits: { data: te.logits, shape: [te.n, te.numClasses] }, labels: te.labels },
        idGroups: [3],
      });
      const got = r.results[i];
      // The same extracted features through the same protocol code: float64, equal bits (measured);
      // 1e-12 only admits a different summation order of the metric sums.
      expect(got.rows.map((x) => x.ood)).toEqual(want.groups[0].rows.map((x) => x.ood));
      got.rows.forEach((row, k) => {
        const w = want.groups[0].rows[k];
        for (const key of ['auroc', 'aupr_in', 'aupr_out', 'fpr95'] as const) expect(Math.abs(row[key] - w[key])).toBeLessThanOrEqual(1e-12);
        expect([row.n_in, row.n_ood]).toEqual([w.n_in, w.n_ood]);
      });
      expect(Math.abs(got.average.auroc - want.groups[0].average.auroc)).toBeLessThanOrEqual(1e-12);
      if (m === 'mahalanobis') expect(got.n_train).toBe(want.groups[0].n_train);
    }
    // lib/data subsets the training split itself (and may relabel it): used whole.
    const sub = fashionDataset('train', 300, 16, { keep: (y) => y === 3 });
    const relabelled = { ...sub, targets: new Int32Array(sub.length).fill(17), classIdx: 3, root: sub.root + ':relabelled' } as MemoryDataset;
    const r2 = await evaluateOod({ model, idTrain: new MemoryLoader(relabelled, 64), idTest: new MemoryLoader(test, 64), metrics: ['mahalanobis'], classIdx: 3, progress: false });
    expect(r2.results[0].n_train).toBe(sub.length);
    r2.results[0].rows.forEach((row, k) => expect(Math.abs(row.auroc - r.results[0].rows[k].auroc)).toBeLessThanOrEqual(1e-12));
  });

  it('multi-class equals multiClassProtocol; train-augment is named; bad input refused before extraction', async () => {
    const noise = noiseDataset(80);
    const idTrain = new MemoryLoader(train, 100);
    const r = await evaluateOod({ model, idTrain, idTest: new MemoryLoader(test, 100), oods: [{ name: 'noise', loader: new MemoryLoader(noise, 100) }], metrics: ['cos', 'gradnorm'], trainFeatures: 'train-augment', progress: false });
    expect(r.results[0].train_features).toBe('train-augment');
    expect(r.results[1].train_features).toBeNull();
    const tr = r.sets.train!;
    const te = r.sets.test;
    const oo = r.sets.ood.noise;
    const want = await multiClassProtocol({
      metric: 'cos',
      train: { features: { data: tr.features, shape: [tr.n, tr.featureDim] } },
      test: { features: { data: te.features, shape: [te.n, te.featureDim] } },
      ood: [{ name: 'noise', features: { data: oo.features, shape: [oo.n, oo.featureDim] } }],
    });
    // The same features through the same protocol code, as above: 1e-12 only admits another summation order.
    expect(Math.abs(r.results[0].rows[0].auroc - want.rows[0].auroc)).toBeLessThanOrEqual(1e-12);
    const fresh = () => new MemoryLoader(test, 100);
    const l = fresh();
    await expect(evaluateOod({ model, idTest: l, oods: [{ name: 'n', loader: fresh() }], metrics: ['nope'], progress: false })).rejects.toThrow(/unknown OOD metric 'nope'/);
    await expect(evaluateOod({ model, idTest: l, metrics: ['msp'], progress: false })).rejects.toThrow(/give OOD sets \(multi-class\) or classIdx/);
    await expect(evaluateOod({ model, idTest: l, metrics: ['msp'], classIdx: 10, progress: false })).rejects.toThrow(/class_idx 10 is out of range: fashion_mnist has 10 one-class groups/);
    await expect(evaluateOod({ model, idTest: l, oods: [{ name: 'n', loader: fresh() }], metrics: ['mahalanobis'], progress: false })).rejects.toThrow(/need ID training features: give idTrain/);
    await expect(evaluateOod({ model, idTest: l, oods: [{ name: 'n', loader: fresh() }], metrics: ['msp'], worldSize: 2, progress: false })).rejects.toThrow(/distributed evaluation \(world size 2\) needs a process group to all-gather the shards/);
    expect(l.yielded).toBe(0);
  });
});
