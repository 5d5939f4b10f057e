/**
 * In-memory image datasets (Fashion-MNIST, CIFAR, SVHN): all uint8 pixels in ONE native tensor
 * [N, C, H, W]; a batch is assembled natively (gather rows + per-sample plan), so pixels never pass
 * through JS arrays after loading. Subsets share the pixel tensor through an index map.
 */
import { Tensor } from '../tensor';
import { keep } from '../scope';
import type { ImageDataset } from './types';
import { nativeAttrs, PLAN, TransformSpec } from './plan';
import { BEIT_PLAN, beitAttrs, BeitViewsSpec } from './beit-views';

/** A batch queued natively. */
export interface AssembledBatch {
  /** Pending float32 [B, 3, S, S]. */
  images: Tensor;
  /** Files: resolves to a keep-mask (0 = skipped sample) or null when every sample is fine. */
  check?: () => Promise<Uint8Array | null>;
  /** BEiT views: the pending tokenizer view float32 [B, 3, S2, S2]. */
  second?: Tensor;
}

/** What the loader needs from any dataset: a native batch for these indices and plans. */
export interface BatchSource extends ImageDataset {
  /** Queues the batch; `plan` is B x PLAN.cols (null at evaluation). */
  assemble(indices: Int32Array, plan: Float64Array | null, spec: TransformSpec, workers: number): AssembledBatch;
  /** Queues BEiT's two views of the batch; `plan` is B x BEIT_PLAN.cols (lib/data/beit-views.ts). */
  assembleBeit?(indices: Int32Array, plan: Float64Array, spec: BeitViewsSpec, workers: number): AssembledBatch;
  /** Frees native memory the dataset holds (shared by its subsets). */
  dispose(): void;
}

export function isBatchSource(d: ImageDataset): d is BatchSource {
  return typeof (d as Partial<BatchSource>).assemble === 'function';
}

export interface InMemoryInit {
  name: string;
  root: string;
  split: 'train' | 'test';
  classes: readonly string[];
  targets: Int32Array;
  /** uint8 [N, C, H, W], C = 1 (grey, replicated to RGB) or 3. */
  pixels: Tensor;
  /** Rows of `pixels` this dataset's samples use (default: all, in order). */
  rows?: Int32Array;
}

export class InMemoryDataset implements BatchSource {
  readonly name: string;
  readonly root: string;
  readonly split: 'train' | 'test';
  readonly classes: readonly string[];
  readonly targets: Int32Array;
  readonly pixels: Tensor;
  /** Pixel row of each sample, or null when sample i is row i. */
  readonly rows: Int32Array | null;
  readonly channels: number;
  readonly height: number;
  readonly width: number;
  /** Set by buildDataset for one-class subsets. */
  classIdx?: number;

  constructor(init: InMemoryInit) {
    this.name = init.name;
    this.root = init.root;
    this.split = init.split;
    this.classes = init.classes;
    this.targets = init.targets;
    this.pixels = keep(init.pixels);
    this.rows = init.rows ?? null;
    const shape = this.pixels.shape;
    if (shape.length !== 4 || (shape[1] !== 1 && shape[1] !== 3)) throw new Error(`${init.name}: pixels must be [N, 1|3, H, W], got [${shape}]`);
    [, this.channels, this.height, this.width] = shape;
    const n = this.rows ? this.rows.length : shape[0];
    if (this.targets.length !== n) throw new Error(`${init.name}: ${this.targets.length} labels for ${n} images`);
  }

  get length(): number {
    return this.targets.length;
  }

  /** The samples at `indices` (same pixel tensor), e.g. one class for one-class training. */
  subset(indices: Int32Array, overrides: Partial<Pick<InMemoryInit, 'classes' | 'targets' | 'name'>> = {}): InMemoryDataset {
    const rows = new Int32Array(indices.length);
    const targets = new Int32Array(indices.length);
    for (let i = 0; i < indices.length; i++) {
      const j = indices[i];
      if (!(j >= 0 && j < this.length)) throw new RangeError(`${this.name}: subset index ${j} outside 0..${this.length - 1}`);
      rows[i] = this.rows ? this.rows[j] : j;
      targets[i] = this.targets[j];
    }
    return new InMemoryDataset({
      name: overrides.name ?? this.name,
      root: this.root,
      split: this.split,
      classes: overrides.classes ?? this.classes,
      targets: overrides.targets ?? targets,
      pixels: this.pixels,
      rows,
    });
  }

  /** Same samples with other labels/classes (e.g. CIFAR-100 coarse superclasses). */
  relabel(classes: readonly string[], targets: Int32Array): InMemoryDataset {
    return new InMemoryDataset({ name: this.name, root: this.root, split: this.split, classes, targets, pixels: this.pixels, rows: this.rows ?? undefined });
  }

  /** Pixel rows of dataset indices. */
  private rowsOf(indices: Int32Array): Int32Array {
    const rows = new Int32Array(indices.length);
    for (let i = 0; i < indices.length; i++) {
      const j = indices[i];
      if (!(j >= 0 && j < this.length)) throw new RangeError(`${this.name}: index ${j} outside 0..${this.length - 1}`);
      rows[i] = this.rows ? this.rows[j] : j;
    }
    return rows;
  }

  assemble(indices: Int32Array, plan: Float64Array | null, spec: TransformSpec, workers: number): AssembledBatch {
    const idx = Tensor.fromArray(this.rowsOf(indices));
    const inputs = [this.pixels, idx];
    let planT: Tensor | null = null;
    if (plan) {
      if (plan.length !== indices.length * PLAN.cols) throw new RangeError(`plan has ${plan.length} values, expected ${indices.length * PLAN.cols}`);
      planT = Tensor.fromArray(plan, [indices.length, PLAN.cols]);
      inputs.push(planT);
    }
    try {
      return { images: Tensor.runOp('data_batch', inputs, nativeAttrs(spec, workers))[0] };
    } finally {
      idx.dispose();
      planT?.dispose();
    }
  }

  assembleBeit(indices: Int32Array, plan: Float64Array, spec: BeitViewsSpec, workers: number): AssembledBatch {
    if (plan.length !== indices.length * BEIT_PLAN.cols) throw new RangeError(`plan has ${plan.length} values, expected ${indices.length * BEIT_PLAN.cols}`);
    const idx = Tensor.fromArray(this.rowsOf(indices));
    const planT = Tensor.fromArray(plan, [indices.length, BEIT_PLAN.cols]);
    try {
      const [images, second] = Tensor.runOp('data_beit_batch', [this.pixels, idx, planT], beitAttrs(spec, workers));
      return { images, second };
    } finally {
      idx.dispose();
      planT.dispose();
    }
  }

  dispose(): void {
    this.pixels.dispose();
  }
}
