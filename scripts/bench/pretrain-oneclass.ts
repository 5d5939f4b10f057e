/**
 * One-class OOD on Fashion-MNIST with and without MIM pre-training (a demo / benchmark, not a test).
 *
 *   npx ts-node --transpile-only scripts/bench/pretrain-oneclass.ts [--classes 0-9] [--steps 400]
 *       [--batch 64] [--model-opts '{"embed_dim":96,"depth":4,"num_heads":4}'] [--test-per-class 1000] [--out f.json]
 *
 * Per ID class c: `runPretrain` (pixel targets, blockwise masks) on class c's training images for
 * --steps steps; features (mean-pooled, fc_norm) of class c's training images and of the test set
 * from the pre-trained backbone and from the same architecture at random init (the same budget spent
 * on nothing: the from-scratch baseline of a one-class model, which has no labels to learn from);
 * Mahalanobis fitted on the class's training features; AUROC of class c's test images vs each other
 * class, averaged (the reference's one-class loop, lib/ood oneClassProtocol). Prints JSON.
 */
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { runPretrain, parsePretrainFlags } from '../../lib/pretrain';
import { Beit, createModel } from '../../lib/models/beit';
import { buildDataset } from '../../lib/data';
import type { ImageDataset } from '../../lib/data/types';
import { arg, classList, oneClassMahalanobis } from './pretrain-util';




async function main(): Promise<void> {
  const classes = classList(arg('classes', '0-9'));
  const steps = Number(arg('steps', '400'));
  const batch = Number(arg('batch', '64'));
  const extra = JSON.parse(arg('model-opts', '{}')) as Record<string, unknown>;
  const testPerClass = Number(arg('test-per-class', '1000'));
  const arch = { img_size: 28, patch_size: 4, embed_dim: 48, depth: 2, num_heads: 4, ...extra };
  const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'mood-pt-bench-'));
  const test0 = await buildDataset({ dataSet: 'fashion_mnist', train: false });
  // A fixed, class-balanced test subset (the first testPerClass of each class).
  const keep: number[] = [];
  const seen = new Map<number, number>();
  test0.targets.forEach((t, i) => {
    const n = seen.get(t) ?? 0;
    if (n < testPerClass) keep.push(i);
    seen.set(t, n + 1);
  });
  const test = (test0 as unknown as { subset(i: Int32Array): ImageDataset }).subset(Int32Array.from(keep));
  const rows: Array<Record<string, number>> = [];
  const t0 = Date.now();
  for (const c of classes) {
    const train = await buildDataset({ dataSet: 'fashion_mnist', train: true, classIdx: c });
    const perEpoch = Math.floor(train.length / batch);
    const epochs = Math.max(1, Math.ceil(steps / perEpoch));
    const out = path.join(tmp, `c${c}`);
    const tp = Date.now();
    const r = await runPretrain(parsePretrainFlags({
      model: 'beit_test_tiny_8k_vocab', modelOpts: JSON.stringify(arch), inputSize: '28', dataSet: 'fashion_mnist', classIdx: String(c),
      discreteVaeType: 'pixel', numMaskPatches: '19', minMaskPatchesPerBlock: '4', batchSize: String(batch), epochs: String(epochs),
      warmupEpochs: '0', warmupSteps: String(Math.max(1, Math.round(steps / 10))), lr: arg('lr', '1.5e-3'), minLr: '1e-5', maxSteps: String(steps),
      outputDir: out, quiet: true, seed: '0',
    }), () => {});
    const pretrainS = (Date.now() - tp) / 1000;
    const beitOpts = { ...arch, num_classes: 0, use_rel_pos_bias: true, use_abs_pos_emb: false, init_values: 0.1, use_mean_pooling: true };
    const auroc: Record<string, number> = {};
    for (const [name, make] of [
      ['mim', () => Beit.fromCheckpoint(r.lastCheckpoint!, beitOpts as never)],
      ['scratch', async () => createModel({ ...beitOpts, seed: 0 } as never)],
    ] as const) {
      const model = await make();
      auroc[name] = (await oneClassMahalanobis(model, train, test, Array.from({ length: 10 }, (_, k) => [k]), [c])).mean;
      model.dispose();
    }
    const row = { class: c, steps: r.steps, pretrain_s: pretrainS, final_loss: r.epochs[r.epochs.length - 1].train_loss, auroc_mim: auroc.mim, auroc_scratch: auroc.scratch };
    rows.push(row);
    process.stderr.write(JSON.stringify(row) + '\n');
  }
  fs.rmSync(tmp, { recursive: true, force: true });
  const mean = (k: string) => rows.reduce((a, r) => a + r[k], 0) / rows.length;
  const result = { arch, steps, batch, test_per_class: testPerClass, classes: rows, mean_auroc_mim: mean('auroc_mim'), mean_auroc_scratch: mean('auroc_scratch'), ratio_mim_over_scratch: mean('auroc_mim') / mean('auroc_scratch'), total_s: (Date.now() - t0) / 1000 };
  const outFile = arg('out', '');
  if (outFile) fs.writeFileSync(outFile, JSON.stringify(result, null, 2) + '\n');
  process.stdout.write(JSON.stringify(result) + '\n');
}

main().catch((e) => {
  process.stderr.write(`${(e as Error).stack ?? e}\n`);
  process.exitCode = 1;
});
