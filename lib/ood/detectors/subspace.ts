/**
 * Detectors that use the classification head (weight W: C x D, bias b: C) on RAW features (no
 * normalisation by default: the head was trained on raw features), float64:
 *
 * - `vim` (Wang et al. 2022, as OpenOOD): origin u = −pinv(W)·b; principal space = the `dim` leading
 *   eigenvectors of the uncentred covariance of (x − u) over the training set; residual
 *   r(x) = ‖(x − u) projected on the rest‖; α = mean_train(max logit) / mean_train(r);
 *   score = logsumexp(logits) − α·r(x). Higher = ID.
 * - `residual`: r(x) alone. Higher = OOD.
 * - `react` (Sun et al. 2021) + energy: features clipped at the `percentile` (default 90, numpy's
 *   linear percentile over all training activations), logits = clip(x)·Wᵀ + b,
 *   score = −T·logsumexp(logits / T) (as `energy`). Higher = OOD.
 *
 * `dim` default: 1000 for D ≥ 2048, 512 for D ≥ 768, else ⌊D/2⌋. pinv(W) uses numpy's cutoff; a
 * rank-deficient head (e.g. softmax rows summing to zero) makes the origin u numerically arbitrary here
 * as in OpenOOD.
 */
import { Tensor } from '../../tensor';
import { tidy } from '../../scope';
import { eigh, pinv } from '../../linalg';
import type { Orientation } from '../evaluation/types';
import { NUMPY_PINV_RCOND, gram } from './covariance';
import { FeatureDetector, type DetectorNeeds, type FitInput } from './base';
import { DetectorInputError, matrixToArray, type CheckedMatrix, type MatrixInput } from './matrix';

export interface HeadOptions {
  /** Head weight, C x D. */
  weight?: MatrixInput;
  /** Head bias, C values (default zeros). */
  bias?: ArrayLike<number> | Float64Array | Float32Array;
  /** Apply MOOD's normalisation first; default false (the head expects raw features). */
  normalize?: boolean;
}

export interface VimOptions extends HeadOptions {
  /** Dimension of the principal space. */
  dim?: number;
}

export interface ReactOptions extends HeadOptions {
  /** Clipping percentile of the training activations; default 90. */
  percentile?: number;
  /** Energy temperature; default 1. */
  temperature?: number;
}

export function defaultVimDim(d: number): number {
  return d >= 2048 ? 1000 : d >= 768 ? 512 : Math.floor(d / 2);
}

abstract class HeadDetector extends FeatureDetector {
  protected readonly head: HeadOptions;
  constructor(opts: HeadOptions) {
    super(opts, false);
    this.head = opts;
  }
  /** Loads W and b into the fitted state (checked against the feature dimension). */
  protected async loadHead(d: number): Promise<void> {
    const caller = `${this.name}.fit`;
    if (this.head.weight === undefined) throw new DetectorInputError(`${caller}: '${this.name}' needs the head weight (option weight, C x D)`);
    const w = await matrixToArray(this.head.weight, 'weight', caller);
    if (w.cols !== d) throw new DetectorInputError(`${caller}: head weight is ${w.rows} x ${w.cols} but features are ${d}-D`);
    const b = this.head.bias === undefined ? new Float64Array(w.rows) : Float64Array.from(this.head.bias as ArrayLike<number>);
    if (b.length !== w.rows) throw new DetectorInputError(`${caller}: head bias has ${b.length} values for ${w.rows} classes`);
    for (let i = 0; i < b.length; i++) if (!Number.isFinite(b[i])) throw new DetectorInputError(`${caller}: head bias[${i}] is ${b[i]}; must be finite`);
    this.setState('weight', Tensor.fromArray(Float64Array.from(w.data), [w.rows, w.cols], { dtype: 'float64' }));
    this.setState('bias', Tensor.fromArray(b, [b.length], { dtype: 'float64' }));
  }
  protected logits(x: Tensor): Tensor {
    return tidy(() => x.matmul(this.getState('weight').T).add(this.getState('bias')));
  }
}

export class VimDetector extends HeadDetector {
  readonly name: string = 'vim';
  readonly orientation: Orientation = 'higher_is_id';
  readonly dimOption?: number;
  constructor(opts: VimOptions = {}) {
    super(opts);
    this.dimOption = opts.dim;
  }
  protected jsonOptions() {
    const o: Record<string, number | boolean> = { normalize: this.normalize };
    if (this.dimOption !== undefined) o.dim = this.dimOption;
    return o;
  }
  protected async fitFeatures(x: CheckedMatrix): Promise<void> {
    const d = x.cols;
    const dim = this.dimOption ?? defaultVimDim(d);
    if (!Number.isInteger(dim) || dim < 1 || dim >= d) throw new RangeError(`${this.name}.fit: dim must be an integer in [1, ${d - 1}], got ${String(dim)}`);
    await this.loadHead(d);
    const W = this.getState('weight');
    const b = this.getState('bias');
    const u = tidy(() => pinv(W, { rcond: NUMPY_PINV_RCOND }).matmul(b.unsqueeze(1)).reshape([1, d]).neg());
    this.setState('origin', u);
    const ns = tidy(() => {
      const xc = x.tensor.sub(u);
      const cov = gram(xc).div(x.rows);
      const { eigenvectors } = eigh(cov); // ascending eigenvalues
      return eigenvectors.slice(1, 0, d - dim).contiguous(); // D x (D - dim): the non-principal space
    });
    this.setState('null_space', ns);
    this.values.dim = d;
    this.values.principal_dim = dim;
    const [maxLogitMean, resMean] = await Promise.all([
      tidy(() => this.logits(x.tensor).max(1).mean()).item(),
      tidy(() => this.residual(x.tensor).mean()).item(),
    ]);
    this.values.alpha = maxLogitMean / resMean;
  }
  protected residual(x: Tensor): Tensor {
    return tidy(() => x.sub(this.getState('origin')).matmul(this.getState('null_space')).norm(2, 1));
  }
  protected async scoreFeatures(x: CheckedMatrix): Promise<Tensor> {
    return tidy(() => this.logits(x.tensor).logsumexp(1).sub(this.residual(x.tensor).mul(this.values.alpha as number)));
  }
}

export class ResidualDetector extends VimDetector {
  override readonly name: string = 'residual';
  override readonly orientation: Orientation = 'higher_is_ood';
  protected override async scoreFeatures(x: CheckedMatrix): Promise<Tensor> {
    return this.residual(x.tensor);
  }
}

/** numpy's default (linear) percentile of all values of a tensor. */
export async function percentileOf(t: Tensor, q: number): Promise<number> {
  const flat = t.reshape([-1]);
  const n = flat.shape[0];
  const h = (n - 1) * (q / 100);
  const lo = Math.floor(h);
  const hi = Math.min(n - 1, lo + 1);
  const sorted = flat.sort().values;
  const [a, b] = await Promise.all([sorted.select(0, lo).item(), sorted.select(0, hi).item()]);
  flat.dispose();
  sorted.dispose();
  // numpy's _lerp: a + (b - a) * t, evaluated from the upper end when t >= 0.5.
  const frac = h - lo;
  const diff = b - a;
  return frac >= 0.5 ? b - diff * (1 - frac) : a + diff * frac;
}

export class ReactDetector extends HeadDetector {
  readonly name: string = 'react';
  readonly orientation: Orientation = 'higher_is_ood';
  override readonly needs: DetectorNeeds = { trainFeatures: true, trainLabels: false, features: true, logits: false };
  readonly percentile: number;
  readonly temperature: number;
  constructor(opts: ReactOptions = {}) {
    super(opts);
    this.percentile = opts.percentile ?? 90;
    this.temperature = opts.temperature ?? 1;
    if (!(this.percentile >= 0 && this.percentile <= 100)) throw new RangeError(`react: percentile must be in [0, 100], got ${String(opts.percentile)}`);
    if (!(Number.isFinite(this.temperature) && this.temperature > 0)) throw new RangeError(`react: temperature must be a finite positive number, got ${String(opts.temperature)}`);
  }
  protected jsonOptions() {
    return { normalize: this.normalize, percentile: this.percentile, temperature: this.temperature };
  }
  protected async fitFeatures(x: CheckedMatrix, _l: Int32Array | undefined, _t: FitInput): Promise<void> {
    await this.loadHead(x.cols);
    this.values.threshold = await percentileOf(x.tensor, this.percentile);
  }
  protected async scoreFeatures(x: CheckedMatrix): Promise<Tensor> {
    const t = this.temperature;
    return tidy(() => this.logits(x.tensor.clamp(undefined, this.values.threshold as number)).div(t).logsumexp(1).mul(-t));
  }
}
