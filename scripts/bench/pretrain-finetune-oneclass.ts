/**
 * One-class OOD on Fashion-MNIST from fine-tuned backbones (a demo / benchmark, not a test): for each
 * checkpoint (`mood finetune` output, e.g. one fine-tuned from a `mood pretrain` checkpoint and one
 * fine-tuned from scratch), features (mean-pooled, fc_norm: what the head sees) of all 60k training
 * and 10k test images; then lib/ood `oneClassProtocol` with Mahalanobis: for each class c, fit on
 * c's training features, AUROC of c's test images against each other class, averaged; the mean over
 * the 10 classes. Prints one JSON object (per-class AUROC per checkpoint) and a markdown table.
 *
 *   npx ts-node --transpile-only scripts/bench/pretrain-finetune-oneclass.ts \
 *       --ckpt mim=runs/ft-mim/checkpoint-5.pth --ckpt scratch=runs/ft-scratch/checkpoint-9.pth \
 *       --model-opts '{"patch_size":7,"embed_dim":128,"depth":4,"num_heads":4,"mlp_ratio":2}' [--out f.json]
 *
 * `--ckpt name=random` scores the architecture at random initialisation (seed 0; give the whole
 * architecture in --model-opts then).
 *
 * The backbones were trained with the labels of all 10 classes (MOOD's one-class CIFAR-10 backbone
 * likewise saw ImageNet-21k, which contains those classes): see docs/pretrain.md.
 */
import * as fs from 'node:fs';
import * as os from 'node:os';
import { Beit, createModel } from '../../lib/models/beit';
import { buildDataset } from '../../lib/data';
import { oneClassMahalanobis } from './pretrain-util';

function args(name: string): string[] {
  const out: string[] = [];
  process.argv.forEach((a, i) => {
    if (a === `--${name}`) out.push(process.argv[i + 1]);
  });
  return out;
}


async function main(): Promise<void> {
  const ckpts = args('ckpt').map((s) => {
    const eq = s.indexOf('=');
    if (eq <= 0 || (s.slice(eq + 1) !== 'random' && !fs.existsSync(s.slice(eq + 1)))) throw new Error(`--ckpt: expected name=existing-file or name=random, got '${s}'`);
    return { name: s.slice(0, eq), file: s.slice(eq + 1) };
  });
  if (!ckpts.length) throw new Error('--ckpt name=file: at least one checkpoint');
  const modelOpts = JSON.parse(args('model-opts')[0] ?? '{}') as Record<string, unknown>;
  const train = await buildDataset({ dataSet: 'fashion_mnist', train: true });
  const test = await buildDataset({ dataSet: 'fashion_mnist', train: false });
  const result: Record<string, { per_class: number[]; mean: number; seconds: number }> = {};
  for (const { name, file } of ckpts) {
    const t0 = Date.now();
    // 'random': the architecture at its initialisation (seed 0), the no-training baseline.
    const model = file === 'random' ? createModel({ img_size: 28, ...modelOpts, seed: 0 } as never) : await Beit.fromCheckpoint(file, { img_size: 28, ...modelOpts } as never);
    const res = await oneClassMahalanobis(model, train, test, Array.from({ length: 10 }, (_, k) => [k]));
    result[name] = { per_class: [...res.perGroup.values()], mean: res.mean, seconds: (Date.now() - t0) / 1000 };
    model.dispose();
  }
  const out = { bench: 'pretrain-finetune-oneclass', metric: 'mahalanobis', checkpoints: Object.fromEntries(ckpts.map((c) => [c.name, c.file])), load_avg: os.loadavg(), result };
  const outFile = args('out')[0];
  if (outFile) fs.writeFileSync(outFile, JSON.stringify(out, null, 2) + '\n');
  process.stdout.write(JSON.stringify(out) + '\n');
  for (const [name, r] of Object.entries(result)) process.stdout.write(`| ${name} | ${r.per_class.map((x) => x.toFixed(1)).join(' | ')} | **${r.mean.toFixed(1)}** |\n`);
}

main().catch((e) => {
  process.stderr.write(`${(e as Error).stack ?? e}\n`);
  process.exitCode = 1;
});
