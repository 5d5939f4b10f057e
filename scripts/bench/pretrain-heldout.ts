/**
 * One-class OOD on Fashion-MNIST classes the backbone never saw (a demo / benchmark, not a test):
 * the MOOD pipeline without leakage. The backbone is trained on the "seen" classes only (default
 * 0-4: T-shirt, trouser, pullover, dress, coat): arm "mim" = MIM pre-training (lib/pretrain
 * `pretrain()`, pixel targets, blockwise masks) for --mim-epochs on the seen classes' training
 * images, then supervised fine-tuning (lib/train Trainer, the docs/finetune.md run-3 recipe:
 * no augmentation, AdamW lr 2e-3, 100 warmup steps, cosine, smoothing 0.1) for --ft-epochs on their
 * labels; arm "scratch" = the same fine-tuning for mim-epochs + ft-epochs from random init (the same
 * number of optimisation steps); arm "random" = no training. Then, on the UNSEEN classes (default
 * 5-9: sandal, shirt, sneaker, bag, ankle boot), the one-class protocol of lib/ood with Mahalanobis:
 * for each unseen class c, fit on c's training features, AUROC of c's test images against each other
 * unseen class, averaged. Neither the images nor the labels of the unseen classes reach training.
 *
 *   npx ts-node --transpile-only scripts/bench/pretrain-heldout.ts [--seen 0-4] [--mim-epochs 4]
 *       [--ft-epochs 6] [--seed 0] [--model-opts '{"patch_size":7,"embed_dim":128,"depth":4,"num_heads":4}'] [--out f.json]
 */
import * as fs from 'node:fs';
import * as os from 'node:os';
import { createModel } from '../../lib/models/beit';
import { buildDataset, createLoader } from '../../lib/data';
import type { DataLoader, ImageDataset } from '../../lib/data/types';
import { pretrain } from '../../lib/pretrain';
import { Trainer } from '../../lib/train/trainer';
import { arg, classList, oneClassMahalanobis } from './pretrain-util';



type Subsettable = ImageDataset & { subset(i: Int32Array): ImageDataset };

function only(ds: ImageDataset, classes: number[]): ImageDataset {
  const keep: number[] = [];
  ds.targets.forEach((t, i) => {
    if (classes.includes(t)) keep.push(i);
  });
  return (ds as Subsettable).subset(Int32Array.from(keep));
}


const cpuSeconds = (c: NodeJS.CpuUsage) => (c.user + c.system) / 1e6;

async function main(): Promise<void> {
  const seen = classList(arg('seen', '0-4'));
  const unseen = Array.from({ length: 10 }, (_, i) => i).filter((c) => !seen.includes(c));
  const mimEpochs = Number(arg('mim-epochs', '4'));
  const ftEpochs = Number(arg('ft-epochs', '6'));
  // Model init, data order, masks and the per-step generator.
  const seed = Number(arg('seed', '0'));
  const arch = { patch_size: 7, embed_dim: 128, depth: 4, num_heads: 4, mlp_ratio: 2, ...JSON.parse(arg('model-opts', '{}')) };
  const beitOpts = { img_size: 28, num_classes: 10, use_abs_pos_emb: true, use_rel_pos_bias: true, init_values: 0.1, use_mean_pooling: true, drop_path_rate: 0, ...arch };
  const trainAll = await buildDataset({ dataSet: 'fashion_mnist', train: true });
  const testAll = await buildDataset({ dataSet: 'fashion_mnist', train: false });
  const trainSeen = only(trainAll, seen);
  const testSeen = only(testAll, seen);
  const loaders: DataLoader[] = [];
  const loader = (ds: ImageDataset, train: boolean, batchSize = 128) => {
    const l = createLoader(ds, { batchSize, inputSize: 28, train, shuffle: train, dropLast: train, seed, reprob: 0 });
    loaders.push(l);
    return l;
  };
  const result: Record<string, Record<string, unknown>> = {};
  for (const arm of ['mim', 'scratch', 'random'] as const) {
    const c0 = process.cpuUsage();
    const t0 = Date.now();
    const model = createModel({ ...beitOpts, seed } as never);
    const row: Record<string, unknown> = {};
    let mimS = 0;
    if (arm === 'mim') {
      // MIM input: the training transform (crop + flip, no erasing), as `mood pretrain`.
      await pretrain({ model, loader: loader(trainSeen, true), epochs: mimEpochs, lr: 2e-3, seed, quiet: true, onEpoch: (e, l) => process.stderr.write(`[mim] MIM epoch ${e} loss ${l.toFixed(4)}\n`) });
      mimS = cpuSeconds(process.cpuUsage(c0));
      row.mim_cpu_s = mimS;
    }
    if (arm !== 'random') {
      const trainer = new Trainer({
        model,
        train: loader(trainSeen, false),
        val: loader(testSeen, false, 500),
        epochs: arm === 'mim' ? ftEpochs : mimEpochs + ftEpochs,
        optimizer: { lr: 2e-3, weightDecay: 0.05, layerDecay: 1, smoothing: 0.1 },
        minLr: 1e-5,
        warmupLr: 1e-5,
        warmupEpochs: 0,
        warmupSteps: 100,
        seed,
        progress: false,
      });
      trainer.on('epoch', (l) => process.stderr.write(`[${arm}] fine-tune epoch ${l.epoch} acc@1 ${l.test_acc1}\n`));
      const fit = await trainer.fit();
      trainer.dispose();
      row.seen_test_acc1 = fit.history[fit.history.length - 1].test_acc1;
    }
    row.train_cpu_s = cpuSeconds(process.cpuUsage(c0));
    row.train_wall_s = (Date.now() - t0) / 1000;
    const res = await oneClassMahalanobis(model, trainAll, testAll, unseen.map((c) => [c]));
    row.unseen_auroc = Object.fromEntries(res.perGroup);
    row.unseen_mean_auroc = res.mean;
    model.dispose();
    result[arm] = row;
    process.stderr.write(`${arm}: ${JSON.stringify(row)}\n`);
  }
  for (const l of loaders) (l as { dispose?: () => void }).dispose?.();
  const out = { bench: 'pretrain-heldout', seed, seen, unseen, mim_epochs: mimEpochs, ft_epochs: ftEpochs, arch, load_avg: os.loadavg(), result };
  const outFile = arg('out', '');
  if (outFile) fs.writeFileSync(outFile, JSON.stringify(out, null, 2) + '\n');
  process.stdout.write(JSON.stringify(out) + '\n');
}

main().catch((e) => {
  process.stderr.write(`${(e as Error).stack ?? e}\n`);
  process.exitCode = 1;
});
