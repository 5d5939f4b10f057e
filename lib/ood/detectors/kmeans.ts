/**
 * `kmeans` (ood_utils.kmeans): distance to the nearest of k cluster centres fitted on the training
 * features. Higher = OOD.
 *
 * The fit is sklearn's KMeans algorithm ("lloyd"): k-means++ initialisation with 2 + ⌊ln k⌋ local
 * trials, n_init restarts keeping the lowest inertia, tolerance `tol × mean feature variance` on the
 * squared centre shift, empty clusters relocated to the farthest points, data centred on its mean.
 * It is **seeded** (the reference is not) with our own generator, so the centres are not sklearn's bit
 * for bit; the inertia is comparable. `KMeansDetector.fromCentres` scores with given centres (e.g.
 * sklearn's `cluster_centers_`), exactly like `KMeans.transform(x).min(1)`.
 * k defaults to the number of distinct training labels (the reference passes the number of ID classes).
 */
import { Tensor } from '../../tensor';
import { tidy } from '../../scope';
import { KeyedRng } from '../../data/rng';
import type { Orientation } from '../evaluation/types';
import { FeatureDetector, type FeatureOptions, type FitInput } from './base';
import { DetectorInputError, toLabels, toMatrix, type CheckedMatrix, type MatrixInput } from './matrix';

export interface KMeansOptions extends FeatureOptions {
  /** Number of clusters; default = number of distinct training labels. */
  k?: number;
  /** Restarts (sklearn < 1.4 default and the reference: 10). */
  nInit?: number;
  /** Lloyd iterations per restart (sklearn default 300; the reference asks 100000, convergence stops it first). */
  maxIter?: number;
  /** Relative tolerance on the squared centre shift (sklearn 1e-4). */
  tol?: number;
  /** Seed of the initialisation; default 0. */
  seed?: number;
}

/** KeyedRng stream id of k-means++ draws (lib/data/plan.ts uses 1 and 2 + 16 * rank, masks 3). */
const STREAM_KMEANS = 4;

/**
 * The k-means++ draws: lib/data's KeyedRng (the project's one seeded generator) keyed (seed, 0, 0) on
 * a stream of its own; uniform doubles in [0, 1) with 53 random bits.
 */
export function seededRandom(seed: number): { next(): number; int(n: number): number } {
  const rng = new KeyedRng(seed, 0, 0, STREAM_KMEANS);
  return { next: () => rng.random(), int: (n: number) => rng.randint(0, n - 1) };
}

/**
 * sklearn's _kmeans_plusplus (2 + ⌊ln k⌋ local trials) for `runs` initialisations side by side, as
 * one native op (`kmeans_plusplus`) fed with this generator's draws in the order the algorithm
 * consumes them, one run after the other. Returns the initial centres (runs x k x D).
 */
function kmeansPlusPlus(x: Tensor, xn2: Tensor, k: number, runs: number, rnd: ReturnType<typeof seededRandom>): Tensor {
  const trials = 2 + Math.floor(Math.log(k));
  const u = new Float64Array(runs * (1 + (k - 1) * trials));
  for (let i = 0; i < u.length; i++) u[i] = rnd.next();
  return tidy(() => {
    const ids = Tensor.runOp('kmeans_plusplus', [x, xn2, Tensor.fromArray(u, [u.length], { dtype: 'float64' })], { k, runs })[0];
    return x.indexSelect(0, ids.reshape([runs * k])).reshape([runs, k, x.shape[1]]);
  });
}

export interface KMeansResult {
  centres: Tensor;
  inertia: number;
  iterations: number;
}

/**
 * Lloyd's algorithm from each of the initial centre sets `init` (runs x k x D) with sklearn's
 * stopping rules, as one native op (`kmeans_lloyd` in native/core/ood_kmeans.cpp: E-step ‖x‖² + ‖c‖² − 2x·c
 * in the data dtype, first minimum; centre sums in float64; empty clusters relocated to the farthest
 * points; strict convergence or squared centre shift <= tolAbs; inertia of the final centres): no JS
 * round trip per iteration, and one pass over x per iteration serves every run not yet converged,
 * each run following its own trajectory. Returns the run of lowest inertia (the first of equals).
 */
async function lloydBest(x: Tensor, xn2: Tensor, init: Tensor, maxIter: number, tolAbs: number): Promise<KMeansResult> {
  const [centres, inertiaT, itT] = Tensor.runOp('kmeans_lloyd', [x, xn2, init], { max_iter: maxIter, tol: tolAbs });
  const [inertias, iters] = await Promise.all([inertiaT.data(), itT.data()]);
  inertiaT.dispose();
  itT.dispose();
  let best = 0;
  for (let r = 1; r < inertias.length; r++) if ((inertias[r] as number) < (inertias[best] as number)) best = r;
  const c = tidy(() => centres.select(0, best).clone());
  centres.dispose();
  return { centres: c, inertia: inertias[best] as number, iterations: Number(iters[best]) };
}

/**
 * k-means on the rows of x (float32 or float64): the best of `nInit` seeded k-means++ runs.
 * `normalize: 'mood'` fits the MOOD-normalised rows (normalised on the way, no copy of x first).
 */
export async function kmeansFit(
  x: Tensor,
  k: number,
  opts: { nInit?: number; maxIter?: number; tol?: number; seed?: number; normalize?: 'mood' | 'none' } = {},
): Promise<KMeansResult> {
  const [n] = x.shape;
  if (!Number.isInteger(k) || k < 1) throw new RangeError(`kmeans: k must be a positive integer, got ${String(k)}`);
  if (n < k) throw new DetectorInputError(`kmeans: ${n} samples for k = ${k} clusters`);
  const nInit = opts.nInit ?? 10;
  if (!Number.isInteger(nInit) || nInit < 1) throw new RangeError(`kmeans: nInit must be a positive integer, got ${String(nInit)}`);
  const maxIter = opts.maxIter ?? 300;
  const tol = opts.tol ?? 1e-4;
  const rnd = seededRandom(opts.seed ?? 0);
  // The rows normalised and centred (sklearn centres the data for precision), their squared norms,
  // the mean and sklearn's tolerance scale (mean over features of the variance), in one native op.
  const [xc, xn2, mean, varT] = Tensor.runOp('kmeans_prepare', [x], { normalize: opts.normalize ?? 'none', eps: 1e-10 });
  const tolAbs = tol * (await varT.item());
  varT.dispose();
  const init = kmeansPlusPlus(xc, xn2, k, nInit, rnd);
  const best = await lloydBest(xc, xn2, init, maxIter, tolAbs);
  init.dispose();
  const centres = best.centres.add(mean);
  best.centres.dispose();
  for (const t of [mean, xc, xn2]) t.dispose();
  return { centres, inertia: best.inertia, iterations: best.iterations };
}

export class KMeansDetector extends FeatureDetector {
  readonly name: string = 'kmeans';
  readonly orientation: Orientation = 'higher_is_ood';
  readonly opts: KMeansOptions;
  constructor(opts: KMeansOptions = {}) {
    super(opts);
    this.opts = { ...opts };
  }
  protected jsonOptions() {
    const o: Record<string, number | boolean> = { normalize: this.normalize };
    for (const key of ['k', 'nInit', 'maxIter', 'tol', 'seed'] as const) if (this.opts[key] !== undefined) o[key] = this.opts[key]!;
    return o;
  }
  protected override usesInputDType(): boolean {
    return true;
  }
  protected override normalizesInOps(): boolean {
    return true;
  }
  /** Inertia of the fitted centres on the (normalised) training features. */
  get inertia(): number {
    return this.values.inertia as number;
  }
  protected async fitFeatures(x: CheckedMatrix, _labels: Int32Array | undefined, train: FitInput): Promise<void> {
    let k = this.opts.k;
    if (k === undefined) {
      if (train.labels === undefined) throw new DetectorInputError(`kmeans.fit: give k, or training labels (k = number of ID classes)`);
      const labels = await toLabels(train.labels, x.rows, 'kmeans.fit');
      k = new Set(labels).size;
    }
    const r = await kmeansFit(x.tensor, k, { ...this.opts, normalize: x.pending ?? 'none' });
    this.setState('centres', r.centres);
    this.values.k = k;
    this.values.inertia = r.inertia;
    this.values.iterations = r.iterations;
  }
  /** A fitted detector from given centres (k x D), e.g. sklearn's `cluster_centers_`; features as in score(). */
  static async fromCentres(centres: MatrixInput, opts: KMeansOptions = {}): Promise<KMeansDetector> {
    const det = new KMeansDetector(opts);
    const m = await toMatrix(centres, 'centres', 'kmeans.fromCentres');
    det.restore(
      { format: '', version: 1, name: 'kmeans', options: {}, values: { dim: m.cols, dtype: m.dtype, k: m.rows } },
      new Map(),
    );
    (det as unknown as { setState(k: string, t: Tensor): void }).setState('centres', m.tensor);
    return det;
  }
  /**
   * Distance to the nearest centre, √min_j (‖x‖² + ‖c_j‖² − 2x·c_j), as one native op
   * (`kmeans_score`: rows normalised on the way when pending, in the data dtype).
   */
  protected async scoreFeatures(x: CheckedMatrix): Promise<Tensor> {
    // In the fitted dtype (x.dtype), which a pending input may not have yet.
    const c = this.getState('centres');
    const xt = x.tensor.dtype === x.dtype ? x.tensor : x.tensor.cast(x.dtype);
    const cc = c.dtype === x.dtype ? c : c.cast(x.dtype);
    const [d] = Tensor.runOp('kmeans_score', [xt, cc], { normalize: x.pending ?? 'none', eps: 1e-10 });
    if (cc !== c) cc.dispose();
    if (xt !== x.tensor) xt.dispose();
    return d;
  }
}
