/**
 * The official MOOD numbers *as its scripts compute them*, bugs included, so that our scores can be
 * shown to reproduce published logs. Do not use these for new results: use `evaluate`.
 *
 * `ood_utils.get_roc_sklearn` / `get_pr_sklearn` / `get_fpr` receive the raw (unoriented) scores and
 * a label list that is ID=0/OOD=1 everywhere except `eval_with_logits.py --metric softmax|gradnorm`
 * (ID=1/OOD=0). Consequences reproduced here:
 * - similarity scores (cos, projection, gauss) evaluated with ID=0 get AUROC 1 − AUROC and the AUPR of
 *   the wrong tail;
 * - with ID=1, `get_fpr` returns `mean(x_ood > percentile(x_in, 95))` where the 5th percentile is meant,
 *   i.e. the FPR at 5 % TPR (0.028 instead of 0.738 on the fixture's maxlogit).
 */
import { binaryCurve } from './curve';
import { linearQuantileSorted } from './percentile';
import { averagePrecisionFromCurve } from './precisionRecall';
import { prepareScores } from './prepare';
import { aurocFromCurve } from './roc';
import type { ScoreArray } from './types';

/** The label given to ID samples by the official script: 0 (OOD = 1) or 1 (OOD = 0). */
export type OfficialIdLabel = 0 | 1;

export interface OfficialAsCalledResult {
  /** `roc_auc_score(labels, concat(x_in, x_ood))`. */
  auroc: number;
  /** `average_precision_score(labels, concat(x_in, x_ood))`. */
  aupr: number;
  /** `get_fpr(x_in, x_ood, labels)`, including its percentile bug for ID = 1. */
  fpr95: number;
  idLabel: OfficialIdLabel;
}

/** Which ID label the official scripts pass for a metric (eval_with_logits.py L29; eval_with_features.py: always 0). */
export function officialIdLabel(script: 'eval_with_features' | 'eval_with_logits', metric: string): OfficialIdLabel {
  return script === 'eval_with_logits' && (metric === 'softmax' || metric === 'gradnorm') ? 1 : 0;
}

/**
 * Reproduce `get_fpr`, `get_roc_sklearn`, `get_pr_sklearn` on raw scores with the official labels.
 * `scoresIn`/`scoresOut` are the metric's raw values, not oriented.
 */
export function officialAsCalled(
  scoresIn: ScoreArray,
  scoresOut: ScoreArray,
  opts: { idLabel: OfficialIdLabel },
): OfficialAsCalledResult {
  const idLabel = opts?.idLabel;
  if (idLabel !== 0 && idLabel !== 1) {
    throw new TypeError(`officialAsCalled: idLabel must be 0 or 1 (got ${JSON.stringify(idLabel)})`);
  }
  // Raw scores: 'higher_is_ood' orientation is the identity.
  const p = prepareScores(scoresIn, scoresOut, 'higher_is_ood', 'officialAsCalled');
  // sklearn treats label 1 as positive, with the raw score as-is.
  const curve = idLabel === 0 ? binaryCurve(p.ood, p.in) : binaryCurve(p.in, p.ood);
  const threshold = linearQuantileSorted(p.in, 0.95);
  let count = 0;
  const n = p.ood.length;
  for (let k = 0; k < n; k++) {
    const v = p.ood[k];
    if (idLabel === 0 ? v < threshold : v > threshold) count++;
  }
  return {
    auroc: aurocFromCurve(curve),
    aupr: averagePrecisionFromCurve(curve),
    fpr95: count / n,
    idLabel,
  };
}
