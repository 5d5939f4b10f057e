/**
 * `mood dvae tokens`: the real bin/mood.js on the official-code fixture (ids exact, logits within 1e-3,
 * see encoder.test.ts for the bound), and every user mistake as a clear message with no output written.
 */
import { execFile } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { promisify } from 'node:util';
import { afterAll, describe, expect, it } from 'vitest';
import { ndarray, readNpy, writeNpy } from '../../lib/npy';
import { runDvaeTokens } from '../../lib/cli/dvae-tokens';
import { REPO_ROOT } from '../helpers/fixtures';
import { DVAE_DIR, tmpDir } from './helpers';

const execFileP = promisify(execFile);
const BIN = path.join(REPO_ROOT, 'bin', 'mood.js');
const X = path.join(DVAE_DIR, 'x.npy');
const work = tmpDir('cli');
afterAll(() => fs.rmSync(work, { recursive: true, force: true }));

async function mood(...args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  try {
    const r = await execFileP(process.execPath, [BIN, 'dvae', 'tokens', ...args], { cwd: REPO_ROOT, encoding: 'utf8', maxBuffer: 1 << 26 });
    return { code: 0, stdout: r.stdout, stderr: r.stderr };
  } catch (e) {
    const err = e as { code?: number; stdout?: string; stderr?: string };
    return { code: typeof err.code === 'number' ? err.code : -1, stdout: err.stdout ?? '', stderr: err.stderr ?? '' };
  }
}

function f32(file: string, shape: number[], fill: (i: number) => number): string {
  const n = shape.reduce((a, b) => a * b, 1);
  writeNpy(file, ndarray('float32', shape, Float32Array.from({ length: n }, (_, i) => fill(i))));
  return file;
}

describe('mood dvae tokens', () => {
  it('on the fixture: ids equal the official ones exactly, logits within 1e-3; --json summary', async () => {
    const ids = path.join(work, 'ids.npy');
    const logits = path.join(work, 'logits.npy');
    const r = await mood('--discrete_vae_type', 'dall-e', '--discrete_vae_weight_path', DVAE_DIR, '--input', X, '--out', ids, '--logits-out', logits, '--batch-size', '2', '--json');
    expect(r.stderr).toBe('');
    expect(r.code).toBe(0);
    const s = JSON.parse(r.stdout);
    expect(s.encoder).toMatchObject({ n_hid: 64, n_blk_per_group: 2, group_count: 4, vocab_size: 512, device: 'cpu', precision: 'auto' });
    expect(s.outputs.ids).toEqual({ file: ids, dtype: 'int64', shape: [3, 14, 14] });
    expect(s.outputs.logits).toEqual({ file: logits, dtype: 'float32', shape: [3, 512, 14, 14] });
    const got = readNpy(ids);
    const want = readNpy(path.join(DVAE_DIR, 'ids.npy'));
    expect(got.dtype).toBe('int64');
    expect(got.shape).toEqual([3, 14, 14]);
    expect(Array.from(got.typed() as BigInt64Array)).toEqual(Array.from(want.typed() as BigInt64Array));
    const gl = readNpy(logits).typed() as Float32Array;
    const wl = readNpy(path.join(DVAE_DIR, 'logits.npy')).typed() as Float32Array;
    let max = 0;
    for (let i = 0; i < wl.length; i++) max = Math.max(max, Math.abs(gl[i] - wl[i]));
    // LOGIT_TOL of tests/dvae/encoder.test.ts (float32 accumulation order in 40 convolutions of up to 2304
    // products on logits up to |78|, measured <= 6.1e-5; 1e-3 is 10x below the smallest top-2 gap).
    expect(max).toBeLessThanOrEqual(1e-3);
    // Atomic writes leave no temp files behind.
    expect(fs.readdirSync(work).sort()).toEqual(['ids.npy', 'logits.npy']);
  });

  it('a failing run prints one clear line, exits 1 and leaves an existing output untouched', async () => {
    const out = path.join(work, 'keep.npy');
    fs.writeFileSync(out, 'previous good result');
    const bad = f32(path.join(work, 'bytes.npy'), [1, 3, 16, 16], (i) => i % 256);
    const r = await mood('--discrete_vae_weight_path', DVAE_DIR, '--input', bad, '--out', out);
    expect(r.code).toBe(1);
    expect(r.stdout).toBe('');
    expect(r.stderr).toMatch(/^mood: --input .*bytes\.npy: values must be in \[0, 1\] \(pixels \/ 255, before map_pixels\), found \[0, 255\]\n$/);
    expect(fs.readFileSync(out, 'utf8')).toBe('previous good result');
  });

  it('bad shapes, dtypes, files and flags are named', async () => {
    const base = { discreteVaeWeightPath: DVAE_DIR, input: X, out: path.join(work, 'o.npy') };
    const f64 = path.join(work, 'f64.npy');
    writeNpy(f64, ndarray('float64', [1, 3, 16, 16], new Float64Array(768)));
    const cases: Array<[Record<string, string>, RegExp]> = [
      [{ input: path.join(work, 'missing.npy') }, /--input .*missing\.npy: no such file/],
      [{ input: f64 }, /--input .*f64\.npy: expected float32 images in \[0, 1\], got dtype float64/],
      [{ input: f32(path.join(work, 'chw.npy'), [3, 16, 16], () => 0.5) }, /expected a 4-d batch \(N, 3, H, W\), got shape \(3, 16, 16\) \(for one image use x\[None\]\)/],
      [{ input: f32(path.join(work, 'grey.npy'), [2, 1, 16, 16], () => 0.5) }, /expected 3 channels \(N, 3, H, W\), got shape \(2, 1, 16, 16\)/],
      [{ input: f32(path.join(work, 'odd.npy'), [1, 3, 20, 16], () => 0.5) }, /H and W must be positive multiples of 8 \(the encoder pools 3 times by 2\), got 20x16/],
      [{ input: f32(path.join(work, 'nan.npy'), [1, 3, 16, 16], (i) => (i === 5 ? NaN : 0.5)) }, /holds non-finite values \(NaN\)/],
      [{ discreteVaeWeightPath: work }, /no encoder\.pkl in this folder/],
      [{ discreteVaeType: 'customized' }, /--discrete_vae_type customized: only dall-e/],
      [{ out: X }, /--out .*x\.npy is the input file: refusing to overwrite it/],
      [{ out: path.join(DVAE_DIR, 'encoder.pkl') }, /is the encoder: refusing to overwrite it/],
      [{ logitsOut: path.join(work, 'o.npy') }, /--out and --logits-out name the same file/],
      [{ out: path.join(work, 'no-such-dir', 'o.npy') }, /directory .*no-such-dir does not exist/],
      [{ batchSize: '0' }, /--batch-size: expected a positive integer, got '0'/],
    ];
    for (const [over, re] of cases) await expect(runDvaeTokens({ ...base, ...over }), JSON.stringify(over)).rejects.toThrow(re);
    expect(fs.existsSync(path.join(work, 'o.npy'))).toBe(false);
  });
});
