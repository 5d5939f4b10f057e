import { execFileSync, spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';

// The prebuild path of the published package: node-gyp-build finds prebuilds/<platform>-<arch>/ when
// there is no local build, and a prebuild that cannot load explains which libtorch it expected.
// Runs lib/native.ts (+ lib/binding.ts) from a scratch package that has no build/ folder, so the prebuild is the only
// addon it can find.
const root = path.resolve(__dirname, '../..');
const prebuildDir = path.join(root, 'prebuilds', `${process.platform}-${process.arch}`);
const prebuilt = fs.existsSync(prebuildDir) ? fs.readdirSync(prebuildDir).find((f) => f.endsWith('.node')) : undefined;
const scratch = fs.mkdtempSync(path.join(os.tmpdir(), 'mood-prebuild-'));
afterAll(() => fs.rmSync(scratch, { recursive: true, force: true }));

function makePackage(dir: string, addon: Buffer, record: object): void {
  fs.mkdirSync(path.join(dir, 'lib'), { recursive: true });
  fs.mkdirSync(path.join(dir, 'prebuilds', `${process.platform}-${process.arch}`), { recursive: true });
  // The loader and the declared surface it checks the addon against (its other imports are types only).
  for (const f of ['native.ts', 'binding.ts']) fs.copyFileSync(path.join(root, 'lib', f), path.join(dir, 'lib', f));
  fs.writeFileSync(path.join(dir, 'package.json'), JSON.stringify({ name: 'mood-ood', version: '0.0.0' }));
  fs.symlinkSync(path.join(root, 'node_modules'), path.join(dir, 'node_modules'));
  const p = path.join(dir, 'prebuilds', `${process.platform}-${process.arch}`);
  fs.writeFileSync(path.join(p, prebuilt ?? 'mood-ood.glibc.node'), addon);
  fs.writeFileSync(path.join(p, 'mood-build.json'), JSON.stringify(record));
}

// Loads the addon through lib/native.ts and runs one matmul.
const probe = `
require('ts-node').register({ transpileOnly: true, compilerOptions: { module: 'commonjs' } });
const { loadNative } = require('./lib/native.ts');
const T = loadNative().NativeTensor;
const a = T.fromTypedArray(new Float32Array([1, 2, 3, 4]), [2, 2], 'float32');
Promise.resolve(T.read(T.op('matmul', [a, a], {}))).then((d) => console.log(JSON.stringify(Array.from(d))));
`;

describe('prebuilds (npm run prebuild, node-gyp-build)', () => {
  it.skipIf(!prebuilt)(`a package with only the prebuild loads it and runs an op${prebuilt ? '' : ' (skipped: no prebuilds/ here; npm run build makes one)'}`, () => {
    const dir = path.join(scratch, 'good');
    makePackage(dir, fs.readFileSync(path.join(prebuildDir, prebuilt!)), JSON.parse(fs.readFileSync(path.join(prebuildDir, 'mood-build.json'), 'utf8')));
    const out = execFileSync(process.execPath, ['-e', probe], { cwd: dir, encoding: 'utf8' });
    expect(JSON.parse(out.trim())).toEqual([7, 10, 15, 22]);
  });

  it('a prebuild that cannot load says which libtorch it expected, which is here, and how to rebuild', () => {
    const dir = path.join(scratch, 'bad');
    // Stands in for a prebuild linked against another libtorch: the dynamic loader refuses it.
    makePackage(dir, Buffer.from('not an ELF shared object'), { torchVersion: '9.9.9', torchLibDir: '/opt/other-torch/lib' });
    const r = spawnSync(process.execPath, ['-e', probe], { cwd: dir, encoding: 'utf8' });
    expect(r.status).not.toBe(0);
    expect(r.stderr).toMatch(/cannot load the native addon/);
    expect(r.stderr).toMatch(/built against libtorch 9\.9\.9 \(\/opt\/other-torch\/lib\)/);
    expect(r.stderr).toMatch(/libtorch found here: 1\.13/);
    expect(r.stderr).toMatch(/npm run build:native/);
  });
});
