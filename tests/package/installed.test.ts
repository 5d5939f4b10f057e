import { execFileSync, spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

// The package as a user gets it: `npm pack` (its prepack script compiles a clean dist/), then
// `npm install <tgz>` in an empty folder, then a user's TypeScript script that imports everything from
// 'mood-ood' is type-checked against the installed .d.ts files and run. The addon is the one `npm run
// build` made (copied where node-gyp-build looks first), so nothing is compiled here but TypeScript.
// The packing happens in a staging copy of the sources, so the checkout's own dist/ is left alone.
const root = path.resolve(__dirname, '../..');
const addon = path.join(root, 'build', 'Release', 'mood_native.node');
const tsc = path.join(root, 'node_modules', 'typescript', 'bin', 'tsc');
const work = fs.mkdtempSync(path.join(os.tmpdir(), 'mood-installed-'));
afterAll(() => fs.rmSync(work, { recursive: true, force: true }));

const pkg = JSON.parse(fs.readFileSync(path.join(root, 'package.json'), 'utf8')) as { files: string[]; version: string };
const staging = path.join(work, 'staging');
const consumer = path.join(work, 'consumer');
let packed: { filename: string; files: Array<{ path: string }> };

const run = (cmd: string, args: string[], cwd: string) => {
  const r = spawnSync(cmd, args, { cwd, encoding: 'utf8', env: { ...process.env, npm_config_update_notifier: 'false', npm_config_fund: 'false', npm_config_audit: 'false' } });
  if (r.status !== 0) throw new Error(`${cmd} ${args.join(' ')} (in ${cwd}) exited ${r.status}:\n${r.stdout}\n${r.stderr}`);
  return r.stdout;
};

// What a user's script does: every area from the package root, with the types the docs name.
const userScript = `
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { Tensor, tidy, linalg, info, createModel, beitConfigNames, distributed, tensorboard, ood, data, train, pretrain, checkpoint, npy, report } from 'mood-ood';
import type { BeitOptions, Device, DType, ImageDataset, DataLoader } from 'mood-ood';

async function main(): Promise<void> {
  const pg: distributed.ProcessGroup | null = await distributed.initFromEnv();
  const main = distributed.isMain();

  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'user-tb-'));
  const tb = new tensorboard.TensorBoardLogger(dir);
  tensorboard.logFinetuneStep(tb, { loss: 1.5, lr: 1e-3, minLr: 1e-4, weightDecay: 0.05, gradNorm: 2 });
  tb.close();
  const events = fs.readdirSync(dir).filter((f) => f.includes('tfevents'));

  const x = Tensor.fromArray(new Float32Array([1, 2, 3, 4]), [2, 2]);
  const y: Float32Array = (await tidy(() => linalg.pinv(x.matmul(x)).matmul(x.matmul(x))).data()) as Float32Array;
  x.dispose();

  const opts: BeitOptions = { img_size: 16, patch_size: 8, embed_dim: 32, depth: 1, num_heads: 2, num_classes: 3 };
  const model = createModel('beit_test_tiny', opts);
  const img = Tensor.fromArray(new Float32Array(2 * 3 * 16 * 16).fill(0.5), [2, 3, 16, 16]);
  model.eval();
  const out = model.run(img, { features: true, logits: true });
  const logitsShape = out.logits!.shape;
  img.dispose();
  out.features?.dispose();
  out.logits?.dispose();
  model.dispose();

  const device: Device = 'cpu';
  const dt: DType = 'float32';
  const ds: ImageDataset | undefined = undefined;
  const loader: DataLoader | undefined = undefined;
  const ftOpts: train.FinetuneOptions = { model: 'beit_test_tiny', dataSet: 'fashion_mnist', epochs: 1 };
  const dsOpts: data.BuildDatasetOptions = { dataSet: 'cifar10', dataPath: 'x', train: true };
  const exists = [typeof ood.features.evaluateOod, typeof ood.createDetector, typeof pretrain.pretrain, typeof checkpoint.loadTensors, typeof npy.readNpy, typeof report.writeReport, typeof train.Trainer, typeof data.createLoader];
  console.log(JSON.stringify({ pg, main, events: events.length, y: Array.from(y), logitsShape, torch: info().torchVersion, configs: beitConfigNames().includes('beit_base_patch16_224'), device, dt, ds, loader, ft: ftOpts.model, dsOpts: dsOpts.dataSet, exists }));
}
main().catch((e) => { console.error(e); process.exitCode = 1; });
`;

describe('the installed package (npm pack + npm install in an empty folder)', () => {
  beforeAll(() => {
    // The whole suite runs on the build `npm test` requires; a missing addon is an error, not a skip.
    if (!fs.existsSync(addon)) throw new Error(`${addon} is missing: run npm run build`);
    // The sources npm pack needs: what "files" ships plus what prepack compiles from.
    fs.mkdirSync(staging, { recursive: true });
    for (const entry of [...pkg.files, 'package.json', 'tsconfig.json', 'lib']) {
      const from = path.join(root, entry);
      if (entry === 'dist' || entry === 'prebuilds' || !fs.existsSync(from)) continue;
      fs.cpSync(from, path.join(staging, entry), { recursive: true });
    }
    fs.symlinkSync(path.join(root, 'node_modules'), path.join(staging, 'node_modules'));
    packed = JSON.parse(run('npm', ['pack', '--json', '--pack-destination', work], staging))[0];

    fs.mkdirSync(consumer);
    fs.writeFileSync(path.join(consumer, 'package.json'), JSON.stringify({ name: 'consumer', version: '1.0.0', private: true }));
    // --ignore-scripts: the install script would compile the addon with node-gyp; the built one is copied instead.
    // Dependencies come from npm's cache (filled by npm ci), else the registry.
    const typesNode = JSON.parse(fs.readFileSync(path.join(root, 'node_modules', '@types', 'node', 'package.json'), 'utf8')).version;
    run('npm', ['install', '--ignore-scripts', '--prefer-offline', '--no-audit', '--no-fund', path.join(work, packed.filename), `@types/node@${typesNode}`], consumer);
    const installed = path.join(consumer, 'node_modules', 'mood-ood');
    fs.mkdirSync(path.join(installed, 'build', 'Release'), { recursive: true });
    fs.copyFileSync(addon, path.join(installed, 'build', 'Release', 'mood_native.node'));
    fs.writeFileSync(path.join(consumer, 'user.ts'), userScript);
  }, 600_000);

  it('the tarball ships a compiled dist/ with declarations, no sources, tests or dist/dist', () => {
    const files = packed.files.map((f) => f.path);
    for (const f of ['package.json', 'README.md', 'bin/mood.js', 'dist/index.js', 'dist/index.d.ts', 'dist/distributed/index.d.ts', 'dist/tensorboard/index.d.ts', 'dist/cli/main.js', 'scripts/install.js', 'binding.gyp']) {
      expect(files).toContain(f);
    }
    expect(files.filter((f) => f.startsWith('dist/dist/') || f.startsWith('lib/') || f.startsWith('tests/') || f.startsWith('build/'))).toEqual([]);
    expect(packed.filename).toBe(`mood-ood-${pkg.version}.tgz`);
  });

  for (const [label, module, resolution] of [
    ['CommonJS + node10 resolution', 'commonjs', 'node10'],
    ['node16 resolution', 'node16', 'node16'],
  ] as const) {
    it(`a user's script importing from 'mood-ood' type-checks (${label}, strict)`, () => {
      // The CommonJS check also emits out/user.js, the program the run test below executes.
      const emit = module === 'commonjs' ? ['--outDir', 'out'] : ['--noEmit'];
      const r = spawnSync(process.execPath, [tsc, ...emit, '--strict', '--target', 'ES2022', '--module', module, '--moduleResolution', resolution, '--types', 'node', 'user.ts'], { cwd: consumer, encoding: 'utf8' });
      expect(r.stdout + r.stderr).toBe('');
      expect(r.status).toBe(0);
    });
  }

  it('a type error in it is caught (the check above is not vacuous)', () => {
    fs.writeFileSync(path.join(consumer, 'bad.ts'), "import { distributed, tensorboard } from 'mood-ood';\nconst r: number = distributed.isMain();\nnew tensorboard.TensorBoardWriter(42);\n");
    const r = spawnSync(process.execPath, [tsc, '--noEmit', '--strict', '--module', 'commonjs', '--types', 'node', 'bad.ts'], { cwd: consumer, encoding: 'utf8' });
    expect(r.status).not.toBe(0);
    expect(r.stdout).toMatch(/bad\.ts\(2,7\): error TS2322: Type 'boolean' is not assignable to type 'number'/);
    expect(r.stdout).toMatch(/bad\.ts\(3,35\): error TS2345/);
  });

  it('the script runs: distributed, tensorboard, tensors, a model, from the package root', () => {
    if (!fs.existsSync(path.join(consumer, 'out', 'user.js'))) execFileSync(process.execPath, [tsc, '--strict', '--target', 'ES2022', '--module', 'commonjs', '--types', 'node', '--outDir', 'out', 'user.ts'], { cwd: consumer });
    const env = { ...process.env };
    for (const k of ['RANK', 'WORLD_SIZE', 'LOCAL_RANK', 'MASTER_ADDR', 'MASTER_PORT']) delete env[k];
    const out = JSON.parse(execFileSync(process.execPath, ['out/user.js'], { cwd: consumer, encoding: 'utf8', env }).trim());
    expect(out.pg).toBeNull(); // not launched distributed
    expect(out.main).toBe(true);
    expect(out.events).toBe(1);
    // pinv(A^2) A^2 = I for the invertible A = [[1, 2], [3, 4]] (float32 rounding of a 2x2 pinv).
    out.y.forEach((v: number, i: number) => expect(Math.abs(v - [1, 0, 0, 1][i])).toBeLessThan(1e-4));
    expect(out.logitsShape).toEqual([2, 3]);
    expect(out.torch).toMatch(/^\d+\.\d+/);
    expect(out.configs).toBe(true);
    expect(out.exists).toEqual(Array(8).fill('function'));
  });

  it("the installed `mood` command runs from dist/", () => {
    const bin = path.join(consumer, 'node_modules', '.bin', 'mood');
    expect(execFileSync(bin, ['--version'], { encoding: 'utf8' }).trim()).toBe(pkg.version);
    const help = execFileSync(bin, ['--help'], { encoding: 'utf8' });
    for (const c of ['finetune', 'pretrain', 'eval-features', 'launch', 'score']) expect(help).toContain(c);
    const i = JSON.parse(execFileSync(bin, ['info', '--json'], { encoding: 'utf8' }));
    expect(typeof i.torchVersion).toBe('string');
  });
});
