/** False positive rate at a target true positive rate ("FPR@95"), in each named convention. */
import { dropIntermediate, type BinaryCurve } from './curve';
import { linearQuantileSorted } from './percentile';
import { checkTprLevel, prepareScores, type PreparedScores } from './prepare';
import { idPositiveCurve, oodPositiveCurve } from './roc';
import type { Fpr95Convention, Fpr95Options, ScoreArray } from './types';

export const FPR95_CONVENTIONS: readonly Fpr95Convention[] = ['id-positive-percentile', 'roc-id-positive', 'ood-positive'];

/**
 * `fpr[argmax(tpr >= level)]` of sklearn's roc_curve (which starts at (0, 0)): the negatives' rate at
 * the first point, from the highest threshold down, whose tpr reaches `level`. tpr is formed by the
 * same division sklearn uses so boundary cases (e.g. 475/500 vs 0.95) compare identically.
 */
export function fprAtTprFromCurve(c: BinaryCurve, level: number): number {
  const m = c.thresholds.length;
  for (let k = 0; k < m; k++) {
    if (c.tps[k] / c.nPos >= level) return c.fps[k] / c.nNeg;
  }
  // Unreachable for level <= 1: the last point has tpr = 1.
  return 1;
}

/**
 * MOOD/SSD: `mean(o_ood < np.percentile(o_in, 100*level))`; an OOD sample counts as a false positive
 * (accepted as ID) when strictly below the ID percentile threshold.
 */
export function fprPercentileFromPrepared(p: PreparedScores, level: number): number {
  // np.percentile(x, 100·level) divides by 100 again; (level·100)/100 is not always level (0.999),
  // and the threshold must be the very same double for the strict comparison below.
  const threshold = linearQuantileSorted(p.in, (level * 100) / 100);
  // p.ood is ascending: count the prefix strictly below the threshold by binary search.
  let lo = 0;
  let hi = p.ood.length;
  while (lo < hi) {
    const mid = (lo + hi) >>> 1;
    if (p.ood[mid] < threshold) lo = mid + 1;
    else hi = mid;
  }
  return lo / p.ood.length;
}

export function fpr95FromPrepared(
  p: PreparedScores,
  convention: Fpr95Convention,
  level: number,
  dropIntermediatePoints: boolean,
  caller: string,
): number {
  switch (convention) {
    case 'id-positive-percentile':
      return fprPercentileFromPrepared(p, level);
    case 'roc-id-positive': {
      const c = idPositiveCurve(p);
      return fprAtTprFromCurve(dropIntermediatePoints ? dropIntermediate(c) : c, level);
    }
    case 'ood-positive': {
      const c = oodPositiveCurve(p);
      return fprAtTprFromCurve(dropIntermediatePoints ? dropIntermediate(c) : c, level);
    }
    default:
      throw new TypeError(
        `${caller}: fpr95 convention must be one of ${FPR95_CONVENTIONS.join(', ')} (got ${JSON.stringify(convention)})`,
      );
  }
}

/**
 * FPR at `tprLevel` (default 0.95) TPR. Default convention `'id-positive-percentile'` (MOOD's);
 * see {@link Fpr95Convention} for the exact definitions.
 */
export function fpr95(scoresIn: ScoreArray, scoresOut: ScoreArray, opts: Fpr95Options): number {
  const p = prepareScores(scoresIn, scoresOut, opts?.orientation, 'fpr95');
  const level = checkTprLevel(opts.tprLevel ?? 0.95, 'fpr95');
  return fpr95FromPrepared(p, opts.convention ?? 'id-positive-percentile', level, opts.dropIntermediate === true, 'fpr95');
}
