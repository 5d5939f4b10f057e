/** Logit scores: numerical stability, temperature, hand-checkable values, and input errors. */
import { describe, expect, it } from 'vitest';
import { energy, entropy, gradnorm, maxlogit, msp } from '../../lib/ood/logits';
import { expectClose } from './helpers';

// float64 against closed forms: a few ulps (2^-52 = 2.2e-16 relative each) through exp/log/sum of 3
// terms, so 1e-14 (45 ulps) holds on any libm; measured <= 3.3e-16.
describe('logit scores on small hand-checked inputs', () => {
  const logits = new Float64Array([1, 2, 3, 0, 0, 0]);

  it('msp / maxlogit / entropy / energy', () => {
    const lse = Math.log(Math.exp(1) + Math.exp(2) + Math.exp(3));
    expectClose(msp(logits, 3)[0], Math.exp(3 - lse), 1e-14, 'msp row 0');
    expectClose(msp(logits, 3)[1], 1 / 3, 1e-14, 'msp uniform');
    expect(Array.from(maxlogit(logits, 3))).toEqual([3, 0]);
    expectClose(entropy(logits, 3)[1], Math.log(3), 1e-14, 'entropy uniform');
    const p = [1, 2, 3].map((l) => Math.exp(l - lse));
    expectClose(entropy(logits, 3)[0], -p.reduce((s, pi) => s + pi * Math.log(pi), 0), 1e-14, 'entropy');
    expectClose(energy(logits, 3)[0], -lse, 1e-14, 'energy');
    expectClose(energy(logits, 3)[1], -Math.log(3), 1e-14, 'energy uniform');
  });

  it('energy with temperature T is -T logsumexp(l / T)', () => {
    const T = 2.5;
    const expected = -T * Math.log(Math.exp(1 / T) + Math.exp(2 / T) + Math.exp(3 / T));
    expectClose(energy(logits, 3, { temperature: T })[0], expected, 1e-14, 'energy T');
  });

  it('is stable for huge logits where exp overflows', () => {
    const big = new Float64Array([1000, 999, 0]);
    const lse = 1000 + Math.log(1 + Math.exp(-1) + Math.exp(-1000));
    expectClose(energy(big, 3)[0], -lse, 1e-14, 'energy big');
    expectClose(msp(big, 3)[0], 1 / (1 + Math.exp(-1)), 1e-14, 'msp big');
    expect(Number.isFinite(entropy(big, 3)[0])).toBe(true);
    const small = new Float32Array([-1000, 50, 80]);
    expect(Number.isFinite(energy(small, 3, { temperature: 0.01 })[0])).toBe(true);
  });

  it('gradnorm = ||softmax - 1/C||_1 * ||h||_1', () => {
    const l = new Float64Array([0, Math.log(3)]); // softmax = [1/4, 3/4]
    const h = new Float64Array([1, -2, 0.5]);
    expectClose(gradnorm(l, 2, h, 3)[0], 0.5 * 3.5, 1e-14, 'gradnorm');
    // Uniform softmax: zero gradient whatever the features.
    expect(gradnorm(new Float64Array([7, 7]), 2, h, 3)[0]).toBe(0);
    // softmax of equal logits is 1/3 up to an ulp: |p - 1/3| sums to a few 1e-17, times ||h||_1 = 3.5.
    expect(gradnorm(new Float64Array([0.3, 0.3, 0.3]), 3, h, 3)[0]).toBeLessThanOrEqual(1e-15);
  });

  it('rejects malformed input', () => {
    expect(() => msp(new Float64Array(5), 3)).toThrow(/multiple of 3/);
    expect(() => msp(new Float64Array([1, NaN, 2]), 3)).toThrow(/\[0, 1\] is NaN/);
    expect(() => energy(new Float64Array([1, Infinity]), 2)).toThrow(/finite/);
    expect(() => maxlogit(new Float64Array(4), 0)).toThrow(/positive integer/);
    expect(() => energy(new Float64Array(4), 2, { temperature: 0 })).toThrow(/temperature/);
    expect(() => entropy([1, 2] as unknown as Float64Array, 2)).toThrow(TypeError);
    expect(() => gradnorm(new Float64Array(4), 2, new Float64Array(9), 3)).toThrow(/2 logit rows but 3 feature rows/);
  });
});
