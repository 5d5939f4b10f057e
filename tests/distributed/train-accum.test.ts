/**
 * Issue 8 "Done means" (b): --update_freq 2 on 2 Gloo ranks (no communication on the first
 * micro-step: one sync per optimizer step) equals the single-process run.
 */
import { describe, it } from 'vitest';
import { checkTrainingMatches } from './train-helpers';

describe('data-parallel fine-tuning with gradient accumulation', () => {
  it('update_freq 2, 2 steps: equal to one process with the whole batch', async () => {
    await checkTrainingMatches(2, 2);
  });
});
