/**
 * The reference's per-step cosine schedule (utils.cosine_scheduler): linear warmup from `warmupValue`
 * (np.linspace, both ends included) then a half cosine from `base` to `final`.
 *
 * lib/train has the same schedule for fine-tuning; it was not committed when this was written, so
 * pre-training keeps this small copy (replace with lib/train/schedule's cosineScheduler once it lands).
 */
export function cosineSchedule(base: number, final: number, epochs: number, stepsPerEpoch: number, warmupEpochs = 0, warmupValue = 0, warmupSteps = -1): Float64Array {
  const total = epochs * stepsPerEpoch;
  const warm = warmupSteps > 0 ? warmupSteps : warmupEpochs * stepsPerEpoch;
  if (warm > total) throw new RangeError(`warmup (${warm} steps) is longer than the whole schedule (${total} steps = ${epochs} epochs x ${stepsPerEpoch})`);
  const out = new Float64Array(total);
  if (warm === 1) out[0] = warmupValue;  // np.linspace(start, stop, 1) == [start]
  if (warm > 1) {
    const step = (base - warmupValue) / (warm - 1);  // numpy's arithmetic: i * step + start, last = stop
    for (let i = 0; i < warm; i++) out[i] = i * step + warmupValue;
    out[warm - 1] = base;
  }
  const n = total - warm;
  for (let i = 0; i < n; i++) out[warm + i] = final + 0.5 * (base - final) * (1 + Math.cos((Math.PI * i) / n));
  return out;
}
