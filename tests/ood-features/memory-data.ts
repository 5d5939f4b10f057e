/**
 * Test data for the feature-extraction suites: a small slice of Fashion-MNIST (read from the idx
 * files with node's zlib) as an in-memory ImageDataset, and a DataLoader over it that implements the
 * lib/data contract (optionally shuffled, so dataset order must come from Batch.indices) and counts
 * the batches it yields (a cache hit must yield none). Also a tiny BEiT checkpoint writer.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import * as zlib from 'node:zlib';
import type { Batch, DataLoader, ImageDataset, LoaderOptions } from '../../lib/data/types';
import type { DataProvider, DatasetSpec } from '../../lib/cli/eval-common';
import { Tensor } from '../../lib/tensor';
import { createModel } from '../../lib/models/beit';
import { saveTensors } from '../../lib/checkpoint/save-tensors';

export const FASHION_DIR = process.env.MOOD_FASHION_MNIST ?? '/usr/share/datasets/fashion-mnist';
export const FASHION_CLASSES = ['T-shirt/top', 'Trouser', 'Pullover', 'Dress', 'Coat', 'Sandal', 'Shirt', 'Sneaker', 'Bag', 'Ankle boot'];

export function haveFashionMnist(): boolean {
  return fs.existsSync(path.join(FASHION_DIR, 't10k-images-idx3-ubyte.gz'));
}

/** The first `count` images (uint8 28x28) and labels of a split. */
export function readFashionMnist(split: 'train' | 'test', count: number): { pixels: Uint8Array; labels: Int32Array; side: number } {
  const prefix = split === 'train' ? 'train' : 't10k';
  const img = zlib.gunzipSync(fs.readFileSync(path.join(FASHION_DIR, `${prefix}-images-idx3-ubyte.gz`)));
  const lab = zlib.gunzipSync(fs.readFileSync(path.join(FASHION_DIR, `${prefix}-labels-idx1-ubyte.gz`)));
  if (img.readUInt32BE(0) !== 2051 || lab.readUInt32BE(0) !== 2049) throw new Error('not idx files');
  const n = Math.min(count, img.readUInt32BE(4));
  const side = img.readUInt32BE(8);
  return { pixels: new Uint8Array(img.subarray(16, 16 + n * side * side)), labels: Int32Array.from(lab.subarray(8, 8 + n)), side };
}

export interface MemoryDataset extends ImageDataset {
  /** [length, 3, S, S] normalised float32. */
  readonly images: Float32Array;
  readonly side: number;
}

/** Centre crop to `side`, grey -> 3 channels, (x/255 - 0.5) / 0.5 like the reference's eval transform. */
export function fashionDataset(split: 'train' | 'test', count: number, side = 16, opts: { name?: string; invert?: boolean; keep?: (label: number) => boolean } = {}): MemoryDataset {
  const raw = readFashionMnist(split, count);
  const off = Math.floor((raw.side - side) / 2);
  const keepIdx: number[] = [];
  raw.labels.forEach((l, i) => {
    if (!opts.keep || opts.keep(l)) keepIdx.push(i);
  });
  const n = keepIdx.length;
  const images = new Float32Array(n * 3 * side * side);
  keepIdx.forEach((src, k) => {
    for (let y = 0; y < side; y++) {
      for (let x = 0; x < side; x++) {
        let v = raw.pixels[src * raw.side * raw.side + (y + off) * raw.side + (x + off)] / 255;
        if (opts.invert) v = 1 - v;
        const z = (v - 0.5) / 0.5;
        for (let c = 0; c < 3; c++) images[((k * 3 + c) * side + y) * side + x] = z;
      }
    }
  });
  return {
    name: opts.name ?? 'fashion_mnist',
    root: `${FASHION_DIR}#${split}:${count}${opts.invert ? ':inverted' : ''}`,
    split,
    classes: FASHION_CLASSES,
    length: n,
    targets: Int32Array.from(keepIdx, (i) => raw.labels[i]),
    images,
    side,
  };
}

/** Uniform noise images in [-1, 1] (an easy OOD set), label 0. */
export function noiseDataset(count: number, side = 16, seed = 1): MemoryDataset {
  let s = seed >>> 0;
  const rnd = (): number => {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
    return s / 2 ** 32;
  };
  const images = new Float32Array(count * 3 * side * side).map(() => rnd() * 2 - 1);
  return { name: 'noise', root: `memory:noise:${seed}`, split: 'test', classes: ['noise'], length: count, targets: new Int32Array(count), images, side };
}

export class MemoryLoader implements DataLoader {
  /** Batches handed out so far (all epochs). */
  yielded = 0;
  private epoch = 0;
  constructor(
    readonly dataset: MemoryDataset,
    private readonly batchSize: number,
    private readonly opts: { shuffle?: boolean; seed?: number; rank?: number; worldSize?: number } = {},
  ) {}
  get numBatches(): number {
    return Math.ceil(this.numSamples / this.batchSize);
  }
  /** torch DistributedSampler: ceil(N / W) rows per rank, the tail padded from the start. */
  get numSamples(): number {
    return Math.ceil(this.dataset.length / (this.opts.worldSize ?? 1));
  }
  setEpoch(e: number): void {
    this.epoch = e;
  }
  private order(): number[] {
    const idx = Array.from({ length: this.dataset.length }, (_, i) => i);
    if (!this.opts.shuffle) return idx;
    let s = ((this.opts.seed ?? 0) * 7919 + this.epoch + 1) >>> 0;
    for (let i = idx.length - 1; i > 0; i--) {
      s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
      const j = s % (i + 1);
      [idx[i], idx[j]] = [idx[j], idx[i]];
    }
    return idx;
  }
  async *[Symbol.asyncIterator](): AsyncIterator<Batch> {
    let order = this.order();
    const W = this.opts.worldSize ?? 1;
    if (W > 1) {
      const padded = [...order, ...order].slice(0, this.numSamples * W);
      order = padded.filter((_, i) => i % W === (this.opts.rank ?? 0));
    }
    const S = this.dataset.side;
    const per = 3 * S * S;
    for (let start = 0; start < order.length; start += this.batchSize) {
      const ids = order.slice(start, start + this.batchSize);
      const x = new Float32Array(ids.length * per);
      ids.forEach((r, i) => x.set(this.dataset.images.subarray(r * per, (r + 1) * per), i * per));
      this.yielded++;
      yield { images: Tensor.fromArray(x, [ids.length, 3, S, S]), targets: Int32Array.from(ids, (r) => this.dataset.targets[r]), indices: Int32Array.from(ids) };
    }
  }
}

/** A random micro BEiT (16x16 input unless imgSize) saved as `{'model': state_dict}`; `seed` perturbs the weights. */
export async function writeMicroCheckpoint(file: string, numClasses = 10, seed = 0, imgSize = 16): Promise<void> {
  const model = createModel('beit_test_micro', { num_classes: numClasses, img_size: imgSize });
  try {
    const sd = model.stateDict();
    const out = new Map<string, Tensor>();
    let s = (seed * 2654435761 + 12345) >>> 0;
    for (const [k, t] of sd) {
      if (t.dtype !== 'float32') {
        out.set(k, t);
        continue;
      }
      // Random weights with O(1) spread so features differ between classes and seeds.
      const d = Float32Array.from((await t.data()) as Float32Array, (v) => {
        s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
        return v + (s / 2 ** 32 - 0.5) * 0.4;
      });
      out.set(k, Tensor.fromArray(d, t.shape));
      t.dispose();
    }
    await saveTensors(file, { model: out });
    for (const t of out.values()) t.dispose();
  } finally {
    model.dispose();
  }
}

/** Fashion-MNIST (train 300 / test 200 images), its inverted test images and noise as OOD. */
export class MemoryDataProvider implements DataProvider {
  loaders: MemoryLoader[] = [];
  specs: DatasetSpec[] = [];
  dataset(s: DatasetSpec): MemoryDataset {
    this.specs.push(s);
    if (s.inputSize !== 16) throw new Error(`expected input size 16, got ${s.inputSize}`);
    if (s.name === 'fashion_mnist') {
      const keep = s.classIdx !== undefined && !s.ood ? (y: number) => y === s.classIdx : undefined;
      return fashionDataset(s.split, s.split === 'train' ? 300 : 200, 16, { keep });
    }
    if (s.name === 'fashion_inverted') return fashionDataset('test', 120, 16, { name: 'fashion_inverted', invert: true });
    if (s.name === 'noise') return noiseDataset(100);
    throw new Error(`no dataset '${s.name}' here (expected ${s.path}/images/...)`);
  }
  loaderOptions: LoaderOptions[] = [];
  loader(ds: MemoryDataset, o: LoaderOptions): MemoryLoader {
    this.loaderOptions.push(o);
    const l = new MemoryLoader(ds, o.batchSize, { shuffle: true, seed: this.loaders.length, rank: o.rank, worldSize: o.worldSize });
    this.loaders.push(l);
    return l;
  }
  get batches(): number {
    return this.loaders.reduce((a, l) => a + l.yielded, 0);
  }
}

