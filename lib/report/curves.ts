/**
 * Plot data from raw per-sample scores: ROC points (lib/ood's exact float64 curve, sklearn
 * semantics) thinned to a plot-sized count, and ID-vs-OOD histograms on common bins.
 */
import { rocCurve } from '../ood/evaluation/roc';
import type { Orientation, ScoreArray } from '../ood/evaluation/types';
import type { RocPoints, ScoreHistogram } from './schema';

/**
 * sklearn `roc_curve(is_ood, oriented score)` with `drop_intermediate=True` (corners only: the
 * plotted curve is the same polyline), then at most `maxPoints` points kept evenly along it, always
 * with both end points. `maxPoints <= 0` keeps them all.
 */
export function rocPoints(scoresIn: ScoreArray, scoresOut: ScoreArray, orientation: Orientation, maxPoints = 400): RocPoints {
  const c = rocCurve(scoresIn, scoresOut, { orientation, positive: 'ood', dropIntermediate: true });
  const n = c.fpr.length;
  if (maxPoints <= 0 || n <= maxPoints) return { fpr: Array.from(c.fpr), tpr: Array.from(c.tpr) };
  const m = Math.max(2, maxPoints);
  const fpr: number[] = [];
  const tpr: number[] = [];
  for (let i = 0; i < m; i++) {
    const k = Math.round((i * (n - 1)) / (m - 1));
    fpr.push(c.fpr[k]);
    tpr.push(c.tpr[k]);
  }
  return { fpr, tpr };
}

function quantileSorted(s: Float64Array, q: number): number {
  const pos = (s.length - 1) * q;
  const lo = Math.floor(pos);
  const hi = Math.min(s.length - 1, lo + 1);
  return s[lo] + (s[hi] - s[lo]) * (pos - lo);
}

/**
 * Shares of ID and OOD samples in `bins` equal bins over the pooled scores' [0.5 %, 99.5 %]
 * quantile range (so one extreme score cannot squash the plot); samples beyond it count in the end
 * bins and `clipped` says so. Non-finite scores are rejected: they would be silently dropped.
 */
export function scoreHistogram(scoresIn: ScoreArray, scoresOut: ScoreArray, bins = 40): ScoreHistogram {
  if (!Number.isInteger(bins) || bins < 1) throw new RangeError(`scoreHistogram: bins must be a positive integer (got ${bins})`);
  if (scoresIn.length === 0 || scoresOut.length === 0) throw new RangeError('scoreHistogram: both score sets must be non-empty');
  const pooled = new Float64Array(scoresIn.length + scoresOut.length);
  for (let i = 0; i < scoresIn.length; i++) pooled[i] = scoresIn[i];
  for (let i = 0; i < scoresOut.length; i++) pooled[scoresIn.length + i] = scoresOut[i];
  for (let i = 0; i < pooled.length; i++) if (!Number.isFinite(pooled[i])) throw new RangeError(`scoreHistogram: non-finite score ${pooled[i]} at pooled index ${i}`);
  const sorted = pooled.slice().sort();
  let lo = quantileSorted(sorted, 0.005);
  let hi = quantileSorted(sorted, 0.995);
  const clipped = lo > sorted[0] || hi < sorted[sorted.length - 1];
  if (!(hi > lo)) {
    // All (or nearly all) scores equal: one unit-wide window around them.
    lo = sorted[0] - 0.5;
    hi = sorted[sorted.length - 1] + 0.5;
  }
  const width = (hi - lo) / bins;
  const edges = Array.from({ length: bins + 1 }, (_, i) => (i === bins ? hi : lo + i * width));
  const count = (s: ScoreArray): number[] => {
    const h = new Array<number>(bins).fill(0);
    for (let i = 0; i < s.length; i++) {
      const b = Math.min(bins - 1, Math.max(0, Math.floor((s[i] - lo) / width)));
      h[b]++;
    }
    return h.map((c) => c / s.length);
  };
  return { edges, in: count(scoresIn), ood: count(scoresOut), ...(clipped ? { clipped: true } : {}) };
}
