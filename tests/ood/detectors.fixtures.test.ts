/**
 * Every fixture score (ood/score_<name>.{in,ood}.bin, made with numpy/sklearn and the official
 * ood_utils functions) recomputed by our detectors from the fixture's features/logits, to 1e-9
 * relative (FLOAT64_SCORE_TOL), with the manifest's orientation and evaluation numbers. Expected values come from the
 * manifest and its files only.
 */
import { describe, expect, it } from 'vitest';
import { createDetector, KMeansDetector, type Detector, type FitInput, type ScoreInput } from '../../lib/ood/detectors';
import { evaluate } from '../../lib/ood/evaluation';
import { expectArrayClose, expectClose, FLOAT64_SCORE_TOL, loadOodManifest, readFloat64, type OodFileEntry } from './helpers';
import * as fs from 'node:fs';
import { fixturePath } from '../helpers/fixtures';

const manifest = loadOodManifest();

function readInt64(entry: OodFileEntry): BigInt64Array {
  const buf = fs.readFileSync(fixturePath('ood', entry.file));
  const out = new BigInt64Array(buf.length / 8);
  for (let i = 0; i < out.length; i++) out[i] = buf.readBigInt64LE(i * 8);
  return out;
}

describe('detectors vs ood/ fixture scores', () => {
  const m = manifest!;
  const D = m.files.ftrain.shape[1];
  const C = m.files.logits_test.shape[1];
  const mat = (name: string) => ({ data: readFloat64(m.files[name]), shape: m.files[name].shape });
  const trainRaw = mat('ftrain_raw');
  const testRaw = mat('ftest_raw');
  const oodRaw = mat('food_raw');
  const labels = readInt64(m.files.ytrain);
  const logitsTest = mat('logits_test');
  const logitsOod = mat('logits_ood');

  interface Case {
    detector: () => Promise<Detector> | Detector;
    train?: FitInput;
    test: ScoreInput;
    ood: ScoreInput;
  }
  const rawFeat: Pick<Case, 'train' | 'test' | 'ood'> = { train: { features: trainRaw, labels }, test: { features: testRaw }, ood: { features: oodRaw } };
  const logitIn: Pick<Case, 'train' | 'test' | 'ood'> = {
    train: {},
    test: { logits: logitsTest, features: testRaw },
    ood: { logits: logitsOod, features: oodRaw },
  };
  const cases: Record<string, Case> = {
    mahalanobis: { detector: () => createDetector('mahalanobis'), ...rawFeat },
    cos: { detector: () => createDetector('cos'), ...rawFeat },
    projection: { detector: () => createDetector('projection'), ...rawFeat },
    projection_raw: { detector: () => createDetector('projection', { normalize: false }), ...rawFeat },
    gauss: { detector: () => createDetector('gauss'), ...rawFeat },
    gauss_logp: { detector: () => createDetector('gauss_logp'), ...rawFeat },
    kmeans: { detector: () => KMeansDetector.fromCentres(mat('kmeans_centres')), train: undefined, test: { features: testRaw }, ood: { features: oodRaw } },
    euclidean: { detector: () => createDetector('euclidean'), ...rawFeat },
    minkowski: { detector: () => createDetector('minkowski'), ...rawFeat },
    chebyshev: { detector: () => createDetector('chebyshev'), ...rawFeat },
    cc: { detector: () => createDetector('cc'), ...rawFeat },
    avgcc: { detector: () => createDetector('avgcc'), ...rawFeat },
    msp: { detector: () => createDetector('msp'), ...logitIn },
    maxlogit: { detector: () => createDetector('maxlogit'), ...logitIn },
    entropy: { detector: () => createDetector('entropy'), ...logitIn },
    energy: { detector: () => createDetector('energy'), ...logitIn },
    gradnorm: { detector: () => createDetector('gradnorm'), ...logitIn },
  };

  it('covers every score in the manifest', () => {
    expect(Object.keys(cases).sort()).toEqual(Object.keys(m.scores).sort());
    expect(D).toBe(32);
    expect(C).toBe(10);
  });

  for (const name of Object.keys(cases)) {
    it(`${name}: per-sample scores, orientation and evaluation`, async () => {
      const c = cases[name];
      const entry = m.scores[name];
      const det = await c.detector();
      if (c.train) await det.fit(c.train);
      expect(det.orientation).toBe(entry.orientation);
      const sIn = await det.score(c.test);
      const sOut = await det.score(c.ood);
      expectArrayClose(sIn, readFloat64(entry.in), FLOAT64_SCORE_TOL, `${name}.in`);
      expectArrayClose(sOut, readFloat64(entry.ood), FLOAT64_SCORE_TOL, `${name}.ood`);
      // Scores within FLOAT64_SCORE_TOL rank every ID/OOD pair as the fixture's do (see there): the metrics
      // then differ by float64 summation rounding (~n 2^-53 = 1e-13), and one swapped pair would move
      // AUROC by 1/(500 * 500) = 4e-6.
      const ev = evaluate(sIn, sOut, { orientation: det.orientation });
      expectClose(ev.auroc, entry.auroc, 1e-9, `${name} auroc`);
      expectClose(ev.aupr_in, entry.aupr_in, 1e-9, `${name} aupr_in`);
      expectClose(ev.aupr_out, entry.aupr_out, 1e-9, `${name} aupr_out`);
      expectClose(ev.fpr95, entry.fpr95_percentile, 1e-9, `${name} fpr95`);
      det.dispose();
    });
  }

  it('already-normalised features give the same scores (normalisation is idempotent to 1e-10)', async () => {
    const det = createDetector('mahalanobis', { normalize: false });
    await det.fit({ features: mat('ftrain') });
    // Normalising unit rows again changes them by ~1e-16 (the 1e-10 in the denominator is absorbed).
    expectArrayClose(await det.score({ features: mat('ftest') }), readFloat64(m.scores.mahalanobis.in), FLOAT64_SCORE_TOL, 'mahalanobis normalised input');
  });

  it('gauss: Ledoit-Wolf shrinkage and covariance equal sklearn.covariance.ledoit_wolf', async () => {
    const { ledoitWolf } = await import('../../lib/ood/detectors');
    const { Tensor } = await import('../../lib/tensor');
    const t = Tensor.fromArray(readFloat64(m.files.ftrain), m.files.ftrain.shape);
    const lw = await ledoitWolf(t);
    // float64 sums over 2000 x 32 on both sides: ~n 2^-53 relative (measured <= 7e-14).
    expectClose(lw.shrinkage, (m as unknown as { data: { ledoit_wolf_shrinkage: number } }).data.ledoit_wolf_shrinkage, 1e-9, 'shrinkage');
    expectArrayClose((await lw.cov.data()) as Float64Array, readFloat64(m.files.ledoit_wolf_cov), 1e-9, 'ledoit_wolf cov');
    for (const x of [t, lw.cov, lw.mean]) x.dispose();
  });
});
