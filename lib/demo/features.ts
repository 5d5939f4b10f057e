/**
 * The demo's feature stage: features and logits of the sampled training and test images and of the
 * far-OOD sets built from ID test images, through lib/ood's cached extraction (keyed by the weights
 * file, so a re-run with the same weights reads them back).
 */
import * as path from 'node:path';
import type { ImageDataset } from '../data/types';
import type { Beit } from '../models/beit';
import { extractCached } from '../ood/features/extract';
import { Tensor } from '../tensor';
import { hash, type DemoContext } from './context';
import type { MemoryDataset } from './backend';
import { FAR_OOD_NAMES, farOodPixels, type PixelBatch } from './far-ood';
import type { FeatureRows } from './ood-eval';
import { explainNoSpace } from './stages';

export interface DemoFeatures {
  train: FeatureRows;
  test: FeatureRows;
  far: Array<{ name: string; rows: FeatureRows }>;
  /** ID test images each far-OOD set was built from. */
  farCount: number;
}

async function pixelsOf(ds: MemoryDataset, idx: Int32Array): Promise<PixelBatch> {
  const [, c, h, w] = ds.pixels.shape;
  const all = (await ds.pixels.data()) as Uint8Array;
  const plane = c * h * w;
  const out = new Uint8Array(idx.length * plane);
  idx.forEach((j, k) => {
    const row = ds.rows ? ds.rows[j] : j;
    out.set(all.subarray(row * plane, (row + 1) * plane), k * plane);
  });
  return { pixels: out, n: idx.length, c, h, w };
}

/** Extraction through the cache keyed by `weights` (the file whose weights `model` holds now). */
function extractor(ctx: DemoContext, model: Beit, weights: string) {
  const s = ctx.s;
  const cache = { dir: path.join(s.outputDir, 'features'), checkpoint: weights };
  const inputSize = model.options.img_size;
  return async (ds: ImageDataset, label: string, extra: Record<string, unknown>): Promise<FeatureRows> => {
    const loader = ctx.data.createLoader(ds, { batchSize: Math.max(256, s.batchSize), inputSize, device: s.device });
    try {
      const r = await extractCached(model, loader, { train: false, inputSize, extra }, cache, { label, progress: s.quiet ? false : {} });
      return r.set;
    } catch (e) {
      return explainNoSpace(e, cache.dir);
    }
  };
}

/** Features of the sampled training and test images (all classes) with the weights `model` holds (`weights`' file). */
export async function extractSplits(ctx: DemoContext, model: Beit, weights: string, tag = ''): Promise<Pick<DemoFeatures, 'train' | 'test'>> {
  const extract = extractor(ctx, model, weights);
  const train = await extract(ctx.trainSub, `train${tag}`, { demo: 'train', idx: hash(Array.from(ctx.trainIdx)) });
  const test = await extract(ctx.testSub, `test${tag}`, { demo: 'test', idx: hash(Array.from(ctx.testIdx)) });
  return { train, test };
}

export async function extractFeatures(ctx: DemoContext, model: Beit, weights: string): Promise<DemoFeatures> {
  const s = ctx.s;
  const extract = extractor(ctx, model, weights);
  const { train, test } = await extractSplits(ctx, model, weights);
  ctx.interrupt.check('feature extraction');
  const testSub = ctx.testSub;
  const idTestIdx = Int32Array.from([...testSub.targets.keys()].filter((i) => ctx.isId(testSub.targets[i])));
  const farCount = Math.min(idTestIdx.length, 2000);
  const farBase = await pixelsOf(testSub, idTestIdx.subarray(0, farCount));
  const far: DemoFeatures['far'] = [];
  for (const kind of s.farOod) {
    const px = farOodPixels(kind, farBase, s.seed);
    const t = Tensor.fromArray(px.pixels, [px.n, px.c, px.h, px.w], { dtype: 'uint8' });
    const ds = new ctx.data.InMemoryDataset({ name: `far_ood_${kind}`, root: `synthetic:${kind}`, split: 'test', classes: ctx.classes, targets: new Int32Array(px.n), pixels: t });
    try {
      far.push({ name: FAR_OOD_NAMES[kind], rows: await extract(ds, FAR_OOD_NAMES[kind], { demo: kind, n: px.n, seed: s.seed }) });
    } finally {
      ds.dispose();
      t.dispose();
    }
    ctx.interrupt.check('feature extraction');
  }
  return { train, test, far, farCount };
}
