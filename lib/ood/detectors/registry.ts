/** `createDetector(name, opts)`: every detector by its registry name; `loadDetector(file)`. */
import type { Orientation } from '../evaluation/types';
import { BaseDetector, readDetectorFile, type Detector } from './base';
import {
  ClassConditionalMahalanobisDetector,
  GaussDetector,
  MahalanobisDetector,
  MdsDetector,
  RmdsDetector,
} from './covariance';
import { ChebyshevDetector, EuclideanDetector, MinkowskiDetector } from './distance';
import { KMeansDetector } from './kmeans';
import { LogitDetector } from './logit';
import { CosineDetector, KnnDetector, ProjectionDetector } from './similarity';
import { ReactDetector, ResidualDetector, VimDetector } from './subspace';

/** Options accepted by createDetector (each detector reads the ones it knows). */
export interface DetectorOptions {
  normalize?: boolean;
  /** knn: neighbour index; kmeans: number of clusters. */
  k?: number;
  nInit?: number;
  maxIter?: number;
  tol?: number;
  seed?: number;
  temperature?: number;
  blockBytes?: number;
  dim?: number;
  percentile?: number;
  weight?: import('./matrix').MatrixInput;
  bias?: ArrayLike<number>;
}

type Factory = (o: DetectorOptions) => BaseDetector;

const FACTORIES: Record<string, { make: Factory; kind: 'feature' | 'logit' | 'head'; orientation: Orientation; summary: string }> = {
  mahalanobis: { make: (o) => new MahalanobisDetector(o), kind: 'feature', orientation: 'higher_is_ood', summary: 'Mahalanobis distance to the train mean, pinv(np.cov(bias=True))' },
  cc: { make: (o) => new ClassConditionalMahalanobisDetector({ ...o, reduce: 'min' }), kind: 'feature', orientation: 'higher_is_ood', summary: 'min over classes of class-conditional Mahalanobis (needs labels)' },
  avgcc: { make: (o) => new ClassConditionalMahalanobisDetector({ ...o, reduce: 'mean' }), kind: 'feature', orientation: 'higher_is_ood', summary: 'mean over classes of class-conditional Mahalanobis (needs labels)' },
  cos: { make: (o) => new CosineDetector(o), kind: 'feature', orientation: 'higher_is_id', summary: 'max cosine similarity to the training set' },
  projection: { make: (o) => new ProjectionDetector(o), kind: 'feature', orientation: 'higher_is_id', summary: 'max cosine similarity times ||x||^2' },
  gauss: { make: (o) => new GaussDetector({ ...o, log: false }), kind: 'feature', orientation: 'higher_is_id', summary: 'Gaussian density with Ledoit-Wolf covariance (reference constant)' },
  gauss_logp: { make: (o) => new GaussDetector({ ...o, log: true }), kind: 'feature', orientation: 'higher_is_id', summary: 'log of gauss (no underflow)' },
  kmeans: { make: (o) => new KMeansDetector(o), kind: 'feature', orientation: 'higher_is_ood', summary: 'distance to the nearest k-means centre' },
  euclidean: { make: (o) => new EuclideanDetector(o), kind: 'feature', orientation: 'higher_is_ood', summary: 'L2 distance to the train mean' },
  minkowski: { make: (o) => new MinkowskiDetector(o), kind: 'feature', orientation: 'higher_is_ood', summary: 'L1 distance to the train mean' },
  chebyshev: { make: (o) => new ChebyshevDetector(o), kind: 'feature', orientation: 'higher_is_ood', summary: 'L-inf distance to the train mean' },
  knn: { make: (o) => new KnnDetector(o), kind: 'feature', orientation: 'higher_is_ood', summary: 'distance to the k-th nearest training sample (k default 50)' },
  mds: { make: (o) => new MdsDetector(o), kind: 'feature', orientation: 'higher_is_ood', summary: 'min class-conditional Mahalanobis, tied covariance (needs labels)' },
  rmds: { make: (o) => new RmdsDetector(o), kind: 'feature', orientation: 'higher_is_ood', summary: 'relative Mahalanobis (needs labels)' },
  vim: { make: (o) => new VimDetector(o), kind: 'head', orientation: 'higher_is_id', summary: 'virtual-logit matching (needs head weight/bias)' },
  residual: { make: (o) => new ResidualDetector(o), kind: 'head', orientation: 'higher_is_ood', summary: 'norm of the non-principal residual (needs head weight/bias)' },
  react: { make: (o) => new ReactDetector(o), kind: 'head', orientation: 'higher_is_ood', summary: 'ReAct clipping + energy (needs head weight/bias)' },
  msp: { make: (o) => new LogitDetector('msp', o), kind: 'logit', orientation: 'higher_is_id', summary: 'maximum softmax probability' },
  maxlogit: { make: (o) => new LogitDetector('maxlogit', o), kind: 'logit', orientation: 'higher_is_id', summary: "max logit (the reference's --metric softmax)" },
  entropy: { make: (o) => new LogitDetector('entropy', o), kind: 'logit', orientation: 'higher_is_ood', summary: 'softmax entropy' },
  energy: { make: (o) => new LogitDetector('energy', o), kind: 'logit', orientation: 'higher_is_ood', summary: '-T logsumexp(logits/T)' },
  gradnorm: { make: (o) => new LogitDetector('gradnorm', o), kind: 'logit', orientation: 'higher_is_id', summary: 'GradNorm per sample (logits + raw features)' },
};

export const DETECTOR_NAMES: readonly string[] = Object.keys(FACTORIES);

/** Registry names with kind, orientation and a one-line summary (for help texts). */
export function listDetectors(): Array<{ name: string; kind: 'feature' | 'logit' | 'head'; orientation: Orientation; summary: string }> {
  return Object.entries(FACTORIES).map(([name, f]) => ({ name, kind: f.kind, orientation: f.orientation, summary: f.summary }));
}

export class UnknownDetectorError extends RangeError {
  constructor(name: string) {
    const hint = name === 'softmax' ? " ('softmax' is ambiguous: the reference's --metric softmax computes the max logit; use 'maxlogit', or 'msp' for the max softmax probability)" : '';
    super(`unknown OOD metric '${name}'${hint}; valid metrics: ${DETECTOR_NAMES.join(', ')}`);
    this.name = 'UnknownDetectorError';
  }
}

export function createDetector(name: string, opts: DetectorOptions = {}): Detector & BaseDetector {
  const f = Object.prototype.hasOwnProperty.call(FACTORIES, name) ? FACTORIES[name] : undefined;
  if (!f) throw new UnknownDetectorError(name);
  return f.make(opts ?? {});
}

/** Restores a detector written by `detector.save(file)`. */
export function loadDetector(file: string): Detector & BaseDetector {
  const { meta, arrays } = readDetectorFile(file);
  const det = createDetector(meta.name, meta.options as DetectorOptions);
  det.restore(meta, arrays);
  return det;
}
