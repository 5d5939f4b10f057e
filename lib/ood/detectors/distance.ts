/**
 * Distances to the training mean (ood_utils `euclidean_distance`, `minkowski_distance`,
 * `chebyshev_distance`): ‖x − mean(train)‖ with p = 2, 1 (the reference's "minkowski" is the L1
 * distance) and ∞. Higher = OOD. float64.
 */
import type { Tensor } from '../../tensor';
import type { Orientation } from '../evaluation/types';
import { FeatureDetector, type FeatureOptions } from './base';
import type { CheckedMatrix } from './matrix';

export type MeanDistanceName = 'euclidean' | 'minkowski' | 'chebyshev';
const P: Record<MeanDistanceName, number> = { euclidean: 2, minkowski: 1, chebyshev: Infinity };

abstract class MeanDistanceDetector extends FeatureDetector {
  abstract override readonly name: MeanDistanceName;
  readonly orientation: Orientation = 'higher_is_ood';
  constructor(opts: FeatureOptions = {}) {
    super(opts);
  }
  protected jsonOptions() {
    return { normalize: this.normalize };
  }
  protected async fitFeatures(x: CheckedMatrix): Promise<void> {
    this.setState('mean', x.tensor.mean(0, true));
    await this.getState('mean').ready();
  }
  protected async scoreFeatures(x: CheckedMatrix): Promise<Tensor> {
    const d = x.tensor.sub(this.getState('mean'));
    const out = d.norm(P[this.name], 1);
    d.dispose();
    return out;
  }
}

export class EuclideanDetector extends MeanDistanceDetector {
  readonly name = 'euclidean' as const;
}
export class MinkowskiDetector extends MeanDistanceDetector {
  readonly name = 'minkowski' as const;
}
export class ChebyshevDetector extends MeanDistanceDetector {
  readonly name = 'chebyshev' as const;
}
