/**
 * `mood pretrain` flags (the reference run_beit_pretraining.py's names and defaults) -> PretrainOptions,
 * with a clear error naming the flag for every bad value.
 */
import type { MimOptions } from './model';
import type { PretrainOptions, VaeType } from './run';
import { FlagError, badFlag, intFlag, numFlag, type FlagRange } from '../util/flags';

/** What commander hands over: strings (or booleans for switches). */
export type RawPretrainFlags = Record<string, string | boolean | string[] | undefined>;

export { FlagError };

function flagName(k: string): string {
  return '--' + k.replace(/[A-Z]/g, (c) => '_' + c.toLowerCase());
}

/** raw[k] as an integer within `range`, `dflt` when the flag was not given. */
function intOf(raw: RawPretrainFlags, k: string, dflt: number, range: FlagRange = {}): number {
  return intFlag(flagName(k), raw[k], range) ?? dflt;
}

/** raw[k] as a number within `range`, `dflt` when the flag was not given. */
function numOf(raw: RawPretrainFlags, k: string, dflt: number, range: FlagRange = {}): number {
  return numFlag(flagName(k), raw[k], range) ?? dflt;
}

/** Pillow filter names of the reference's --train_interpolation / --second_interpolation. */
const INTERPOLATIONS = ['bicubic', 'bilinear', 'lanczos', 'hamming'];

function choice(raw: RawPretrainFlags, k: string, dflt: string, allowed: readonly string[]): string {
  const v = raw[k] ?? dflt;
  if (typeof v !== 'string' || !allowed.includes(v)) badFlag(flagName(k), `one of ${allowed.join(', ')}`, v);
  return v;
}

export function parsePretrainFlags(raw: RawPretrainFlags): PretrainOptions {
  const vae = String(raw.discreteVaeType ?? 'dall-e');
  if (!['dall-e', 'customized', 'pixel'].includes(vae)) throw new FlagError(`--discrete_vae_type: expected dall-e, customized or pixel, got '${vae}'`);
  if (!raw.dataSet) throw new FlagError('--data_set is required (e.g. fashion_mnist, cifar10, cifar100)');
  let modelOpts: MimOptions | undefined;
  if (typeof raw.modelOpts === 'string') {
    try {
      modelOpts = JSON.parse(raw.modelOpts) as MimOptions;
    } catch (e) {
      throw new FlagError(`--model_opts: not valid JSON (${(e as Error).message})`);
    }
    if (modelOpts === null || typeof modelOpts !== 'object' || Array.isArray(modelOpts)) throw new FlagError('--model_opts: expected a JSON object of constructor options');
  }
  let betas: [number, number] = [0.9, 0.999];  // run_beit_pretraining.py's --opt_betas default
  if (raw.optBetas !== undefined) {
    const parts = (Array.isArray(raw.optBetas) ? raw.optBetas : String(raw.optBetas).split(/[ ,]+/)).map(Number);
    if (parts.length !== 2 || parts.some((b) => !(b >= 0 && b < 1))) throw new FlagError(`--opt_betas: expected two numbers in [0, 1), got '${String(raw.optBetas)}'`);
    betas = [parts[0], parts[1]];
  }
  const opt = String(raw.opt ?? 'adamw');
  if (opt !== 'adamw') throw new FlagError(`--opt: only adamw is supported (the reference default), got '${opt}'`);
  const inputSize = intOf(raw, 'inputSize', 224, { min: 1 });
  const o: PretrainOptions = {
    model: String(raw.model ?? 'beit_base_patch16_224_8k_vocab'),
    modelOpts,
    dataSet: String(raw.dataSet),
    dataPath: typeof raw.dataPath === 'string' ? raw.dataPath : undefined,
    classIdx: raw.classIdx === undefined ? undefined : intOf(raw, 'classIdx', 0, { min: 0 }),
    discreteVaeType: vae as VaeType,
    discreteVaeWeightPath: typeof raw.discreteVaeWeightPath === 'string' ? raw.discreteVaeWeightPath : undefined,
    numMaskPatches: intOf(raw, 'numMaskPatches', 75, { min: 1 }),
    maxMaskPatchesPerBlock: raw.maxMaskPatchesPerBlock === undefined ? null : intOf(raw, 'maxMaskPatchesPerBlock', 0, { min: 1 }),
    minMaskPatchesPerBlock: intOf(raw, 'minMaskPatchesPerBlock', 16, { min: 1 }),
    inputSize,
    secondInputSize: intOf(raw, 'secondInputSize', 112, { min: 1 }),
    trainInterpolation: choice(raw, 'trainInterpolation', 'bicubic', [...INTERPOLATIONS, 'random']),
    secondInterpolation: choice(raw, 'secondInterpolation', 'lanczos', INTERPOLATIONS),
    colorJitter: numOf(raw, 'colorJitter', 0.4, { min: 0 }),
    batchSize: intOf(raw, 'batchSize', 64, { min: 1 }),
    epochs: intOf(raw, 'epochs', 300, { min: 1 }),
    saveCkptFreq: intOf(raw, 'saveCkptFreq', 20, { min: 1 }),
    lr: numOf(raw, 'lr', 5e-4, { min: 0, minOpen: true }),
    warmupLr: numOf(raw, 'warmupLr', 1e-6, { min: 0 }),
    minLr: numOf(raw, 'minLr', 1e-5, { min: 0 }),
    warmupEpochs: intOf(raw, 'warmupEpochs', 5, { min: 0 }),
    warmupSteps: intOf(raw, 'warmupSteps', -1),
    weightDecay: numOf(raw, 'weightDecay', 0.05, { min: 0 }),
    weightDecayEnd: raw.weightDecayEnd === undefined ? undefined : numOf(raw, 'weightDecayEnd', 0, { min: 0 }),
    optBetas: betas,
    optEps: numOf(raw, 'optEps', 1e-8, { min: 0, minOpen: true }),
    clipGrad: raw.clipGrad === undefined ? undefined : numOf(raw, 'clipGrad', 0, { min: 0, minOpen: true }),
    layerScaleInitValue: numOf(raw, 'layerScaleInitValue', 0.1, { min: 0 }),
    // --rel_pos_bias (default on) / --disable_rel_pos_bias as the reference; --shared_rel_pos_bias is the same switch.
    relPosBias: raw.disableRelPosBias ? false : true,
    absPosEmb: Boolean(raw.absPosEmb),
    dropPath: numOf(raw, 'dropPath', 0.1, { min: 0, max: 1, maxOpen: true }),
    imagenetDefaultMeanAndStd: Boolean(raw.imagenetDefaultMeanAndStd),
    outputDir: typeof raw.outputDir === 'string' && raw.outputDir !== '' ? raw.outputDir : undefined,
    logDir: typeof raw.logDir === 'string' && raw.logDir !== '' ? raw.logDir : undefined,
    seed: intOf(raw, 'seed', 0, { min: 0 }),
    resume: typeof raw.resume === 'string' && raw.resume !== '' ? raw.resume : undefined,
    autoResume: raw.autoResume !== false,
    startEpoch: intOf(raw, 'startEpoch', 0, { min: 0 }),
    numWorkers: raw.numWorkers === undefined ? undefined : intOf(raw, 'numWorkers', 1, { min: 1 }),
    device: String(raw.device ?? 'cpu'),
    maxSteps: intOf(raw, 'maxSteps', 0, { min: 0 }),
    quiet: Boolean(raw.quiet),
  };
  if (o.modelOpts?.img_size !== undefined && o.modelOpts.img_size !== inputSize) {
    throw new FlagError(`--model_opts img_size ${o.modelOpts.img_size} contradicts --input_size ${inputSize}`);
  }
  if (o.discreteVaeType !== 'pixel' && !o.discreteVaeWeightPath) {
    throw new FlagError(`--discrete_vae_type ${o.discreteVaeType} needs --discrete_vae_weight_path (the tokenizer weights), or use --discrete_vae_type pixel`);
  }
  return o;
}
