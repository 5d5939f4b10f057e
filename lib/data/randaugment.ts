/**
 * timm 0.3's RandAugment (`rand-m9-mstd0.5-inc1` and friends) as plan entries: TypeScript draws the ops,
 * the skip decisions (p 0.5 each), the magnitudes N(m, mstd) clipped to [0, 10] and the random signs;
 * native code applies each op with PIL's arithmetic (native/core/data_ops.cpp rand_augment_op).
 */
import { DataError } from './errors';
import { PLAN } from './plan';
import type { KeyedRng } from './rng';

/** Native op ids (RaOp in data_ops.h). */
const OP_ID: Record<string, number> = {
  AutoContrast: 0, Equalize: 1, Invert: 2, Rotate: 3, Posterize: 4, Solarize: 5, SolarizeAdd: 6, Color: 7, Contrast: 8,
  Brightness: 9, Sharpness: 10, ShearX: 11, ShearY: 12, TranslateXRel: 13, TranslateYRel: 14,
};

export interface RandAugmentSpec {
  config: string;
  numLayers: number;
  magnitude: number;
  magnitudeStd: number;
  increasing: boolean;
  prob: number;
}

/** Parses timm's config string: rand-m9-n2-mstd0.5-inc1 (keys m, n, mstd, inc; w is not supported). */
export function parseRandAugment(config: string): RandAugmentSpec {
  const parts = config.split('-');
  if (parts[0] !== 'rand') throw new DataError(`autoAugment '${config}': only RandAugment ('rand-m9-mstd0.5-inc1' style) is supported`);
  const spec: RandAugmentSpec = { config, numLayers: 2, magnitude: 10, magnitudeStd: 0, increasing: false, prob: 0.5 };
  for (const c of parts.slice(1)) {
    const m = /^([a-z]+)(\d.*)$/.exec(c);
    if (!m) throw new DataError(`autoAugment '${config}': cannot parse '${c}'`);
    const [, key, val] = m;
    const v = Number(val);
    if (!Number.isFinite(v)) throw new DataError(`autoAugment '${config}': '${c}' needs a number`);
    if (key === 'm') spec.magnitude = Math.trunc(v);
    else if (key === 'n') spec.numLayers = Math.trunc(v);
    else if (key === 'mstd') spec.magnitudeStd = v;
    else if (key === 'inc') spec.increasing = v !== 0;
    else throw new DataError(`autoAugment '${config}': unknown key '${key}' (m, n, mstd, inc)`);
  }
  if (spec.numLayers < 0 || spec.numLayers > PLAN.raMaxOps) throw new DataError(`autoAugment '${config}': n must be 0..${PLAN.raMaxOps}`);
  return spec;
}

const INCREASING = ['AutoContrast', 'Equalize', 'Invert', 'Rotate', 'PosterizeIncreasing', 'SolarizeIncreasing', 'SolarizeAdd', 'ColorIncreasing', 'ContrastIncreasing', 'BrightnessIncreasing', 'SharpnessIncreasing', 'ShearX', 'ShearY', 'TranslateXRel', 'TranslateYRel'];
const DEFAULT = ['AutoContrast', 'Equalize', 'Invert', 'Rotate', 'Posterize', 'Solarize', 'SolarizeAdd', 'Color', 'Contrast', 'Brightness', 'Sharpness', 'ShearX', 'ShearY', 'TranslateXRel', 'TranslateYRel'];

const negate = (v: number, rng: KeyedRng): number => (rng.random() > 0.5 ? -v : v);

/** timm's level_to_arg functions (_MAX_LEVEL 10, translate_pct 0.45). */
function levelArg(name: string, m: number, rng: KeyedRng): number {
  switch (name) {
    case 'Rotate': return negate((m / 10) * 30, rng);
    case 'Posterize': return Math.trunc((m / 10) * 4);
    case 'PosterizeIncreasing': return 4 - Math.trunc((m / 10) * 4);
    case 'Solarize': return Math.trunc((m / 10) * 256);
    case 'SolarizeIncreasing': return 256 - Math.trunc((m / 10) * 256);
    case 'SolarizeAdd': return Math.trunc((m / 10) * 110);
    case 'Color': case 'Contrast': case 'Brightness': case 'Sharpness': return (m / 10) * 1.8 + 0.1;
    case 'ColorIncreasing': case 'ContrastIncreasing': case 'BrightnessIncreasing': case 'SharpnessIncreasing': return 1.0 + negate((m / 10) * 0.9, rng);
    case 'ShearX': case 'ShearY': return negate((m / 10) * 0.3, rng);
    case 'TranslateXRel': case 'TranslateYRel': return negate((m / 10) * 0.45, rng);
    default: return 0;
  }
}

/** Writes the RandAugment part of one plan row. */
export function drawRandAugment(spec: RandAugmentSpec, rng: KeyedRng, row: Float64Array): void {
  const names = spec.increasing ? INCREASING : DEFAULT;
  // np.random.choice(ops, n, replace=True), then each op in order.
  const chosen = Array.from({ length: spec.numLayers }, () => names[Math.min(names.length - 1, Math.floor(rng.random() * names.length))]);
  row[PLAN.raCount] = spec.numLayers;
  chosen.forEach((name, k) => {
    let id = -1;
    let arg = 0;
    if (!(spec.prob < 1 && rng.random() > spec.prob)) {
      let m = spec.magnitude;
      if (spec.magnitudeStd > 0) m = m + spec.magnitudeStd * rng.normal();
      m = Math.min(10, Math.max(0, m));
      arg = levelArg(name, m, rng);
      id = OP_ID[name.replace('Increasing', '')];
    }
    row[PLAN.raOps + 2 * k] = id;
    row[PLAN.raOps + 2 * k + 1] = arg;
  });
}
