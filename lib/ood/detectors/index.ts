/**
 * OOD detectors (OpenOOD style): one class per method behind one interface — `fit` on ID training
 * data, `score` new samples, a documented `orientation`, `save`/`loadDetector`.
 * Orientation of every score: see `listDetectors()` and each module's header.
 */
export {
  BaseDetector,
  FeatureDetector,
  DETECTOR_FILE_FORMAT,
  DETECTOR_FILE_VERSION,
  type Detector,
  type DetectorNeeds,
  type FitInput,
  type ScoreInput,
  type FeatureOptions,
} from './base';
export { DetectorInputError, moodNormalize, unitNormalize, type MatrixInput, type MatrixData, type LabelInput } from './matrix';
export {
  MahalanobisDetector,
  ClassConditionalMahalanobisDetector,
  MdsDetector,
  RmdsDetector,
  GaussDetector,
  ledoitWolf,
  biasedCov,
  gram,
  NUMPY_PINV_RCOND,
} from './covariance';
export { CosineDetector, ProjectionDetector, KnnDetector, maxInnerProduct, kthNearestDistance } from './similarity';
export { EuclideanDetector, MinkowskiDetector, ChebyshevDetector } from './distance';
export { KMeansDetector, kmeansFit, seededRandom, type KMeansOptions, type KMeansResult } from './kmeans';
export { LogitDetector, type LogitDetectorName, type LogitOptions } from './logit';
export { VimDetector, ResidualDetector, ReactDetector, percentileOf, defaultVimDim, type VimOptions, type ReactOptions } from './subspace';
export { createDetector, loadDetector, listDetectors, DETECTOR_NAMES, UnknownDetectorError, type DetectorOptions } from './registry';
