/**
 * The random stream of one pre-training sample's mask, keyed by (seed, epoch, index): every sample's
 * mask is a pure function of those three numbers, so masks do not depend on worker counts or batch
 * order. It is lib/data's KeyedRng (the project's one seeded generator) on a stream of its own.
 */
import { KeyedRng } from '../data/rng';

/** What the masking generator draws (Python random's names); KeyedRng provides it. */
export interface Rng {
  /** Uniform double in [0, 1) with 53 random bits. */
  random(): number;
  /** Python random.uniform(a, b): a + (b - a) * random(). */
  uniform(a: number, b: number): number;
  /** Python random.randint(a, b): integer in [a, b], both ends included. */
  randint(a: number, b: number): number;
}

/** KeyedRng stream id of masks, apart from lib/data/plan.ts's STREAM_SAMPLE (1) and STREAM_BATCH (2 + 16 * rank). */
export const STREAM_MASK = 3;

/** The stream of one (seed, epoch, index) key. Integers only (fractional keys are rejected). */
export function planRng(seed: number, epoch = 0, index = 0): Rng {
  for (const [k, v] of [['seed', seed], ['epoch', epoch], ['index', index]] as const) {
    if (!Number.isSafeInteger(v)) throw new RangeError(`planRng: ${k} must be an integer, got ${v}`);
  }
  return new KeyedRng(seed, epoch, index, STREAM_MASK);
}
