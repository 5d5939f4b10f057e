/**
 * MIM pre-training step throughput (forward, cross-entropy at masked positions, backward, AdamW):
 * MimModel.step against the same model in plain PyTorch (scripts/bench/pretrain-step.py, Debian's
 * /usr/bin/python3, OMP_WAIT_POLICY=PASSIVE, same thread count), alternating rounds; the best round of
 * each. Prints one JSON object with ratio = ours / PyTorch images/s (> 1: faster).
 *
 *   node -e "require('ts-node').register({transpileOnly:true,project:'tsconfig.json'});require('./scripts/bench/pretrain-step.ts')" \
 *     -- [--threads 2] [--batch 8] [--iters 3] [--rounds 2]
 *
 * Model: 224 px, patch 16 (14 x 14 grid), dim 192, depth 4, 3 heads, shared relative position bias,
 * layer scale 0.1, 8192-token lm_head (the reference's pre-training layout at a CPU-friendly width).
 */
import { execFileSync } from 'node:child_process';
import * as path from 'node:path';
import { MimModel } from '../../lib/pretrain/model';
import { setNumThreads } from '../../lib/runtime';
import { Tensor } from '../../lib/tensor';

function arg(name: string, dflt: number): number {
  const i = process.argv.indexOf(`--${name}`);
  return i >= 0 ? Number(process.argv[i + 1]) : dflt;
}

const CONFIG = { img_size: 224, patch_size: 16, in_chans: 3, embed_dim: 192, depth: 4, num_heads: 3, use_abs_pos_emb: false, use_rel_pos_bias: false, use_shared_rel_pos_bias: true, init_values: 0.1, layer_norm_eps: 1e-6, head_dim: 8192 };

async function ours(threads: number, batch: number, iters: number, minSeconds: number): Promise<{ images_per_s: number; iters: number; seconds: number }> {
  setNumThreads(threads);
  const { head_dim: _hd, ...opts } = CONFIG;
  void _hd;
  const model = new MimModel({ ...opts, vocab_size: 8192, target: 'tokens', seed: 0, attention: 'exact' });
  const N = model.numPatches;
  const x = Tensor.randn([batch, 3, 224, 224], { seed: 1 });
  const mask = new Uint8Array(batch * N);
  for (let b = 0; b < batch; b++) for (let i = 0; i < Math.floor(N * 0.4); i++) mask[b * N + ((i * 37 + b * 11) % N)] = 1;
  const m = model.maskTensor(mask, batch);
  const y = Tensor.fromArray(BigInt64Array.from({ length: batch * N }, (_, i) => BigInt((i * 7919) % 8192)), [batch, N]);
  const step = () => model.step(x, m, y, { lr: 1e-4, weightDecay: 0.05 });
  await step();
  let n = 0;
  const t0 = process.hrtime.bigint();
  const el = () => Number(process.hrtime.bigint() - t0) / 1e9;
  while (n < iters || el() < minSeconds) {
    await step();
    n++;
  }
  const s = el();
  for (const t of [x, m, y]) t.dispose();
  model.dispose();
  return { images_per_s: (batch * n) / s, iters: n, seconds: s };
}

function python(threads: number, batch: number, iters: number, minSeconds: number): { images_per_s: number } {
  const out = execFileSync('/usr/bin/python3', [path.join(__dirname, 'pretrain-step.py'), '--threads', String(threads), '--batch', String(batch), '--iters', String(iters), '--min-seconds', String(minSeconds), '--config', JSON.stringify(CONFIG)], {
    encoding: 'utf8',
    env: { ...process.env, OMP_WAIT_POLICY: 'PASSIVE', OMP_NUM_THREADS: String(threads) },
  });
  return JSON.parse(out) as { images_per_s: number };
}

async function main(): Promise<void> {
  const threads = arg('threads', 2), batch = arg('batch', 8), iters = arg('iters', 3), rounds = arg('rounds', 2), minSeconds = arg('min-seconds', 2);
  let best = 0, bestPy = 0;
  const log: unknown[] = [];
  for (let r = 0; r < rounds; r++) {
    const a = await ours(threads, batch, iters, minSeconds);
    const p = python(threads, batch, iters, minSeconds);
    log.push({ round: r, ours: a.images_per_s, pytorch: p.images_per_s });
    best = Math.max(best, a.images_per_s);
    bestPy = Math.max(bestPy, p.images_per_s);
  }
  process.stdout.write(JSON.stringify({ bench: 'pretrain-step', config: CONFIG, threads, batch, rounds: log, ours_images_per_s: best, pytorch_images_per_s: bestPy, ratio: best / bestPy }) + '\n');
}

main().catch((e) => {
  process.stderr.write(`${(e as Error).stack ?? e}\n`);
  process.exitCode = 1;
});
