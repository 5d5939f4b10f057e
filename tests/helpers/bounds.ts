/**
 * Inclusive checks against derived tolerance bounds (the TypeScript twin of native/tests/test_harness.h
 * CHECK_WITHIN). A derived bound is one the value may reach, so the check is value <= bound; a failure
 * names both numbers. With MOOD_TEST_VERBOSE=1 every check also prints "value / bound = ratio", which is
 * how the margins quoted in the tests' comments are measured across the rows of scripts/test-matrix.sh.
 */
import { expect } from 'vitest';

const verbose = process.env.MOOD_TEST_VERBOSE === '1';

/** Print value/bound when MOOD_TEST_VERBOSE=1 (for checks that assert in their own way). */
export function reportBound(label: string, value: number, bound: number): void {
  if (verbose) console.log(`[bound] ${label}: ${value.toExponential(3)} / ${bound.toExponential(3)} = ${(value / bound).toPrecision(3)}`);
}

/** value <= bound, reported under MOOD_TEST_VERBOSE=1. */
export function expectWithin(value: number, bound: number, label: string): void {
  reportBound(label, value, bound);
  if (!(value <= bound)) expect.fail(`${label}: ${value} is above its bound ${bound}`);
}
