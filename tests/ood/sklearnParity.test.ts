/**
 * Live parity with sklearn/numpy (Debian's /usr/bin/python3) on cases the fixtures do not cover:
 * ties within and across classes, constant and all-equal scores, 1 vs 1, and 100k scores with
 * heavy ties. One Python run computes every case; each metric is then compared to 1e-9 relative
 * (FPR values and curve rates are ratios of the same integers, so they must match exactly). 1e-9:
 * the same float64 scores on both sides, metrics summed over <= 1e5 ranks in another order, so
 * <= n 2^-53 = 1.1e-11 relative (measured <= 2e-15); detection error, a min over thresholds of
 * (1 - tpr + fpr) / 2, rounds twice: 1e-12.
 */
import { describe, expect, it } from 'vitest';
import {
  auprIn,
  auprOut,
  auroc,
  detectionError,
  evaluate,
  fpr95,
  linearQuantileSorted,
  officialAsCalled,
  rocCurve,
  type Orientation,
} from '../../lib/ood/evaluation';
import { expectArrayClose, expectClose, rng, runPython } from './helpers';
import { describeWith } from '../helpers/requirements';

interface Case {
  name: string;
  in: Float64Array;
  out: Float64Array;
  orientation: Orientation;
}

function rounded(n: number, seed: number, shift: number, step: number): Float64Array {
  const r = rng(seed);
  const a = new Float64Array(n);
  // Sum of uniforms ~ bell shape; rounding to `step` creates many ties within and across classes.
  for (let i = 0; i < n; i++) a[i] = Math.round((r() + r() + r() + shift) / step) * step;
  return a;
}

const cases: Case[] = [
  { name: 'ties', in: new Float64Array([0.1, 0.4, 0.4, 0.35, 0.8, 0.8]), out: new Float64Array([0.4, 0.8, 0.9, 0.35, 0.35]), orientation: 'higher_is_ood' },
  { name: 'ties_id', in: new Float64Array([0.1, 0.4, 0.4, 0.35, 0.8, 0.8]), out: new Float64Array([0.4, 0.8, 0.9, 0.35, 0.35]), orientation: 'higher_is_id' },
  { name: 'constant_all_equal', in: new Float64Array(7).fill(3), out: new Float64Array(4).fill(3), orientation: 'higher_is_ood' },
  { name: 'constant_per_class_separated', in: new Float64Array(5).fill(-1), out: new Float64Array(3).fill(2), orientation: 'higher_is_ood' },
  { name: 'constant_per_class_inverted', in: new Float64Array(5).fill(-1), out: new Float64Array(3).fill(2), orientation: 'higher_is_id' },
  { name: 'one_vs_one', in: new Float64Array([0.3]), out: new Float64Array([0.7]), orientation: 'higher_is_ood' },
  { name: 'one_vs_one_inverted', in: new Float64Array([0.3]), out: new Float64Array([0.7]), orientation: 'higher_is_id' },
  { name: 'one_vs_one_tied', in: new Float64Array([0.5]), out: new Float64Array([0.5]), orientation: 'higher_is_ood' },
  { name: 'one_vs_many', in: new Float64Array([0.2]), out: rounded(50, 3, -1.5, 0.25), orientation: 'higher_is_ood' },
  { name: 'negative_zero', in: new Float64Array([-0, 0, 1]), out: new Float64Array([0, -0, -1]), orientation: 'higher_is_id' },
  { name: 'random_100k_ties', in: rounded(60_000, 11, 0, 0.01), out: rounded(40_000, 12, 0.3, 0.01), orientation: 'higher_is_ood' },
  { name: 'random_100k_ties_id', in: rounded(60_000, 13, 0.3, 0.05), out: rounded(40_000, 14, 0, 0.05), orientation: 'higher_is_id' },
  { name: 'random_continuous', in: rounded(3000, 21, 0, 1e-9), out: rounded(2000, 22, 0.2, 1e-9), orientation: 'higher_is_ood' },
];

interface Curve { fpr: number[]; tpr: number[]; thresholds: number[] }
interface PyResult {
  auroc: number;
  ap_out: number;
  ap_in: number;
  trap_out: number;
  trap_in: number;
  roc: Record<'ood_full' | 'ood_drop' | 'id_full' | 'id_drop', Curve>;
  fpr95_percentile: number;
  fpr95_roc_id: number;
  fpr95_roc_id_drop: number;
  fpr95_ood: number;
  fpr95_ood_drop: number;
  detection_error: number;
  official: Record<'0' | '1', { auroc: number; aupr: number; fpr95: number }>;
  quantiles: Array<{ q: number; value: number }>;
}

/**
 * Independent reference: sklearn's functions applied to the definitions in the fixture README.
 * thresholds[0] is dropped (sklearn 1.2 writes max+1, >= 1.3 writes inf; we write inf).
 */
const SCRIPT = String.raw`
import json, sys, os
import numpy as np
from sklearn.metrics import roc_auc_score, average_precision_score, roc_curve, precision_recall_curve, auc
d = sys.argv[1]
cases = json.loads(os.environ['MOOD_CASES'])
load = lambda n: np.fromfile(os.path.join(d, n + '.bin'), dtype='<f8')
qs = [0.0, 0.05, 0.5, 0.9, 0.95, 0.999, 1.0]
res = {}
for c in cases:
    xin, xout = load(c['name'] + '_in'), load(c['name'] + '_out')
    sign = 1.0 if c['orientation'] == 'higher_is_ood' else -1.0
    oin, oout = sign * xin, sign * xout
    y = np.r_[np.zeros(len(oin)), np.ones(len(oout))]
    o = np.r_[oin, oout]
    r = {}
    r['auroc'] = roc_auc_score(y, o)
    r['ap_out'] = average_precision_score(y, o)
    r['ap_in'] = average_precision_score(1 - y, -o)
    p, rc, _ = precision_recall_curve(y, o); r['trap_out'] = auc(rc, p)
    p, rc, _ = precision_recall_curve(1 - y, -o); r['trap_in'] = auc(rc, p)
    curves = {}
    for key, yy, ss, drop in [('ood_full', y, o, False), ('ood_drop', y, o, True), ('id_full', 1 - y, -o, False), ('id_drop', 1 - y, -o, True)]:
        f, t, th = roc_curve(yy, ss, drop_intermediate=drop)
        curves[key] = {'fpr': f.tolist(), 'tpr': t.tolist(), 'thresholds': th[1:].tolist()}
    r['roc'] = curves
    fpr_at = lambda k: float(np.array(curves[k]['fpr'])[np.argmax(np.array(curves[k]['tpr']) >= 0.95)])
    r['fpr95_percentile'] = float(np.mean(oout < np.percentile(oin, 95)))
    r['fpr95_roc_id'] = fpr_at('id_full'); r['fpr95_roc_id_drop'] = fpr_at('id_drop')
    r['fpr95_ood'] = fpr_at('ood_full'); r['fpr95_ood_drop'] = fpr_at('ood_drop')
    f, t = np.array(curves['ood_full']['fpr']), np.array(curves['ood_full']['tpr'])
    r['detection_error'] = float(np.min(0.5 * (1 - t) + 0.5 * f))
    # The official ood_utils calls, on raw (unoriented) scores, for both label layouts.
    data = np.r_[xin, xout]
    off = {}
    for id_label in (0, 1):
        lab = np.r_[np.full(len(xin), id_label), np.full(len(xout), 1 - id_label)]
        fp = np.sum(xout < np.percentile(xin, 95)) if id_label == 0 else np.sum(xout > np.percentile(xin, 95))
        off[str(id_label)] = {'auroc': roc_auc_score(lab, data), 'aupr': average_precision_score(lab, data), 'fpr95': float(fp / len(xout))}
    r['official'] = off
    r['quantiles'] = [{'q': q, 'value': float(np.percentile(np.sort(oin), q * 100))} for q in qs]
    res[c['name']] = r
print(json.dumps(res))
`;


describeWith(['sklearn', 'numpy'])('sklearn parity (live /usr/bin/python3)', () => {
  let results: Record<string, PyResult> = {};

  it('runs the reference script', () => {
    const arrays: Record<string, Float64Array> = {};
    for (const c of cases) {
      arrays[`${c.name}_in`] = c.in;
      arrays[`${c.name}_out`] = c.out;
    }
    process.env.MOOD_CASES = JSON.stringify(cases.map((c) => ({ name: c.name, orientation: c.orientation })));
    try {
      results = runPython<Record<string, PyResult>>(SCRIPT, arrays);
    } finally {
      delete process.env.MOOD_CASES;
    }
    expect(Object.keys(results).sort()).toEqual(cases.map((c) => c.name).sort());
  });

  for (const c of cases) {
    describe(c.name, () => {
      const orientation = c.orientation;
      const py = (): PyResult => results[c.name];

      it('auroc, aupr (both conventions), detection error', () => {
        expectClose(auroc(c.in, c.out, { orientation }), py().auroc, 1e-9, 'auroc');
        expectClose(auprOut(c.in, c.out, { orientation }), py().ap_out, 1e-9, 'aupr_out');
        expectClose(auprIn(c.in, c.out, { orientation }), py().ap_in, 1e-9, 'aupr_in');
        expectClose(auprOut(c.in, c.out, { orientation, convention: 'trapezoid' }), py().trap_out, 1e-9, 'trap_out');
        expectClose(auprIn(c.in, c.out, { orientation, convention: 'trapezoid' }), py().trap_in, 1e-9, 'trap_in');
        expectClose(detectionError(c.in, c.out, { orientation }), py().detection_error, 1e-12, 'detection error');
      });

      it('roc curves (both positives, with and without drop_intermediate)', () => {
        const variants = [
          ['ood_full', 'ood', false],
          ['ood_drop', 'ood', true],
          ['id_full', 'id', false],
          ['id_drop', 'id', true],
        ] as const;
        for (const [key, positive, drop] of variants) {
          const ours = rocCurve(c.in, c.out, { orientation, positive, dropIntermediate: drop });
          const ref = py().roc[key];
          expect(ours.thresholds[0]).toBe(Infinity);
          expectArrayClose(ours.fpr, ref.fpr, 0, `${key}.fpr`);
          expectArrayClose(ours.tpr, ref.tpr, 0, `${key}.tpr`);
          expectArrayClose(ours.thresholds.subarray(1), ref.thresholds, 0, `${key}.thresholds`);
        }
      });

      it('fpr95 in every convention', () => {
        const f = (convention: 'id-positive-percentile' | 'roc-id-positive' | 'ood-positive', dropIntermediate = false) =>
          fpr95(c.in, c.out, { orientation, convention, dropIntermediate });
        expect(f('id-positive-percentile')).toBe(py().fpr95_percentile);
        expect(f('roc-id-positive')).toBe(py().fpr95_roc_id);
        expect(f('roc-id-positive', true)).toBe(py().fpr95_roc_id_drop);
        expect(f('ood-positive')).toBe(py().fpr95_ood);
        expect(f('ood-positive', true)).toBe(py().fpr95_ood_drop);
      });

      it('evaluate() agrees with the single metrics', () => {
        const r = evaluate(c.in, c.out, { orientation, fpr95Convention: 'ood-positive' });
        expectClose(r.auroc, py().auroc, 1e-9, 'auroc');
        expectClose(r.aupr_in, py().ap_in, 1e-9, 'aupr_in');
        expectClose(r.aupr_out, py().ap_out, 1e-9, 'aupr_out');
        expect(r.fpr95).toBe(py().fpr95_ood);
        expect(r.fpr95_convention).toBe('ood-positive');
        expectClose(r.detection_error, py().detection_error, 1e-12, 'detection error');
        expect([r.n_in, r.n_ood]).toEqual([c.in.length, c.out.length]);
        const t = evaluate(c.in, c.out, { orientation, auprConvention: 'trapezoid' });
        expectClose(t.aupr_in, py().trap_in, 1e-9, 'trap_in');
        expectClose(t.aupr_out, py().trap_out, 1e-9, 'trap_out');
      });

      it('officialAsCalled for both label layouts', () => {
        for (const idLabel of [0, 1] as const) {
          const ours = officialAsCalled(c.in, c.out, { idLabel });
          const ref = py().official[String(idLabel) as '0' | '1'];
          expectClose(ours.auroc, ref.auroc, 1e-9, `official auroc id=${idLabel}`);
          expectClose(ours.aupr, ref.aupr, 1e-9, `official aupr id=${idLabel}`);
          expect(ours.fpr95).toBe(ref.fpr95);
        }
      });

      it("numpy's linear percentile, bit for bit", () => {
        const sign = orientation === 'higher_is_ood' ? 1 : -1;
        const sorted = Float64Array.from(c.in, (v) => sign * v).sort();
        for (const { q, value } of py().quantiles) {
          // np.percentile(a, 100q) divides by 100 again, which is not always q itself (0.999).
          const qNumpy = (q * 100) / 100;
          const ours = linearQuantileSorted(sorted, qNumpy);
          // -0 and +0 are the same threshold; compare with ===.
          expect(ours === value, `q=${q}: ${ours} vs ${value}`).toBe(true);
        }
      });
    });
  }
});
