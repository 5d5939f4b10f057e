/**
 * `mood pretrain` flags (the reference run_beit_pretraining.py's names and defaults) -> PretrainOptions,
 * with a clear error naming the flag for every bad value.
 */
import type { MimOptions } from './model';
import type { PretrainOptions, VaeType } from './run';

/** What commander hands over: strings (or booleans for switches). */
export type RawPretrainFlags = Record<string, string | boolean | string[] | undefined>;

export class FlagError extends Error {}

function flagName(k: string): string {
  return '--' + k.replace(/[A-Z]/g, (c) => '_' + c.toLowerCase());
}

function num(raw: RawPretrainFlags, k: string, dflt: number, check: (v: number) => boolean = Number.isFinite, what = 'a number'): number {
  const v = raw[k];
  if (v === undefined) return dflt;
  const n = Number(v);
  if (typeof v !== 'string' || v.trim() === '' || !Number.isFinite(n) || !check(n)) throw new FlagError(`${flagName(k)}: expected ${what}, got '${String(v)}'`);
  return n;
}

const int = (min: number) => (v: number) => Number.isInteger(v) && v >= min;

/** Pillow filter names of the reference's --train_interpolation / --second_interpolation. */
const INTERPOLATIONS = ['bicubic', 'bilinear', 'lanczos', 'hamming'];

function choice(raw: RawPretrainFlags, k: string, dflt: string, allowed: readonly string[]): string {
  const v = raw[k] ?? dflt;
  if (typeof v !== 'string' || !allowed.includes(v)) throw new FlagError(`${flagName(k)}: expected one of ${allowed.join(', ')}, got '${String(v)}'`);
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
  const inputSize = num(raw, 'inputSize', 224, int(1), 'a positive integer');
  const o: PretrainOptions = {
    model: String(raw.model ?? 'beit_base_patch16_224_8k_vocab'),
    modelOpts,
    dataSet: String(raw.dataSet),
    dataPath: typeof raw.dataPath === 'string' ? raw.dataPath : undefined,
    classIdx: raw.classIdx === undefined ? undefined : num(raw, 'classIdx', 0, int(0), 'a class index >= 0'),
    discreteVaeType: vae as VaeType,
    discreteVaeWeightPath: typeof raw.discreteVaeWeightPath === 'string' ? raw.discreteVaeWeightPath : undefined,
    numMaskPatches: num(raw, 'numMaskPatches', 75, int(1), 'a positive integer'),
    maxMaskPatchesPerBlock: raw.maxMaskPatchesPerBlock === undefined ? null : num(raw, 'maxMaskPatchesPerBlock', 0, int(1), 'a positive integer'),
    minMaskPatchesPerBlock: num(raw, 'minMaskPatchesPerBlock', 16, int(1), 'a positive integer'),
    inputSize,
    secondInputSize: num(raw, 'secondInputSize', 112, int(1), 'a positive integer'),
    trainInterpolation: choice(raw, 'trainInterpolation', 'bicubic', [...INTERPOLATIONS, 'random']),
    secondInterpolation: choice(raw, 'secondInterpolation', 'lanczos', INTERPOLATIONS),
    colorJitter: num(raw, 'colorJitter', 0.4, (v) => v >= 0, 'a number >= 0'),
    batchSize: num(raw, 'batchSize', 64, int(1), 'a positive integer'),
    epochs: num(raw, 'epochs', 300, int(1), 'a positive integer'),
    saveCkptFreq: num(raw, 'saveCkptFreq', 20, int(1), 'a positive integer'),
    lr: num(raw, 'lr', 5e-4, (v) => v > 0, 'a positive number'),
    warmupLr: num(raw, 'warmupLr', 1e-6, (v) => v >= 0, 'a number >= 0'),
    minLr: num(raw, 'minLr', 1e-5, (v) => v >= 0, 'a number >= 0'),
    warmupEpochs: num(raw, 'warmupEpochs', 5, int(0), 'an integer >= 0'),
    warmupSteps: num(raw, 'warmupSteps', -1, Number.isInteger, 'an integer'),
    weightDecay: num(raw, 'weightDecay', 0.05, (v) => v >= 0, 'a number >= 0'),
    weightDecayEnd: raw.weightDecayEnd === undefined ? undefined : num(raw, 'weightDecayEnd', 0, (v) => v >= 0, 'a number >= 0'),
    optBetas: betas,
    optEps: num(raw, 'optEps', 1e-8, (v) => v > 0, 'a positive number'),
    clipGrad: raw.clipGrad === undefined ? undefined : num(raw, 'clipGrad', 0, (v) => v > 0, 'a positive number'),
    layerScaleInitValue: num(raw, 'layerScaleInitValue', 0.1, (v) => v >= 0, 'a number >= 0'),
    // --rel_pos_bias (default on) / --disable_rel_pos_bias as the reference; --shared_rel_pos_bias is the same switch.
    relPosBias: raw.disableRelPosBias ? false : true,
    absPosEmb: Boolean(raw.absPosEmb),
    dropPath: num(raw, 'dropPath', 0.1, (v) => v >= 0 && v < 1, 'a rate in [0, 1)'),
    imagenetDefaultMeanAndStd: Boolean(raw.imagenetDefaultMeanAndStd),
    outputDir: typeof raw.outputDir === 'string' && raw.outputDir !== '' ? raw.outputDir : undefined,
    logDir: typeof raw.logDir === 'string' && raw.logDir !== '' ? raw.logDir : undefined,
    seed: num(raw, 'seed', 0, int(0), 'an integer >= 0'),
    resume: typeof raw.resume === 'string' && raw.resume !== '' ? raw.resume : undefined,
    autoResume: raw.autoResume !== false,
    startEpoch: num(raw, 'startEpoch', 0, int(0), 'an integer >= 0'),
    numWorkers: raw.numWorkers === undefined ? undefined : num(raw, 'numWorkers', 1, int(1), 'a positive integer'),
    device: String(raw.device ?? 'cpu'),
    maxSteps: num(raw, 'maxSteps', 0, int(0), 'an integer >= 0'),
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
