/**
 * Issue 8 "Done means" (a): after k optimizer steps of the native fine-tuning step with the
 * GradientSync, weights on both Gloo ranks are identical and equal the single-process run on the
 * doubled batch (to 1e-5). Rank 1 starts from other weights: the rank-0 broadcast is exercised.
 */
import { describe, it } from 'vitest';
import { checkTrainingMatches } from './train-helpers';

describe('data-parallel fine-tuning, 2 Gloo processes', () => {
  it('3 steps: weights identical on both ranks and equal to one process with the doubled batch', async () => {
    await checkTrainingMatches(1, 3);
  });
});
