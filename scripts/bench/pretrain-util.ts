/** Helpers shared by the pretrain-* benchmark scripts (argument reading, class lists, features). */
import type { Beit } from '../../lib/models/beit';
import { createLoader } from '../../lib/data';
import type { ImageDataset } from '../../lib/data/types';
import { oneClassProtocol } from '../../lib/ood';
import { Tensor } from '../../lib/tensor';

/** The value after `--name`, or the default. */
export function arg(name: string, dflt: string): string {
  const i = process.argv.indexOf(`--${name}`);
  return i >= 0 ? process.argv[i + 1] : dflt;
}

/** '0-4,7' -> [0, 1, 2, 3, 4, 7]. */
export function classList(s: string): number[] {
  return s.split(',').flatMap((p) => {
    const [a, b] = p.split('-').map(Number);
    return b === undefined ? [a] : Array.from({ length: b - a + 1 }, (_, i) => a + i);
  });
}

/** Backbone features (mean-pooled, fc_norm: what the head sees) of a 28 px dataset, in order. */
export async function features(model: Beit, ds: ImageDataset): Promise<Tensor> {
  const loader = createLoader(ds, { batchSize: 500, inputSize: 28 });
  const parts: Tensor[] = [];
  try {
    for await (const b of loader) {
      parts.push(model.forwardFeatures(b.images));
      b.images.dispose();
    }
    const all = Tensor.cat(parts, 0);
    await all.ready();
    return all;
  } finally {
    for (const p of parts) p.dispose();
    (loader as { dispose?: () => void }).dispose?.();
  }
}

/**
 * One-class Mahalanobis AUROC in % (lib/ood `oneClassProtocol`) on `model`'s features of `train`
 * and `test`: one entry per group (each a list of ID classes; `idGroups` limits which groups are
 * evaluated as ID), and their mean. Features are freed.
 */
export async function oneClassMahalanobis(
  model: Beit,
  train: ImageDataset,
  test: ImageDataset,
  groups: number[][],
  idGroups?: number[],
): Promise<{ perGroup: Map<number, number>; mean: number }> {
  const fTrain = await features(model, train);
  const fTest = await features(model, test);
  try {
    const res = await oneClassProtocol({
      metric: 'mahalanobis',
      train: { features: fTrain, labels: train.targets },
      test: { features: fTest, labels: test.targets },
      groups,
      ...(idGroups ? { idGroups } : {}),
    });
    const pct = (x: number): number => (x <= 1 ? 100 * x : x);
    return { perGroup: new Map(res.groups.map((g) => [g.classes[0], pct(g.average.auroc)])), mean: pct(res.average.auroc) };
  } finally {
    fTrain.dispose();
    fTest.dispose();
  }
}
