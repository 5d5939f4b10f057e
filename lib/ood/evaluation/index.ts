/**
 * Exact float64 evaluation of OOD detection scores (AUROC, AUPR-In/Out, FPR@95 in three named
 * conventions, detection error), with sklearn's tie semantics, plus the official MOOD numbers as
 * its scripts compute them.
 */
export type {
  AuprConvention,
  AuprOptions,
  EvaluateOptions,
  EvaluationResult,
  Fpr95Convention,
  Fpr95Options,
  Orientation,
  OrientationOption,
  PositiveClass,
  RocCurve,
  RocCurveOptions,
  ScoreArray,
} from './types';
export { prepareScores, type PreparedScores } from './prepare';
export { auroc, rocCurve } from './roc';
export { auprIn, auprOut } from './precisionRecall';
export { fpr95, FPR95_CONVENTIONS } from './fpr';
export { detectionError } from './detectionError';
export { evaluate } from './evaluate';
export { linearQuantileSorted } from './percentile';
export { officialAsCalled, officialIdLabel, type OfficialAsCalledResult, type OfficialIdLabel } from './official';
