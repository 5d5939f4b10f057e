/**
 * Detectors that compare each sample with every training sample, in blocks so that memory stays
 * bounded (1.2M x 1024 training features work with a few hundred MB of scratch):
 *
 * - `cos`: max over training samples of the cosine similarity (per test sample; the reference's
 *   `cosine_similarity` takes the max over the wrong axis, one value per *train* sample). Higher = ID.
 * - `projection`: `cos × ‖x‖²` of that test sample (the reference multiplies by the squared Frobenius
 *   norm of the whole test matrix). On MOOD-normalised features ‖x‖ ≈ 1, so it ranks like `cos`;
 *   with `normalize: false` the norm matters. Higher = ID.
 * - `knn` (Sun et al. 2022): distance to the k-th nearest training sample (Euclidean, on the normalised
 *   features). Higher = OOD. (OpenOOD reports its negative.)
 *
 * Arithmetic follows the training features' dtype: float32 features are compared in float32 (as
 * sklearn and faiss do), float64 in float64.
 */
import { Tensor } from '../../tensor';
import { tidy } from '../../scope';
import type { Orientation } from '../evaluation/types';
import { FeatureDetector, type FeatureOptions } from './base';
import { unitNormalize, type CheckedMatrix } from './matrix';

export interface BlockOptions {
  /** At most this many bytes of scratch for one (test block x train block) product tile (tiles are 512 x 8192 at most); default 256 MiB. */
  blockBytes?: number;
}

/**
 * Tiles of the test·trainᵀ product: 512 test rows by at most 8192 train rows (16 MiB of float32, so a
 * tile is still in cache when it is scanned), fewer train rows if `budget` bytes say so.
 */
function blockSizes(nTest: number, nTrain: number, elem: number, budget: number): { bt: number; bn: number } {
  const bt = Math.min(nTest, 512);
  const bn = Math.max(1, Math.min(nTrain, 8192, Math.floor(budget / (bt * elem))));
  return { bt, bn };
}

/**
 * How float32 products are computed. 'auto' (default): large float32 problems are screened with a
 * bfloat16 product where the CPU has AVX512-BF16 and the candidates refined exactly (see
 * native/core/ood_neighbours.cpp `nn_scan`: the result is the exact one); 'bf16' forces the screening, 'off' a
 * float32 product throughout. float64 is never screened.
 */
export type ScreenMode = 'auto' | 'bf16' | 'off';

function nnScan(test: Tensor, train: Tensor, attrs: Record<string, string | number>, budget: number, screen: ScreenMode): Promise<Tensor> {
  const elem = test.dtype === 'float64' ? 8 : 4;
  const { bt, bn } = blockSizes(test.shape[0], train.shape[0], elem, budget);
  const out = Tensor.runOp('nn_scan', [test, train], { ...attrs, row_block: bt, col_block: bn, screen })[0];
  return out.ready().then(() => out);
}

/**
 * Max over train rows of test·trainᵀ, per test row. Both given as tensors of the same dtype; the
 * product is formed tile by tile (about `budget` bytes each) inside one native op, so memory is bounded.
 */
export function maxInnerProduct(test: Tensor, train: Tensor, budget = 256 * 1024 * 1024, screen: ScreenMode = 'auto'): Promise<Tensor> {
  return nnScan(test, train, { mode: 'max_ip' }, budget, screen);
}

export interface CosineOptions extends FeatureOptions, BlockOptions {}

export class CosineDetector extends FeatureDetector {
  readonly name: string = 'cos';
  readonly orientation: Orientation = 'higher_is_id';
  protected readonly blockBytes: number;
  constructor(opts: CosineOptions = {}) {
    super(opts);
    this.blockBytes = opts.blockBytes ?? 256 * 1024 * 1024;
  }
  protected jsonOptions() {
    return { normalize: this.normalize, blockBytes: this.blockBytes };
  }
  protected override usesInputDType(): boolean {
    return true;
  }
  protected async fitFeatures(x: CheckedMatrix): Promise<void> {
    this.setState('train_unit', unitNormalize(x.tensor));
    await this.getState('train_unit').ready();
  }
  protected async maxCos(x: CheckedMatrix): Promise<Tensor> {
    const u = unitNormalize(x.tensor);
    const m = await maxInnerProduct(u, this.getState('train_unit'), this.blockBytes);
    u.dispose();
    return m;
  }
  protected scoreFeatures(x: CheckedMatrix): Promise<Tensor> {
    return this.maxCos(x);
  }
}

export class ProjectionDetector extends CosineDetector {
  override readonly name: string = 'projection';
  protected override async scoreFeatures(x: CheckedMatrix): Promise<Tensor> {
    const m = await this.maxCos(x);
    return tidy(() => m.mul(x.tensor.square().sum(1)));
  }
}

export interface KnnOptions extends FeatureOptions, BlockOptions {
  /** Which neighbour (1 = nearest). Default 50 (Sun et al. / OpenOOD for CIFAR). */
  k?: number;
}

/**
 * Distance to the k-th nearest row of `train` for each row of `test`: the k-th smallest of
 * ‖t‖² − 2x·t over the train rows (kept per row across tiles, selected at the end), plus ‖x‖²,
 * clamped at 0, square-rooted; one native op.
 */
export function kthNearestDistance(test: Tensor, train: Tensor, k: number, budget = 256 * 1024 * 1024, screen: ScreenMode = 'auto'): Promise<Tensor> {
  return nnScan(test, train, { mode: 'knn', k }, budget, screen);
}

export class KnnDetector extends FeatureDetector {
  readonly name: string = 'knn';
  readonly orientation: Orientation = 'higher_is_ood';
  readonly k: number;
  protected readonly blockBytes: number;
  constructor(opts: KnnOptions = {}) {
    super(opts);
    this.k = opts.k ?? 50;
    if (!Number.isInteger(this.k) || this.k < 1) throw new RangeError(`knn: k must be a positive integer, got ${String(opts.k)}`);
    this.blockBytes = opts.blockBytes ?? 256 * 1024 * 1024;
  }
  protected jsonOptions() {
    return { normalize: this.normalize, k: this.k, blockBytes: this.blockBytes };
  }
  protected override usesInputDType(): boolean {
    return true;
  }
  protected async fitFeatures(x: CheckedMatrix): Promise<void> {
    if (x.rows < this.k) throw new RangeError(`knn.fit: k = ${this.k} but only ${x.rows} training samples`);
    this.setState('train', x.tensor.clone());
    await this.getState('train').ready();
  }
  protected scoreFeatures(x: CheckedMatrix): Promise<Tensor> {
    return kthNearestDistance(x.tensor, this.getState('train'), this.k, this.blockBytes);
  }
}
