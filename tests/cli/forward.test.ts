/**
 * `mood forward` end to end: the real `bin/mood.js` as a child process on the shared fixtures.
 *
 * Why bin/mood.js: it is what users run, and it only uses dist/ when dist/cli/main.js is not older
 * than every lib/**.ts (otherwise it runs lib/ through ts-node, transpile-only), so a stale dist/
 * cannot answer for the sources under test and no `tsc` step is needed before the tests.
 */
import { execFile, execFileSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ndarray, readNpy, writeNpy } from '../../lib/npy';
import { parseModelOpts } from '../../lib/cli/forward';
import { REPO_ROOT, SYSTEM_PYTHON, fixturePath } from '../helpers/fixtures';

const execFileP = promisify(execFile);
const BIN = path.join(REPO_ROOT, 'bin', 'mood.js');
// The fixture README's bound for an independent float32 implementation of these models: 1e-4 absolute
// on O(1) outputs (the reference's own fp32-vs-fp64 noise is <= 1.4e-6 on features/logits; a wrong
// detail moves features by >= 0.04). tests/fixtures/official/README.md, "Tolerance".
const TOL = 1e-4;

interface Run {
  code: number;
  stdout: string;
  stderr: string;
}

async function mood(...args: string[]): Promise<Run> {
  try {
    const r = await execFileP(process.execPath, [BIN, 'forward', ...args], { cwd: REPO_ROOT, encoding: 'utf8', maxBuffer: 1 << 24 });
    return { code: 0, stdout: r.stdout, stderr: r.stderr };
  } catch (e) {
    const err = e as { code?: number; stdout?: string; stderr?: string };
    return { code: typeof err.code === 'number' ? err.code : -1, stdout: err.stdout ?? '', stderr: err.stderr ?? '' };
  }
}

function readBin(file: string): Float32Array {
  const b = fs.readFileSync(fixturePath(file));
  return new Float32Array(b.buffer.slice(b.byteOffset, b.byteOffset + b.byteLength));
}

function maxAbsDiff(a: ArrayLike<number>, b: ArrayLike<number>): number {
  expect(a.length).toBe(b.length);
  let m = 0;
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i] - b[i]));
  return m;
}

function havePythonNumpy(): boolean {
  try {
    execFileSync(SYSTEM_PYTHON, ['-c', 'import numpy'], { stdio: 'ignore' });
    return true;
  } catch {
    return false;
  }
}

/** A failed run: non-zero exit, one clear `mood:` message on stderr, no stack trace, nothing on stdout. */
function expectCleanFailure(r: Run, message: RegExp): void {
  expect(r.code, r.stderr).not.toBe(0);
  expect(r.stderr).toMatch(/^mood: /);
  expect(r.stderr).toMatch(message);
  expect(r.stderr).not.toMatch(/\n\s+at .+\(.+:\d+:\d+\)/);
  expect(r.stdout).toBe('');
}

describe('mood forward (CLI, shared fixtures)', () => {
  let dir: string;
  const inputs: Record<string, string> = {};
  const ckpt = {
    meanpool: fixturePath('ft_meanpool.pth'),
    cls: fixturePath('ft_cls_abspos.pth'),
  };
  // ft_cls_abspos has no relative position table, so num_heads cannot be inferred (48 is not a multiple of 64).
  const clsOpts = ['--model-opts', '{"num_heads": 4}'];

  beforeAll(() => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'mood-forward-'));
    for (const c of ['ft_meanpool', 'ft_cls_abspos']) {
      const x = readBin(`${c}.input.bin`);
      inputs[c] = path.join(dir, `${c}.npy`);
      writeNpy(inputs[c], ndarray('float32', [3, 3, 32, 32], x));
      inputs[`${c}.f64`] = path.join(dir, `${c}.f64.npy`);
      writeNpy(inputs[`${c}.f64`], ndarray('float64', [3, 3, 32, 32], Float64Array.from(x)));
    }
    const bad: Array<[string, 'float32' | 'int64', number[]]> = [
      ['one_channel', 'float32', [2, 1, 32, 32]],
      ['size48', 'float32', [2, 3, 48, 48]],
      ['int64', 'int64', [2, 3, 32, 32]],
      ['rank3', 'float32', [3, 32, 32]],
    ];
    for (const [name, dtype, shape] of bad) {
      const n = shape.reduce((a, b) => a * b, 1);
      inputs[name] = path.join(dir, `${name}.npy`);
      writeNpy(inputs[name], ndarray(dtype, shape, dtype === 'int64' ? new BigInt64Array(n) : new Float32Array(n)));
    }
  });
  afterAll(() => {
    if (dir) fs.rmSync(dir, { recursive: true, force: true });
  });

  it('ft_meanpool: features and logits match the reference to 1e-4, across several batches, and load in numpy', async () => {
    const f = path.join(dir, 'meanpool.features.npy');
    const l = path.join(dir, 'meanpool.logits.npy');
    // snake_case flags as the reference scripts spell them; batch size 2 splits the 3 images.
    const r = await mood('--ckpt', ckpt.meanpool, '--input', inputs.ft_meanpool, '--features_out', f, '--logits_out', l, '--batch_size', '2');
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toMatch(/missing\s+none/);
    expect(r.stdout).toMatch(/unexpected\s+none/);
    expect(r.stdout).toMatch(/features\s+.*float32 \(3, 48\)/);
    expect(r.stdout).toMatch(/logits\s+.*float32 \(3, 10\)/);
    const feats = readNpy(f);
    const logits = readNpy(l);
    expect([feats.dtype, feats.shape]).toEqual(['float32', [3, 48]]);
    expect([logits.dtype, logits.shape]).toEqual(['float32', [3, 10]]);
    expect(maxAbsDiff(feats.typed() as Float32Array, readBin('ft_meanpool.features.bin'))).toBeLessThanOrEqual(TOL);
    expect(maxAbsDiff(logits.typed() as Float32Array, readBin('ft_meanpool.logits.bin'))).toBeLessThanOrEqual(TOL);

    if (!havePythonNumpy()) return;
    const script = [
      'import sys, json, numpy',
      'out = {}',
      'for p in sys.argv[1:3]:',
      '    a = numpy.load(p)',
      '    out[p] = [str(a.dtype), list(a.shape)]',
      'ref = numpy.fromfile(sys.argv[3], dtype="<f4").reshape(3, 48)',
      'out["maxdiff"] = float(numpy.abs(numpy.load(sys.argv[1]) - ref).max())',
      'print(json.dumps(out))',
    ].join('\n');
    const res = JSON.parse(execFileSync(SYSTEM_PYTHON, ['-c', script, f, l, fixturePath('ft_meanpool.features.bin')], { encoding: 'utf8' }));
    expect(res[f]).toEqual(['float32', [3, 48]]);
    expect(res[l]).toEqual(['float32', [3, 10]]);
    expect(res.maxdiff).toBeLessThanOrEqual(TOL);
  });

  it('ft_cls_abspos: float64 input converted, --json report, outputs match to 1e-4 and load in numpy', async () => {
    const f = path.join(dir, 'cls.features.npy');
    const l = path.join(dir, 'cls.logits.npy');
    const r = await mood('--ckpt', ckpt.cls, '--input', inputs['ft_cls_abspos.f64'], '--features-out', f, '--logits-out', l, ...clsOpts, '--json');
    expect(r.code, r.stderr).toBe(0);
    const s = JSON.parse(r.stdout);
    expect(s.checkpoint.sourceKey).toBe('module');
    expect(s.checkpoint.missingKeys).toEqual([]);
    expect(s.checkpoint.unexpectedKeys).toEqual([]);
    expect(s.checkpoint.inferred).toMatchObject({ embed_dim: 48, depth: 2, patch_size: 8, use_mean_pooling: false, use_abs_pos_emb: true, num_classes: 5 });
    expect(s.checkpoint.inferred).not.toHaveProperty('num_heads'); // given, not inferred
    expect(s.model.options).toMatchObject({ img_size: 32, num_heads: 4, use_rel_pos_bias: false, init_values: 0 });
    expect(s.input).toEqual({ file: inputs['ft_cls_abspos.f64'], dtype: 'float64', shape: [3, 3, 32, 32], convertedToFloat32: true });
    expect(s.outputs).toEqual({
      features: { file: f, dtype: 'float32', shape: [3, 48] },
      logits: { file: l, dtype: 'float32', shape: [3, 5] },
    });
    expect(maxAbsDiff(readNpy(f).typed() as Float32Array, readBin('ft_cls_abspos.features.bin'))).toBeLessThanOrEqual(TOL);
    expect(maxAbsDiff(readNpy(l).typed() as Float32Array, readBin('ft_cls_abspos.logits.bin'))).toBeLessThanOrEqual(TOL);

    if (!havePythonNumpy()) return;
    const out = execFileSync(SYSTEM_PYTHON, ['-c', 'import sys, numpy; a = numpy.load(sys.argv[1]); print(a.dtype, a.shape)', l], { encoding: 'utf8' });
    expect(out.trim()).toBe('float32 (3, 5)');
  });

  it('logits only, model options pasted as Python keyword arguments', async () => {
    const l = path.join(dir, 'cls.logits-only.npy');
    const r = await mood('--ckpt', ckpt.cls, '--input', inputs.ft_cls_abspos, '--logits-out', l, '--model-opts', 'num_heads=4, qkv_bias=True, init_values=None');
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).not.toMatch(/^features/m);
    expect(maxAbsDiff(readNpy(l).typed() as Float32Array, readBin('ft_cls_abspos.logits.bin'))).toBeLessThanOrEqual(TOL);
  });

  describe('bad input: non-zero exit, a clear message, no stack trace', () => {
    const out = (name: string): string => path.join(dir, `${name}.out.npy`);

    it.concurrent('missing input file', async () => {
      expectCleanFailure(await mood('--ckpt', ckpt.meanpool, '--input', path.join(os.tmpdir(), 'no-such-input.npy'), '--logits-out', out('a')), /--input .*no-such-input\.npy: no such file/);
      expect(fs.existsSync(out('a'))).toBe(false);
    });
    it.concurrent('missing checkpoint / missing --ckpt', async () => {
      expectCleanFailure(await mood('--ckpt', path.join(dir, 'nope.pth'), '--input', inputs.ft_meanpool, '--logits-out', out('b')), /--ckpt .*nope\.pth: no such file/);
      expectCleanFailure(await mood('--input', inputs.ft_meanpool, '--logits-out', out('b')), /--ckpt <file> is required/);
    });
    it.concurrent('no output requested', async () => {
      expectCleanFailure(await mood('--ckpt', ckpt.meanpool, '--input', inputs.ft_meanpool), /no output requested/);
    });
    it.concurrent('refuses to overwrite the input file (and leaves it intact)', async () => {
      const before = fs.readFileSync(inputs.ft_meanpool);
      expectCleanFailure(await mood('--ckpt', ckpt.meanpool, '--input', inputs.ft_meanpool, '--features-out', inputs.ft_meanpool), /--features-out .* is the input file: refusing to overwrite it/);
      // Also through another spelling of the same path.
      const other = path.join(dir, '.', path.basename(inputs.ft_meanpool));
      expectCleanFailure(await mood('--ckpt', ckpt.meanpool, '--input', inputs.ft_meanpool, '--logits-out', other), /is the input file/);
      expect(fs.readFileSync(inputs.ft_meanpool).equals(before)).toBe(true);
    });
    it.concurrent('unparseable --model-opts JSON, non-object, unknown key, wrong type', async () => {
      const base = ['--ckpt', ckpt.meanpool, '--input', inputs.ft_meanpool, '--logits-out', out('c')];
      expectCleanFailure(await mood(...base, '--model-opts', '{"img_size": 32'), /--model-opts is not valid JSON/);
      expectCleanFailure(await mood(...base, '--model-opts', '[1, 2]'), /--model-opts must be a JSON object/);
      expectCleanFailure(await mood(...base, '--model-opts', '{"imgsize": 32}'), /unknown option 'imgsize'/);
      expectCleanFailure(await mood(...base, '--model-opts', '{"qkv_bias": 1}'), /qkv_bias: expected a boolean, got 1/);
      expect(fs.existsSync(out('c'))).toBe(false);
    });
    it.concurrent('options that contradict the checkpoint; unknown --model', async () => {
      const base = ['--ckpt', ckpt.meanpool, '--input', inputs.ft_meanpool, '--logits-out', out('d')];
      expectCleanFailure(await mood(...base, '--model-opts', '{"embed_dim": 64}'), /contradict the checkpoint:\s+embed_dim: given 64, the checkpoint implies 48/);
      expectCleanFailure(await mood(...base, '--model', 'beit_base_patch16_224'), /contradict the checkpoint/);
      expectCleanFailure(await mood(...base, '--model', 'beit_nonexistent'), /--model: unknown configuration 'beit_nonexistent'/);
      expect(fs.existsSync(out('d'))).toBe(false);
    });
    it.concurrent('wrong channel count, image size, dtype, rank', async () => {
      const run = (input: string) => mood('--ckpt', ckpt.meanpool, '--input', input, '--logits-out', out('e'));
      expectCleanFailure(await run(inputs.one_channel), /expected shape \(N, 3, 32, 32\), got \(2, 1, 32, 32\) \(1 channel, the model takes 3\)/);
      expectCleanFailure(await run(inputs.size48), /expected shape \(N, 3, 32, 32\), got \(2, 3, 48, 48\) \(48x48 images, the model takes 32x32\)/);
      expectCleanFailure(await run(inputs.int64), /expected dtype float32 \(or float64, converted\), got int64/);
      expectCleanFailure(await run(inputs.rank3), /expected a 4-d NCHW batch.*got shape \(3, 32, 32\)/);
      expect(fs.existsSync(out('e'))).toBe(false);
    });
    it.concurrent('not a .npy file; bad --batch-size; missing output directory', async () => {
      const junk = path.join(dir, 'junk.npy');
      fs.writeFileSync(junk, 'not numpy');
      expectCleanFailure(await mood('--ckpt', ckpt.meanpool, '--input', junk, '--logits-out', out('f')), /--input .*junk\.npy: not a \.npy file/);
      expectCleanFailure(await mood('--ckpt', ckpt.meanpool, '--input', inputs.ft_meanpool, '--logits-out', out('f'), '--batch-size', 'x'), /--batch-size: expected a positive integer, got 'x'/);
      expectCleanFailure(await mood('--ckpt', ckpt.meanpool, '--input', inputs.ft_meanpool, '--logits-out', path.join(dir, 'no', 'such', 'dir', 'l.npy')), /directory .* does not exist/);
    });
  });
});

describe('parseModelOpts', () => {
  it('takes JSON, Python dict literals and keyword arguments with the reference names', () => {
    expect(parseModelOpts('{"img_size": 224, "qkv_bias": true, "init_values": null}')).toEqual({ img_size: 224, qkv_bias: true, init_values: null });
    expect(parseModelOpts("{'img_size': 224, 'use_mean_pooling': False, 'init_values': 0.1,}")).toEqual({ img_size: 224, use_mean_pooling: false, init_values: 0.1 });
    expect(parseModelOpts('patch_size=16, embed_dim=768, use_rel_pos_bias=True, init_values=None')).toEqual({
      patch_size: 16,
      embed_dim: 768,
      use_rel_pos_bias: true,
      init_values: null,
    });
  });
  it('rejects bad JSON, unknown names and wrong types', () => {
    expect(() => parseModelOpts('{img_size: }')).toThrow(/not valid JSON/);
    expect(() => parseModelOpts('{"depth": 2.5}')).toThrow(/depth: expected a non-negative integer/);
    expect(() => parseModelOpts('{"use_abs_pos_emb": "yes"}')).toThrow(/use_abs_pos_emb: expected a boolean/);
    expect(() => parseModelOpts('{"window_size": 14}')).toThrow(/unknown option 'window_size'/);
    expect(() => parseModelOpts('null')).toThrow(/must be a JSON object/);
  });
});
