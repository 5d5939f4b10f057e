/**
 * Fine-tuning: the reference recipe (run_class_finetuning.py) as a TypeScript API over one native
 * call per micro-step. See docs/finetune.md.
 */
export { Trainer, TrainingDivergedError, evaluateModel, scoreBatch, stepSeed } from './trainer';
export type { TrainerOptions, FitResult, Classifier } from './trainer';
export { FinetuneStep, countParameters } from './step';
export type { TrainStep, MicroStep, StepResult } from './step';
export { progressSink, logTxtSink, standardSinks } from './sinks';
export type { TrainingSink, StepEvent, MicroEvent, EvalStats, EpochLog, EpochStart, ResumeEvent } from './sinks';
export { FinetuneOptimizer } from './optimizer';
export type { OptimizerOptions, StepOutput } from './optimizer';
export { parameterGroups, layerIdForVit, layerScales, skipList } from './param-groups';
export type { ParamGroupSpec, ParamGroupOptions } from './param-groups';
export { cosineScheduler, linspace } from './schedule';
export type { CosineScheduleOptions } from './schedule';
export { saveTrainCheckpoint, loadTrainCheckpoint, latestCheckpoint, checkpointPath, finetuneOptimizerState, stateDictValue } from './checkpoint';
export type { ResumeInfo, SaveTrainCheckpointParts, TrainableModel, OptimizerState } from './checkpoint';
export { finetune, validateFinetuneOptions, checkWritableDir, modelOverrides, FINETUNE_DEFAULTS, FinetuneOptionsError } from './finetune';
export type { FinetuneOptions, FinetuneResult } from './finetune';
