/** Which direction of each logit score is more in-distribution (fixture README table). */
import type { Orientation } from '../evaluation/types';

export type LogitScoreName = 'msp' | 'maxlogit' | 'entropy' | 'energy' | 'gradnorm';

export const LOGIT_SCORE_ORIENTATION: Readonly<Record<LogitScoreName, Orientation>> = {
  // Confident predictions: a large max probability / max logit means ID.
  msp: 'higher_is_id',
  maxlogit: 'higher_is_id',
  // A flat softmax (high entropy) means OOD.
  entropy: 'higher_is_ood',
  // Energy = −T·logsumexp: low energy (large logsumexp) means ID.
  energy: 'higher_is_ood',
  // GradNorm: ID samples pull the softmax far from uniform, giving large gradients.
  gradnorm: 'higher_is_id',
};
