/**
 * `mood data preview`: the real pipeline on the first samples, saved as float32 NCHW .npy plus a PNG
 * contact sheet, with a dataset summary — what the model will see.
 */
import * as path from 'node:path';
import { ndarray, writeNpy } from '../npy';
import { writePng } from '../io/png';
import { buildDataset, createLoader } from './index';
import { ImageFileDataset } from './files';
import { transformSpec, type TransformSpec } from './plan';
import type { Batch } from './types';

export interface PreviewOptions {
  dataSet: string;
  dataPath?: string;
  inputSize?: number;
  train?: boolean;
  count?: number;
  seed?: number;
  classIdx?: number;
  imagenetDefaultMeanAndStd?: boolean;
  /** Training preview: timm auto-augment policy (default the reference's rand-m9-mstd0.5-inc1; '' or 'none': off). */
  autoAugment?: string;
  out?: string;
}

export interface PreviewSummary {
  dataSet: string;
  root: string;
  split: 'train' | 'test';
  classes: number;
  classNames: string[];
  samples: number;
  perClass: number[];
  transform: string;
  inputSize: number;
  count: number;
  indices: number[];
  labels: number[];
  npy: string;
  png: string;
  skippedFiles: Array<{ path: string; reason: string }>;
  truncatedFiles: string[];
}

export async function runPreview(o: PreviewOptions): Promise<PreviewSummary> {
  const inputSize = o.inputSize ?? 224;
  const count = o.count ?? 16;
  if (!Number.isInteger(count) || count < 1 || count > 4096) throw new RangeError(`--count must be an integer in 1..4096, got ${o.count}`);
  const train = o.train ?? false;
  const ds = await buildDataset({ dataSet: o.dataSet, dataPath: o.dataPath, train, classIdx: o.classIdx });
  const aa = o.autoAugment ?? REFERENCE_AUTO_AUGMENT;
  const autoAugment = aa === '' || aa === 'none' ? undefined : aa;
  const spec = transformSpec({ inputSize, train, imagenetDefaultMeanAndStd: o.imagenetDefaultMeanAndStd, autoAugment });
  const loader = createLoader(ds, {
    autoAugment,
    batchSize: Math.min(count, ds.length),
    inputSize,
    train,
    shuffle: train,
    seed: o.seed ?? 0,
    imagenetDefaultMeanAndStd: o.imagenetDefaultMeanAndStd,
    prefetch: 0,
  });
  let batch: Batch | undefined;
  for await (const b of loader) {
    batch = b;
    break;
  }
  if (!batch) throw new Error(`${o.dataSet}: no decodable samples to preview`);
  const x = (await batch.images.data()) as Float32Array;
  const n = batch.indices.length;
  batch.images.dispose();
  const npy = path.resolve(o.out ?? 'preview.npy');
  const png = npy.replace(/\.npy$/i, '') + '.png';
  writeNpy(npy, ndarray('float32', [n, 3, inputSize, inputSize], x));
  const sheet = contactSheet(x, n, inputSize, spec.mean, spec.std);
  writePng(png, sheet.width, sheet.height, sheet.rgb);
  const perClass = new Array<number>(ds.classes.length).fill(0);
  for (const t of ds.targets) perClass[t]++;
  const files = ds instanceof ImageFileDataset ? ds : undefined;
  return {
    dataSet: ds.name,
    root: ds.root,
    split: ds.split,
    classes: ds.classes.length,
    classNames: [...ds.classes],
    samples: ds.length,
    perClass,
    transform: describeTransform(spec),
    inputSize,
    count: n,
    indices: Array.from(batch.indices),
    labels: Array.from(batch.targets),
    npy,
    png,
    skippedFiles: files ? [...files.skipped].map(([p, reason]) => ({ path: p, reason })) : [],
    truncatedFiles: files ? [...files.truncated] : [],
  };
}

/** The reference's (BEiT/MOOD) default training auto-augment policy. */
export const REFERENCE_AUTO_AUGMENT = 'rand-m9-mstd0.5-inc1';

/** One line saying what the transform does, in the order it does it. */
export function describeTransform(spec: TransformSpec): string {
  const S = spec.size;
  switch (spec.geometry) {
    case 'eval_small': return `evaluation: no resize/crop at ${S} px (bicubic resize only if the image is not ${S}x${S}), normalise`;
    case 'eval_resize': return `evaluation: bicubic resize shorter side to ${spec.resizeShort}, center crop ${S}, normalise`;
  }
  const steps = [spec.geometry === 'train_crop' ? `RandomCrop(${S}, padding ${spec.pad})` : `RandomResizedCrop(${S}, bicubic)`, `flip ${spec.hflip}`];
  if (spec.randAugment) steps.push(`RandAugment ${spec.randAugment.config} (${spec.randAugment.interpolation})`);
  else if (spec.colorJitter) steps.push(`ColorJitter(${spec.colorJitter}, ${spec.colorJitter}, ${spec.colorJitter})`);
  steps.push('normalise');
  if (spec.reprob > 0) steps.push(`random erasing ${spec.reprob} (${spec.eraseMode}, ${spec.eraseCount === 1 ? '1 box' : `1-${spec.eraseCount} boxes`})`);
  return `training: ${steps.join(', ')}`;
}

/**
 * A grid of normalised float32 NCHW images, denormalised with mean/std back to 0..255, 2 px gaps.
 */
export function contactSheet(x: Float32Array, n: number, size: number, mean: readonly number[], std: readonly number[]): { rgb: Uint8Array; width: number; height: number } {
  const cols = Math.max(1, Math.ceil(Math.sqrt(n)));
  const rows = Math.max(1, Math.ceil(n / cols));
  const gap = 2;
  const width = cols * size + (cols + 1) * gap;
  const height = rows * size + (rows + 1) * gap;
  const rgb = new Uint8Array(width * height * 3).fill(255);
  const plane = size * size;
  for (let i = 0; i < n; i++) {
    const ox = gap + (i % cols) * (size + gap);
    const oy = gap + Math.floor(i / cols) * (size + gap);
    for (let c = 0; c < 3; c++)
      for (let y = 0; y < size; y++)
        for (let xx = 0; xx < size; xx++) {
          const v = (x[(i * 3 + c) * plane + y * size + xx] * std[c] + mean[c]) * 255;
          rgb[((oy + y) * width + ox + xx) * 3 + c] = Math.max(0, Math.min(255, Math.round(v)));
        }
  }
  return { rgb, width, height };
}
