/** A deterministic results file with real curves, shared by the report tests. */
import { rocPoints, scoreHistogram, RESULTS_SCHEMA, type ResultsFile, type EvalRow } from '../../lib/report';
import { evaluate } from '../../lib/ood/evaluation';
import { mulberry32 } from '../../lib/util/mulberry32';

/** Seeded PRNG for reproducible generated data (one shared implementation). */
export const rng = mulberry32;

export function gaussian(r: () => number, n: number, mean: number, sd: number): Float64Array {
  const out = new Float64Array(n);
  for (let i = 0; i < n; i++) out[i] = mean + sd * Math.sqrt(-2 * Math.log(1 - r())) * Math.cos(2 * Math.PI * r());
  return out;
}

function row(id: string, ood: string, metric: string, sIn: Float64Array, sOut: Float64Array, orientation: 'higher_is_ood' | 'higher_is_id'): EvalRow {
  const e = evaluate(sIn, sOut, { orientation });
  return {
    id,
    ood,
    metric,
    auroc: e.auroc,
    aupr_in: e.aupr_in,
    aupr_out: e.aupr_out,
    fpr95: e.fpr95,
    detection_error: e.detection_error,
    n_in: e.n_in,
    n_ood: e.n_ood,
    roc: rocPoints(sIn, sOut, orientation),
    histogram: scoreHistogram(sIn, sOut, 30),
  };
}

export function sampleResults(): ResultsFile {
  const r = rng(7);
  const mc: EvalRow[] = [];
  for (const [ood, shift] of [['held-out classes 6-9', 1], ['gaussian noise', 3]] as const) {
    const mIn = gaussian(r, 400, 0, 1);
    const mOut = gaussian(r, 300, shift, 1);
    mc.push(row('classes 0-5', ood, 'mahalanobis', mIn, mOut, 'higher_is_ood'));
    const sIn = gaussian(r, 400, 5, 1);
    const sOut = gaussian(r, 300, 5 - shift / 2, 1);
    mc.push(row('classes 0-5', ood, 'maxlogit', sIn, sOut, 'higher_is_id'));
  }
  const oc: EvalRow[] = [];
  for (let c = 0; c < 3; c++) {
    oc.push(row(`class ${c}`, 'other classes (mean of 2)', 'mahalanobis', gaussian(r, 200, 0, 1), gaussian(r, 400, 1 + c, 1), 'higher_is_ood'));
  }
  return {
    schema: RESULTS_SCHEMA,
    title: 'Sample report',
    created: '2026-11-30T12:00:00.000Z',
    settings: { model: 'beit_test_tiny', epochs: 3, device: 'cpu', pretrained: false, checkpoint: null },
    training: {
      epochs: [
        { epoch: 0, train_loss: 2.1, test_loss: 1.5, test_acc1: 55.5, lr: 1e-3, seconds: 30 },
        { epoch: 1, train_loss: 1.2, test_loss: 1.0, test_acc1: 70.25, lr: 5e-4, seconds: 29 },
        { epoch: 2, train_loss: 0.8, test_loss: 0.9, test_acc1: 78.0, lr: 1e-4, seconds: 31 },
      ],
    },
    protocols: [
      {
        protocol: 'one-class',
        description: 'each class as ID in turn, other classes OOD',
        fpr95_convention: 'id-positive-percentile',
        aupr_convention: 'average-precision',
        tpr_level: 0.95,
        metrics: [{ name: 'mahalanobis', kind: 'feature', orientation: 'higher_is_ood' }],
        rows: oc,
      },
      {
        protocol: 'multi-class',
        description: 'classes 0-5 vs held-out classes and far-OOD',
        fpr95_convention: 'id-positive-percentile',
        aupr_convention: 'average-precision',
        tpr_level: 0.95,
        metrics: [
          { name: 'mahalanobis', kind: 'feature', orientation: 'higher_is_ood' },
          { name: 'maxlogit', kind: 'logit', orientation: 'higher_is_id' },
        ],
        rows: mc,
      },
    ],
    notes: ['sample data, not a measurement'],
  };
}
