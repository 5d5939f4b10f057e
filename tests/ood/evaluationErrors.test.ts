/** Bad inputs fail loudly with messages naming the function, the array and the index. */
import { describe, expect, it } from 'vitest';
import {
  auprIn,
  auprOut,
  auroc,
  detectionError,
  evaluate,
  fpr95,
  officialAsCalled,
  rocCurve,
  type Orientation,
} from '../../lib/ood/evaluation';

const ok = new Float64Array([0.1, 0.2, 0.3]);
const orientation: Orientation = 'higher_is_ood';

describe('evaluation input validation', () => {
  it('rejects empty score sets', () => {
    expect(() => auroc([], ok, { orientation })).toThrow(/auroc: scoresIn is empty/);
    expect(() => evaluate(ok, new Float64Array(0), { orientation })).toThrow(/evaluate: scoresOut is empty/);
    expect(() => officialAsCalled(ok, [], { idLabel: 0 })).toThrow(/scoresOut is empty/);
  });

  it('rejects NaN and infinities with their position', () => {
    expect(() => auroc([0.1, NaN], ok, { orientation })).toThrow(/scoresIn\[1\] is NaN/);
    expect(() => auprOut(ok, [Infinity], { orientation })).toThrow(/scoresOut\[0\] is Infinity/);
    expect(() => fpr95(ok, new Float32Array([1, -Infinity]), { orientation })).toThrow(/scoresOut\[1\] is -Infinity/);
    expect(() => rocCurve([NaN], ok, { orientation })).toThrow(RangeError);
  });

  it('rejects non-numbers', () => {
    expect(() => auprIn(['1' as unknown as number], ok, { orientation })).toThrow(/scoresIn\[0\] is 1; scores must be finite numbers/);
    expect(() => auroc(null as unknown as number[], ok, { orientation })).toThrow(TypeError);
  });

  it('requires an explicit orientation', () => {
    expect(() => auroc(ok, ok, {} as { orientation: Orientation })).toThrow(/orientation must be 'higher_is_ood' or 'higher_is_id'/);
    expect(() => evaluate(ok, ok, undefined as unknown as { orientation: Orientation })).toThrow(/orientation/);
    expect(() => detectionError(ok, ok, { orientation: 'larger' as Orientation })).toThrow(/"larger"/);
  });

  it('rejects unknown conventions and TPR levels outside (0, 1]', () => {
    expect(() => fpr95(ok, ok, { orientation, convention: 'openood' as never })).toThrow(/fpr95 convention must be one of/);
    expect(() => evaluate(ok, ok, { orientation, auprConvention: 'area' as never })).toThrow(/aupr: convention/);
    expect(() => fpr95(ok, ok, { orientation, tprLevel: 0 })).toThrow(/tprLevel must be in \(0, 1\]/);
    expect(() => evaluate(ok, ok, { orientation, tprLevel: 1.5 })).toThrow(/tprLevel/);
    expect(() => rocCurve(ok, ok, { orientation, positive: 'both' as never })).toThrow(/positive must be/);
    expect(() => officialAsCalled(ok, ok, { idLabel: 2 as never })).toThrow(/idLabel must be 0 or 1/);
  });

  it('does not modify the caller arrays', () => {
    const a = new Float64Array([3, 1, 2]);
    const b = [0.5, -1];
    evaluate(a, b, { orientation: 'higher_is_id' });
    expect(Array.from(a)).toEqual([3, 1, 2]);
    expect(b).toEqual([0.5, -1]);
  });
});
