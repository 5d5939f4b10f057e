/**
 * What a suite needs beyond the repository (Debian's Python stack for independent checks, the
 * Fashion-MNIST package, libtorch features), and the skip that names what is missing.
 *
 * `bash scripts/setup.sh` installs every software requirement, so in a set-up clone nothing here is
 * skipped except hardware the machine lacks. With MOOD_TEST_REQUIRE_ALL=1 (CI) a missing software
 * requirement fails the file instead of skipping it, so an incomplete set-up cannot pass quietly.
 */
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { describe, it } from 'vitest';
import { ProcessGroup } from '../../lib/distributed';
import { SYSTEM_PYTHON } from './fixtures';

export type Need = 'python' | 'numpy' | 'torch' | 'torchvision' | 'pil' | 'scipy' | 'sklearn' | 'fashion-mnist' | 'gloo' | 'chromium';

/** Debian packages that bring each requirement (what the skip message tells the user to install). */
const PACKAGE: Record<Need, string> = {
  python: 'python3',
  numpy: 'python3-numpy',
  torch: 'python3-torch',
  torchvision: 'python3-torchvision',
  pil: 'python3-pil',
  scipy: 'python3-scipy',
  sklearn: 'python3-sklearn',
  'fashion-mnist': 'dataset-fashion-mnist',
  gloo: 'libtorch-dev with c10d/Gloo',
  chromium: 'chromium',
};

const PY_MODULE: Partial<Record<Need, string>> = { numpy: 'numpy', torch: 'torch', torchvision: 'torchvision', pil: 'PIL', scipy: 'scipy', sklearn: 'sklearn' };

export const FASHION_MNIST_DIR = process.env.MOOD_FASHION_MNIST ?? '/usr/share/datasets/fashion-mnist';
export const CHROMIUM = [process.env.MOOD_CHROMIUM, '/usr/bin/chromium', '/usr/bin/chromium-browser'].find((p): p is string => !!p && fs.existsSync(p));

const cache = new Map<Need, boolean>();

function present(need: Need): boolean {
  const known = cache.get(need);
  if (known !== undefined) return known;
  let ok: boolean;
  const mod = PY_MODULE[need];
  if (need === 'python') ok = fs.existsSync(SYSTEM_PYTHON);
  else if (mod) ok = fs.existsSync(SYSTEM_PYTHON) && spawnSync(SYSTEM_PYTHON, ['-c', `import ${mod}`], { stdio: 'ignore' }).status === 0;
  else if (need === 'fashion-mnist') ok = ['train', 't10k'].every((s) => fs.existsSync(path.join(FASHION_MNIST_DIR, `${s}-images-idx3-ubyte.gz`)));
  else if (need === 'chromium') ok = CHROMIUM !== undefined;
  else ok = ProcessGroup.available().gloo;
  cache.set(need, ok);
  return ok;
}

/** '' when every need is met; else what is missing and which packages bring it. */
export function missing(...needs: Need[]): string {
  const gone = needs.filter((n) => !present(n));
  if (gone.length === 0) return '';
  const why = `needs ${gone.map((n) => `${n} (${PACKAGE[n]})`).join(', ')}; bash scripts/setup.sh installs it`;
  if (process.env.MOOD_TEST_REQUIRE_ALL === '1') throw new Error(`MOOD_TEST_REQUIRE_ALL=1: ${why}`);
  return why;
}

/** `describe`, or a skipped one whose title ends "(skipped: needs ...)". */
export function describeWith(needs: Need[]): (name: string, fn: () => void) => void {
  const why = missing(...needs);
  return (name, fn) => (why ? describe.skip(`${name} (skipped: ${why})`, fn) : describe(name, fn));
}

/** `it`, or a skipped one whose title ends "(skipped: needs ...)". */
export function itWith(needs: Need[]): (name: string, fn: () => unknown, timeout?: number) => void {
  const why = missing(...needs);
  return (name, fn, timeout) => (why ? it.skip(`${name} (skipped: ${why})`, fn, timeout) : it(name, fn, timeout));
}
