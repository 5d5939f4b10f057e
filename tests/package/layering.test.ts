import * as fs from 'node:fs';
import * as path from 'node:path';
import { describe, expect, it } from 'vitest';

// lib/io is the bottom layer (atomic writes, positional reads, zip, CRC, PNG): it and the format
// modules over it (npy, tensorboard) must not reach up into lib/checkpoint or anything else in lib/.
const LIB = path.join(__dirname, '..', '..', 'lib');

/** The lib/ folders (or top-level modules) a file under lib/<dir> imports, from its import specifiers. */
function libImports(dir: string): Map<string, string[]> {
  const out = new Map<string, string[]>();
  for (const name of fs.readdirSync(path.join(LIB, dir))) {
    if (!name.endsWith('.ts')) continue;
    const file = path.join(LIB, dir, name);
    const text = fs.readFileSync(file, 'utf8');
    const specs = [...text.matchAll(/(?:from\s+|import\s*\(\s*)['"]([^'"]+)['"]/g)].map((m) => m[1]);
    const targets = specs
      .filter((s) => s.startsWith('.'))
      .map((s) => path.relative(LIB, path.resolve(path.dirname(file), s)).split(path.sep)[0]);
    out.set(`${dir}/${name}`, [...new Set(targets)]);
  }
  return out;
}

describe('layering', () => {
  it('the scanner sees real imports (lib/checkpoint imports lib/io)', () => {
    expect([...libImports('checkpoint').values()].flat()).toContain('io');
  });

  for (const [dir, allowed] of [
    ['io', ['io']],
    ['npy', ['npy', 'io']],
    ['tensorboard', ['tensorboard', 'io']],
  ] as const) {
    it(`lib/${dir} imports only ${allowed.map((a) => `lib/${a}`).join(', ')} (and node built-ins)`, () => {
      const bad = [...libImports(dir)].flatMap(([file, ts]) => ts.filter((t) => !(allowed as readonly string[]).includes(t)).map((t) => `${file} -> ${t}`));
      expect(bad).toEqual([]);
    });
  }
});
