/**
 * Per-step schedules of the reference (`utils.cosine_scheduler`): a linear warmup from `startWarmupValue`
 * to `baseValue` over the warmup iterations (np.linspace, both ends included), then a half cosine from
 * `baseValue` down to `finalValue` over the remaining iterations.
 *
 * One deliberate difference: the reference only builds the warmup ramp when warmup_epochs > 0, so
 * `--warmup_steps N --warmup_epochs 0` makes it fail its own length assertion; here any warmup count > 0 ramps.
 */
export interface CosineScheduleOptions {
  baseValue: number;
  finalValue: number;
  epochs: number;
  stepsPerEpoch: number;
  warmupEpochs?: number;
  startWarmupValue?: number;
  /** > 0 overrides warmupEpochs * stepsPerEpoch. */
  warmupSteps?: number;
}

/** np.linspace(start, stop, num) with numpy's arithmetic (i * step + start, last value exactly stop). */
export function linspace(start: number, stop: number, num: number): number[] {
  if (num <= 0) return [];
  if (num === 1) return [start];
  const step = (stop - start) / (num - 1);
  const out = Array.from({ length: num }, (_, i) => i * step + start);
  out[num - 1] = stop;
  return out;
}

export function cosineScheduler(o: CosineScheduleOptions): Float64Array {
  const total = o.epochs * o.stepsPerEpoch;
  let warmupIters = (o.warmupEpochs ?? 0) * o.stepsPerEpoch;
  if ((o.warmupSteps ?? -1) > 0) warmupIters = o.warmupSteps!;
  if (warmupIters > total) throw new RangeError(`warmup (${warmupIters} steps) is longer than the whole schedule (${total} steps = ${o.epochs} epochs x ${o.stepsPerEpoch})`);
  const out = new Float64Array(total);
  const warm = linspace(o.startWarmupValue ?? 0, o.baseValue, warmupIters);
  out.set(warm, 0);
  const n = total - warmupIters;
  for (let i = 0; i < n; i++) out[warmupIters + i] = o.finalValue + 0.5 * (o.baseValue - o.finalValue) * (1 + Math.cos((Math.PI * i) / n));
  return out;
}
