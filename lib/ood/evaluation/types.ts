/**
 * Shared vocabulary of the OOD evaluation module.
 *
 * Every metric here works on *oriented* scores o, where a larger o means "more OOD-like". Callers pass
 * their raw detector scores plus the detector's orientation, so a similarity score (larger = more ID,
 * e.g. MSP, cosine) is never silently evaluated upside down, which is the bug the official MOOD
 * scripts have for `cos`/`projection`/`gauss`.
 */

/** Which direction of a raw score means what. */
export type Orientation = 'higher_is_ood' | 'higher_is_id';

/** Raw per-sample scores: any finite numbers (typed arrays avoid a copy-of-boxed-values cost). */
export type ScoreArray = ArrayLike<number>;

/** Which class the "positive" of a ROC/PR curve is. */
export type PositiveClass = 'ood' | 'id';

/**
 * FPR at 95 % TPR has three incompatible definitions in the literature; each is named here.
 *
 * - `'id-positive-percentile'` (MOOD / SSD default, `ood_utils.get_fpr`'s correct branch):
 *   `mean(o_ood < np.percentile(o_in, 100*level))` with numpy's linear percentile; the share of OOD
 *   samples that a threshold accepting `level` of ID lets through.
 * - `'roc-id-positive'`: `fpr[argmax(tpr >= level)]` of `roc_curve(is_id, -o, drop_intermediate=False)`.
 *   Same idea as the percentile, but the threshold is an actual score, so it differs when ID scores
 *   tie or the percentile falls between samples.
 * - `'ood-positive'` (OpenOOD v1.5 / pytorch-ood): `fpr[argmax(tpr >= level)]` of
 *   `roc_curve(is_ood, o, drop_intermediate=False)`: the share of ID samples flagged as OOD at the
 *   first threshold (from the top) that detects `level` of the OOD samples.
 */
export type Fpr95Convention = 'id-positive-percentile' | 'roc-id-positive' | 'ood-positive';

/**
 * Area under a precision-recall curve, two conventions:
 * - `'average-precision'`: sklearn `average_precision_score` (step function); MOOD's `get_pr_sklearn`.
 * - `'trapezoid'`: `sklearn.metrics.auc(recall, precision)` over `precision_recall_curve`
 *   (linear interpolation, includes the (recall 0, precision 1) end point); OpenOOD's AUPR.
 */
export type AuprConvention = 'average-precision' | 'trapezoid';

export interface OrientationOption {
  /** Direction of the raw scores; required because guessing it is the classic OOD-evaluation bug. */
  orientation: Orientation;
}

export interface AuprOptions extends OrientationOption {
  /** Default `'average-precision'` (MOOD's convention). */
  convention?: AuprConvention;
}

export interface Fpr95Options extends OrientationOption {
  /** Default `'id-positive-percentile'` (MOOD's convention). */
  convention?: Fpr95Convention;
  /** Target TPR in (0, 1]; default 0.95. */
  tprLevel?: number;
  /**
   * Only for the two ROC conventions: apply sklearn's `drop_intermediate=True` pruning of collinear
   * ROC points before picking the first point with tpr >= level (OpenOOD calls `roc_curve` with the
   * default `True`). It can only change the answer when tied scores make runs of collinear points.
   * Default false.
   */
  dropIntermediate?: boolean;
}

export interface RocCurveOptions extends OrientationOption {
  /** Which class counts as positive; default `'ood'` (the score is then o; for `'id'` it is -o). */
  positive?: PositiveClass;
  /** sklearn's `drop_intermediate`; default false (every distinct threshold kept, for plots). */
  dropIntermediate?: boolean;
}

/** A ROC curve in sklearn's layout: index 0 is the "nothing predicted positive" point. */
export interface RocCurve {
  fpr: Float64Array;
  tpr: Float64Array;
  /**
   * Decreasing thresholds on the curve's score (o for positive 'ood', -o for 'id'); sample i is predicted
   * positive at point k when score_i >= thresholds[k]. thresholds[0] is +Infinity (sklearn >= 1.3;
   * sklearn <= 1.2 wrote max + 1 there).
   */
  thresholds: Float64Array;
}

export interface EvaluateOptions extends OrientationOption {
  fpr95Convention?: Fpr95Convention;
  auprConvention?: AuprConvention;
  /** Target TPR for the FPR metric; default 0.95. */
  tprLevel?: number;
  /** See {@link Fpr95Options.dropIntermediate}. */
  dropIntermediate?: boolean;
}

/** Everything `evaluate` reports, with the conventions that produced each number spelled out. */
export interface EvaluationResult {
  /** ROC AUC with OOD positive on oriented scores (== ID-positive AUC on -o). */
  auroc: number;
  /** Area under the PR curve with ID positive, score -o. */
  aupr_in: number;
  /** Area under the PR curve with OOD positive, score o. */
  aupr_out: number;
  aupr_convention: AuprConvention;
  /** FPR at `tpr_level` TPR in `fpr95_convention`. */
  fpr95: number;
  fpr95_convention: Fpr95Convention;
  tpr_level: number;
  /** min over thresholds of 0.5 (1 - tpr) + 0.5 fpr (symmetric in which class is positive). */
  detection_error: number;
  orientation: Orientation;
  n_in: number;
  n_ood: number;
}
