/**
 * Logit scores recomputed from the fixture's logits (and raw features for GradNorm) match the
 * fixture's score files to 1e-9 relative (FLOAT64_SCORE_TOL), and each score's orientation matches the manifest.
 */
import { describe, expect, it } from 'vitest';
import { energy, entropy, gradnorm, LOGIT_SCORE_ORIENTATION, maxlogit, msp, type LogitScoreName } from '../../lib/ood/logits';
import { expectArrayClose, FLOAT64_SCORE_TOL, loadOodManifest, readFloat64 } from './helpers';

const manifest = loadOodManifest();

describe('logit scores vs ood/ fixtures', () => {
  const m = manifest!;
  const C = m.files.logits_test.shape[1];
  const D = m.files.ftest_raw.shape[1];
  const logitsIn = readFloat64(m.files.logits_test);
  const logitsOut = readFloat64(m.files.logits_ood);
  const featIn = readFloat64(m.files.ftest_raw);
  const featOut = readFloat64(m.files.food_raw);

  const compute: Record<LogitScoreName, (logits: Float64Array, feats: Float64Array) => Float64Array> = {
    msp: (l) => msp(l, C),
    maxlogit: (l) => maxlogit(l, C),
    entropy: (l) => entropy(l, C),
    energy: (l) => energy(l, C),
    gradnorm: (l, f) => gradnorm(l, C, f, D),
  };

  for (const name of Object.keys(compute) as LogitScoreName[]) {
    it(`${name}: values and orientation`, () => {
      const entry = m.scores[name];
      expect(LOGIT_SCORE_ORIENTATION[name]).toBe(entry.orientation);
      expectArrayClose(compute[name](logitsIn, featIn), readFloat64(entry.in), FLOAT64_SCORE_TOL, `${name}.in`);
      expectArrayClose(compute[name](logitsOut, featOut), readFloat64(entry.ood), FLOAT64_SCORE_TOL, `${name}.ood`);
    });
  }

  it('accepts Float32Array logits (float64 arithmetic inside)', () => {
    const l32 = Float32Array.from(logitsIn);
    // The only error is the float32 rounding of the inputs themselves: 2^-24 = 6e-8 relative on a max
    // logit; energy = -logsumexp moves by <= max |δz| <= 2^-24 max|z|, relative to |energy| >= max z.
    expectArrayClose(maxlogit(l32, C), readFloat64(m.scores.maxlogit.in), 1e-6, 'maxlogit f32');
    expectArrayClose(energy(l32, C), readFloat64(m.scores.energy.in), 1e-5, 'energy f32');
  });

  it('logits are head(raw features), so the fixture is self-consistent', () => {
    const W = readFloat64(m.files.head_weight);
    const b = readFloat64(m.files.head_bias);
    const rows = m.files.ftest_raw.shape[0];
    const recomputed = new Float64Array(rows * C);
    for (let r = 0; r < rows; r++) {
      for (let c = 0; c < C; c++) {
        let s = b[c];
        for (let d = 0; d < D; d++) s += featIn[r * D + d] * W[c * D + d];
        recomputed[r * C + c] = s;
      }
    }
    // Dot products of 32 in IEEE float64 here and in numpy: ~32 2^-53 Σ|f w| (measured 1.4e-13 relative).
    expectArrayClose(recomputed, logitsIn, 1e-9, 'logits');
  });
});
