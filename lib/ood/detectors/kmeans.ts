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
import type { Orientation } from '../evaluation/types';
import { FeatureDetector, rowBlock, type FeatureOptions, type FitInput } from './base';
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

/** xoshiro128** seeded through splitmix32: uniform doubles in [0, 1) with 53 random bits. */
export function seededRandom(seed: number): { next(): number; int(n: number): number } {
  let s = seed >>> 0;
  const sm = (): number => {
    s = (s + 0x9e3779b9) >>> 0;
    let z = s;
    z = Math.imul(z ^ (z >>> 16), 0x85ebca6b) >>> 0;
    z = Math.imul(z ^ (z >>> 13), 0xc2b2ae35) >>> 0;
    return (z ^ (z >>> 16)) >>> 0;
  };
  const st = [sm(), sm(), sm(), sm()];
  const u32 = (): number => {
    const r = Math.imul(((Math.imul(st[1], 5) << 7) | (Math.imul(st[1], 5) >>> 25)) >>> 0, 9) >>> 0;
    const t = (st[1] << 9) >>> 0;
    st[2] ^= st[0];
    st[3] ^= st[1];
    st[1] ^= st[2];
    st[0] ^= st[3];
    st[2] ^= t;
    st[3] = ((st[3] << 11) | (st[3] >>> 21)) >>> 0;
    return r;
  };
  const next = (): number => ((u32() >>> 5) * 67108864 + (u32() >>> 6)) / 9007199254740992;
  return { next, int: (n: number) => Math.min(n - 1, Math.floor(next() * n)) };
}

/** Squared distances of every row of x (N x D) to rows of c (L x D): N x L, clamped at 0. */
function sqDist(x: Tensor, xn2: Tensor, c: Tensor): Tensor {
  return tidy(() => xn2.unsqueeze(1).add(c.square().sum(1).unsqueeze(0)).sub(x.matmul(c.T).mul(2)).clamp(0));
}

async function readF64(t: Tensor): Promise<Float64Array> {
  const d = await t.data();
  return d instanceof Float64Array ? d : Float64Array.from(d as ArrayLike<number>);
}

/** sklearn's _kmeans_plusplus. Returns the chosen row indices. */
async function kmeansPlusPlus(x: Tensor, xn2: Tensor, k: number, rnd: ReturnType<typeof seededRandom>): Promise<number[]> {
  const n = x.shape[0];
  const trials = 2 + Math.floor(Math.log(k));
  const ids = [rnd.int(n)];
  const idx = (a: number[]): Tensor => Tensor.fromArray(BigInt64Array.from(a, BigInt), [a.length], { dtype: 'int64' });
  let closest = await tidy(async () => readF64(sqDist(x, xn2, x.indexSelect(0, idx(ids))).reshape([n])));
  let pot = closest.reduce((a, b) => a + b, 0);
  const cum = new Float64Array(n);
  for (let c = 1; c < k; c++) {
    let acc = 0;
    for (let i = 0; i < n; i++) cum[i] = acc += closest[i];
    const cand: number[] = [];
    for (let t = 0; t < trials; t++) {
      const v = rnd.next() * pot;
      // np.searchsorted(cum, v) (side='left'): first i with cum[i] >= v.
      let lo = 0;
      let hi = n;
      while (lo < hi) {
        const mid = (lo + hi) >>> 1;
        if (cum[mid] < v) lo = mid + 1;
        else hi = mid;
      }
      cand.push(Math.min(lo, n - 1));
    }
    const d = await tidy(async () => readF64(sqDist(x, xn2, x.indexSelect(0, idx(cand))))); // N x L row-major
    const L = cand.length;
    let best = -1;
    let bestPot = Infinity;
    for (let l = 0; l < L; l++) {
      let p = 0;
      for (let i = 0; i < n; i++) p += Math.min(closest[i], d[i * L + l]);
      if (p < bestPot) {
        bestPot = p;
        best = l;
      }
    }
    const next = new Float64Array(n);
    for (let i = 0; i < n; i++) next[i] = Math.min(closest[i], d[i * L + best]);
    closest = next;
    pot = bestPot;
    ids.push(cand[best]);
  }
  return ids;
}

/** Labels (nearest centre) and squared distance to it, in row blocks. */
async function assign(x: Tensor, xn2: Tensor, centres: Tensor): Promise<{ labels: Tensor; d2: Tensor }> {
  const n = x.shape[0];
  const k = centres.shape[0];
  const block = rowBlock(n, k, 8 * 2, 128 * 1024 * 1024);
  const labs: Tensor[] = [];
  const ds: Tensor[] = [];
  for (let s = 0; s < n; s += block) {
    const r = tidy(() => {
      const e = Math.min(n, s + block);
      const xb = block >= n ? x : x.slice(0, s, e);
      const nb = block >= n ? xn2 : xn2.slice(0, s, e);
      const m = sqDist(xb, nb, centres).minDim(1);
      return { labels: m.indices, d2: m.values };
    });
    labs.push(r.labels);
    ds.push(r.d2);
  }
  if (labs.length === 1) return { labels: labs[0], d2: ds[0] };
  const out = { labels: Tensor.cat(labs, 0), d2: Tensor.cat(ds, 0) };
  for (const t of [...labs, ...ds]) t.dispose();
  return out;
}

export interface KMeansResult {
  centres: Tensor;
  inertia: number;
  iterations: number;
}

/** One run of Lloyd's algorithm from `init` (k x D), sklearn's stopping rules. */
async function lloyd(x: Tensor, xn2: Tensor, init: Tensor, maxIter: number, tolAbs: number): Promise<KMeansResult> {
  const [n, d] = x.shape;
  const k = init.shape[0];
  const range = Tensor.arange(0, k, 1, { dtype: 'int64' }).unsqueeze(0);
  let centres = init;
  let prevLabels: Tensor | null = null;
  let it = 0;
  for (; it < maxIter; it++) {
    const { labels, d2 } = await assign(x, xn2, centres);
    const onehot = tidy(() => labels.unsqueeze(1).eq(range).cast(x.dtype));
    const [counts, sums] = tidy(() => [onehot.sum(0), onehot.T.matmul(x)]);
    onehot.dispose();
    const cnt = await readF64(counts);
    let next: Tensor;
    if (cnt.some((c) => c === 0)) {
      // sklearn's _relocate_empty_clusters: the farthest points (from their centre) become the new
      // centres of the empty clusters and leave their old clusters.
      const sumArr = await readF64(sums);
      const dist = await readF64(d2);
      const lab = (await labels.data()) as BigInt64Array;
      const empty = [...cnt.keys()].filter((c) => cnt[c] === 0);
      const order = [...dist.keys()].sort((a, b) => dist[b] - dist[a]).slice(0, empty.length);
      const xr = await readF64(tidy(() => x.indexSelect(0, Tensor.fromArray(BigInt64Array.from(order, BigInt), [order.length], { dtype: 'int64' }))));
      empty.forEach((c, e) => {
        const old = Number(lab[order[e]]);
        for (let j = 0; j < d; j++) {
          sumArr[old * d + j] -= xr[e * d + j];
          sumArr[c * d + j] = xr[e * d + j];
        }
        cnt[old] -= 1;
        cnt[c] = 1;
      });
      const meanArr = new Float64Array(k * d);
      for (let c = 0; c < k; c++) for (let j = 0; j < d; j++) meanArr[c * d + j] = sumArr[c * d + j] / cnt[c];
      next = Tensor.fromArray(meanArr, [k, d], { dtype: 'float64' }).cast(x.dtype);
    } else {
      next = tidy(() => sums.div(counts.unsqueeze(1)));
    }
    counts.dispose();
    sums.dispose();
    d2.dispose();
    const same = prevLabels ? tidy(() => labels.eq(prevLabels!).all()) : null;
    const shiftT = tidy(() => next.sub(centres).square().sum());
    const [strict, shift] = await Promise.all([same ? same.item() : Promise.resolve(0), shiftT.item()]);
    same?.dispose();
    shiftT.dispose();
    prevLabels?.dispose();
    prevLabels = labels;
    if (strict) {
      // Labels did not change: the centres computed from them are final (sklearn: strict convergence).
      if (centres !== init) centres.dispose();
      centres = next;
      it++;
      break;
    }
    if (centres !== init) centres.dispose();
    centres = next;
    if (shift <= tolAbs) {
      it++;
      break;
    }
  }
  prevLabels?.dispose();
  range.dispose();
  // sklearn re-runs the E-step so labels and inertia match the final centres.
  const { labels, d2 } = await assign(x, xn2, centres);
  labels.dispose();
  const inertia = await tidy(() => d2.sum()).item();
  d2.dispose();
  if (centres === init) centres = init.clone();
  return { centres, inertia, iterations: it };
}

/** k-means on the rows of x (float32 or float64): the best of `nInit` seeded k-means++ runs. */
export async function kmeansFit(x: Tensor, k: number, opts: { nInit?: number; maxIter?: number; tol?: number; seed?: number } = {}): Promise<KMeansResult> {
  const [n] = x.shape;
  if (!Number.isInteger(k) || k < 1) throw new RangeError(`kmeans: k must be a positive integer, got ${String(k)}`);
  if (n < k) throw new DetectorInputError(`kmeans: ${n} samples for k = ${k} clusters`);
  const nInit = opts.nInit ?? 10;
  const maxIter = opts.maxIter ?? 300;
  const tol = opts.tol ?? 1e-4;
  const rnd = seededRandom(opts.seed ?? 0);
  const mean = x.mean(0, true);
  const xc = x.sub(mean); // sklearn centres the data for precision
  const xn2 = tidy(() => xc.square().sum(1));
  const tolAbs = tol * (await tidy(() => xc.var(0, { correction: 0 }).mean()).item());
  let best: KMeansResult | null = null;
  for (let r = 0; r < nInit; r++) {
    const ids = await kmeansPlusPlus(xc, xn2, k, rnd);
    const init = tidy(() => xc.indexSelect(0, Tensor.fromArray(BigInt64Array.from(ids, BigInt), [k], { dtype: 'int64' })));
    const res = await lloyd(xc, xn2, init, maxIter, tolAbs);
    if (res.centres !== init) init.dispose();
    if (!best || res.inertia < best.inertia) {
      best?.centres.dispose();
      best = res;
    } else res.centres.dispose();
  }
  const centres = best!.centres.add(mean);
  best!.centres.dispose();
  for (const t of [mean, xc, xn2]) t.dispose();
  return { centres, inertia: best!.inertia, iterations: best!.iterations };
}

export class KMeansDetector extends FeatureDetector {
  readonly name: string = 'kmeans';
  readonly orientation: Orientation = 'higher_is_ood';
  protected readonly normalize: boolean;
  readonly opts: KMeansOptions;
  constructor(opts: KMeansOptions = {}) {
    super();
    this.normalize = opts.normalize ?? true;
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
    const r = await kmeansFit(x.tensor, k, this.opts);
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
  protected async scoreFeatures(x: CheckedMatrix): Promise<Tensor> {
    const c = this.getState('centres');
    const cc = c.dtype === x.tensor.dtype ? c : c.cast(x.tensor.dtype);
    const xn2 = x.tensor.square().sum(1);
    const { labels, d2 } = await assign(x.tensor, xn2, cc);
    labels.dispose();
    xn2.dispose();
    if (cc !== c) cc.dispose();
    return tidy(() => d2.sqrt());
  }
}
