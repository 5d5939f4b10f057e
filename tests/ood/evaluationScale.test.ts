/**
 * 1M + 1M scores: evaluate() must stay fast (one native sort per class, linear walks) and give the
 * exact Mann-Whitney AUROC, checked against an O(n) count on integer-valued scores.
 */
import { describe, expect, it } from 'vitest';
import { evaluate } from '../../lib/ood/evaluation';
import { rng } from './helpers';

describe('evaluation at scale', () => {
  it('evaluates 1M ID + 1M OOD scores in well under the budget, exactly', () => {
    const n = 1_000_000;
    const r = rng(7);
    const sIn = new Float64Array(n);
    const sOut = new Float64Array(n);
    // Integer scores in [0, 1000): heavy ties, and an exact AUROC by histogram counting.
    const histIn = new Float64Array(1000);
    const histOut = new Float64Array(1000);
    for (let i = 0; i < n; i++) {
      sIn[i] = Math.floor(r() * 900);
      sOut[i] = Math.floor(100 + r() * 900);
      histIn[sIn[i]]++;
      histOut[sOut[i]]++;
    }
    const t0 = performance.now();
    const res = evaluate(sIn, sOut, { orientation: 'higher_is_ood' });
    const ms = performance.now() - t0;

    let inBelow = 0;
    let wins = 0;
    for (let v = 0; v < 1000; v++) {
      wins += histOut[v] * (inBelow + 0.5 * histIn[v]);
      inBelow += histIn[v];
    }
    expect(res.auroc).toBe(wins / (n * n));
    expect(res.n_in + res.n_ood).toBe(2 * n);
    // Typically ~0.3 s on one core; the bound only catches accidental O(n^2) or per-element objects.
    expect(ms).toBeLessThan(5000);
  });
});
