/** All OOD evaluation numbers from one sort of the scores. */
import { detectionErrorFromCurve } from './detectionError';
import { fpr95FromPrepared } from './fpr';
import { auprFromCurve } from './precisionRecall';
import { checkTprLevel, prepareScores } from './prepare';
import { aurocFromCurve, idPositiveCurve, oodPositiveCurve } from './roc';
import type { EvaluateOptions, EvaluationResult, ScoreArray } from './types';

/**
 * AUROC, AUPR-In/Out, FPR@`tprLevel` and detection error of ID scores vs OOD scores.
 * Defaults follow MOOD: average-precision AUPR and the ID-percentile FPR95. Every convention used is
 * echoed in the result so numbers from different papers are never compared blindly.
 */
export function evaluate(scoresIn: ScoreArray, scoresOut: ScoreArray, opts: EvaluateOptions): EvaluationResult {
  const p = prepareScores(scoresIn, scoresOut, opts?.orientation, 'evaluate');
  const fpr95Convention = opts.fpr95Convention ?? 'id-positive-percentile';
  const auprConvention = opts.auprConvention ?? 'average-precision';
  const tprLevel = checkTprLevel(opts.tprLevel ?? 0.95, 'evaluate');
  const oodCurve = oodPositiveCurve(p);
  const idCurve = idPositiveCurve(p);
  return {
    auroc: aurocFromCurve(oodCurve),
    aupr_in: auprFromCurve(idCurve, auprConvention),
    aupr_out: auprFromCurve(oodCurve, auprConvention),
    aupr_convention: auprConvention,
    fpr95: fpr95FromPrepared(p, fpr95Convention, tprLevel, opts.dropIntermediate === true, 'evaluate'),
    fpr95_convention: fpr95Convention,
    tpr_level: tprLevel,
    detection_error: detectionErrorFromCurve(oodCurve),
    orientation: p.orientation,
    n_in: p.in.length,
    n_ood: p.ood.length,
  };
}
