/**
 * A stand-in for lib/data in the demo tests: the first N Fashion-MNIST images of each split as a uint8
 * pixel tensor (as lib/data's InMemoryDataset holds them), subsets sharing it, and a loader that
 * normalises like the reference's evaluation transform ((x/255 - 0.5)/0.5, grey -> 3 channels) in JS.
 * It lets the pipeline be tested on its own; the real lib/data is used when the build has it.
 */
import type { Batch, DataLoader, ImageDataset, LoaderOptions } from '../../lib/data/types';
import type { DataModule, MemoryDataset, MemoryDatasetInit } from '../../lib/demo/backend';
import { Tensor } from '../../lib/tensor';
import { FASHION_CLASSES, FASHION_DIR, readFashionMnist } from '../ood-features/memory-data';

export class FakeDataset implements MemoryDataset {
  readonly name: string;
  readonly root: string;
  readonly split: 'train' | 'test';
  readonly classes: readonly string[];
  readonly targets: Int32Array;
  readonly pixels: Tensor;
  readonly rows: Int32Array | null;
  /** Host copy of the pixels (the loader reads it). */
  host?: Uint8Array;
  constructor(init: MemoryDatasetInit, host?: Uint8Array) {
    this.name = init.name;
    this.root = init.root;
    this.split = init.split;
    this.classes = init.classes;
    this.targets = init.targets;
    this.pixels = init.pixels;
    this.rows = init.rows ?? null;
    this.host = host;
  }
  get length(): number {
    return this.targets.length;
  }
  subset(indices: Int32Array, o: { classes?: readonly string[]; targets?: Int32Array; name?: string } = {}): FakeDataset {
    return new FakeDataset(
      {
        name: o.name ?? this.name,
        root: this.root,
        split: this.split,
        classes: o.classes ?? this.classes,
        targets: o.targets ?? Int32Array.from(indices, (i) => this.targets[i]),
        pixels: this.pixels,
        rows: Int32Array.from(indices, (i) => (this.rows ? this.rows[i] : i)),
      },
      this.host,
    );
  }
  dispose(): void {}
}

class FakeLoader implements DataLoader {
  private epoch = 0;
  constructor(readonly dataset: FakeDataset, private readonly o: LoaderOptions) {}
  get numBatches(): number {
    return this.o.dropLast ? Math.floor(this.dataset.length / this.o.batchSize) : Math.ceil(this.dataset.length / this.o.batchSize);
  }
  get numSamples(): number {
    return this.o.dropLast ? this.numBatches * this.o.batchSize : this.dataset.length;
  }
  setEpoch(e: number): void {
    this.epoch = e;
  }
  async *[Symbol.asyncIterator](): AsyncIterator<Batch> {
    const ds = this.dataset;
    const host = ds.host ?? ((await ds.pixels.data()) as Uint8Array);
    ds.host = host;
    const [, c, h, w] = ds.pixels.shape;
    const S = this.o.inputSize;
    const off = Math.floor((h - S) / 2);
    const order = Array.from({ length: ds.length }, (_, i) => i);
    if (this.o.shuffle) {
      let s = ((this.o.seed ?? 0) * 7919 + this.epoch + 1) >>> 0;
      for (let i = order.length - 1; i > 0; i--) {
        s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
        const j = s % (i + 1);
        [order[i], order[j]] = [order[j], order[i]];
      }
    }
    const B = this.o.batchSize;
    for (let b = 0; b < this.numBatches; b++) {
      const ids = order.slice(b * B, Math.min(order.length, (b + 1) * B));
      const x = new Float32Array(ids.length * 3 * S * S);
      ids.forEach((id, k) => {
        const row = ds.rows ? ds.rows[id] : id;
        for (let ch = 0; ch < 3; ch++) {
          const src = Math.min(ch, c - 1);
          for (let y = 0; y < S; y++) {
            for (let xx = 0; xx < S; xx++) {
              x[((k * 3 + ch) * S + y) * S + xx] = (host[((row * c + src) * h + y + off) * w + xx + off] / 255 - 0.5) / 0.5;
            }
          }
        }
      });
      yield { images: Tensor.fromArray(x, [ids.length, 3, S, S]), targets: Int32Array.from(ids, (i) => ds.targets[i]), indices: Int32Array.from(ids) };
    }
  }
}

/** The first `perSplit.train` / `perSplit.test` images of Fashion-MNIST. */
export function fakeDataModule(perSplit: { train: number; test: number }): DataModule & { builds: number } {
  const mod = {
    builds: 0,
    async buildDataset(o: { dataSet: string; dataPath?: string; train: boolean }): Promise<ImageDataset> {
      mod.builds++;
      const split = o.train ? 'train' : 'test';
      const raw = readFashionMnist(split, o.train ? perSplit.train : perSplit.test);
      const n = raw.labels.length;
      const pixels = Tensor.fromArray(raw.pixels, [n, 1, raw.side, raw.side], { dtype: 'uint8' });
      return new FakeDataset({ name: 'fashion_mnist', root: `${FASHION_DIR}#${split}`, split, classes: FASHION_CLASSES, targets: raw.labels, pixels }, raw.pixels);
    },
    createLoader(ds: ImageDataset, o: LoaderOptions): DataLoader {
      return new FakeLoader(ds as FakeDataset, o);
    },
    InMemoryDataset: FakeDataset as unknown as DataModule['InMemoryDataset'],
  };
  return mod;
}

import type { Beit } from '../../lib/models/beit';
import type { TrainModule } from '../../lib/demo/backend';
import type { TrainStep } from '../../lib/train/step';

/**
 * A stand-in for lib/train's fine-tuning step: each step is the model's own forward+backward
 * (Beit.trainStep, no update), so the demo's stage on the Trainer (schedule, markers, resume) can be
 * tested without the native optimizer; its checkpoints hold the weights only. `steps` counts the
 * calls, `lrs` records each step's scheduled lr; `onStep` can interrupt.
 */
export function fakeTrainModule(onStep?: (n: number) => void): TrainModule & { steps: number; lrs: number[] } {
  const mod = {
    steps: 0,
    lrs: [] as number[],
    async createStep(model: Beit): Promise<TrainStep> {
      let lr = 0;
      return {
        model,
        async run(b, s) {
          lr = s.lr;
          mod.lrs.push(s.lr);
          const t = Tensor.fromArray(BigInt64Array.from(b.targets, (v) => BigInt(v)), [b.targets.length], { dtype: 'int64' });
          const loss = model.trainStep(b.images, t);
          t.dispose();
          mod.steps++;
          onStep?.(mod.steps);
          try {
            return { loss: await loss.item(), gradNorm: 0 };
          } finally {
            loss.dispose();
          }
        },
        rates: () => ({ lr, minLr: lr, weightDecay: 0 }),
        numParameters: () => 0,
        dispose() {},
      };
    },
  };
  return mod;
}
