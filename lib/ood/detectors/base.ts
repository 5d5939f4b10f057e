/**
 * The Detector interface and the base class every method extends: fit on ID training data, score new
 * samples, one documented orientation per score, save/load as an .npz (numpy-readable: every fitted
 * array is a member, `__meta__` holds the options and scalars as UTF-8 JSON).
 */
import { Tensor } from '../../tensor';
import { keep, tidy } from '../../scope';
import type { DType } from '../../dtype';
import { ndarray, readNpz, writeNpz, NdArray } from '../../npy';
import type { Orientation } from '../evaluation/types';
import {
  DetectorInputError,
  moodNormalize,
  toFloat64,
  toLabels,
  toMatrix,
  type CheckedMatrix,
  type LabelInput,
  type MatrixInput,
} from './matrix';

/** ID training data. Feature detectors need `features`; class-conditional ones also `labels`. */
export interface FitInput {
  features?: MatrixInput;
  labels?: LabelInput;
  logits?: MatrixInput;
}

/** Samples to score: features and/or logits, as the detector needs. */
export interface ScoreInput {
  features?: MatrixInput;
  logits?: MatrixInput;
}

/** What a detector reads from its inputs (the CLI uses it to ask for the right files). */
export interface DetectorNeeds {
  /** Features at fit time. */
  trainFeatures: boolean;
  /** Labels at fit time. */
  trainLabels: boolean;
  /** Features at score time. */
  features: boolean;
  /** Logits at score time. */
  logits: boolean;
}

export interface Detector {
  /** Registry name (e.g. 'mahalanobis'). */
  readonly name: string;
  /** Which direction of the score means in-distribution. */
  readonly orientation: Orientation;
  readonly needs: DetectorNeeds;
  readonly fitted: boolean;
  fit(train: FitInput): Promise<void>;
  /** One float64 score per sample (orientation: see `orientation`). */
  score(x: ScoreInput): Promise<Float64Array>;
  /** Writes the fitted detector as an .npz (atomic). */
  save(file: string): Promise<void>;
  /** Frees the fitted tensors. */
  dispose(): void;
}

export const DETECTOR_FILE_FORMAT = 'mood-ood-detector';
export const DETECTOR_FILE_VERSION = 1;

type Json = null | boolean | number | string | Json[] | { [k: string]: Json };

export interface DetectorMeta {
  format: string;
  version: number;
  name: string;
  options: Record<string, Json>;
  values: Record<string, Json>;
}

export abstract class BaseDetector implements Detector {
  abstract readonly name: string;
  abstract readonly orientation: Orientation;
  abstract readonly needs: DetectorNeeds;
  /** Fitted arrays (kept alive until dispose). */
  protected state = new Map<string, Tensor>();
  /** Fitted scalars and small lists (JSON). */
  protected values: Record<string, Json> = {};
  private isFitted = false;
  /** Tensors derived from the fitted state at first use (e.g. a Cholesky factor); not saved. */
  private derivedCache = new Map<string, Tensor | null>();

  get fitted(): boolean {
    return this.isFitted;
  }

  /** Number of training samples of the last fit (feature detectors). */
  get trainSize(): number | undefined {
    return this.values.nTrain as number | undefined;
  }

  /** For detectors with nothing to learn (logit scores): usable without fit(). */
  protected markFitted(): void {
    this.isFitted = true;
  }

  /** Options that reproduce this detector (JSON only; arrays belong in `state`). */
  protected abstract jsonOptions(): Record<string, Json>;

  /** The options this detector uses, as saved with it (an option it does not list has no effect on it). */
  usedOptions(): Record<string, Json> {
    return this.jsonOptions();
  }
  protected abstract fitImpl(train: FitInput): Promise<void>;
  protected abstract scoreImpl(x: ScoreInput): Promise<Float64Array>;

  async fit(train: FitInput): Promise<void> {
    if (!train || typeof train !== 'object') throw new TypeError(`${this.name}.fit: expected { features, labels?, logits? }`);
    // Fit into fresh state; a failed fit leaves the previous fit in place.
    const prev = { state: this.state, values: this.values, fitted: this.isFitted };
    this.state = new Map();
    this.values = {};
    try {
      await tidy(async () => {
        await this.fitImpl(train);
      });
    } catch (e) {
      for (const t of this.state.values()) t.dispose();
      this.state = prev.state;
      this.values = prev.values;
      this.isFitted = prev.fitted;
      throw e;
    }
    for (const t of prev.state.values()) t.dispose();
    this.clearDerived();
    this.isFitted = true;
  }

  /** A tensor derived from the fitted state, made once (kept until the state changes) or null. */
  protected async derived(key: string, make: () => Promise<Tensor | null>): Promise<Tensor | null> {
    if (this.derivedCache.has(key)) return this.derivedCache.get(key)!;
    const t = await make();
    if (t) keep(t);
    this.derivedCache.set(key, t);
    return t;
  }

  private clearDerived(): void {
    for (const t of this.derivedCache.values()) t?.dispose();
    this.derivedCache.clear();
  }

  async score(x: ScoreInput): Promise<Float64Array> {
    if (!this.isFitted) throw new Error(`${this.name}.score: call fit() (or load()) first`);
    if (!x || typeof x !== 'object') throw new TypeError(`${this.name}.score: expected { features?, logits? }`);
    return tidy(() => this.scoreImpl(x));
  }

  /** Stores a fitted tensor (exempt from the enclosing tidy). */
  protected setState(key: string, t: Tensor): Tensor {
    const old = this.state.get(key);
    if (old && old !== t) old.dispose();
    this.clearDerived();
    this.state.set(key, keep(t));
    return t;
  }

  protected getState(key: string): Tensor {
    const t = this.state.get(key);
    if (!t) throw new Error(`${this.name}: fitted state '${key}' is missing`);
    return t;
  }

  dispose(): void {
    this.clearDerived();
    for (const t of this.state.values()) t.dispose();
    this.state.clear();
    this.values = {};
    this.isFitted = false;
  }

  async save(file: string): Promise<void> {
    if (!this.isFitted) throw new Error(`${this.name}.save: nothing to save, the detector is not fitted`);
    const arrays = new Map<string, NdArray>();
    const meta: DetectorMeta = {
      format: DETECTOR_FILE_FORMAT,
      version: DETECTOR_FILE_VERSION,
      name: this.name,
      options: this.jsonOptions(),
      values: this.values,
    };
    const bytes = new TextEncoder().encode(JSON.stringify(meta));
    arrays.set('__meta__', ndarray('uint8', [bytes.length], bytes));
    for (const [k, t] of this.state) {
      const dt = t.dtype;
      const shape = t.shape;
      const data = await t.data();
      if (dt === 'float64') arrays.set(k, ndarray('float64', shape, data as Float64Array));
      else if (dt === 'float32') arrays.set(k, ndarray('float32', shape, data as Float32Array));
      else if (dt === 'int64') arrays.set(k, ndarray('int64', shape, data as BigInt64Array));
      else throw new Error(`${this.name}.save: cannot store state '${k}' of dtype ${dt}`);
    }
    writeNpz(file, arrays);
  }

  /** Restores state and values read from a detector file (used by loadDetector). */
  restore(meta: DetectorMeta, arrays: Map<string, NdArray>): void {
    this.dispose();
    for (const [k, a] of arrays) {
      if (k === '__meta__') continue;
      const c = a.toCOrder();
      const dtype: DType = c.dtype === 'float64' ? 'float64' : c.dtype === 'float32' ? 'float32' : c.dtype === 'int64' ? 'int64' : (() => {
        throw new DetectorInputError(`detector file: state '${k}' has unsupported dtype ${c.dtype}`);
      })();
      this.setState(k, Tensor.fromArray(c.typed(), c.shape, { dtype }));
    }
    this.values = meta.values ?? {};
    this.isFitted = true;
  }
}

/** Reads `__meta__` and the arrays of a detector file. */
export function readDetectorFile(file: string): { meta: DetectorMeta; arrays: Map<string, NdArray> } {
  const arrays = readNpz(file);
  const m = arrays.get('__meta__');
  if (!m) throw new DetectorInputError(`${file}: not a mood-ood detector file (no __meta__ member)`);
  const meta = JSON.parse(new TextDecoder().decode(m.bytes)) as DetectorMeta;
  if (meta.format !== DETECTOR_FILE_FORMAT) throw new DetectorInputError(`${file}: not a mood-ood detector file (format ${String(meta.format)})`);
  if (meta.version > DETECTOR_FILE_VERSION) throw new DetectorInputError(`${file}: detector file version ${meta.version} is newer than this library (${DETECTOR_FILE_VERSION})`);
  return { meta, arrays };
}

export type ComputeDType = 'float32' | 'float64';

export interface FeatureOptions {
  /**
   * Apply MOOD's row normalisation `f / (||f|| + 1e-10)` to train and test features first
   * (eval_with_features.py L32-40). Default true for the reference's feature metrics.
   */
  normalize?: boolean;
}

/**
 * A detector on features: validates shapes and values, applies the normalisation, remembers the
 * feature dimension and rejects a mismatch at score time.
 */
export abstract class FeatureDetector extends BaseDetector {
  readonly needs: DetectorNeeds = { trainFeatures: true, trainLabels: false, features: true, logits: false };
  /** FeatureOptions.normalize as given, else the detector's default (true for the reference's feature metrics). */
  protected readonly normalize: boolean;
  constructor(opts: FeatureOptions = {}, normalizeByDefault = true) {
    super();
    this.normalize = opts.normalize ?? normalizeByDefault;
  }
  /** dtype of the arithmetic; undefined = float64. */
  protected computeDType(_input?: CheckedMatrix): ComputeDType {
    return 'float64';
  }

  protected async prepare(x: MatrixInput | undefined, what: string, caller: string, dtype?: ComputeDType): Promise<CheckedMatrix> {
    if (x === undefined || x === null) throw new DetectorInputError(`${caller}: ${what} are required by '${this.name}'`);
    const target = dtype ?? 'float64';
    if (!this.normalize) return toMatrix(x, what, caller, target);
    if (this.normalizesInOps()) {
      const m = await toMatrix(x, what, caller, x instanceof Tensor && x.dtype !== 'float32' && x.dtype !== 'float64' ? target : undefined);
      return { ...m, dtype: target, pending: 'mood' };
    }
    // Validate in the input's float dtype, then cast and normalise in one pass (other tensor dtypes,
    // e.g. int64, are cast to the target first, as before).
    const native = !(x instanceof Tensor) || x.dtype === 'float32' || x.dtype === 'float64';
    const m = await toMatrix(x, what, caller, native ? undefined : target);
    const n = moodNormalize(m.tensor, target);
    m.tensor.dispose();
    return { ...m, tensor: n, dtype: target };
  }

  protected async fitImpl(train: FitInput): Promise<void> {
    const caller = `${this.name}.fit`;
    const m = await this.prepare(train.features, 'train.features', caller, this.fitDType(train.features));
    let labels: Int32Array | undefined;
    if (this.needs.trainLabels) {
      if (train.labels === undefined) throw new DetectorInputError(`${caller}: '${this.name}' needs train labels`);
      labels = await toLabels(train.labels, m.rows, caller);
    }
    this.values.dim = m.cols;
    this.values.nTrain = m.rows;
    this.values.dtype = m.dtype;
    await this.fitFeatures(m, labels, train);
  }

  protected async scoreImpl(x: ScoreInput): Promise<Float64Array> {
    const caller = `${this.name}.score`;
    const dtype = (this.values.dtype as ComputeDType | undefined) ?? 'float64';
    const m = await this.prepare(x.features, 'features', caller, this.usesInputDType() ? dtype : 'float64');
    const dim = this.values.dim as number;
    if (m.cols !== dim) throw new DetectorInputError(`${caller}: feature dimension mismatch: fitted on ${dim}-D features, got ${m.cols}-D`);
    const s = await this.scoreFeatures(m, x);
    const out = await toFloat64(s);
    s.dispose();
    return out;
  }

  /**
   * Whether the detector's native ops normalise (and cast) the rows themselves, chunk by chunk: then
   * prepare() hands over the validated input with `pending: 'mood'` instead of a normalised copy.
   */
  protected normalizesInOps(): boolean {
    return false;
  }

  /** Whether arithmetic follows the training input's dtype (float32 kept) instead of float64. */
  protected usesInputDType(): boolean {
    return false;
  }

  private fitDType(x: MatrixInput | undefined): ComputeDType {
    if (!this.usesInputDType()) return 'float64';
    if (x instanceof Tensor) return x.dtype === 'float64' ? 'float64' : 'float32';
    if (x instanceof NdArray) return x.dtype === 'float32' ? 'float32' : 'float64';
    if (x && 'data' in x) return x.data instanceof Float32Array ? 'float32' : 'float64';
    return 'float64';
  }

  protected abstract fitFeatures(x: CheckedMatrix, labels: Int32Array | undefined, train: FitInput): Promise<void>;
  /** Returns a 1-D tensor of scores. */
  protected abstract scoreFeatures(x: CheckedMatrix, input: ScoreInput): Promise<Tensor>;
}

/** Rows per block when scoring, so N x D x D work never holds more than ~`budget` bytes. */
export function rowBlock(rows: number, cols: number, bytesPerElem: number, budget = 256 * 1024 * 1024): number {
  return Math.max(1, Math.min(rows, Math.floor(budget / Math.max(1, cols * bytesPerElem))));
}

/**
 * (x - mu)ᵀ P (x - mu) per row, over row chunks in one native op (in mu's dtype; `normalize: 'mood'`
 * normalises x's rows first, per chunk). With `factor` (the lower Cholesky factor L of P, from
 * `precisionFactor`), ‖(x - mu) L‖² instead: a triangular product, half the flops.
 */
export async function quadForm(x: Tensor, mu: Tensor, P: Tensor, factor?: Tensor | null, normalize: 'mood' | 'none' = 'none'): Promise<Tensor> {
  const attrs = { factor: !!factor, normalize, eps: 1e-10 };
  const out = Tensor.runOp('quad_form', [x, mu, factor ?? P], attrs)[0];
  await out.ready();
  return out;
}

/** The lower Cholesky factor of a precision matrix, or null when it is not positive definite (rank-deficient pinv). */
export async function precisionFactor(P: Tensor): Promise<Tensor | null> {
  const [L, info] = Tensor.runOp('cholesky_ex', [P], { upper: false });
  const bad = await info.item();
  info.dispose();
  if (bad !== 0) {
    L.dispose();
    return null;
  }
  return L;
}

/** sum over rows of x: returns the class-free helper mean (1 x D). */
export function rowMean(x: Tensor): Tensor {
  return x.mean(0, true);
}

export { DetectorInputError };
