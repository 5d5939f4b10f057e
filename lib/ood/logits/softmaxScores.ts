/**
 * Per-sample scores computed from classifier logits (N x C row-major), in float64, O(N·C).
 * Orientation of each: see LOGIT_SCORE_ORIENTATION.
 */
import { rowCount, rowLogSumExp, rowMax, rowSumExpShifted, type FloatMatrixData } from './rows';

/** Maximum softmax probability = 1 / Σ_c exp(l_c − max). Higher = ID. */
export function msp(logits: FloatMatrixData, numClasses: number): Float64Array {
  const n = rowCount(logits, numClasses, 'logits', 'msp');
  const out = new Float64Array(n);
  for (let r = 0; r < n; r++) out[r] = 1 / rowSumExpShifted(logits, r, numClasses, rowMax(logits, r, numClasses));
  return out;
}

/**
 * Maximum logit. This is what `eval_with_logits.py --metric softmax` actually returns (L254). Higher = ID.
 */
export function maxlogit(logits: FloatMatrixData, numClasses: number): Float64Array {
  const n = rowCount(logits, numClasses, 'logits', 'maxlogit');
  const out = new Float64Array(n);
  for (let r = 0; r < n; r++) out[r] = rowMax(logits, r, numClasses);
  return out;
}

/**
 * Softmax entropy −Σ p_c log p_c with log p_c = (l_c − max) − log Σ exp(l − max): no log of an
 * underflowed 0, and no cancellation between large logits. Higher = OOD.
 */
export function entropy(logits: FloatMatrixData, numClasses: number): Float64Array {
  const n = rowCount(logits, numClasses, 'logits', 'entropy');
  const out = new Float64Array(n);
  for (let r = 0; r < n; r++) {
    const max = rowMax(logits, r, numClasses);
    const logSum = Math.log(rowSumExpShifted(logits, r, numClasses, max));
    const base = r * numClasses;
    let h = 0;
    for (let c = 0; c < numClasses; c++) {
      const logp = logits[base + c] - max - logSum;
      h -= Math.exp(logp) * logp;
    }
    out[r] = h;
  }
  return out;
}

/** Energy −T · logsumexp(l / T) (Liu et al. 2020), max-shifted so large logits cannot overflow. Higher = OOD. */
export function energy(logits: FloatMatrixData, numClasses: number, opts: { temperature?: number } = {}): Float64Array {
  const t = opts.temperature ?? 1;
  if (!(typeof t === 'number' && Number.isFinite(t) && t > 0)) {
    throw new RangeError(`energy: temperature must be a finite positive number (got ${String(t)})`);
  }
  const n = rowCount(logits, numClasses, 'logits', 'energy');
  const out = new Float64Array(n);
  for (let r = 0; r < n; r++) out[r] = -t * rowLogSumExp(logits, r, numClasses, t);
  return out;
}
