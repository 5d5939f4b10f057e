/**
 * The demo's building blocks: OOD rows (numbers re-computed by sklearn from the kept scores, and the
 * one-class loop equal to lib/ood's oneClassProtocol), far-OOD images, flag validation, resumable
 * stage markers and the no-space message.
 */
import { execFileSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { multiClassRows, oneClassRows, ScoreSink, selectRows, type FeatureRows } from '../../lib/demo/ood-eval';
import { farOodPixels } from '../../lib/demo/far-ood';
import { DemoError, checkDatasetPresent, parseClassList, parseDemoOptions } from '../../lib/demo/options';
import { StageStore, explainNoSpace, checkOutputDir, Interrupt, InterruptedError } from '../../lib/demo/stages';
import { oneClassProtocol } from '../../lib/ood/protocols';
import { SYSTEM_PYTHON } from '../helpers/fixtures';
import { gaussian, rng } from '../report/sample';
import { itWith } from '../helpers/requirements';

const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'mood-demo-units-'));
afterAll(() => fs.rmSync(tmp, { recursive: true, force: true }));

function synthetic(seed: number, perClass: number, classes: number, dim = 6): FeatureRows {
  const r = rng(seed);
  const n = perClass * classes;
  const features = new Float32Array(n * dim);
  const logits = new Float32Array(n * classes);
  const labels = new Int32Array(n);
  for (let i = 0; i < n; i++) {
    const c = i % classes;
    labels[i] = c;
    const g = gaussian(r, dim + classes, 0, 1);
    for (let d = 0; d < dim; d++) features[i * dim + d] = g[d] + (d === c % dim ? 2.5 : 0);
    for (let k = 0; k < classes; k++) logits[i * classes + k] = g[dim + k] + (k === c ? 2 : 0);
  }
  return { n, features, featureDim: dim, logits, numClasses: classes, labels };
}

describe('OOD rows', () => {
  const train = synthetic(1, 40, 4);
  const test = synthetic(2, 25, 4);

  itWith(['sklearn', 'numpy'])('multi-class and one-class numbers equal sklearn on the kept scores', async () => {
    const idTrain = selectRows(train, (l) => l < 3);
    const idTest = selectRows(test, (l) => l < 3);
    const held = selectRows(test, (l) => l === 3);
    const sinkM = new ScoreSink('scores/multi.npz');
    const mc = await multiClassRows('classes 0-2', idTrain, idTest, [{ name: 'held-out 3', rows: held }], { metrics: ['mahalanobis', 'msp'] }, sinkM);
    const sinkO = new ScoreSink('scores/oc.npz');
    const oc = await oneClassRows(1, ['a', 'b', 'c', 'd'], train, test, { metrics: ['mahalanobis', 'knn'], detectorOptions: () => ({ k: 5 }) }, sinkO);
    const pairs: Array<{ want: number; sIn: number[]; sOut: number[]; flip: boolean }> = [];
    for (const r of mc) pairs.push({ want: r.auroc, sIn: [...sinkM.arrays.get(r.scores!.in)!], sOut: [...sinkM.arrays.get(r.scores!.ood)!], flip: r.metric === 'msp' });
    for (const r of oc) for (const p of r.parts!) pairs.push({ want: p.auroc, sIn: [...sinkO.arrays.get(p.scores!.in)!], sOut: [...sinkO.arrays.get(p.scores!.ood)!], flip: false });
    const got = JSON.parse(
      execFileSync(SYSTEM_PYTHON, ['-c', 'import json,sys; from sklearn.metrics import roc_auc_score as A; P=json.load(sys.stdin); print(json.dumps([A([0]*len(p["sIn"])+[1]*len(p["sOut"]), [(-v if p["flip"] else v) for v in p["sIn"]+p["sOut"]]) for p in P]))'], { input: JSON.stringify(pairs), encoding: 'utf8' }),
    ) as number[];
    // sklearn on the very scores we saved: the same ranking, float64 rounding of the sums only (a few ulps).
    pairs.forEach((p, i) => expect(Math.abs(p.want - got[i])).toBeLessThanOrEqual(1e-12));
    expect(mc.map((r) => [r.metric, r.ood, r.n_in, r.n_ood])).toEqual([
      ['mahalanobis', 'held-out 3', 75, 25],
      ['msp', 'held-out 3', 75, 25],
    ]);
    // float64 means and fractions of values <= 1, summed in another order: a few ulps (2.2e-16 each),
    // inside 12 digits; a missing or doubled part moves the mean by >= 0.1.
    for (const r of oc) {
      expect(r.auroc).toBeCloseTo(r.parts!.reduce((a, p) => a + p.auroc, 0) / 3, 12);
      expect(r.roc!.fpr[0]).toBe(0);
      expect(r.histogram!.in.reduce((a, b) => a + b, 0)).toBeCloseTo(1, 12);
    }
  });

  it("one-class rows equal lib/ood's oneClassProtocol (the reference loop)", async () => {
    const oc = await oneClassRows(2, [], train, test, { metrics: ['mahalanobis'] }, new ScoreSink('x.npz'));
    const ref = await oneClassProtocol({
      metric: 'mahalanobis',
      train: { features: { data: train.features, shape: [train.n, train.featureDim] }, labels: train.labels },
      test: { features: { data: test.features, shape: [test.n, test.featureDim] }, labels: test.labels },
      idGroups: [2],
    });
    const g = ref.groups[0];
    expect(oc[0].parts!.map((p) => p.auroc)).toEqual(g.rows.map((r) => r.auroc));
    // The same float64 parts (equal, above) averaged by two loops: an ulp or two of a value <= 1, inside 14 digits.
    expect(oc[0].auroc).toBeCloseTo(g.average.auroc, 14);
    expect(oc[0].fpr95).toBeCloseTo(g.average.fpr95, 14);
  });

  it('unknown or head-only metrics are clear errors', async () => {
    await expect(multiClassRows('x', train, test, [], { metrics: ['nope'] }, new ScoreSink('a'))).rejects.toThrow(/unknown OOD metric 'nope'/);
    await expect(multiClassRows('x', train, test, [], { metrics: ['vim'] }, new ScoreSink('a'))).rejects.toThrow(/needs the classifier head/);
  });
});

describe('far-OOD images', () => {
  const src = { pixels: Uint8Array.from({ length: 2 * 1 * 3 * 4 }, (_, i) => i * 5), n: 2, c: 1, h: 3, w: 4 };
  it('flip and invert are exact; noise is seeded and in range', () => {
    const f = farOodPixels('vflip', src, 0);
    expect([...f.pixels.subarray(0, 12)]).toEqual([40, 45, 50, 55, 20, 25, 30, 35, 0, 5, 10, 15]);
    expect([...farOodPixels('invert', src, 0).pixels.subarray(0, 3)]).toEqual([255, 250, 245]);
    const u1 = farOodPixels('uniform', src, 3);
    expect(u1.pixels).toEqual(farOodPixels('uniform', src, 3).pixels);
    expect(u1.pixels).not.toEqual(farOodPixels('uniform', src, 4).pixels);
    const g = farOodPixels('gaussian', { ...src, pixels: new Uint8Array(24000).fill(100), n: 1000 }, 1);
    expect(g.pixels.every((v) => v === 100)).toBe(true); // zero spread: exactly the mean
  });
});

describe('flags', () => {
  it('defaults and validation name the flag', () => {
    const s = parseDemoOptions({});
    expect([s.dataSet, s.idClasses, s.oodClasses, s.farOod.length, s.model]).toEqual(['fashion_mnist', [0, 1, 2, 3, 4, 5], null, 4, 'demo']);
    expect(parseClassList('0-2,7', 'classes')).toEqual([0, 1, 2, 7]);
    expect(() => parseClassList('3-1', 'classes')).toThrow(/--classes: range '3-1' runs backwards/);
    expect(() => parseClassList('12', 'classes', 10)).toThrow(/class 12 is out of range \(the data set has classes 0-9\)/);
    expect(() => parseDemoOptions({ epochs: '-1' })).toThrow(/--epochs: expected an integer in \[0, 10000\], got '-1'/);
    expect(parseDemoOptions({ farOod: 'none' }).farOod).toEqual([]);
    expect(() => parseDemoOptions({ farOod: 'snow' })).toThrow(/--far_ood: unknown kind 'snow'/);
    expect(() => parseDemoOptions({ modelOpts: '[1]' })).toThrow(/--model_opts must be a JSON object/);
    expect(() => parseDemoOptions({ dataSet: 'cifar10' })).toThrow(/--data_path is required for --data_set cifar10 \(pass --data_path DIR holding cifar-10-batches-py/);
    expect(() => parseDemoOptions({ device: 'tpu' })).toThrow(/--device must be cpu, cuda or cuda:N/);
  });

  it('a missing data set says how to get it', () => {
    const s = parseDemoOptions({ dataPath: path.join(tmp, 'nothing') });
    expect(() => checkDatasetPresent(s)).toThrow(/no fashion_mnist data set found at .*nothing: install it with 'sudo apt-get install dataset-fashion-mnist'/);
    fs.mkdirSync(path.join(tmp, 'partial'));
    fs.writeFileSync(path.join(tmp, 'partial', 'train-images-idx3-ubyte.gz'), '');
    expect(() => checkDatasetPresent(parseDemoOptions({ dataPath: path.join(tmp, 'partial') }))).toThrow(/missing train-labels-idx1-ubyte, t10k-images-idx3-ubyte, t10k-labels-idx1-ubyte/);
  });
});

describe('stages', () => {
  it('markers are keyed, survive a new store, and --fresh clears them', () => {
    const dir = path.join(tmp, 'out');
    const a = new StageStore(dir);
    expect(a.get('train', 'k1')).toBeUndefined();
    a.set('train', 'k1', { epochs: 3 });
    const b = new StageStore(dir);
    expect(b.get('train', 'k1')).toEqual({ epochs: 3 });
    expect(b.get('train', 'k2')).toBeUndefined(); // other settings: redo
    fs.writeFileSync(path.join(dir, 'stages', 'broken.json'), '{"key": "k1", "val');
    expect(b.get('broken', 'k1')).toBeUndefined();
    b.clear();
    expect(new StageStore(dir).get('train', 'k1')).toBeUndefined();
  });

  it('no space and unwritable output are clear errors; interrupts throw at the next check', () => {
    const e = Object.assign(new Error('write failed'), { code: 'ENOSPC' });
    expect(() => explainNoSpace(e, path.join(tmp, 'x.pth'))).toThrow(/no space left on the device writing .*x\.pth \(\d+ MiB free\): free some space or choose another --output_dir/);
    expect(() => explainNoSpace(new Error('other'), 'f')).toThrow(/^other$/);
    expect(() => checkOutputDir(tmp, Number.MAX_SAFE_INTEGER)).toThrow(DemoError);
    expect(() => checkOutputDir(tmp, Number.MAX_SAFE_INTEGER)).toThrow(/no space left for the demo in .*MiB free, about .* needed/);
    fs.writeFileSync(path.join(tmp, 'afile'), '');
    expect(() => checkOutputDir(path.join(tmp, 'afile', 'sub'), 0)).toThrow(/--output_dir .*afile\/sub cannot be created or written/);
    const i = new Interrupt(false);
    expect(() => i.check('training')).not.toThrow();
    i.request();
    expect(() => i.check('training')).toThrow(InterruptedError);
  });
});
