/**
 * DALL-E tokenizer throughput (BEiT's --discrete_vae_type dall-e targets): DalleEncoder.tokens (map_pixels,
 * encoder, argmax) against the same network in plain PyTorch (scripts/bench/dvae-encoder.py, Debian's
 * /usr/bin/python3, OMP_WAIT_POLICY=PASSIVE, same thread count), alternating rounds; the best round of
 * each. Prints one JSON object with ratio = ours / PyTorch images/s (> 1: faster).
 *
 *   node -e "require('ts-node').register({transpileOnly:true,project:'tsconfig.json'});require('./scripts/bench/dvae-encoder.ts')" \
 *     -- [--threads 2] [--batch 8] [--size 112] [--n-hid 256] [--vocab 8192] [--rounds 2]
 *
 * Default: OpenAI's full-size encoder (n_hid 256, vocab 8192) on the 112 px second view, random weights.
 */
import { execFileSync } from 'node:child_process';
import * as path from 'node:path';
import { DalleEncoder } from '../../lib/dvae/encoder';
import { setNumThreads } from '../../lib/runtime';
import { Tensor } from '../../lib/tensor';

function arg(name: string, dflt: number): number {
  const i = process.argv.indexOf(`--${name}`);
  return i >= 0 ? Number(process.argv[i + 1]) : dflt;
}

async function ours(threads: number, batch: number, size: number, nHid: number, vocab: number, iters: number, minSeconds: number): Promise<{ images_per_s: number }> {
  setNumThreads(threads);
  const enc = new DalleEncoder({ n_hid: nHid, vocab_size: vocab, seed: 0 });
  const x = Tensor.rand([batch, 3, size, size], { seed: 1 });
  const step = async (): Promise<void> => {
    const ids = enc.tokens(x, true);
    await ids.ready();
    ids.dispose();
  };
  await step();
  let n = 0;
  const t0 = process.hrtime.bigint();
  const el = (): number => Number(process.hrtime.bigint() - t0) / 1e9;
  while (n < iters || el() < minSeconds) {
    await step();
    n++;
  }
  const s = el();
  x.dispose();
  enc.dispose();
  return { images_per_s: (batch * n) / s };
}

function python(threads: number, batch: number, size: number, nHid: number, vocab: number, iters: number, minSeconds: number): { images_per_s: number } {
  const out = execFileSync('/usr/bin/python3', [path.join(__dirname, 'dvae-encoder.py'), '--threads', String(threads), '--batch', String(batch), '--size', String(size),
    '--n-hid', String(nHid), '--vocab', String(vocab), '--iters', String(iters), '--min-seconds', String(minSeconds)], {
    encoding: 'utf8',
    env: { ...process.env, OMP_WAIT_POLICY: 'PASSIVE', OMP_NUM_THREADS: String(threads) },
  });
  return JSON.parse(out) as { images_per_s: number };
}

async function main(): Promise<void> {
  const threads = arg('threads', 2), batch = arg('batch', 8), size = arg('size', 112), nHid = arg('n-hid', 256), vocab = arg('vocab', 8192);
  const iters = arg('iters', 3), rounds = arg('rounds', 2), minSeconds = arg('min-seconds', 2);
  let best = 0, bestPy = 0;
  const log: unknown[] = [];
  for (let r = 0; r < rounds; r++) {
    const a = await ours(threads, batch, size, nHid, vocab, iters, minSeconds);
    const p = python(threads, batch, size, nHid, vocab, iters, minSeconds);
    log.push({ round: r, ours: a.images_per_s, pytorch: p.images_per_s });
    best = Math.max(best, a.images_per_s);
    bestPy = Math.max(bestPy, p.images_per_s);
  }
  process.stdout.write(JSON.stringify({ bench: 'dvae-encoder', n_hid: nHid, vocab, size, threads, batch, rounds: log, ours_images_per_s: best, pytorch_images_per_s: bestPy, ratio: best / bestPy }) + '\n');
}

main().catch((e) => {
  process.stderr.write(`${(e as Error).stack ?? e}\n`);
  process.exitCode = 1;
});
