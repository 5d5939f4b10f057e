/**
 * Masked image modeling pre-training (BEiT / MOOD's run_beit_pretraining.py). See docs/pretrain.md.
 */
export { MaskingGenerator, batchMasks } from './masking';
export type { MaskingOptions } from './masking';
export { planRng } from './rng';
export type { Rng } from './rng';
export { MimModel, mimConfig, mimConfigNames } from './model';
export type { MimOptions, ResolvedMimOptions, StepOptions, StepStats } from './model';
export { runPretrain, latestCheckpoint, modelOptions, PretrainError } from './run';
export { MimStep, mimOptimizerState } from './step';
export type { MimStepOptions } from './step';
export type { PretrainOptions, PretrainResult, EpochStats, VaeType } from './run';
export { parsePretrainFlags, FlagError } from './options';
export { pretrain, defaultMasking } from './beit-init';
export type { PretrainBeitOptions } from './beit-init';
