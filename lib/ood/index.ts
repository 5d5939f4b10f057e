/**
 * OOD detection: detectors (fit on ID features/logits, score new samples), exact evaluation
 * (AUROC, AUPR-In/Out, FPR@95 in named conventions), logit scores and the multi-class / one-class
 * protocols of the MOOD reference.
 */
export * from './evaluation';
export * as logitScores from './logits';
export { LOGIT_SCORE_ORIENTATION, type LogitScoreName } from './logits';
export * from './detectors';
export * from './protocols';
export * as features from './features';
