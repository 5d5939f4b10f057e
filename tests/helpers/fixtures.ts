import * as path from 'node:path';

/** Repository root (tests/helpers/ is two levels down). */
export const REPO_ROOT = path.resolve(__dirname, '..', '..');

/**
 * The fixtures made by the official MOOD code (tests/fixtures/official/, see its README for
 * provenance): part of the repository, so a fresh clone runs every parity test. MOOD_FIXTURES
 * overrides (e.g. to try a regenerated set).
 */
export const FIXTURES_DIR = process.env.MOOD_FIXTURES ?? path.resolve(REPO_ROOT, 'tests', 'fixtures', 'official');

export function fixturePath(...parts: string[]): string {
  return path.join(FIXTURES_DIR, ...parts);
}


/** Debian's python3 with python3-torch/sklearn (not the pyenv python first on PATH). */
export const SYSTEM_PYTHON = process.env.MOOD_TEST_PYTHON ?? '/usr/bin/python3';
