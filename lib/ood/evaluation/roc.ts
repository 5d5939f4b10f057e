/** ROC AUC and the ROC curve itself. */
import { binaryCurve, dropIntermediate, type BinaryCurve } from './curve';
import { negatedAscending, prepareScores, type PreparedScores } from './prepare';
import type { OrientationOption, RocCurve, RocCurveOptions, ScoreArray } from './types';

/** Curve with OOD positive on o (larger o = more OOD). */
export function oodPositiveCurve(p: PreparedScores): BinaryCurve {
  return binaryCurve(p.ood, p.in);
}

/** Curve with ID positive on -o (sklearn `roc_curve(1 - y, -o)`). */
export function idPositiveCurve(p: PreparedScores): BinaryCurve {
  return binaryCurve(negatedAscending(p.in), negatedAscending(p.ood));
}

/**
 * Trapezoidal area under (fps, tps) starting at (0, 0), divided by nPos·nNeg. With integer counts the
 * sum is exact, and equals the Mann-Whitney statistic with ties counted 1/2 (what sklearn's
 * trapezoid over roc_curve computes, minus its rounding). Exact while 2·nPos·nNeg < 2^53
 * (e.g. 4e7 x 4e7 samples); beyond that it is still correct to double precision.
 */
export function aurocFromCurve(c: BinaryCurve): number {
  let twiceArea = 0;
  let prevTp = 0;
  let prevFp = 0;
  const m = c.thresholds.length;
  for (let k = 0; k < m; k++) {
    const tp = c.tps[k];
    const fp = c.fps[k];
    twiceArea += (fp - prevFp) * (tp + prevTp);
    prevTp = tp;
    prevFp = fp;
  }
  return twiceArea / 2 / (c.nPos * c.nNeg);
}

/**
 * AUROC with OOD as the positive class after orienting (sklearn `roc_auc_score(is_ood, o)`).
 * Symmetric: it is also the ID-positive AUROC on -o. 0.5 for constant scores.
 */
export function auroc(scoresIn: ScoreArray, scoresOut: ScoreArray, opts: OrientationOption): number {
  return aurocFromCurve(oodPositiveCurve(prepareScores(scoresIn, scoresOut, opts?.orientation, 'auroc')));
}

/** sklearn `roc_curve` layout: prepend the (0, 0) point, rates as tps/nPos and fps/nNeg. */
export function rocFromCurve(c: BinaryCurve): RocCurve {
  const m = c.thresholds.length;
  const fpr = new Float64Array(m + 1);
  const tpr = new Float64Array(m + 1);
  const thresholds = new Float64Array(m + 1);
  thresholds[0] = Infinity;
  for (let k = 0; k < m; k++) {
    fpr[k + 1] = c.fps[k] / c.nNeg;
    tpr[k + 1] = c.tps[k] / c.nPos;
    thresholds[k + 1] = c.thresholds[k];
  }
  return { fpr, tpr, thresholds };
}

/**
 * The ROC curve as sklearn's `roc_curve(..., drop_intermediate=false)` by default (every distinct
 * threshold, for plots), on o with OOD positive or on -o with ID positive.
 */
export function rocCurve(scoresIn: ScoreArray, scoresOut: ScoreArray, opts: RocCurveOptions): RocCurve {
  const p = prepareScores(scoresIn, scoresOut, opts?.orientation, 'rocCurve');
  const positive = opts.positive ?? 'ood';
  if (positive !== 'ood' && positive !== 'id') {
    throw new TypeError(`rocCurve: positive must be 'ood' or 'id' (got ${JSON.stringify(positive)})`);
  }
  let c = positive === 'ood' ? oodPositiveCurve(p) : idPositiveCurve(p);
  if (opts.dropIntermediate === true) c = dropIntermediate(c);
  return rocFromCurve(c);
}
