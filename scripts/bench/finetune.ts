/**
 * Fine-tuning throughput: train images/s of the `mood finetune` step loop with its data pipeline
 * (lib/data loader over Fashion-MNIST: seeded shuffle, RandomCrop padding 4 + flip + normalisation
 * assembled natively, prefetched) and the native step (forward, label-smoothing CE, backward,
 * clip_grad_norm_, AdamW with layer-decay / weight-decay groups, per-step lr/wd), against the same
 * loop in plain PyTorch (scripts/bench/finetune.py, Debian's /usr/bin/python3 on the same libtorch,
 * OMP_WAIT_POLICY=PASSIVE, same thread count). Rounds alternate the two; the best round of each is
 * compared. Prints one JSON object with ratio = ours / PyTorch (> 1: faster).
 *
 *   npx ts-node --transpile-only scripts/bench/finetune.ts [--threads 2] [--steps 30] [--rounds 2] [--batch 128] [--workers 1]
 */
import { execFileSync } from 'node:child_process';
import * as path from 'node:path';
import { createModel } from '../../lib/models/beit';
import { setNumThreads, info } from '../../lib/runtime';
import { buildDataset, createLoader } from '../../lib/data';
import { FinetuneOptimizer } from '../../lib/train/optimizer';

function arg(name: string, dflt: number): number {
  const i = process.argv.indexOf(`--${name}`);
  return i >= 0 ? Number(process.argv[i + 1]) : dflt;
}

// The Fashion-MNIST model of docs/finetune.md (MOOD's fine-tuning layout at 28 px).
const MODEL = { img_size: 28, patch_size: 7, in_chans: 3, num_classes: 10, embed_dim: 64, depth: 4, num_heads: 4, mlp_ratio: 2, qkv_bias: true, init_values: 0.1, use_abs_pos_emb: false, use_rel_pos_bias: true, use_shared_rel_pos_bias: false, use_mean_pooling: true, layer_norm_eps: 1e-6 };

async function runOurs(threads: number, steps: number, batch: number, workers: number): Promise<{ seconds: number; images_per_s: number }> {
  setNumThreads(threads);
  const ds = await buildDataset({ dataSet: 'fashion_mnist', train: true });
  const model = createModel({ ...MODEL, drop_path_rate: 0, seed: 0, attention: 'exact' });
  const opt = await FinetuneOptimizer.create(model, { lr: 1e-3, weightDecay: 0.05, layerDecay: 0.75, clipGrad: 1, smoothing: 0.1 });
  const loader = createLoader(ds, { batchSize: batch, train: true, inputSize: 28, shuffle: true, dropLast: true, seed: 0, reprob: 0, workers });
  let i = 0;
  let t0 = 0n;
  for await (const b of loader) {
    opt.setSchedule(1e-3, 0.05);
    const r = opt.step(b.images, b.targets);
    await r.loss.item();
    r.loss.dispose();
    r.gradNorm.dispose();
    b.images.dispose();
    if (i === 0) t0 = process.hrtime.bigint(); // after the warm-up step
    if (++i > steps) break;
  }
  const seconds = Number(process.hrtime.bigint() - t0) / 1e9;
  opt.dispose();
  model.dispose();
  (ds as { dispose?: () => void }).dispose?.();
  return { seconds, images_per_s: (steps * batch) / seconds };
}

function runPython(threads: number, steps: number, batch: number): { seconds: number; images_per_s: number; torch: string } {
  const out = execFileSync('/usr/bin/python3', [path.join(__dirname, 'finetune.py'), '--threads', String(threads), '--steps', String(steps), '--batch', String(batch), '--model', JSON.stringify(MODEL)], {
    env: { ...process.env, OMP_WAIT_POLICY: 'PASSIVE', OMP_NUM_THREADS: String(threads) },
  });
  return JSON.parse(out.toString());
}

async function main(): Promise<void> {
  const threads = arg('threads', 2);
  const steps = arg('steps', 30);
  const rounds = arg('rounds', 2);
  const batch = arg('batch', 128);
  // Native batch-assembly threads; they share the cores with the step's intra-op threads.
  const workers = arg('workers', 1);
  const ours: number[] = [];
  const py: number[] = [];
  let torchVersion = '';
  for (let r = 0; r < rounds; r++) {
    ours.push((await runOurs(threads, steps, batch, workers)).images_per_s);
    const p = runPython(threads, steps, batch);
    torchVersion = p.torch;
    py.push(p.images_per_s);
  }
  const best = (a: number[]) => Math.max(...a);
  process.stdout.write(
    JSON.stringify({
      bench: 'finetune-step-loop',
      model: MODEL,
      batch,
      steps,
      threads,
      workers,
      rounds,
      libtorch: info().torchVersion ?? null,
      pytorch: torchVersion,
      ours_images_per_s: ours,
      pytorch_images_per_s: py,
      ratio: best(ours) / best(py),
    }) + '\n',
  );
}

main().catch((e) => {
  process.stderr.write(`${(e as Error).stack}\n`);
  process.exit(1);
});
