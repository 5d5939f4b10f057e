/**
 * Trainer.fit over 2 epochs of a micro BEiT (float64, no drop path) with an in-memory loader.
 * Without WORLD_SIZE: one process, batches of 8. Under `mood launch` with 2 ranks: each rank gets
 * half of every batch (a rank-strided shard), the Trainer gets the GradientSync id and the rank
 * (only rank 0 writes checkpoints and log.txt), start weights broadcast from rank 0.
 *   trainer.ts <outputDir> <updateFreq>
 * Prints {rank, params} as one JSON line.
 */
import type { Batch, DataLoader, ImageDataset } from '../../../lib/data/types';
import { initFromEnv } from '../../../lib/distributed';
import { createModel } from '../../../lib/models/beit';
import { Tensor } from '../../../lib/tensor';
import { Trainer } from '../../../lib/train/trainer';

const S = 16;
const N = 16;
const BATCH = 8; // global batch per loader step

/** Deterministic data; batch b of the epoch holds rows b*8..b*8+7 in an epoch-dependent rotation. */
class ShardLoader implements DataLoader {
  readonly dataset: ImageDataset;
  private epoch = 0;
  private readonly images: Float32Array;
  private readonly targets: Int32Array;
  constructor(private readonly rank: number, private readonly world: number) {
    let s = 4242;
    const rnd = () => ((s = (s * 1103515245 + 12345) % 2147483648) / 2147483648) - 0.5;
    this.images = new Float32Array(N * 3 * S * S).map(() => rnd());
    this.targets = Int32Array.from({ length: N }, (_, i) => i % 4);
    this.dataset = { name: 'synthetic', root: '<memory>', split: 'train', classes: ['a', 'b', 'c', 'd'], length: N, targets: this.targets };
  }
  get numBatches(): number {
    return N / BATCH;
  }
  get numSamples(): number {
    return N / this.world;
  }
  setEpoch(e: number): void {
    this.epoch = e;
  }
  async *[Symbol.asyncIterator](): AsyncIterator<Batch> {
    const per = 3 * S * S;
    const b = BATCH / this.world;
    for (let k = 0; k < this.numBatches; k++) {
      const rows = Int32Array.from({ length: b }, (_, i) => (k * BATCH + this.rank * b + i + 5 * this.epoch) % N);
      const img = new Float32Array(b * per);
      rows.forEach((r, i) => img.set(this.images.subarray(r * per, (r + 1) * per), i * per));
      yield { images: Tensor.fromArray(img, [b, 3, S, S]), targets: Int32Array.from(rows, (r) => this.targets[r]), indices: rows };
    }
  }
}

async function main(): Promise<void> {
  const outputDir = process.argv[2];
  const updateFreq = Number(process.argv[3] ?? 1);
  const pg = await initFromEnv({ timeoutMs: 60_000 });
  const rank = pg?.rank ?? 0;
  const model = createModel('beit_test_micro', { img_size: S, num_classes: 4, use_rel_pos_bias: true, use_abs_pos_emb: false, init_values: 0.1, drop_path_rate: 0, dtype: 'float64', attention: 'exact', seed: 1 + rank });
  if (pg) await pg.broadcastModel(model);
  const sync = pg?.createGradientSync({ bucketBytes: 8 * 1024 });
  const trainer = new Trainer({
    model, train: new ShardLoader(rank, pg?.worldSize ?? 1), epochs: 2, seed: 3, outputDir, saveCkptFreq: 1, warmupEpochs: 1, warmupLr: 1e-4, minLr: 1e-5,
    optimizer: { lr: 3e-3, weightDecay: 0.05, layerDecay: 0.75, clipGrad: 1.0, updateFreq },
    gradSyncId: sync?.id, rank, progress: false,
  });
  await trainer.fit();
  const params: Record<string, number[]> = {};
  for (const [name, t] of model.stateDict()) {
    params[name] = Array.from((await t.data()) as Float64Array, Number);
    t.dispose();
  }
  process.stdout.write(JSON.stringify({ rank, world: pg?.worldSize ?? 1, stats: sync?.stats(), params }) + '\n');
  await pg?.destroy();
}

main().catch((e) => {
  process.stderr.write(`trainer worker: ${(e as Error).stack ?? e}\n`);
  process.exit(1);
});
