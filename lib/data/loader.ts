/**
 * The batch loader: sampler order for the epoch, per-sample plans drawn in TS, native batch assembly,
 * and a prefetch queue — batch b + 1 .. b + prefetch are already queued on the native executor while
 * the consumer works on batch b. Breaking out of `for await` (or an error) disposes queued batches.
 * The consumer owns every yielded batch's tensors (dispose them, or run the step inside tidy()).
 */
import { Progress } from '../util/progress';
import { Tensor, Device } from '../tensor';
import type { Batch, DataLoader, ImageDataset, LoaderOptions } from './types';
import { DataError } from './errors';
import { AssembledBatch, BatchSource, isBatchSource } from './memory';
import { drawSamplePlan, PLAN, STREAM_BATCH, transformSpec, TransformSpec } from './plan';
import { checkSamplerOptions, epochIndices, SamplerOptions, shardSize } from './sampler';
import { applyMixup, checkMixup, mixupActive } from './mixup';
import { KeyedRng } from './rng';
import { beitBatchPlan, beitViewsSpec, BeitViewsSpec } from './beit-views';
import * as os from 'node:os';

export class Loader implements DataLoader {
  readonly dataset: ImageDataset;
  readonly numSamples: number;
  readonly numBatches: number;
  readonly spec: TransformSpec;
  /** BEiT's two views (opts.beitViews), else undefined. */
  readonly beit?: BeitViewsSpec;
  private readonly source: BatchSource;
  private readonly sampler: SamplerOptions;
  private readonly opts: LoaderOptions;
  private readonly workers: number;
  private epoch = 0;

  constructor(dataset: ImageDataset, opts: LoaderOptions) {
    if (!isBatchSource(dataset)) throw new DataError(`createLoader: dataset '${dataset.name}' was not made by buildDataset (no native batch source)`);
    if (!Number.isInteger(opts.batchSize) || opts.batchSize < 1) throw new RangeError(`batchSize must be a positive integer, got ${opts.batchSize}`);
    const prefetch = opts.prefetch ?? 2;
    if (!Number.isInteger(prefetch) || prefetch < 0) throw new RangeError(`prefetch must be a non-negative integer, got ${prefetch}`);
    if (opts.workers !== undefined && (!Number.isInteger(opts.workers) || opts.workers < 1)) throw new RangeError(`workers must be a positive integer, got ${opts.workers}`);
    if (dataset.length === 0) throw new DataError(`${dataset.name} (${dataset.root}): the dataset is empty`);
    this.dataset = dataset;
    this.source = dataset;
    this.opts = { ...opts, prefetch };
    this.workers = opts.workers ?? Math.max(1, os.availableParallelism?.() ?? os.cpus().length);
    this.spec = transformSpec({ ...opts, train: opts.train ?? false });
    if (opts.beitViews) {
      if (!opts.train) throw new RangeError('beitViews are a training transform (train: true)');
      if (mixupActive(opts.mixup)) throw new RangeError('beitViews cannot be combined with mixup/cutmix');
      if (!dataset.assembleBeit) throw new DataError(`${dataset.name}: this dataset cannot assemble BEiT views`);
      this.beit = beitViewsSpec(opts.inputSize, opts.beitViews, this.spec.mean, this.spec.std);
    }
    if (opts.mixup) checkMixup(opts.mixup);
    this.sampler = {
      shuffle: opts.shuffle ?? opts.train ?? false,
      seed: opts.seed ?? 0,
      rank: opts.rank ?? 0,
      worldSize: opts.worldSize ?? 1,
      dropLast: opts.samplerDropLast ?? false,
    };
    checkSamplerOptions(this.sampler);
    this.numSamples = shardSize(dataset.length, this.sampler);
    this.numBatches = opts.dropLast ? Math.floor(this.numSamples / opts.batchSize) : Math.ceil(this.numSamples / opts.batchSize);
    if (opts.train && mixupActive(opts.mixup)) {
      const last = opts.dropLast ? opts.batchSize : this.numSamples - (this.numBatches - 1) * opts.batchSize;
      if (opts.batchSize % 2 !== 0 || last % 2 !== 0)
        throw new RangeError(`mixup/cutmix needs even batches (timm asserts it): batchSize ${opts.batchSize}, last batch ${last}; use an even batchSize with dropLast`);
    }
  }

  setEpoch(epoch: number): void {
    if (!Number.isInteger(epoch) || epoch < 0) throw new RangeError(`epoch must be a non-negative integer, got ${epoch}`);
    this.epoch = epoch;
  }

  /** Queues batch `b` of the epoch natively; returns at once (tensors pending). */
  private makeBatch(order: Int32Array, b: number, epoch: number): Pending {
    const B = this.opts.batchSize;
    const indices = order.slice(b * B, Math.min(order.length, (b + 1) * B));
    if (this.beit) {
      const plan = beitBatchPlan(this.beit, this.sampler.seed, epoch, indices);
      return { b, epoch, indices, ...this.source.assembleBeit!(indices, plan, this.beit, this.workers) };
    }
    let plan: Float64Array | null = null;
    if (this.isTrain) {
      plan = new Float64Array(indices.length * PLAN.cols);
      for (let i = 0; i < indices.length; i++)
        drawSamplePlan(this.spec, this.sampler.seed, epoch, indices[i], plan.subarray(i * PLAN.cols, (i + 1) * PLAN.cols));
    }
    return { b, epoch, indices, ...this.source.assemble(indices, plan, this.spec, this.workers) };
  }

  private get isTrain(): boolean {
    return this.spec.geometry === 'train_crop' || this.spec.geometry === 'train_rrc';
  }

  /** Waits for the batch, drops skipped files, then mixup and the device copy (queued, not awaited). */
  private async finish(p: Pending): Promise<Batch> {
    let images = p.images;
    let second = p.second;
    let indices = p.indices;
    try {
      await images.ready();
      await second?.ready();
    } catch (e) {
      images.dispose();
      second?.dispose();
      void p.check?.().catch(() => undefined); // releases the status tensors
      throw new DataError(`${this.dataset.name}: building batch ${p.b} of epoch ${p.epoch} failed: ${(e as Error).message}`);
    }
    const keep = p.check ? await p.check().catch((e: Error) => (images.dispose(), second?.dispose(), Promise.reject(e))) : null;
    const mixing = this.isTrain && mixupActive(this.opts.mixup);
    if (keep && mixing) {
      // Mixup pairs need an even batch: after skipped files, also drop the last kept sample if needed.
      let kept = keep.reduce((a, k) => a + k, 0);
      for (let i = keep.length - 1; kept % 2 === 1 && i >= 0; i--) if (keep[i]) (keep[i] = 0), kept--;
    }
    if (keep) {
      const rows: number[] = [];
      keep.forEach((k, i) => k && rows.push(i));
      const idx = Tensor.fromArray(BigInt64Array.from(rows, (r) => BigInt(r)));
      const kept = images.indexSelect(0, idx);
      images.dispose();
      images = kept;
      if (second) {
        const keptSecond = second.indexSelect(0, idx);
        second.dispose();
        second = keptSecond;
      }
      idx.dispose();
      indices = Int32Array.from(rows, (r) => p.indices[r]);
    }
    const targets = new Int32Array(indices.length);
    for (let i = 0; i < indices.length; i++) targets[i] = this.dataset.targets[indices[i]];
    let softTargets: Tensor | undefined;
    if (mixing && indices.length > 0) {
      // Batch-level draws keyed by (seed, epoch, batch) in a stream per rank.
      const rng = new KeyedRng(this.sampler.seed, p.epoch, p.b, STREAM_BATCH + 16 * this.sampler.rank);
      const m = applyMixup(images, targets, this.opts.mixup!, this.dataset.classes.length, this.spec.size, rng);
      images.dispose();
      images = m.images;
      softTargets = m.softTargets;
    }
    const device = this.opts.device ?? 'cpu';
    if (device !== 'cpu') {
      const moved = images.to(device as Device);
      images.dispose();
      images = moved;
      if (softTargets) {
        const st = softTargets.to(device as Device);
        softTargets.dispose();
        softTargets = st;
      }
      if (second) {
        const sd = second.to(device as Device);
        second.dispose();
        second = sd;
      }
    }
    return { images, targets, indices, ...(softTargets ? { softTargets } : {}), ...(second ? { secondImages: second } : {}) };
  }

  async *[Symbol.asyncIterator](): AsyncIterator<Batch> {
    const epoch = this.epoch;
    const order = await epochIndices(this.dataset.length, epoch, this.sampler);
    const queue: Pending[] = [];
    const depth = this.opts.prefetch! + 1;
    const progress = this.opts.progress
      ? new Progress({ label: this.opts.progress, total: Math.min(this.numSamples, this.numBatches * this.opts.batchSize), unit: 'img' })
      : null;
    let next = 0;
    try {
      for (let b = 0; b < this.numBatches; b++) {
        while (next < this.numBatches && queue.length < depth) queue.push(this.makeBatch(order, next++, epoch));
        const batch = await this.finish(queue.shift()!);
        progress?.tick(batch.indices.length);
        if (batch.indices.length === 0) {
          batch.images.dispose();
          batch.secondImages?.dispose();
          continue;
        }
        yield batch;
      }
      progress?.finish();
    } finally {
      for (const q of queue) {
        q.images.dispose();
        q.second?.dispose();
      }
    }
  }
}

interface Pending extends AssembledBatch {
  b: number;
  epoch: number;
  indices: Int32Array;
}

export function createLoader(dataset: ImageDataset, opts: LoaderOptions): DataLoader {
  return new Loader(dataset, opts);
}
