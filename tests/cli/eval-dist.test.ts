/**
 * `mood launch --nproc_per_node 2 -- eval-features --dist_eval` on Gloo/loopback: each rank extracts
 * half of every set through lib/data's distributed sampler, the shards are all-gathered, and rank 0's
 * JSON equals a single-process run on the same data (Fashion-MNIST one-class, micro BEiT); only rank 0
 * prints the result lines.
 */
import { spawn } from 'node:child_process';
import * as fs from 'node:fs';
import * as net from 'node:net';
import * as os from 'node:os';
import * as path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { runEval, type EvalJson } from '../../lib/cli/eval-common';
import { ProcessGroup } from '../../lib/distributed';
import { FASHION_DIR, haveFashionMnist, writeMicroCheckpoint } from '../ood-features/memory-data';

const ROOT = path.resolve(__dirname, '..', '..');
const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'mood-evdist-'));
afterAll(() => fs.rmSync(dir, { recursive: true, force: true }));

function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = net.createServer();
    s.on('error', reject);
    s.listen(0, '127.0.0.1', () => {
      const port = (s.address() as net.AddressInfo).port;
      s.close(() => resolve(port));
    });
  });
}

function run(args: string[], limitMs: number): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    const child = spawn(process.execPath, [path.join(ROOT, 'bin', 'mood.js'), ...args], { env: { ...process.env, MOOD_NUM_THREADS: '1' }, stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d) => (stdout += d));
    child.stderr.on('data', (d) => (stderr += d));
    const timer = setTimeout(() => child.kill('SIGKILL'), limitMs);
    child.on('close', (code) => {
      clearTimeout(timer);
      resolve({ code, stdout, stderr });
    });
  });
}

const gloo = ProcessGroup.available().gloo;

describe.skipIf(!haveFashionMnist() || !gloo)('mood eval-features --dist_eval (2 processes, Gloo)', () => {
  const ckpt = path.join(dir, 'micro.pth');
  beforeAll(async () => {
    await writeMicroCheckpoint(ckpt, 10, 31);
  });

  it('rank 0 reports the single-process numbers from gathered shards', async () => {
    const common = ['--ckpt', ckpt, '--model', 'beit_test_micro', '--nb_classes', '10', '--data_set', 'fashion_mnist', '--data_path', FASHION_DIR, '--class_idx', '1', '--input_size', '16', '--batch_size', '500', '--metric', 'mahalanobis,cos', '--quiet'];
    const port = await freePort();
    const jsonOut = path.join(dir, 'dist.json');
    const r = await run(['launch', '--nproc_per_node', '2', '--master_port', String(port), '--', 'eval-features', ...common, '--dist_eval', '--cache-dir', path.join(dir, 'c2'), '--results-dir', path.join(dir, 'r2'), '--json-out', jsonOut], 150_000);
    expect(r.code, r.stderr).toBe(0);
    const lines = r.stdout.split('\n').filter((l) => /\t(Dataset|In-data): /.test(l));
    expect(lines.length).toBe(20);
    expect(lines.every((l) => l.startsWith('[rank 0] '))).toBe(true);
    const dist = JSON.parse(fs.readFileSync(jsonOut, 'utf8')) as EvalJson;
    // Each rank extracted half of each set.
    expect(dist.extraction.map((e) => [e.what, e.rows])).toEqual([
      ['fashion_mnist/train', 3000],
      ['fashion_mnist/test', 5000],
    ]);
    const one = await runEval(
      'features',
      { ckpt, model: 'beit_test_micro', nbClasses: '10', dataSet: 'fashion_mnist', dataPath: FASHION_DIR, classIdx: '1', inputSize: '16', batchSize: '500', metric: 'mahalanobis,cos', quiet: true, cacheDir: path.join(dir, 'c1'), resultsDir: path.join(dir, 'r1') },
      { out: () => undefined, err: () => undefined },
    );
    expect(dist.results.map((x) => [x.metric, x.ood, x.n_in, x.n_ood, x.n_train])).toEqual(one.results.map((x) => [x.metric, x.ood, x.n_in, x.n_ood, x.n_train]));
    dist.results.forEach((x, i) => {
      for (const k of ['auroc', 'aupr_in', 'aupr_out', 'fpr95'] as const) expect(Math.abs(x[k] - one.results[i][k])).toBeLessThan(1e-6);
    });
  });
});
