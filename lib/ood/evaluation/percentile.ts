/**
 * numpy's default (`method='linear'`) percentile on an already ascending array, replicated operation
 * for operation (numpy 1.22+ `_quantile` / `_lerp`) so that thresholds compare bit-identically against
 * scores; MOOD's FPR95 counts `o_ood < percentile`, where one ulp can flip a tied sample.
 */
export function linearQuantileSorted(sorted: Float64Array, q: number): number {
  const n = sorted.length;
  if (n === 0) throw new RangeError('quantile of an empty array');
  if (!(q >= 0 && q <= 1)) throw new RangeError(`quantile q must be in [0, 1] (got ${q})`);
  const virtualIndex = (n - 1) * q;
  if (virtualIndex >= n - 1) return sorted[n - 1];
  if (virtualIndex <= 0) return sorted[0];
  const lo = Math.floor(virtualIndex);
  const gamma = virtualIndex - lo;
  const a = sorted[lo];
  const b = sorted[lo + 1];
  const diff = b - a;
  // numpy's _lerp: interpolate from the nearer end for accuracy.
  return gamma >= 0.5 ? b - diff * (1 - gamma) : a + diff * gamma;
}
