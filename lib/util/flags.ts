/**
 * Parsing of command-line flag values (numbers, integers, comma lists) for every `mood` command and
 * the option parsers under it (demo, pretrain). One signature, `(flag, value, range)`, and one error
 * style: `--flag: expected <what>, got '<value>'`, so a bad value reads the same whichever command
 * took it. It lives in lib/util rather than lib/cli because lib/demo and lib/pretrain parse flags too
 * and must not import upwards.
 */

/** A bad command-line value: the message names the flag, what was expected and what was given. */
export class FlagError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'FlagError';
  }
}

/** Bounds of an accepted value; `minOpen`/`maxOpen` exclude the bound itself. */
export interface FlagRange {
  min?: number;
  max?: number;
  minOpen?: boolean;
  maxOpen?: boolean;
}

/** What commander (or a programmatic caller) may hand over for a flag. */
export type FlagValue = unknown;

/** Throws the one error style: `--flag: expected <what>, got '<value>'`. */
export function badFlag(flag: string, expected: string, got: unknown): never {
  throw new FlagError(`${flag}: expected ${expected}, got '${String(got)}'`);
}

function describe(kind: 'integer' | 'number', r: FlagRange): string {
  const { min, max } = r;
  const noun = kind === 'integer' ? 'an integer' : 'a number';
  if (min === undefined && max === undefined) return noun;
  if (max === undefined || max === Infinity || max === Number.MAX_SAFE_INTEGER) {
    if (min === 0 && r.minOpen) return kind === 'integer' ? 'a positive integer' : 'a positive number';
    if (min === 1 && kind === 'integer' && !r.minOpen) return 'a positive integer';
    return `${noun} ${r.minOpen ? '>' : '>='} ${min}`;
  }
  if (min === undefined) return `${noun} ${r.maxOpen ? '<' : '<='} ${max}`;
  return `${noun} in ${r.minOpen ? '(' : '['}${min}, ${max}${r.maxOpen ? ')' : ']'}`;
}

function inRange(n: number, r: FlagRange): boolean {
  if (r.min !== undefined && (r.minOpen ? n <= r.min : n < r.min)) return false;
  if (r.max !== undefined && (r.maxOpen ? n >= r.max : n > r.max)) return false;
  return true;
}

/**
 * A finite number within `range`, or undefined when the flag was not given. Strings must be a whole
 * number literal (`''` and `'1e'` are refused, not read as 0 or NaN).
 */
export function numFlag(flag: string, value: FlagValue, range: FlagRange = {}): number | undefined {
  if (value === undefined) return undefined;
  const n = typeof value === 'number' ? value : typeof value === 'string' && value.trim() !== '' ? Number(value) : NaN;
  if (!Number.isFinite(n) || !inRange(n, range)) badFlag(flag, describe('number', range), value);
  return n;
}

/** A safe integer within `range` (decimal digits only: '1.0', '1e3' and '0x10' are refused), or undefined. */
export function intFlag(flag: string, value: FlagValue, range: FlagRange = {}): number | undefined {
  if (value === undefined) return undefined;
  const n = typeof value === 'number' ? value : typeof value === 'string' && /^\s*[-+]?\d+\s*$/.test(value) ? Number(value) : NaN;
  if (!Number.isSafeInteger(n) || !inRange(n, range)) badFlag(flag, describe('integer', range), value);
  return n;
}

/** A comma-separated list, items trimmed, empty items dropped; [] when the flag was not given. */
export function listFlag(value: string | undefined): string[] {
  return value === undefined ? [] : value.split(',').map((s) => s.trim()).filter(Boolean);
}
