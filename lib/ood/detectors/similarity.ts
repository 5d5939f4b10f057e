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
  /** Bytes of scratch for one (test block x train block) similarity matrix; default 256 MiB. */
  blockBytes?: number;
}

function blockSizes(nTest: number, nTrain: number, elem: number, budget: number): { bt: number; bn: number } {
  const bt = Math.min(nTest, 4096);
  const bn = Math.max(1, Math.min(nTrain, Math.floor(budget / (bt * elem))));
  return { bt, bn };
}

/**
 * Max over train rows of test·trainᵀ, per test row. Both given as tensors of the same dtype; the
 * train matrix is walked in blocks and the work for each block is awaited, so memory is bounded.
 */
export async function maxInnerProduct(test: Tensor, train: Tensor, budget = 256 * 1024 * 1024): Promise<Tensor> {
  const [nt] = test.shape;
  const [nn] = train.shape;
  const elem = test.dtype === 'float64' ? 8 : 4;
  const { bt, bn } = blockSizes(nt, nn, elem, budget);
  const parts: Tensor[] = [];
  for (let s = 0; s < nt; s += bt) {
    let best: Tensor | null = null;
    const tb = bt >= nt ? test : test.slice(0, s, Math.min(nt, s + bt));
    for (let j = 0; j < nn; j += bn) {
      const blockMax = tidy(() => {
        const nb = bn >= nn ? train : train.slice(0, j, Math.min(nn, j + bn));
        return tb.matmul(nb.T).max(1);
      });
      if (best) {
        const nbst: Tensor = best.maximum(blockMax);
        best.dispose();
        blockMax.dispose();
        best = nbst;
      } else best = blockMax;
      await best.ready();
    }
    if (tb !== test) tb.dispose();
    parts.push(best!);
  }
  if (parts.length === 1) return parts[0];
  const out = Tensor.cat(parts, 0);
  for (const p of parts) p.dispose();
  return out;
}

export interface CosineOptions extends FeatureOptions, BlockOptions {}

export class CosineDetector extends FeatureDetector {
  readonly name: string = 'cos';
  readonly orientation: Orientation = 'higher_is_id';
  protected readonly normalize: boolean;
  protected readonly blockBytes: number;
  constructor(opts: CosineOptions = {}) {
    super();
    this.normalize = opts.normalize ?? true;
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
 * Distance to the k-th nearest row of `train` for each row of `test`: ‖x‖² + ‖t‖² − 2x·t, the k
 * smallest kept per block (top-k merge), clamped at 0, square-rooted.
 */
export async function kthNearestDistance(test: Tensor, train: Tensor, k: number, budget = 256 * 1024 * 1024): Promise<Tensor> {
  const [nt] = test.shape;
  const [nn] = train.shape;
  const elem = test.dtype === 'float64' ? 8 : 4;
  const { bt, bn: bn0 } = blockSizes(nt, nn, elem, budget);
  const bn = Math.max(bn0, Math.min(nn, k));
  const tn2 = train.square().sum(1).unsqueeze(0); // 1 x N
  const parts: Tensor[] = [];
  for (let s = 0; s < nt; s += bt) {
    const tb = bt >= nt ? test : test.slice(0, s, Math.min(nt, s + bt));
    let best: Tensor | null = null; // B x k smallest (‖t‖² − 2x·t)
    for (let j = 0; j < nn; j += bn) {
      const cand = tidy(() => {
        const end = Math.min(nn, j + bn);
        const nb = bn >= nn ? train : train.slice(0, j, end);
        const n2 = bn >= nn ? tn2 : tn2.slice(1, j, end);
        const d = n2.sub(tb.matmul(nb.T).mul(2));
        const kk = Math.min(k, end - j);
        const top = d.topk(kk, { dim: 1, largest: false, sorted: false }).values;
        if (!best) return top;
        return Tensor.cat([best, top], 1).topk(Math.min(k, best.shape[1] + kk), { dim: 1, largest: false, sorted: false }).values;
      });
      if (best) best.dispose();
      best = cand;
      await best.ready();
    }
    const dist = tidy(() => {
      const kth = best!.max(1); // the k-th smallest of the k kept
      return kth.add(tb.square().sum(1)).clamp(0).sqrt();
    });
    best!.dispose();
    if (tb !== test) tb.dispose();
    parts.push(dist);
  }
  tn2.dispose();
  if (parts.length === 1) return parts[0];
  const out = Tensor.cat(parts, 0);
  for (const p of parts) p.dispose();
  return out;
}

export class KnnDetector extends FeatureDetector {
  readonly name: string = 'knn';
  readonly orientation: Orientation = 'higher_is_ood';
  protected readonly normalize: boolean;
  readonly k: number;
  protected readonly blockBytes: number;
  constructor(opts: KnnOptions = {}) {
    super();
    this.normalize = opts.normalize ?? true;
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
