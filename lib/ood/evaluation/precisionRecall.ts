/** Areas under precision-recall curves (AUPR-In / AUPR-Out). */
import type { BinaryCurve } from './curve';
import { prepareScores } from './prepare';
import { idPositiveCurve, oodPositiveCurve } from './roc';
import type { AuprConvention, AuprOptions, ScoreArray } from './types';

/**
 * sklearn `average_precision_score`: Σ_k (R_k − R_{k−1}) P_k over decreasing thresholds, a step
 * function with no interpolation. Written as Σ Δtp_k · P_k / nPos so recall steps are exact.
 */
export function averagePrecisionFromCurve(c: BinaryCurve): number {
  let sum = 0;
  let prevTp = 0;
  const m = c.thresholds.length;
  for (let k = 0; k < m; k++) {
    const tp = c.tps[k];
    if (tp !== prevTp) sum += (tp - prevTp) * (tp / (tp + c.fps[k]));
    prevTp = tp;
  }
  return sum / c.nPos;
}

/**
 * `sklearn.metrics.auc(recall, precision)` over `precision_recall_curve`: trapezoids through every
 * curve point plus sklearn's appended (recall 0, precision 1) end point. OpenOOD's AUPR.
 */
export function trapezoidAuprFromCurve(c: BinaryCurve): number {
  let area = 0;
  let prevR = 0;
  let prevP = 1;
  const m = c.thresholds.length;
  for (let k = 0; k < m; k++) {
    const tp = c.tps[k];
    const r = tp / c.nPos;
    const p = tp / (tp + c.fps[k]);
    area += (r - prevR) * (p + prevP) * 0.5;
    prevR = r;
    prevP = p;
  }
  return area;
}

export function auprFromCurve(c: BinaryCurve, convention: AuprConvention): number {
  if (convention === 'average-precision') return averagePrecisionFromCurve(c);
  if (convention === 'trapezoid') return trapezoidAuprFromCurve(c);
  throw new TypeError(`aupr: convention must be 'average-precision' or 'trapezoid' (got ${JSON.stringify(convention)})`);
}

/** AUPR with OOD positive on o: `average_precision_score(is_ood, o)` by default. */
export function auprOut(scoresIn: ScoreArray, scoresOut: ScoreArray, opts: AuprOptions): number {
  const p = prepareScores(scoresIn, scoresOut, opts?.orientation, 'auprOut');
  return auprFromCurve(oodPositiveCurve(p), opts.convention ?? 'average-precision');
}

/** AUPR with ID positive on -o: `average_precision_score(is_id, -o)` by default. */
export function auprIn(scoresIn: ScoreArray, scoresOut: ScoreArray, opts: AuprOptions): number {
  const p = prepareScores(scoresIn, scoresOut, opts?.orientation, 'auprIn');
  return auprFromCurve(idPositiveCurve(p), opts.convention ?? 'average-precision');
}
