/**
 * Validation and the single sort every metric starts from.
 *
 * All metrics are functions of the two score multisets only, so we sort the ID and the OOD scores
 * separately (native `Float64Array.prototype.sort`, numeric, no comparator callbacks) and later merge
 * them in one linear walk. That keeps 1M-sample evaluations in typed arrays with no per-element objects.
 */
import type { Orientation, ScoreArray } from './types';

/** ID and OOD scores, oriented (larger = more OOD) and sorted ascending. */
export interface PreparedScores {
  readonly in: Float64Array;
  readonly ood: Float64Array;
  readonly orientation: Orientation;
}

/** Copy, validate and orient one score array (sign flip for `higher_is_id`), then sort ascending. */
function orientedSortedCopy(scores: ScoreArray, what: string, orientation: Orientation, caller: string): Float64Array {
  if (scores == null || typeof scores.length !== 'number') {
    throw new TypeError(`${caller}: ${what} must be an array of numbers`);
  }
  const n = scores.length;
  if (n === 0) throw new RangeError(`${caller}: ${what} is empty; need at least one score`);
  const out = new Float64Array(n);
  const flip = orientation === 'higher_is_id';
  for (let i = 0; i < n; i++) {
    const v = scores[i];
    if (typeof v !== 'number' || !Number.isFinite(v)) {
      throw new RangeError(`${caller}: ${what}[${i}] is ${String(v)}; scores must be finite numbers`);
    }
    // `0 - v` / `v + 0` also turn -0 into +0, so thresholds never print as -0.
    out[i] = flip ? 0 - v : v + 0;
  }
  out.sort();
  return out;
}

export function checkOrientation(orientation: unknown, caller: string): Orientation {
  if (orientation !== 'higher_is_ood' && orientation !== 'higher_is_id') {
    throw new TypeError(
      `${caller}: orientation must be 'higher_is_ood' or 'higher_is_id' (got ${JSON.stringify(orientation)})`,
    );
  }
  return orientation;
}

/** Validate (finite, non-empty), orient and sort both score sets once. */
export function prepareScores(
  scoresIn: ScoreArray,
  scoresOut: ScoreArray,
  orientation: Orientation,
  caller = 'prepareScores',
): PreparedScores {
  const o = checkOrientation(orientation, caller);
  return {
    in: orientedSortedCopy(scoresIn, 'scoresIn', o, caller),
    ood: orientedSortedCopy(scoresOut, 'scoresOut', o, caller),
    orientation: o,
  };
}

/** Ascending sort of -a given ascending a (reversal + sign flip, no re-sort). */
export function negatedAscending(a: Float64Array): Float64Array {
  const n = a.length;
  const out = new Float64Array(n);
  for (let k = 0; k < n; k++) out[k] = 0 - a[n - 1 - k];
  return out;
}

export function checkTprLevel(level: number, caller: string): number {
  if (typeof level !== 'number' || !(level > 0 && level <= 1)) {
    throw new RangeError(`${caller}: tprLevel must be in (0, 1] (got ${String(level)})`);
  }
  return level;
}
