/**
 * Fine-tuning steps of a small BEiT (float64, no dropout/drop-path) through FinetuneOptimizer's
 * native step. Without WORLD_SIZE: one process on the whole batch of 8. Under `mood launch` with 2
 * ranks: each rank its half of every micro-batch, gradients averaged by the GradientSync
 * (gradSyncId), start weights broadcast from rank 0. Prints {rank, params} as one JSON line.
 *   train.ts <updateFreq> <steps>
 */
import { initFromEnv } from '../../../lib/distributed';
import { createModel } from '../../../lib/models/beit';
import { Tensor } from '../../../lib/tensor';
import { FinetuneOptimizer } from '../../../lib/train/optimizer';

const MODEL = {
  img_size: 16, patch_size: 8, in_chans: 3, num_classes: 5, embed_dim: 16, depth: 2, num_heads: 2, mlp_ratio: 2,
  qkv_bias: true, init_values: 0.1, use_abs_pos_emb: true, use_rel_pos_bias: true, use_shared_rel_pos_bias: false,
  use_mean_pooling: true, drop_path_rate: 0, attention: 'exact' as const, dtype: 'float64' as const,
};
const BATCH = 8;

/** Deterministic inputs: a small LCG, the same on every process. */
function batch(step: number): { x: Float64Array; y: Int32Array } {
  let s = 12345 + step * 7919;
  const rnd = () => ((s = (s * 1103515245 + 12345) % 2147483648) / 2147483648) * 2 - 1;
  const x = new Float64Array(BATCH * 3 * 16 * 16).map(() => rnd());
  const y = new Int32Array(BATCH).map((_, i) => (i * 3 + step) % 5);
  return { x, y };
}

async function main(): Promise<void> {
  const updateFreq = Number(process.argv[2] ?? 1);
  const steps = Number(process.argv[3] ?? 3);
  const pg = await initFromEnv({ timeoutMs: 60_000 });
  const rank = pg?.rank ?? 0;
  const world = pg?.worldSize ?? 1;
  // Different initial weights per rank: the broadcast from rank 0 must make them equal.
  const model = createModel(MODEL, { seed: 1 + rank });
  model.train();
  if (pg) await pg.broadcastModel(model);
  const sync = pg?.createGradientSync({ bucketBytes: 16 * 1024 }); // several buckets on this small model
  const opt = await FinetuneOptimizer.create(model, { lr: 2e-3, weightDecay: 0.05, layerDecay: 0.75, clipGrad: 1.0, smoothing: 0.1, updateFreq, gradSyncId: sync?.id });
  const micro = BATCH / updateFreq / world; // rows per process per micro-step
  for (let it = 0; it < steps; it++) {
    const { x, y } = batch(it);
    for (let m = 0; m < updateFreq; m++) {
      // Rows of this process in micro-step m: any partition gives the same averaged gradient.
      const lo = m * micro * world + rank * micro;
      const img = Tensor.fromArray(x.subarray(lo * 768, (lo + micro) * 768), [micro, 3, 16, 16], { dtype: 'float64' });
      const out = opt.step(img, y.subarray(lo, lo + micro), { first: m === 0, last: m === updateFreq - 1 });
      await out.loss.data();
      out.loss.dispose();
      out.gradNorm.dispose();
      img.dispose();
    }
  }
  const params: Record<string, number[]> = {};
  for (const [name, t] of model.stateDict()) {
    params[name] = Array.from((await t.data()) as Float64Array, Number);
    t.dispose();
  }
  const stats = sync?.stats();
  process.stdout.write(JSON.stringify({ rank, world, stats, params }) + '\n');
  await pg?.destroy();
}

main().catch((e) => {
  process.stderr.write(`train worker: ${(e as Error).message}\n`);
  process.exit(1);
});
