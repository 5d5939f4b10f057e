/**
 * timm 0.3.2's RandAugment (`rand-m9-mstd0.5-inc1` and friends, the version MOOD pins) as plan entries:
 * TypeScript draws the ops, the skip decisions (p 0.5 each), the magnitudes N(m, mstd) clipped to
 * [0, 10], the random signs and (with `random` interpolation) each geometric op's filter; native code
 * applies each op with PIL's arithmetic (native/core/data_ops.cpp pixel_op).
 */
import { DataError } from './errors';
import { PIXEL_OP, PixelOpName, PLAN, RESAMPLE } from './plan-layout';
import type { KeyedRng } from './rng';

/** timm's `--train_interpolation` for the RandAugment filters: a PIL filter, or a random one per op. */
export type TrainInterpolation = 'bicubic' | 'bilinear' | 'random';

export interface RandAugmentSpec {
  config: string;
  numLayers: number;
  magnitude: number;
  magnitudeStd: number;
  increasing: boolean;
  prob: number;
  /** Op choice weights (`w0`): ops are then drawn without replacement, as np.random.choice with p. */
  weights?: readonly number[];
  /** Filter of rotate/shear/translate (timm: the training interpolation; 'random' = bilinear or bicubic per op). */
  interpolation: TrainInterpolation;
}

/** timm 0.3.2 _RAND_CHOICE_WEIGHTS_0, in op-list order (AutoContrast ... TranslateYRel). */
const CHOICE_WEIGHTS_0 = [0.025, 0.005, 0, 0.3, 0, 0.005, 0.005, 0.025, 0.005, 0.005, 0.025, 0.2, 0.2, 0.1, 0.1];

/**
 * Parses timm's config string: rand-m9-n2-mstd0.5-inc1-w0 (sections in any order). As timm 0.3.2,
 * `inc` with any value selects the increasing ops (it tests bool() of the string, so inc0 does too).
 */
export function parseRandAugment(config: string, interpolation: TrainInterpolation = 'bicubic'): RandAugmentSpec {
  const parts = config.split('-');
  if (parts[0] !== 'rand') throw new DataError(`autoAugment '${config}': only RandAugment ('rand-m9-mstd0.5-inc1' style) is supported, not timm's AutoAugment/AugMix policies`);
  const spec: RandAugmentSpec = { config, numLayers: 2, magnitude: 10, magnitudeStd: 0, increasing: false, prob: 0.5, interpolation };
  const integer = (c: string, v: string): number => {
    if (!/^\d+$/.test(v)) throw new DataError(`autoAugment '${config}': '${c}' needs an integer`);
    return Number(v);
  };
  for (const c of parts.slice(1)) {
    const m = /^([a-z]*)(\d.*)$/.exec(c);
    if (!m) throw new DataError(`autoAugment '${config}': cannot parse '${c}' (sections are m<int>, n<int>, mstd<float>, inc<0|1>, w0)`);
    const [, key, val] = m;
    if (key === 'm') spec.magnitude = integer(c, val);
    else if (key === 'n') spec.numLayers = integer(c, val);
    else if (key === 'mstd') {
      const v = Number(val);
      if (!Number.isFinite(v)) throw new DataError(`autoAugment '${config}': '${c}' needs a number`);
      spec.magnitudeStd = v;
    } else if (key === 'inc') spec.increasing = true;
    else if (key === 'w') {
      if (integer(c, val) !== 0) throw new DataError(`autoAugment '${config}': only weight set w0 exists (timm 0.3.2)`);
      const sum = CHOICE_WEIGHTS_0.reduce((a, b) => a + b, 0);
      spec.weights = CHOICE_WEIGHTS_0.map((w) => w / sum);
    } else throw new DataError(`autoAugment '${config}': unknown key '${key}' (m, n, mstd, inc, w)`);
  }
  const maxLayers = spec.weights ? Math.min(PLAN.maxOps, spec.weights.filter((w) => w > 0).length) : PLAN.maxOps;
  if (spec.numLayers > maxLayers) throw new DataError(`autoAugment '${config}': n must be 0..${maxLayers}`);
  return spec;
}

/** An op of timm's lists: the 15 ops, six of them also in their 'Increasing' variant. */
export type LevelOp = PixelOpName | 'PosterizeIncreasing' | 'SolarizeIncreasing' | 'ColorIncreasing' | 'ContrastIncreasing' | 'BrightnessIncreasing' | 'SharpnessIncreasing';

/** timm 0.3.2 _RAND_TRANSFORMS and _RAND_INCREASING_TRANSFORMS. */
export const RAND_TRANSFORMS: readonly LevelOp[] = ['AutoContrast', 'Equalize', 'Invert', 'Rotate', 'Posterize', 'Solarize', 'SolarizeAdd', 'Color', 'Contrast', 'Brightness', 'Sharpness', 'ShearX', 'ShearY', 'TranslateXRel', 'TranslateYRel'];
export const RAND_INCREASING_TRANSFORMS: readonly LevelOp[] = RAND_TRANSFORMS.map((n) => (['Posterize', 'Solarize', 'Color', 'Contrast', 'Brightness', 'Sharpness'].includes(n) ? (`${n}Increasing` as LevelOp) : n));

const GEOMETRIC = new Set<LevelOp>(['Rotate', 'ShearX', 'ShearY', 'TranslateXRel', 'TranslateYRel']);
const SIGNED = new Set<LevelOp>([...GEOMETRIC, 'ColorIncreasing', 'ContrastIncreasing', 'BrightnessIncreasing', 'SharpnessIncreasing']);

/**
 * timm's level_to_arg of `name` at magnitude `m` (_MAX_LEVEL 10, translate_pct 0.45); `negative` is
 * the outcome of _randomly_negate for the ops that draw one (rotate, shear, translate, increasing enhance).
 */
export function levelArgument(name: LevelOp, m: number, negative: boolean): number {
  const s = negative ? -1 : 1;
  switch (name) {
    case 'Rotate': return s * (m / 10) * 30;
    case 'Posterize': return Math.trunc((m / 10) * 4);
    case 'PosterizeIncreasing': return 4 - Math.trunc((m / 10) * 4);
    case 'Solarize': return Math.trunc((m / 10) * 256);
    case 'SolarizeIncreasing': return 256 - Math.trunc((m / 10) * 256);
    case 'SolarizeAdd': return Math.trunc((m / 10) * 110);
    case 'Color': case 'Contrast': case 'Brightness': case 'Sharpness': return (m / 10) * 1.8 + 0.1;
    case 'ColorIncreasing': case 'ContrastIncreasing': case 'BrightnessIncreasing': case 'SharpnessIncreasing': return 1.0 + s * ((m / 10) * 0.9);
    case 'ShearX': case 'ShearY': return s * ((m / 10) * 0.3);
    case 'TranslateXRel': case 'TranslateYRel': return s * ((m / 10) * 0.45);
    default: return 0;
  }
}

/** The native op id of a list entry. */
export function pixelOpId(name: LevelOp): number {
  return PIXEL_OP[name.replace('Increasing', '') as PixelOpName];
}

/** Index drawn from a discrete distribution (weights summing to 1) restricted to `allowed`. */
function weightedPick(weights: readonly number[], allowed: boolean[], rng: KeyedRng): number {
  let total = 0;
  weights.forEach((w, i) => (total += allowed[i] ? w : 0));
  let u = rng.random() * total;
  let last = -1;
  for (let i = 0; i < weights.length; i++) {
    if (!allowed[i] || weights[i] <= 0) continue;
    last = i;
    if (u < weights[i]) return i;
    u -= weights[i];
  }
  return last;
}

/** Writes one pixel-op slot of a plan row. */
export function writePixelOp(row: Float64Array, k: number, op: number, arg: number, resample: number = RESAMPLE.bicubic): void {
  const at = PLAN.ops + PLAN.opStride * k;
  row[at] = op;
  row[at + 1] = arg;
  row[at + 2] = resample;
}

/** Writes the RandAugment part of one plan row (the pixel-op slots). */
export function drawRandAugment(spec: RandAugmentSpec, rng: KeyedRng, row: Float64Array): void {
  const names = spec.increasing ? RAND_INCREASING_TRANSFORMS : RAND_TRANSFORMS;
  let chosen: LevelOp[];
  if (spec.weights) {
    // np.random.choice(ops, n, replace=False, p=weights): successive draws among the ops not yet taken.
    const allowed = names.map(() => true);
    chosen = Array.from({ length: spec.numLayers }, () => {
      const i = weightedPick(spec.weights!, allowed, rng);
      allowed[i] = false;
      return names[i];
    });
  } else {
    // np.random.choice(ops, n, replace=True).
    chosen = Array.from({ length: spec.numLayers }, () => names[Math.min(names.length - 1, Math.floor(rng.random() * names.length))]);
  }
  row[PLAN.opCount] = spec.numLayers;
  chosen.forEach((name, k) => {
    // AugmentOp.__call__: skip with probability 1 - prob, else magnitude ~ N(m, mstd) clipped to [0, 10].
    if (spec.prob < 1 && rng.random() > spec.prob) {
      writePixelOp(row, k, -1, 0);
      return;
    }
    let m = spec.magnitude;
    if (spec.magnitudeStd > 0) m = m + spec.magnitudeStd * rng.normal();
    m = Math.min(10, Math.max(0, m));
    // timm's _randomly_negate: negative when random() > 0.5, drawn only by the ops that use it.
    const arg = levelArgument(name, m, SIGNED.has(name) && rng.random() > 0.5);
    let resample: number = RESAMPLE[spec.interpolation === 'random' ? 'bicubic' : spec.interpolation];
    // timm's _interpolation: random.choice((BILINEAR, BICUBIC)) per geometric op call.
    if (spec.interpolation === 'random' && GEOMETRIC.has(name)) resample = rng.random() < 0.5 ? RESAMPLE.bilinear : RESAMPLE.bicubic;
    writePixelOp(row, k, pixelOpId(name), arg, resample);
  });
}
