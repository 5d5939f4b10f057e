/** TensorBoard event files (the reference's --log_dir): a scalar writer and the reference's logger. */
export { TensorBoardWriter } from './writer';
export type { TensorBoardWriterOptions } from './writer';
export { TensorBoardLogger, optimizerScalars, logFinetuneStep, logFinetuneEpoch, logPretrainStep } from './logger';
export type { MaybeScalar, TrainStepScalars } from './logger';
export { encodeEvent, tfRecord, maskedCrc32c } from './record';
