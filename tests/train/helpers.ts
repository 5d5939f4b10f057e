/**
 * A tiny in-memory DataLoader (lib/data/types.ts contract) for trainer tests: float32 images held in
 * JS, a seeded per-epoch shuffle, drop_last, and an optional hook to corrupt a batch (NaN tests).
 */
import type { Batch, DataLoader, ImageDataset } from '../../lib/data/types';
import { Tensor } from '../../lib/tensor';
import { mulberry32 } from '../../lib/util/mulberry32';

export interface ArrayLoaderInit {
  images: Float32Array; // [N, 3, S, S]
  targets: Int32Array;
  size: number;
  batchSize: number;
  classes: number;
  shuffle?: boolean;
  seed?: number;
  /** Called with (epoch, batch index, images) before the tensor is made; may change the pixels. */
  poison?: (epoch: number, b: number, images: Float32Array) => void;
}

export class ArrayLoader implements DataLoader {
  readonly dataset: ImageDataset;
  private epoch = 0;
  constructor(private readonly o: ArrayLoaderInit) {
    this.dataset = { name: 'synthetic', root: '<memory>', split: 'train', classes: Array.from({ length: o.classes }, (_, i) => `c${i}`), length: o.targets.length, targets: o.targets };
  }
  get numBatches(): number {
    return Math.floor(this.o.targets.length / this.o.batchSize);
  }
  get numSamples(): number {
    return this.numBatches * this.o.batchSize;
  }
  setEpoch(e: number): void {
    this.epoch = e;
  }
  async *[Symbol.asyncIterator](): AsyncIterator<Batch> {
    const n = this.o.targets.length;
    const order = Array.from({ length: n }, (_, i) => i);
    if (this.o.shuffle) {
      const r = mulberry32((this.o.seed ?? 0) * 1000003 + this.epoch);
      for (let i = n - 1; i > 0; i--) {
        const j = Math.floor(r() * (i + 1));
        [order[i], order[j]] = [order[j], order[i]];
      }
    }
    const per = 3 * this.o.size * this.o.size;
    const B = this.o.batchSize;
    for (let b = 0; b < this.numBatches; b++) {
      const idx = Int32Array.from(order.slice(b * B, (b + 1) * B));
      const img = new Float32Array(B * per);
      idx.forEach((k, i) => img.set(this.o.images.subarray(k * per, (k + 1) * per), i * per));
      this.o.poison?.(this.epoch, b, img);
      yield { images: Tensor.fromArray(img, [B, 3, this.o.size, this.o.size]), targets: Int32Array.from(idx, (k) => this.o.targets[k]), indices: idx };
    }
  }
}

/**
 * Class c has its own brightness per channel (plus noise): learnable by a micro BEiT in a few epochs
 * (content, not position: mean pooling without absolute position embeddings cannot see where).
 */
export function quadrantData(n: number, size: number, seed: number): { images: Float32Array; targets: Int32Array } {
  const r = mulberry32(seed);
  const per = 3 * size * size;
  const images = new Float32Array(n * per);
  const targets = new Int32Array(n);
  for (let k = 0; k < n; k++) {
    const c = k % 4;
    targets[k] = c;
    for (let ch = 0; ch < 3; ch++) {
      const level = ch === 0 ? (c - 1.5) * 0.5 : ch === 1 ? (c % 2 ? 0.5 : -0.5) : 0;
      for (let p = 0; p < size * size; p++) images[k * per + ch * size * size + p] = level + (r() - 0.5) * 0.8;
    }
  }
  return { images, targets };
}
