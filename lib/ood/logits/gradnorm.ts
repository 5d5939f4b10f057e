/**
 * GradNorm (Huang et al. 2021) in closed form, per sample.
 *
 * For the head W (C x D) with input h, ∂KL(u ‖ softmax(Wh + b)) / ∂W = (softmax − 1/C) hᵀ, an outer
 * product, so its L1 norm is ‖softmax − 1/C‖₁ · ‖h‖₁: no autograd and no weights needed, only the
 * logits and the raw penultimate features (the head input, not L2-normalised). The official code
 * (targets of ones, batch 1) gives exactly C times this; it also averages over batches of 16 and runs
 * with drop-path on, which we do not reproduce. Higher = ID.
 */
import { rowCount, rowMax, rowSumExpShifted, type FloatMatrixData } from './rows';

export function gradnorm(
  logits: FloatMatrixData,
  numClasses: number,
  features: FloatMatrixData,
  featureDim: number,
): Float64Array {
  const n = rowCount(logits, numClasses, 'logits', 'gradnorm');
  const nf = rowCount(features, featureDim, 'features', 'gradnorm');
  if (nf !== n) throw new RangeError(`gradnorm: ${n} logit rows but ${nf} feature rows`);
  const uniform = 1 / numClasses;
  const out = new Float64Array(n);
  for (let r = 0; r < n; r++) {
    const max = rowMax(logits, r, numClasses);
    const inv = 1 / rowSumExpShifted(logits, r, numClasses, max);
    const lb = r * numClasses;
    let dist = 0;
    for (let c = 0; c < numClasses; c++) dist += Math.abs(Math.exp(logits[lb + c] - max) * inv - uniform);
    const fb = r * featureDim;
    let l1 = 0;
    for (let d = 0; d < featureDim; d++) l1 += Math.abs(features[fb + d]);
    out[r] = dist * l1;
  }
  return out;
}
