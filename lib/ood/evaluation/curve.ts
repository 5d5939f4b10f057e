/**
 * The binary classification curve underlying ROC and PR metrics, as sklearn's `_binary_clf_curve`:
 * one entry per distinct score, thresholds decreasing, with the cumulative counts of positives (tps)
 * and negatives (fps) whose score is >= that threshold. Ties therefore move tps and fps together in
 * one step, exactly how sklearn handles them.
 *
 * Counts are stored as float64 but are integers (< 2^53), so areas built from them are exact sums of
 * integers until the final division.
 */

export interface BinaryCurve {
  /** Distinct scores, decreasing. */
  readonly thresholds: Float64Array;
  /** Positives with score >= thresholds[k]. */
  readonly tps: Float64Array;
  /** Negatives with score >= thresholds[k]. */
  readonly fps: Float64Array;
  readonly nPos: number;
  readonly nNeg: number;
}

/**
 * Merge two ascending arrays from the top; larger score = predicted positive.
 * Linear time, three typed-array allocations.
 */
export function binaryCurve(posAscending: Float64Array, negAscending: Float64Array): BinaryCurve {
  const nPos = posAscending.length;
  const nNeg = negAscending.length;
  const cap = nPos + nNeg;
  const thresholds = new Float64Array(cap);
  const tps = new Float64Array(cap);
  const fps = new Float64Array(cap);
  let i = nPos - 1;
  let j = nNeg - 1;
  let tp = 0;
  let fp = 0;
  let m = 0;
  while (i >= 0 || j >= 0) {
    // Next threshold = the largest score not yet consumed.
    let v: number;
    if (i < 0) v = negAscending[j];
    else if (j < 0) v = posAscending[i];
    else v = posAscending[i] >= negAscending[j] ? posAscending[i] : negAscending[j];
    while (i >= 0 && posAscending[i] === v) {
      tp++;
      i--;
    }
    while (j >= 0 && negAscending[j] === v) {
      fp++;
      j--;
    }
    thresholds[m] = v;
    tps[m] = tp;
    fps[m] = fp;
    m++;
  }
  return {
    thresholds: thresholds.subarray(0, m),
    tps: tps.subarray(0, m),
    fps: fps.subarray(0, m),
    nPos,
    nNeg,
  };
}

/**
 * sklearn's `drop_intermediate=True`: keep the first and last points and every point where the
 * second difference of fps or tps is non-zero (a corner); collinear interior points are dropped.
 */
export function dropIntermediate(c: BinaryCurve): BinaryCurve {
  const m = c.thresholds.length;
  if (m <= 2) return c;
  const keep = new Uint8Array(m);
  keep[0] = 1;
  keep[m - 1] = 1;
  let kept = 2;
  for (let k = 1; k < m - 1; k++) {
    if (
      c.fps[k + 1] - 2 * c.fps[k] + c.fps[k - 1] !== 0 ||
      c.tps[k + 1] - 2 * c.tps[k] + c.tps[k - 1] !== 0
    ) {
      keep[k] = 1;
      kept++;
    }
  }
  const thresholds = new Float64Array(kept);
  const tps = new Float64Array(kept);
  const fps = new Float64Array(kept);
  let w = 0;
  for (let k = 0; k < m; k++) {
    if (keep[k] === 0) continue;
    thresholds[w] = c.thresholds[k];
    tps[w] = c.tps[k];
    fps[w] = c.fps[k];
    w++;
  }
  return { thresholds, tps, fps, nPos: c.nPos, nNeg: c.nNeg };
}
