/**
 * Every evaluation number in the shared `ood/manifest.json` (computed by numpy/sklearn and the
 * official ood_utils functions) reproduced from the fixture's score files, to 1e-6 relative: the
 * same float64 scores on both sides, so only the order of float64 sums differs (~n 2^-53 = 1e-13,
 * measured <= 1.6e-15), while one misranked ID/OOD pair moves AUROC by 1/(500 * 500) = 4e-6 and FPR95
 * by 1/500, both above 1e-6 x the value.
 */
import { describe, expect, it } from 'vitest';
import {
  auprIn,
  auprOut,
  auroc,
  evaluate,
  fpr95,
  officialAsCalled,
  officialIdLabel,
  type OfficialIdLabel,
} from '../../lib/ood/evaluation';
import { expectClose, loadOodManifest, readFloat64 } from './helpers';

const manifest = loadOodManifest();
const scoreNames = manifest ? Object.keys(manifest.scores) : [];

/** The manifest spells the official labels as "ID=0, OOD=1" or "ID=1, OOD=0". */
function parseIdLabel(labels: string): OfficialIdLabel {
  if (/^ID=0, OOD=1$/.test(labels)) return 0;
  if (/^ID=1, OOD=0$/.test(labels)) return 1;
  throw new Error(`unexpected labels ${labels}`);
}

describe('OOD evaluation vs ood/manifest.json', () => {
  it('covers every score of the manifest', () => {
    expect(scoreNames.length).toBeGreaterThanOrEqual(17);
  });

  for (const name of scoreNames) {
    describe(name, () => {
      const entry = manifest!.scores[name];
      const sIn = readFloat64(entry.in);
      const sOut = readFloat64(entry.ood);
      const orientation = entry.orientation;

      it('evaluate(): auroc, aupr_in, aupr_out, fpr95 (percentile convention)', () => {
        const r = evaluate(sIn, sOut, { orientation });
        expectClose(r.auroc, entry.auroc, 1e-6, 'auroc');
        expectClose(r.aupr_in, entry.aupr_in, 1e-6, 'aupr_in');
        expectClose(r.aupr_out, entry.aupr_out, 1e-6, 'aupr_out');
        expectClose(r.fpr95, entry.fpr95_percentile, 1e-6, 'fpr95_percentile');
        expect(r.fpr95_convention).toBe('id-positive-percentile');
        expect(r.aupr_convention).toBe('average-precision');
        expect(r.n_in).toBe(500);
        expect(r.n_ood).toBe(500);
      });

      it('single-metric functions agree with the manifest', () => {
        expectClose(auroc(sIn, sOut, { orientation }), entry.auroc, 1e-6, 'auroc');
        expectClose(auprIn(sIn, sOut, { orientation }), entry.aupr_in, 1e-6, 'aupr_in');
        expectClose(auprOut(sIn, sOut, { orientation }), entry.aupr_out, 1e-6, 'aupr_out');
        expectClose(fpr95(sIn, sOut, { orientation }), entry.fpr95_percentile, 1e-6, 'fpr95_percentile');
        expectClose(
          fpr95(sIn, sOut, { orientation, convention: 'roc-id-positive' }),
          entry.fpr95_roc,
          1e-6,
          'fpr95_roc',
        );
        expectClose(
          evaluate(sIn, sOut, { orientation, fpr95Convention: 'roc-id-positive' }).fpr95,
          entry.fpr95_roc,
          1e-6,
          'evaluate fpr95_roc',
        );
      });

      it('orientation matters: flipping it gives 1 - AUROC', () => {
        const flipped = orientation === 'higher_is_id' ? 'higher_is_ood' : 'higher_is_id';
        expectClose(auroc(sIn, sOut, { orientation: flipped }), 1 - entry.auroc, 1e-6, 'flipped auroc');
      });

      const official = entry.official_as_called;
      // Only for the scores the official scripts compute (not projection_raw, gauss_logp, msp).
      if (official) it('officialAsCalled reproduces the official scripts (bugs included)', () => {
        const idLabel = parseIdLabel(official!.labels);
        const script = name === 'msp' || name === 'maxlogit' || name === 'entropy' || name === 'energy' || name === 'gradnorm'
          ? 'eval_with_logits'
          : 'eval_with_features';
        expect(officialIdLabel(script, official!.metric)).toBe(idLabel);
        const r = officialAsCalled(sIn, sOut, { idLabel });
        expectClose(r.auroc, official!.auroc, 1e-6, 'official auroc');
        expectClose(r.aupr, official!.aupr, 1e-6, 'official aupr');
        expectClose(r.fpr95, official!.fpr95, 1e-6, 'official fpr95');
      });
    });
  }
});
