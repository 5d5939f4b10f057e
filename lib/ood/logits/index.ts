/** OOD scores from classifier logits: msp, maxlogit, entropy, energy, gradnorm (float64, row-major input). */
export type { FloatMatrixData } from './rows';
export { LOGIT_SCORE_ORIENTATION, type LogitScoreName } from './orientation';
export { msp, maxlogit, entropy, energy } from './softmaxScores';
export { gradnorm } from './gradnorm';
