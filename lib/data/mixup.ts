/**
 * timm's Mixup/CutMix with label smoothing (modes batch, pair, elem; correct_lam on), as the reference
 * uses it for fine-tuning. Every draw comes from the batch's keyed RNG; the pixel work is one native op.
 * Soft targets: y1 * lam + y2 * (1 - lam) with one-hot on = 1 - smoothing + smoothing / K,
 * off = smoothing / K (each row sums to 1), y2 = targets of the flipped batch.
 */
import { Tensor } from '../tensor';
import type { MixupOptions } from './types';
import { KeyedRng } from './rng';

export function mixupActive(o: MixupOptions | undefined): boolean {
  return !!o && ((o.mixup ?? 0) > 0 || (o.cutmix ?? 0) > 0 || o.cutmixMinmax !== undefined);
}

export function checkMixup(o: MixupOptions): void {
  for (const k of ['mixup', 'cutmix'] as const) {
    const v = o[k];
    if (v !== undefined && !(v >= 0 && Number.isFinite(v))) throw new RangeError(`mixup.${k} must be a non-negative number, got ${v}`);
  }
  for (const k of ['mixupProb', 'mixupSwitchProb', 'smoothing'] as const) {
    const v = o[k];
    if (v !== undefined && !(v >= 0 && v <= 1)) throw new RangeError(`mixup.${k} must be in [0, 1], got ${v}`);
  }
  if (o.cutmixMinmax && !(o.cutmixMinmax.length === 2 && o.cutmixMinmax[0] >= 0 && o.cutmixMinmax[0] < o.cutmixMinmax[1] && o.cutmixMinmax[1] <= 1))
    throw new RangeError(`mixup.cutmixMinmax must be [min, max] with 0 <= min < max <= 1, got [${o.cutmixMinmax}]`);
  if (o.mixupMode && !['batch', 'pair', 'elem'].includes(o.mixupMode)) throw new RangeError(`mixup.mixupMode must be batch, pair or elem, got '${o.mixupMode}'`);
}

interface Resolved {
  mixupAlpha: number;
  cutmixAlpha: number;
  minmax?: readonly [number, number];
  prob: number;
  switchProb: number;
  mode: 'batch' | 'pair' | 'elem';
  smoothing: number;
}

function resolve(o: MixupOptions): Resolved {
  return {
    mixupAlpha: o.mixup ?? 0,
    // A cutmix_minmax turns cutmix on (timm sets cutmix_alpha = 1).
    cutmixAlpha: o.cutmixMinmax ? 1 : (o.cutmix ?? 0),
    minmax: o.cutmixMinmax,
    prob: o.mixupProb ?? 1,
    switchProb: o.mixupSwitchProb ?? 0.5,
    mode: o.mixupMode ?? 'batch',
    smoothing: o.smoothing ?? 0.1,
  };
}

/** One (lam, cutmix?) draw: timm's _params_per_batch / one element of _params_per_elem. */
function drawParams(r: Resolved, rng: KeyedRng): { lam: number; cut: boolean } {
  if (!(rng.random() < r.prob)) return { lam: 1, cut: false };
  if (r.mixupAlpha > 0 && r.cutmixAlpha > 0) {
    const cut = rng.random() < r.switchProb;
    return { lam: cut ? rng.beta(r.cutmixAlpha, r.cutmixAlpha) : rng.beta(r.mixupAlpha, r.mixupAlpha), cut };
  }
  if (r.mixupAlpha > 0) return { lam: rng.beta(r.mixupAlpha, r.mixupAlpha), cut: false };
  if (r.cutmixAlpha > 0) return { lam: rng.beta(r.cutmixAlpha, r.cutmixAlpha), cut: true };
  return { lam: 1, cut: false };
}

/** numpy randint(lo, hi): hi exclusive. */
function randint(rng: KeyedRng, lo: number, hi: number): number {
  return lo + Math.min(hi - lo - 1, Math.floor(rng.random() * (hi - lo)));
}

/** timm cutmix_bbox_and_lam (correct_lam = True): box [yl, yh, xl, xh] and the area-corrected lam. */
export function cutmixBox(H: number, W: number, lam: number, minmax: readonly [number, number] | undefined, rng: KeyedRng): { box: [number, number, number, number]; lam: number } {
  let yl: number, yh: number, xl: number, xh: number;
  if (minmax) {
    const ch = randint(rng, Math.trunc(H * minmax[0]), Math.trunc(H * minmax[1]));
    const cw = randint(rng, Math.trunc(W * minmax[0]), Math.trunc(W * minmax[1]));
    yl = randint(rng, 0, H - ch);
    xl = randint(rng, 0, W - cw);
    yh = yl + ch;
    xh = xl + cw;
  } else {
    const ratio = Math.sqrt(1 - lam);
    const ch = Math.trunc(H * ratio);
    const cw = Math.trunc(W * ratio);
    const cy = randint(rng, 0, H);
    const cx = randint(rng, 0, W);
    const clip = (v: number, hi: number): number => Math.min(Math.max(v, 0), hi);
    yl = clip(cy - Math.floor(ch / 2), H);
    yh = clip(cy + Math.floor(ch / 2), H);
    xl = clip(cx - Math.floor(cw / 2), W);
    xh = clip(cx + Math.floor(cw / 2), W);
  }
  return { box: [yl, yh, xl, xh], lam: 1 - ((yh - yl) * (xh - xl)) / (H * W) };
}

export interface MixPlan {
  /** Per element: partner, kind (0 keep, 1 blend, 2 paste), lam, yl, yh, xl, xh. */
  params: Float64Array;
  /** Effective lam per element (weight of the element's own label). */
  lam: Float64Array;
}

/** Draws the whole batch's mixing as timm would for this mode (batch size must be even). */
export function drawMixPlan(o: MixupOptions, B: number, H: number, W: number, rng: KeyedRng): MixPlan {
  const r = resolve(o);
  if (B % 2 !== 0) throw new RangeError(`mixup/cutmix needs an even batch size, got ${B}`);
  const params = new Float64Array(B * 7);
  const lam = new Float64Array(B).fill(1);
  const set = (i: number, j: number, kind: number, l: number, box?: number[]): void => {
    params.set([j, kind, l, ...(box ?? [0, 0, 0, 0])], i * 7);
    lam[i] = l;
  };
  if (r.mode === 'batch') {
    const p = drawParams(r, rng);
    if (p.lam === 1) return { params, lam };
    if (p.cut) {
      const c = cutmixBox(H, W, p.lam, r.minmax, rng);
      for (let i = 0; i < B; i++) set(i, B - 1 - i, 2, c.lam, c.box);
    } else {
      for (let i = 0; i < B; i++) set(i, B - 1 - i, 1, p.lam);
    }
    return { params, lam };
  }
  const n = r.mode === 'pair' ? B / 2 : B;
  const draws = Array.from({ length: n }, () => drawParams(r, rng));
  for (let i = 0; i < n; i++) {
    const j = B - 1 - i;
    const p = draws[i];
    if (p.lam === 1) continue;
    if (p.cut) {
      const c = cutmixBox(H, W, p.lam, r.minmax, rng);
      set(i, j, 2, c.lam, c.box);
      if (r.mode === 'pair') set(j, i, 2, c.lam, c.box);
    } else {
      set(i, j, 1, p.lam);
      if (r.mode === 'pair') set(j, i, 1, p.lam);
    }
  }
  return { params, lam };
}

/** timm mixup_target: smoothed one-hots of targets and of the flipped batch, blended by lam. */
export function mixupTargets(targets: Int32Array, numClasses: number, lam: Float64Array, smoothing: number): Float32Array {
  const B = targets.length;
  const off = smoothing / numClasses;
  const on = 1 - smoothing + off;
  const out = new Float32Array(B * numClasses);
  for (let i = 0; i < B; i++) {
    const l = lam[i];
    const row = out.subarray(i * numClasses, (i + 1) * numClasses);
    row.fill(off);
    row[targets[i]] += (on - off) * l;
    row[targets[B - 1 - i]] += (on - off) * (1 - l);
  }
  return out;
}

/** Applies the batch's mixing: new images tensor (pending) + soft targets [B, K]. */
export function applyMixup(
  images: Tensor,
  targets: Int32Array,
  o: MixupOptions,
  numClasses: number,
  size: number,
  rng: KeyedRng,
): { images: Tensor; softTargets: Tensor } {
  const K = o.numClasses ?? numClasses;
  for (const t of targets) if (t >= K) throw new RangeError(`mixup: label ${t} >= numClasses ${K}`);
  const plan = drawMixPlan(o, targets.length, size, size, rng);
  const p = Tensor.fromArray(plan.params, [targets.length, 7]);
  try {
    const mixed = Tensor.runOp('data_mix', [images, p])[0];
    const soft = Tensor.fromArray(mixupTargets(targets, K, plan.lam, resolve(o).smoothing), [targets.length, K]);
    return { images: mixed, softTargets: soft };
  } finally {
    p.dispose();
  }
}
