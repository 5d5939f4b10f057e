/**
 * Logit scores (lib/ood/logits, exact float64) as detectors. Nothing to fit: `fit` only records the
 * class count when training logits are given, so later calls are checked against it.
 *
 * - `msp`: maximum softmax probability. Higher = ID.
 * - `maxlogit`: maximum logit — what the reference's `eval_with_logits.py --metric softmax` really
 *   returns (L254). Higher = ID.
 * - `entropy`: softmax entropy. Higher = OOD.
 * - `energy`: −T·logsumexp(logits / T) (option `temperature`, default 1). Higher = OOD.
 * - `gradnorm`: per sample ‖softmax − 1/C‖₁ · ‖h‖₁ with h the RAW penultimate features (the head
 *   input; never normalised): the L1 norm of the head-weight gradient of KL(uniform ‖ softmax). The
 *   reference returns one value per batch, with targets of ones (C× this) and drop-path on. Higher = ID.
 */
import { energy, entropy, gradnorm, maxlogit, msp } from '../logits';
import type { Orientation } from '../evaluation/types';
import { BaseDetector, type DetectorNeeds, type FitInput, type ScoreInput } from './base';
import { DetectorInputError, matrixToArray } from './matrix';

export type LogitDetectorName = 'msp' | 'maxlogit' | 'entropy' | 'energy' | 'gradnorm';

export interface LogitOptions {
  /** Energy temperature (energy only); default 1. */
  temperature?: number;
}

const ORIENT: Record<LogitDetectorName, Orientation> = {
  msp: 'higher_is_id',
  maxlogit: 'higher_is_id',
  entropy: 'higher_is_ood',
  energy: 'higher_is_ood',
  gradnorm: 'higher_is_id',
};

export class LogitDetector extends BaseDetector {
  readonly name: LogitDetectorName;
  readonly orientation: Orientation;
  readonly needs: DetectorNeeds;
  readonly temperature: number;
  constructor(name: LogitDetectorName, opts: LogitOptions = {}) {
    super();
    if (!(name in ORIENT)) throw new RangeError(`unknown logit detector '${String(name)}'`);
    this.name = name;
    this.orientation = ORIENT[name];
    this.needs = { trainFeatures: false, trainLabels: false, features: name === 'gradnorm', logits: true };
    this.temperature = opts.temperature ?? 1;
    if (!(Number.isFinite(this.temperature) && this.temperature > 0)) throw new RangeError(`${name}: temperature must be a finite positive number, got ${String(opts.temperature)}`);
    this.markFitted();
  }
  protected jsonOptions() {
    const o: Record<string, number> = {};
    if (this.name === 'energy') o.temperature = this.temperature;
    return o;
  }
  protected async fitImpl(train: FitInput): Promise<void> {
    if (train.logits !== undefined) {
      const l = await matrixToArray(train.logits, 'train.logits', `${this.name}.fit`);
      this.values.numClasses = l.cols;
    }
  }
  protected async scoreImpl(x: ScoreInput): Promise<Float64Array> {
    const caller = `${this.name}.score`;
    if (x.logits === undefined) throw new DetectorInputError(`${caller}: '${this.name}' needs logits`);
    const l = await matrixToArray(x.logits, 'logits', caller);
    const c = this.values.numClasses as number | undefined;
    if (c !== undefined && l.cols !== c) throw new DetectorInputError(`${caller}: logit dimension mismatch: fitted on ${c} classes, got ${l.cols}`);
    switch (this.name) {
      case 'msp':
        return msp(l.data, l.cols);
      case 'maxlogit':
        return maxlogit(l.data, l.cols);
      case 'entropy':
        return entropy(l.data, l.cols);
      case 'energy':
        return energy(l.data, l.cols, { temperature: this.temperature });
      case 'gradnorm': {
        if (x.features === undefined) throw new DetectorInputError(`${caller}: 'gradnorm' needs the raw features (head input) besides the logits`);
        const f = await matrixToArray(x.features, 'features', caller);
        if (f.rows !== l.rows) throw new DetectorInputError(`${caller}: ${l.rows} logit rows but ${f.rows} feature rows`);
        return gradnorm(l.data, l.cols, f.data, f.cols);
      }
    }
  }
}
