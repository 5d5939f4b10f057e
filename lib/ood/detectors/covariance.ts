/**
 * Covariance-based detectors, float64 throughout (numpy's np.cov/pinv are float64 even for float32
 * features):
 *
 * - `mahalanobis` (ood_utils.mahalanobis): (x-μ)ᵀ pinv(Σ) (x-μ), μ = train mean, Σ = np.cov(bias=True).
 *   Higher = OOD.
 * - `cc` / `avgcc` (`--cc` / `--avgcc`): per class c its own μ_c and pinv(Σ_c); min (cc) or mean (avgcc)
 *   over classes. Higher = OOD. The reference cannot run this path as shipped (it passes one (N, D)
 *   array where a per-class list is expected); we implement what it means, with labels.
 * - `mds` (Lee et al. 2018): class means, one tied covariance Σ = 1/N Σ_c Σ_{i∈c} (x_i-μ_c)(x_i-μ_c)ᵀ;
 *   score = min_c Mahalanobis distance. Higher = OOD.
 * - `rmds` (Ren et al. 2021, relative Mahalanobis): min_c MD_c(x) − MD_0(x), MD_0 with the background
 *   mean/covariance of all training features. Higher = OOD.
 * - `gauss` (ood_utils.gauss_distribution): k·exp(-½ (x-μ)ᵀ P (x-μ)), P = pinv(Ledoit-Wolf Σ) exactly
 *   as sklearn.covariance.ledoit_wolf, k = 1 / ((2π)^{D/2} ‖P‖_F^{½}) (the reference's constant; a
 *   true density would use det(Σ)^{½}). Higher = ID. Underflows to 0 for large D (as the reference:
 *   D = 768 gives k ~ 3e-307, and D = 1024 overflows Python floats there); `gauss_logp` is its logarithm,
 *   computed directly, with the same ranking and no underflow. Higher = ID.
 *
 * pinv is numpy's (relative cutoff 1e-15 of the largest singular value), through an
 * eigendecomposition since covariances are symmetric.
 */
import { Tensor } from '../../tensor';
import { tidy } from '../../scope';
import { gram as linalgGram, pinv } from '../../linalg';
import type { Orientation } from '../evaluation/types';
import { FeatureDetector, precisionFactor, quadForm, rowBlock, type DetectorNeeds, type FeatureOptions, type ScoreInput } from './base';
import { DetectorInputError, groupByClass, moodNormalize, type CheckedMatrix } from './matrix';

/** numpy.linalg.pinv's default relative cutoff. */
export const NUMPY_PINV_RCOND = 1e-15;

export function pinvSym(a: Tensor): Tensor {
  return pinv(a, { hermitian: true, rcond: NUMPY_PINV_RCOND });
}

/**
 * cᵀc for an N x D matrix, exactly symmetric. numpy computes `a.T @ a` with BLAS syrk (half the
 * flops of a gemm); the native `gram` op calls syrk too (matmul where the BLAS lacks it).
 */
export function gram(c: Tensor): Tensor {
  return linalgGram(c);
}

/** How the rows reach the covariance ops (float64 arithmetic, as np.cov): as they are, or MOOD-normalised on the way. */
export interface RowPrep {
  normalize?: 'mood' | 'none';
  dtype?: 'float32' | 'float64';
}

/**
 * The mean and the Gram matrix of the centred rows, with Σ_k ‖x_k − μ‖⁴ and Σ (x − μ)² (Ledoit-Wolf's
 * β and trace): one native op over row chunks (syrk accumulated per chunk), so no N x D centred (or
 * normalised) copy is made.
 */
function centredGram(x: Tensor, prep: RowPrep = {}): { mean: Tensor; gram: Tensor; beta: Tensor; trace: Tensor } {
  const [mean, g, beta, trace] = Tensor.runOp('centered_gram', [x], { normalize: prep.normalize ?? 'none', dtype: 'float64', eps: 1e-10 });
  return { mean, gram: g, beta, trace };
}

/** np.cov(x.T, bias=True) with the mean it used: centred Gram matrix over N. */
export function biasedCov(x: Tensor, prep: RowPrep = {}): { mean: Tensor; cov: Tensor } {
  const n = x.shape[0];
  const { mean, gram: g, beta, trace } = centredGram(x, prep);
  beta.dispose();
  trace.dispose();
  const cov = g.div(n);
  g.dispose();
  return { mean, cov };
}

/** RowPrep of a prepared matrix (float64 arithmetic, normalised in the ops when it is pending). */
function prepOf(x: CheckedMatrix): RowPrep {
  return { normalize: x.pending ?? 'none', dtype: x.dtype };
}

function indexOf(rows: Int32Array): Tensor {
  return Tensor.fromArray(BigInt64Array.from(rows, (v) => BigInt(v)), [rows.length], { dtype: 'int64' });
}

function needClasses(name: string, classes: number[], min = 2): void {
  if (classes.length < min) {
    throw new DetectorInputError(
      `${name}.fit: needs at least ${min} classes in the training labels, got ${classes.length} (${classes.join(', ')}); with one ID class use 'mahalanobis'`,
    );
  }
}

export interface MahalanobisOptions extends FeatureOptions {}

export class MahalanobisDetector extends FeatureDetector {
  readonly name: string = 'mahalanobis';
  readonly orientation: Orientation = 'higher_is_ood';
  constructor(opts: MahalanobisOptions = {}) {
    super(opts);
  }
  protected jsonOptions() {
    return { normalize: this.normalize };
  }
  protected override normalizesInOps(): boolean {
    return true;
  }
  protected async fitFeatures(x: CheckedMatrix): Promise<void> {
    const { mean, cov } = biasedCov(x.tensor, prepOf(x));
    this.setState('mean', mean);
    this.setState('precision', pinvSym(cov));
    await this.getState('precision').ready();
  }
  protected async scoreFeatures(x: CheckedMatrix): Promise<Tensor> {
    const P = this.getState('precision');
    return quadForm(x.tensor, this.getState('mean'), P, await this.derived('precision_factor', () => precisionFactor(P)), x.pending);
  }
}

export interface ClassConditionalOptions extends FeatureOptions {
  /** 'min' (`--cc`) or 'mean' (`--avgcc`). */
  reduce?: 'min' | 'mean';
}

/** `cc` (min over classes) and `avgcc` (mean over classes), each class with its own covariance. */
export class ClassConditionalMahalanobisDetector extends FeatureDetector {
  readonly name: string;
  readonly orientation: Orientation = 'higher_is_ood';
  override readonly needs: DetectorNeeds = { trainFeatures: true, trainLabels: true, features: true, logits: false };
  readonly reduce: 'min' | 'mean';
  constructor(opts: ClassConditionalOptions = {}) {
    super(opts);
    this.reduce = opts.reduce ?? 'min';
    if (this.reduce !== 'min' && this.reduce !== 'mean') throw new RangeError(`reduce must be 'min' or 'mean', got ${String(this.reduce)}`);
    this.name = this.reduce === 'min' ? 'cc' : 'avgcc';
  }
  protected jsonOptions() {
    return { normalize: this.normalize, reduce: this.reduce };
  }
  protected async fitFeatures(x: CheckedMatrix, labels: Int32Array): Promise<void> {
    const g = groupByClass(labels);
    needClasses(this.name, g.classes);
    const means: Tensor[] = [];
    const precs: Tensor[] = [];
    for (const rows of g.rows) {
      const [m, p] = tidy(() => {
        const xc = x.tensor.indexSelect(0, indexOf(rows));
        const { mean, cov } = biasedCov(xc);
        return [mean, pinvSym(cov)];
      });
      means.push(m);
      precs.push(p);
    }
    this.setState('means', Tensor.cat(means, 0));
    this.setState('precisions', Tensor.stack(precs, 0));
    this.values.classes = g.classes;
    await this.getState('precisions').ready();
  }
  protected async scoreFeatures(x: CheckedMatrix): Promise<Tensor> {
    const means = this.getState('means');
    const precs = this.getState('precisions');
    const k = (this.values.classes as number[]).length;
    const per: Tensor[] = [];
    for (let c = 0; c < k; c++) {
      const mu = means.slice(0, c, c + 1);
      const P = precs.select(0, c);
      per.push(await quadForm(x.tensor, mu, P));
    }
    const all = Tensor.stack(per, 0);
    return this.reduce === 'min' ? all.min(0) : all.mean(0);
  }
}

/** Class means (C x D) and the tied within-class covariance. */
async function tiedClassStats(x: Tensor, labels: Int32Array, name: string): Promise<{ classes: number[]; means: Tensor; cov: Tensor }> {
  const g = groupByClass(labels);
  needClasses(name, g.classes);
  const means = Tensor.cat(g.rows.map((rows) => tidy(() => x.indexSelect(0, indexOf(rows)).mean(0, true))), 0);
  const pos = new Map(g.classes.map((c, i) => [c, i]));
  const lab = Tensor.fromArray(BigInt64Array.from(labels, (v) => BigInt(pos.get(v)!)), [labels.length], { dtype: 'int64' });
  const cov = tidy(() => {
    const c = x.sub(means.indexSelect(0, lab));
    return gram(c).div(x.shape[0]);
  });
  lab.dispose();
  return { classes: g.classes, means, cov };
}

/**
 * min over classes of (x-μ_c)ᵀP(x-μ_c) for a shared P, via the expansion
 * (x-m)ᵀP(x-m) − 2 (x-m)ᵀP(μ_c-m) + (μ_c-m)ᵀP(μ_c-m) around the grand mean m of the class means
 * (centring keeps the cancellation small): N·D² + N·D·C work instead of C·N·D².
 */
async function minClassDistance(x: Tensor, means: Tensor, P: Tensor): Promise<Tensor> {
  const [n, d] = x.shape;
  const block = rowBlock(n, Math.max(d, means.shape[0]), 8 * 3);
  const parts: Tensor[] = [];
  const pre = tidy(() => {
    const m = means.mean(0, true);
    const mc = means.sub(m);
    const pm = mc.matmul(P); // C x D
    const cc = pm.mul(mc).sum(1).unsqueeze(0); // 1 x C
    return { m, pm, cc };
  });
  for (let s = 0; s < n; s += block) {
    const part = tidy(() => {
      const xb = block >= n ? x : x.slice(0, s, Math.min(n, s + block));
      const xc = xb.sub(pre.m);
      const xx = xc.matmul(P).mul(xc).sum(1, true); // B x 1
      const xm = xc.matmul(pre.pm.T); // B x C
      return xx.sub(xm.mul(2)).add(pre.cc).min(1);
    });
    parts.push(part);
    await part.ready();
  }
  for (const t of Object.values(pre)) t.dispose();
  if (parts.length === 1) return parts[0];
  const out = Tensor.cat(parts, 0);
  for (const p of parts) p.dispose();
  return out;
}

export class MdsDetector extends FeatureDetector {
  readonly name: string = 'mds';
  readonly orientation: Orientation = 'higher_is_ood';
  override readonly needs: DetectorNeeds = { trainFeatures: true, trainLabels: true, features: true, logits: false };
  constructor(opts: FeatureOptions = {}) {
    super(opts);
  }
  protected jsonOptions() {
    return { normalize: this.normalize };
  }
  protected async fitFeatures(x: CheckedMatrix, labels: Int32Array): Promise<void> {
    const s = await tiedClassStats(x.tensor, labels, this.name);
    this.setState('means', s.means);
    this.setState('precision', pinvSym(s.cov));
    s.cov.dispose();
    this.values.classes = s.classes;
    await this.getState('precision').ready();
  }
  protected scoreFeatures(x: CheckedMatrix): Promise<Tensor> {
    return minClassDistance(x.tensor, this.getState('means'), this.getState('precision'));
  }
}

export class RmdsDetector extends MdsDetector {
  override readonly name: string = 'rmds';
  protected override async fitFeatures(x: CheckedMatrix, labels: Int32Array): Promise<void> {
    await super.fitFeatures(x, labels);
    const { mean, cov } = biasedCov(x.tensor);
    this.setState('background_mean', mean);
    this.setState('background_precision', pinvSym(cov));
    cov.dispose();
    await this.getState('background_precision').ready();
  }
  protected override async scoreFeatures(x: CheckedMatrix): Promise<Tensor> {
    const md = await super.scoreFeatures(x);
    const P0 = this.getState('background_precision');
    const md0 = await quadForm(x.tensor, this.getState('background_mean'), P0, await this.derived('background_factor', () => precisionFactor(P0)));
    return md.sub(md0);
  }
}

/**
 * sklearn.covariance.ledoit_wolf(X) (assume_centered=False): the shrunk covariance and shrinkage.
 * β uses Σ_ij (X²ᵀX²)_ij = Σ_k ‖x_k‖⁴ (O(N·D) instead of sklearn's O(N·D²) product); δ uses the same
 * centred Gram matrix as the covariance; all three come from one pass of `centered_gram`.
 */
export async function ledoitWolf(x: Tensor, prep: RowPrep = {}): Promise<{ mean: Tensor; cov: Tensor; shrinkage: number }> {
  const [n, d] = x.shape;
  if (d === 1) {
    return tidy(() => {
      const xs = prep.normalize === 'mood' ? moodNormalize(x, prep.dtype) : prep.dtype && prep.dtype !== x.dtype ? x.cast(prep.dtype) : x;
      const mean = xs.mean(0, true);
      return { mean, cov: xs.sub(mean).square().mean().reshape([1, 1]), shrinkage: 0 };
    });
  }
  const { mean, gram: gm, beta: beta_, trace } = centredGram(x, prep);
  const [betaRaw, traceSum, deltaRaw] = await Promise.all([beta_.item(), trace.item(), tidy(() => gm.square().sum()).item()]);
  beta_.dispose();
  trace.dispose();
  // sklearn's arithmetic, step by step.
  const empCovTraceSum = traceSum / n; // Σ emp_cov_trace
  const mu = empCovTraceSum / d;
  const delta_ = deltaRaw / (n * n);
  let beta = (1 / (d * n)) * (betaRaw / n - delta_);
  let delta = delta_ - 2 * mu * empCovTraceSum + d * mu * mu;
  delta /= d;
  beta = Math.min(beta, delta);
  const shrinkage = beta === 0 ? 0 : beta / delta;
  const cov = tidy(() => {
    const emp = gm.div(n);
    const muEmp = mu; // np.trace(emp_cov) / n_features: same value as above up to rounding
    return emp.mul(1 - shrinkage).add(Tensor.eye(d, { dtype: 'float64' }).mul(shrinkage * muEmp));
  });
  gm.dispose();
  return { mean, cov, shrinkage };
}

export interface GaussOptions extends FeatureOptions {
  /** Return log-densities (`gauss_logp`) instead of densities (`gauss`). */
  log?: boolean;
}

export class GaussDetector extends FeatureDetector {
  readonly name: string;
  readonly orientation: Orientation = 'higher_is_id';
  readonly log: boolean;
  constructor(opts: GaussOptions = {}) {
    super(opts);
    this.log = opts.log ?? false;
    this.name = this.log ? 'gauss_logp' : 'gauss';
  }
  protected jsonOptions() {
    return { normalize: this.normalize, log: this.log };
  }
  protected override normalizesInOps(): boolean {
    return true;
  }
  protected async fitFeatures(x: CheckedMatrix): Promise<void> {
    const lw = await ledoitWolf(x.tensor, prepOf(x));
    const P = pinvSym(lw.cov);
    lw.cov.dispose();
    this.setState('mean', lw.mean);
    this.setState('precision', P);
    const fro = await tidy(() => P.norm(2)).item();
    const d = x.cols;
    // log k = -(D/2) log(2π) - ½ log ‖P‖_F   (ood_utils: k = 1 / ((2π)^{D/2} ‖P‖_F^{½}))
    this.values.log_k = -(d / 2) * Math.log(2 * Math.PI) - 0.5 * Math.log(fro);
    this.values.shrinkage = lw.shrinkage;
  }
  protected async scoreFeatures(x: CheckedMatrix): Promise<Tensor> {
    const P = this.getState('precision');
    const m = await quadForm(x.tensor, this.getState('mean'), P, await this.derived('precision_factor', () => precisionFactor(P)), x.pending);
    const logp = m.mul(-0.5).add(this.values.log_k as number);
    m.dispose();
    if (this.log) return logp;
    return logp.exp();
  }
}
