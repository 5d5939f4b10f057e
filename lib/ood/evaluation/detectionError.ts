/** Detection error: the best balanced error any single threshold achieves. */
import type { BinaryCurve } from './curve';
import { prepareScores } from './prepare';
import { oodPositiveCurve } from './roc';
import type { OrientationOption, ScoreArray } from './types';

/**
 * min over ROC points, including (0, 0) and (1, 1), of 0.5 (1 − tpr) + 0.5 fpr. Equal class priors
 * are assumed (the ODIN/Mahalanobis-paper definition), so the value is at most 0.5 and the same
 * whichever class is called positive.
 */
export function detectionErrorFromCurve(c: BinaryCurve): number {
  let best = 0.5; // the (0, 0) point: reject nothing
  const m = c.thresholds.length;
  for (let k = 0; k < m; k++) {
    const e = 0.5 * (1 - c.tps[k] / c.nPos) + 0.5 * (c.fps[k] / c.nNeg);
    if (e < best) best = e;
  }
  return best;
}

export function detectionError(scoresIn: ScoreArray, scoresOut: ScoreArray, opts: OrientationOption): number {
  return detectionErrorFromCurve(oodPositiveCurve(prepareScores(scoresIn, scoresOut, opts?.orientation, 'detectionError')));
}
