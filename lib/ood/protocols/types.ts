/** Shared result types of the evaluation protocols. */
import type { AuprConvention, EvaluateOptions, Fpr95Convention, Orientation } from '../evaluation/types';
import type { Detector } from '../detectors/base';
import type { DetectorOptions } from '../detectors/registry';
import type { LabelInput, MatrixInput } from '../detectors/matrix';

/** Precomputed per-sample data of one split. */
export interface SampleSet {
  features?: MatrixInput;
  logits?: MatrixInput;
  labels?: LabelInput;
}

/** Which detector: a registry name (+ options) or a factory for a fresh detector. */
export interface MetricChoice {
  metric: string;
  detectorOptions?: DetectorOptions;
  /** Overrides `metric`/`detectorOptions`: returns a fresh, unfitted detector. */
  makeDetector?: () => Detector;
  /** Evaluation conventions (orientation always comes from the detector). */
  evaluation?: Omit<EvaluateOptions, 'orientation'>;
}

export interface MetricRow {
  auroc: number;
  aupr_in: number;
  aupr_out: number;
  fpr95: number;
  detection_error: number;
}

export interface OodRow extends MetricRow {
  /** OOD set name (multi-class) or OOD class/group index (one-class). */
  ood: string;
  n_in: number;
  n_ood: number;
}

export interface ProtocolHeader {
  metric: string;
  orientation: Orientation;
  fpr95_convention: Fpr95Convention;
  aupr_convention: AuprConvention;
  tpr_level: number;
  n_train: number;
}
