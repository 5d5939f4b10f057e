/**
 * Protocols vs a straightforward re-implementation of the reference loops: multi-class (one fit, each
 * OOD set evaluated, average) and one-class (each group as ID, every other group separately as OOD,
 * a fresh detector for every pair, np.mean over OOD groups, then over ID groups).
 */
import { describe, expect, it } from 'vitest';
import { createDetector, type DetectorOptions } from '../../lib/ood/detectors';
import { evaluate } from '../../lib/ood/evaluation';
import { CIFAR100_SUPERCLASSES, multiClassProtocol, oneClassProtocol, superclassList } from '../../lib/ood/protocols';
import { expectClose, rng } from './helpers';

const D = 6;
function data(n: number, nClasses: number, seed: number, shift = 0) {
  const r = rng(seed);
  const f = new Float64Array(n * D);
  const y = new Int32Array(n);
  const logits = new Float64Array(n * nClasses);
  for (let i = 0; i < n; i++) {
    y[i] = i % nClasses;
    for (let j = 0; j < D; j++) f[i * D + j] = Math.sqrt(-2 * Math.log(1 - r())) * Math.cos(2 * Math.PI * r()) + (j === y[i] % D ? 2 : 0) + shift;
    for (let c = 0; c < nClasses; c++) logits[i * nClasses + c] = f[i * D + (c % D)] + 0.1 * c;
  }
  return { features: { data: f, shape: [n, D] }, logits: { data: logits, shape: [n, nClasses] }, labels: y };
}

function rowsOf(labels: Int32Array, g: number[]): number[] {
  return [...labels.keys()].filter((i) => g.includes(labels[i]));
}
function pick(m: { data: Float64Array; shape: number[] }, idx: number[]) {
  const c = m.shape[1];
  const out = new Float64Array(idx.length * c);
  idx.forEach((r, i) => out.set(m.data.subarray(r * c, (r + 1) * c), i * c));
  return { data: out, shape: [idx.length, c] };
}

const keys = ['auroc', 'aupr_in', 'aupr_out', 'fpr95', 'detection_error'] as const;
// The protocols run the same fits and evaluations as the loops here (equal bits, measured): the
// tolerances only admit the float64 rounding of the means, one ulp-level step per term (1e-15 for a
// mean of 2, 1e-12 for means over up to 20 groups).

describe('evaluation protocols', () => {
  const train = data(240, 4, 1);
  const test = data(120, 4, 2);
  const oodA = data(60, 4, 3, 0.7);
  const oodB = data(50, 4, 4, -0.4);

  it('multi-class: table rows and average equal fit + evaluate by hand', async () => {
    const res = await multiClassProtocol({ metric: 'mahalanobis', train, test, ood: { svhn: oodA, lsun: oodB } });
    expect(res.protocol).toBe('multi-class');
    expect(res.metric).toBe('mahalanobis');
    expect(res.fpr95_convention).toBe('id-positive-percentile');
    expect(res.n_train).toBe(240);
    expect(res.rows.map((r) => [r.ood, r.n_in, r.n_ood])).toEqual([['svhn', 120, 60], ['lsun', 120, 50]]);
    const det = createDetector('mahalanobis');
    await det.fit(train);
    const sIn = await det.score(test);
    const evs = [await det.score(oodA), await det.score(oodB)].map((s) => evaluate(sIn, s, { orientation: det.orientation }));
    for (const k of keys) {
      evs.forEach((ev, i) => expect(res.rows[i][k]).toBe(ev[k]));
      expectClose(res.average[k], (evs[0][k] + evs[1][k]) / 2, 1e-15, k);
    }
    const other = await multiClassProtocol({ metric: 'msp', train, test, ood: [{ name: 'a', ...oodA }], evaluation: { fpr95Convention: 'ood-positive' }, keepScores: true });
    expect(other.fpr95_convention).toBe('ood-positive');
    expect(other.scores!.in.length).toBe(120);
    await expect(multiClassProtocol({ metric: 'nope', train, test, ood: { a: oodA } })).rejects.toThrow(/valid metrics/);
  });

  for (const [metric, opts] of [['mahalanobis', {}], ['kmeans', { k: 2, nInit: 2 }], ['cos', {}], ['msp', {}]] as Array<[string, DetectorOptions]>) {
    it(`one-class (${metric}): equals the reference's nested loops with a fresh fit per pair`, async () => {
      const groups = [[0], [1, 2], [3]];
      const res = await oneClassProtocol({ metric, detectorOptions: opts, train, test, groups });
      expect(res.protocol).toBe('one-class');
      expect(res.groups.map((g) => g.id)).toEqual([0, 1, 2]);
      const perGroup: Record<string, number>[] = [];
      for (let g = 0; g < groups.length; g++) {
        const trIdx = rowsOf(train.labels, groups[g]);
        const inIdx = rowsOf(test.labels, groups[g]);
        const accum: Record<string, number[]> = Object.fromEntries(keys.map((k) => [k, []]));
        for (let d = 0; d < groups.length; d++) {
          if (d === g) continue;
          const outIdx = rowsOf(test.labels, groups[d]);
          const det = createDetector(metric, opts);
          await det.fit({ features: pick(train.features, trIdx), logits: pick(train.logits, trIdx), labels: Int32Array.from(trIdx, (i) => train.labels[i]) });
          const sIn = await det.score({ features: pick(test.features, inIdx), logits: pick(test.logits, inIdx) });
          const sOut = await det.score({ features: pick(test.features, outIdx), logits: pick(test.logits, outIdx) });
          const ev = evaluate(sIn, sOut, { orientation: det.orientation });
          const row = res.groups[g].rows.find((r) => r.ood === String(d))!;
          expect(row.n_in).toBe(inIdx.length);
          expect(row.n_ood).toBe(outIdx.length);
          for (const k of keys) {
            expectClose(row[k], ev[k], 1e-12, `${metric} g${g} d${d} ${k}`);
            accum[k].push(ev[k]);
          }
          det.dispose();
        }
        const mean = Object.fromEntries(keys.map((k) => [k, accum[k].reduce((a, b) => a + b, 0) / accum[k].length]));
        for (const k of keys) expectClose(res.groups[g].average[k], mean[k], 1e-12, `${metric} g${g} mean ${k}`);
        perGroup.push(mean);
        expect(res.groups[g].n_train).toBe(trIdx.length);
      }
      for (const k of keys) expectClose(res.average[k], perGroup.reduce((a, m) => a + m[k], 0) / perGroup.length, 1e-12, `${metric} overall ${k}`);
    });
  }

  it('one-class: default groups are the labels; idGroups selects; errors', async () => {
    const res = await oneClassProtocol({ metric: 'euclidean', train, test, idGroups: [2] });
    expect(res.groups.length).toBe(1);
    expect(res.groups[0].classes).toEqual([2]);
    expect(res.groups[0].rows.map((r) => r.ood)).toEqual(['0', '1', '3']);
    await expect(oneClassProtocol({ metric: 'euclidean', train: { features: train.features }, test })).rejects.toThrow(/labels are required/);
    await expect(oneClassProtocol({ metric: 'euclidean', train, test, groups: [[0], [9]] })).rejects.toThrow(/no test samples in OOD group 1/);
  });

  it('CIFAR-100 superclasses cover the 100 labels once; CIFAR-10/ImageNet-30 one class each', () => {
    const flat = CIFAR100_SUPERCLASSES.flat();
    expect(new Set(flat).size).toBe(100);
    expect(Math.max(...flat)).toBe(99);
    expect(superclassList('cifar10')).toHaveLength(10);
    expect(superclassList('imagenet30')).toHaveLength(30);
    expect(() => superclassList('svhn')).toThrow(/no superclass list/);
  });
});
