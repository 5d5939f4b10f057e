/** Shared helpers of the OOD test suites: fixture readers, tolerance checks, live sklearn runner. */
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { expect } from 'vitest';
import { fixturePath, SYSTEM_PYTHON } from '../helpers/fixtures';
import { reportBound } from '../helpers/bounds';
import { mulberry32 } from '../../lib/util/mulberry32';

export interface OodFileEntry {
  file: string;
  dtype: 'float64' | 'int64';
  shape: number[];
}

export interface OfficialEntry {
  metric: string;
  labels: string;
  auroc: number;
  aupr: number;
  fpr95: number;
}

export interface OodScoreEntry {
  definition: string;
  in: OodFileEntry;
  ood: OodFileEntry;
  orientation: 'higher_is_ood' | 'higher_is_id';
  auroc: number;
  aupr_out: number;
  aupr_in: number;
  fpr95_percentile: number;
  fpr95_roc: number;
  official_as_called?: OfficialEntry;
}

export interface OodManifest {
  files: Record<string, OodFileEntry>;
  scores: Record<string, OodScoreEntry>;
}

export function loadOodManifest(): OodManifest {
  return JSON.parse(fs.readFileSync(fixturePath('ood', 'manifest.json'), 'utf8')) as OodManifest;
}

/** Read a raw little-endian float64 `.bin` (copying into an aligned buffer), checking its size vs the shape. */
export function readFloat64(entry: OodFileEntry): Float64Array {
  expect(entry.dtype).toBe('float64');
  const buf = fs.readFileSync(fixturePath('ood', entry.file));
  const count = entry.shape.reduce((a, b) => a * b, 1);
  expect(buf.length).toBe(count * 8);
  const out = new Float64Array(count);
  for (let i = 0; i < count; i++) out[i] = buf.readDoubleLE(i * 8);
  return out;
}

/**
 * Relative bound for a score computed in float64 by us and by numpy/sklearn/the official code from the
 * same float64 inputs. Each is within ~cond 2^-53 of exact, cond the conditioning of the formula: pinv of
 * covariances with cond <= 1.7e4 (the fixture's per-class ones; 12 for the pooled one) gives ~2e-12 and
 * entropy (a difference lse - Σ p z when it is small) ~1e-11; measured <= 6.9e-12. 1e-9 also keeps the
 * metrics exact: the closest ID/OOD pair of any fixture score is 2.8e-9 apart (relative, msp), so scores
 * within 1e-9 rank alike, and AUROC/AUPR/FPR95 differ by float64 summation rounding only. Checked by
 * mutation: one fixture score scaled by 1 + 1e-8 fails 16 of the 17 score tests of detectors.fixtures.
 */
export const FLOAT64_SCORE_TOL = 1e-9;

/** |actual − expected| <= rel·|expected| (plus a 1e-15 floor so exact zeros compare). */
export function expectClose(actual: number, expected: number, rel = 1e-6, label = ''): void {
  const bound = rel * Math.abs(expected) + 1e-15;
  reportBound(label, Math.abs(actual - expected), bound);
  if (!(Math.abs(actual - expected) <= bound)) expect.fail(`${label}: got ${actual}, expected ${expected} (rel tol ${rel})`);
}

export function expectArrayClose(actual: ArrayLike<number>, expected: ArrayLike<number>, rel: number, label: string): void {
  expect(actual.length, `${label} length`).toBe(expected.length);
  let worst = 0; // the largest |a - e| / bound, for MOOD_TEST_VERBOSE
  for (let i = 0; i < expected.length; i++) {
    const a = actual[i];
    const e = expected[i];
    if (a === e) continue; // also covers matching infinities
    const bound = rel * Math.abs(e) + 1e-15;
    if (!(Math.abs(a - e) <= bound)) expect.fail(`${label}[${i}]: got ${a}, expected ${e}`);
    worst = Math.max(worst, Math.abs(a - e) / bound);
  }
  reportBound(`${label} (worst element, relative to its bound)`, worst, 1);
}

/** True when /usr/bin/python3 (or MOOD_TEST_PYTHON) can import numpy and sklearn. */
export function haveSklearn(): boolean {
  const r = spawnSync(SYSTEM_PYTHON, ['-c', 'import numpy, sklearn'], { encoding: 'utf8' });
  return r.status === 0;
}

/**
 * Run a Python script with SYSTEM_PYTHON. Named float64 arrays are written to a temp dir as
 * `<name>.bin`; the script gets the dir as argv[1] and must print one JSON document.
 */
export function runPython<T>(script: string, arrays: Record<string, Float64Array>): T {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'mood-ood-test-'));
  try {
    for (const [name, a] of Object.entries(arrays)) {
      fs.writeFileSync(path.join(dir, `${name}.bin`), Buffer.from(a.buffer, a.byteOffset, a.byteLength));
    }
    const scriptPath = path.join(dir, 'check.py');
    fs.writeFileSync(scriptPath, script);
    const r = spawnSync(SYSTEM_PYTHON, [scriptPath, dir], { encoding: 'utf8', maxBuffer: 512 * 1024 * 1024 });
    if (r.status !== 0) throw new Error(`python failed (${r.status}): ${r.stderr}`);
    return JSON.parse(r.stdout) as T;
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
}

/** Seeded PRNG for reproducible generated data (one shared implementation). */
export const rng = mulberry32;

/** Standard normal draws from the uniform stream r (Box-Muller, two uniforms per value). */
export function gaussian(r: () => number): () => number {
  return () => Math.sqrt(-2 * Math.log(1 - r())) * Math.cos(2 * Math.PI * r());
}

/**
 * N x D rows around `blobs` (row i around blob i % blobs.length, noise scale noise(i)), drawn row by
 * row from `gauss`. The k-means tests build their data this way.
 */
export function blobRows(blobs: Float64Array[], n: number, noise: (i: number) => number, gauss: () => number): Float64Array {
  const d = blobs[0].length;
  const raw = new Float64Array(n * d);
  for (let i = 0; i < n; i++) {
    const c = blobs[i % blobs.length];
    const s = noise(i);
    for (let f = 0; f < d; f++) raw[i * d + f] = c[f] + s * gauss();
  }
  return raw;
}

/** The rows minus their column means (how kmeansFit centres the data). */
export function centreColumns(raw: Float64Array, d: number): Float64Array {
  const n = raw.length / d;
  const mean = new Float64Array(d);
  for (let i = 0; i < n; i++) for (let f = 0; f < d; f++) mean[f] += raw[i * d + f] / n;
  return raw.map((v, j) => v - mean[j % d]);
}
