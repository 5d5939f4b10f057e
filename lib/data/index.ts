/**
 * The data layer: datasets with the reference's names and layouts, and a loader whose batches are
 * assembled natively from plans drawn in TypeScript. See docs/data.md.
 */
import type { ImageDataset } from './types';
import { DataError } from './errors';
import { InMemoryDataset } from './memory';
import { FASHION_MNIST_DEFAULT_PATH, loadFashionMnist } from './fashion-mnist';
import { loadCifar } from './cifar';
import { loadSvhn } from './svhn';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { ImageFileDataset } from './files';
import { listFlatFolder, listImageFolder } from './folders';

export type { ImageDataset, Batch, LoaderOptions, DataLoader, MixupOptions } from './types';
export { createLoader, Loader } from './loader';
export { DataError } from './errors';
export { InMemoryDataset } from './memory';
export type { BatchSource } from './memory';
export { transformSpec, IMAGENET_DEFAULT_MEAN, IMAGENET_DEFAULT_STD } from './plan';
export type { TransformSpec, TransformOptions } from './plan';
export { BEIT_PLAN, beitViewsSpec, drawBeitPlan, beitBatchPlan } from './beit-views';
export type { BeitViewsOptions, BeitViewsSpec, Interpolation } from './beit-views';
export { epochIndices, shardSize } from './sampler';
export { KeyedRng } from './rng';
export { FASHION_MNIST_CLASSES, FASHION_MNIST_DEFAULT_PATH } from './fashion-mnist';
export { ImageFileDataset } from './files';
export { readMat, SVHN_CLASSES } from './svhn';
export { IMG_EXTENSIONS } from './folders';

export interface BuildDatasetOptions {
  /** The reference's name: fashion_mnist, cifar10, cifar100. */
  dataSet: string;
  /** Folder (or archive) to read; fashion_mnist defaults to Debian's /usr/share/datasets/fashion-mnist. */
  dataPath?: string;
  /** Training split (else the test split). */
  train: boolean;
  /**
   * One-class protocol: the in-distribution class (CIFAR-100: one of the 20 superclasses). The training
   * split keeps only that class; the test split keeps every sample. CIFAR-100 labels become superclasses.
   */
  classIdx?: number;
  /** Image files: fail on the first undecodable file instead of skipping it (default false). */
  strict?: boolean;
}

export const DATASET_NAMES = ['fashion_mnist', 'cifar10', 'cifar100', 'svhn', 'imagenet30', 'imagenet1k', 'image_folder', 'ood_folder'] as const;

/** Split folders of the ImageNet-style layouts. */
const SPLIT_DIRS: Record<string, { train: string; test: string }> = {
  imagenet30: { train: 'train', test: 'test' },
  imagenet1k: { train: 'train', test: 'val' },
};

export async function buildDataset(opts: BuildDatasetOptions): Promise<ImageDataset> {
  const name = opts.dataSet;
  if (name in SPLIT_DIRS || name === 'image_folder' || name === 'ood_folder') return buildFileDataset(opts);
  let ds: InMemoryDataset;
  let coarse: { targets: Int32Array; classes: string[] } | undefined;
  switch (name) {
    case 'fashion_mnist':
      ds = await loadFashionMnist(opts.dataPath ?? FASHION_MNIST_DEFAULT_PATH, opts.train);
      break;
    case 'cifar10':
    case 'cifar100': {
      if (!opts.dataPath) throw new DataError(`${name}: dataPath is required (a folder holding ${name === 'cifar10' ? 'cifar-10-batches-py' : 'cifar-100-python'}, or the .tar.gz)`);
      const r = await loadCifar(name, opts.dataPath, opts.train);
      ds = r.dataset;
      coarse = r.coarse;
      break;
    }
    case 'svhn':
      if (!opts.dataPath) throw new DataError('svhn: dataPath is required (the folder holding train_32x32.mat / test_32x32.mat)');
      ds = await loadSvhn(opts.dataPath, opts.train ? 'train' : 'test');
      break;
    default:
      throw new DataError(`unknown data set '${name}': expected one of ${DATASET_NAMES.join(', ')}`);
  }
  if (ds.length === 0) throw new DataError(`${name}: no samples in ${ds.root}`);
  if (opts.classIdx === undefined) return ds;
  return oneClass(ds, opts.classIdx, coarse, opts.train);
}

async function buildFileDataset(opts: BuildDatasetOptions): Promise<ImageDataset> {
  const name = opts.dataSet;
  if (!opts.dataPath) throw new DataError(`${name}: dataPath is required`);
  const split = opts.train ? 'train' : 'test';
  let root = opts.dataPath;
  const dirs = SPLIT_DIRS[name];
  if (dirs) {
    root = path.join(opts.dataPath, opts.train ? dirs.train : dirs.test);
    if (!fs.existsSync(root))
      throw new DataError(`${name}: ${root} does not exist; expected ${opts.dataPath}/{${dirs.train},${dirs.test}}/<class>/<image>${name === 'imagenet30' ? ' (mood data make-imagenet30 builds it from ImageNet-1k)' : ''}`);
  }
  const listing = name === 'ood_folder' ? listFlatFolder(root, name) : listImageFolder(root, name);
  const ds = new ImageFileDataset({ name, root, split, classes: listing.classes, files: listing.files, targets: listing.targets, strict: opts.strict });
  if (opts.classIdx === undefined) return ds;
  const k = ds.classes.length;
  if (!Number.isInteger(opts.classIdx) || opts.classIdx < 0 || opts.classIdx >= k)
    throw new DataError(`${name}: classIdx ${opts.classIdx} out of range: expected an integer in 0..${k - 1}`);
  let out = ds;
  if (opts.train) {
    const keep: number[] = [];
    ds.targets.forEach((t, i) => t === opts.classIdx && keep.push(i));
    out = ds.subset(Int32Array.from(keep));
  }
  out.classIdx = opts.classIdx;
  return out;
}

function oneClass(ds: InMemoryDataset, classIdx: number, coarse: { targets: Int32Array; classes: string[] } | undefined, train: boolean): InMemoryDataset {
  let base = ds;
  if (coarse) base = ds.relabel(coarse.classes, coarse.targets);
  const k = base.classes.length;
  if (!Number.isInteger(classIdx) || classIdx < 0 || classIdx >= k)
    throw new DataError(`${ds.name}: classIdx ${classIdx} out of range: expected an integer in 0..${k - 1}${coarse ? ' (CIFAR-100 superclasses)' : ''}`);
  let out = base;
  if (train) {
    const keep: number[] = [];
    for (let i = 0; i < base.length; i++) if (base.targets[i] === classIdx) keep.push(i);
    if (keep.length === 0) throw new DataError(`${ds.name}: class ${classIdx} (${base.classes[classIdx]}) has no training samples in ${ds.root}`);
    out = base.subset(Int32Array.from(keep));
  }
  out.classIdx = classIdx;
  return out;
}
