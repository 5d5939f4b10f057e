/**
 * Datasets of image files: paths in JS, pixels native. A batch is one native call that reads,
 * decodes (libjpeg-turbo / libpng, PIL convert('RGB') semantics) and transforms every sample on a
 * pool of threads straight into the batch tensor. Unreadable/corrupt files are skipped (counted, and
 * reported once with their paths) or, with `strict`, fail the batch naming the file.
 */
import { Tensor } from '../tensor';
import type { ImageDataset } from './types';
import { DataError } from './errors';
import type { AssembledBatch, BatchSource } from './memory';
import { nativeAttrs, PLAN, TransformSpec } from './plan';
import { BEIT_PLAN, beitAttrs, BeitViewsSpec } from './beit-views';

const STATUS = ['ok', 'truncated', 'corrupt', 'unreadable', 'unsupported format'] as const;

export interface ImageFilesInit {
  name: string;
  root: string;
  split: 'train' | 'test';
  classes: readonly string[];
  files: readonly string[];
  targets: Int32Array;
  strict?: boolean;
}

export class ImageFileDataset implements BatchSource {
  readonly name: string;
  readonly root: string;
  readonly split: 'train' | 'test';
  readonly classes: readonly string[];
  readonly files: readonly string[];
  readonly targets: Int32Array;
  classIdx?: number;
  /** Throw on the first undecodable file instead of skipping it. */
  strict: boolean;
  /** Files skipped so far (path -> reason), and truncated files decoded partially. */
  readonly skipped = new Map<string, string>();
  readonly truncated = new Set<string>();

  constructor(init: ImageFilesInit) {
    this.name = init.name;
    this.root = init.root;
    this.split = init.split;
    this.classes = init.classes;
    this.files = init.files;
    this.targets = init.targets;
    this.strict = init.strict ?? false;
    if (this.files.length !== this.targets.length) throw new Error(`${init.name}: ${this.targets.length} labels for ${this.files.length} files`);
  }

  get length(): number {
    return this.files.length;
  }

  subset(indices: Int32Array): ImageFileDataset {
    const files = Array.from(indices, (i) => this.files[i]);
    const targets = Int32Array.from(indices, (i) => this.targets[i]);
    return new ImageFileDataset({ name: this.name, root: this.root, split: this.split, classes: this.classes, files, targets, strict: this.strict });
  }

  /** The files of dataset indices (checked). */
  private pathsOf(indices: Int32Array): string[] {
    return Array.from(indices, (i) => {
      if (!(i >= 0 && i < this.files.length)) throw new RangeError(`${this.name}: index ${i} outside 0..${this.files.length - 1}`);
      if (this.files[i].includes('\0')) throw new DataError(`${this.name}: file name with a NUL byte: ${JSON.stringify(this.files[i])}`);
      return this.files[i];
    });
  }

  /**
   * The batch's keep-mask from the native per-sample status / messages (null: all fine); warns once
   * per file, skips undecodable files (or throws with `strict`). Releases both tensors.
   */
  private checker(paths: string[], status: Tensor, messages: Tensor): () => Promise<Uint8Array | null> {
    return async (): Promise<Uint8Array | null> => {
      try {
        const st = (await status.data()) as Int32Array;
        if (st.every((s) => s === 0)) return null;
        const text = Buffer.from((await messages.data()) as Uint8Array).toString('utf8').split('\n');
        const keep = new Uint8Array(st.length).fill(1);
        const newly: string[] = [];
        for (let i = 0; i < st.length; i++) {
          if (st[i] === 0) continue;
          const why = `${STATUS[st[i]] ?? 'error'}${text[i] ? `: ${text[i]}` : ''}`;
          if (st[i] === 1) {
            if (!this.truncated.has(paths[i])) {
              this.truncated.add(paths[i]);
              process.stderr.write(`mood: warning: ${paths[i]} is truncated (${text[i] || 'premature end'}); decoded as far as possible\n`);
            }
            continue;
          }
          if (this.strict) throw new DataError(`${this.name}: cannot decode ${paths[i]} (${why})`);
          keep[i] = 0;
          if (!this.skipped.has(paths[i])) {
            this.skipped.set(paths[i], why);
            newly.push(`${paths[i]} (${why})`);
          }
        }
        if (newly.length)
          process.stderr.write(`mood: warning: skipped ${newly.length} unreadable image(s) (${this.skipped.size} so far in ${this.name}): ${newly.slice(0, 10).join(', ')}${newly.length > 10 ? ', ...' : ''}\n`);
        return keep;
      } finally {
        status.dispose();
        messages.dispose();
      }
    };
  }

  assemble(indices: Int32Array, plan: Float64Array | null, spec: TransformSpec, workers: number): AssembledBatch {
    const paths = this.pathsOf(indices);
    const inputs: Tensor[] = [];
    if (plan) {
      if (plan.length !== indices.length * PLAN.cols) throw new RangeError(`plan has ${plan.length} values, expected ${indices.length * PLAN.cols}`);
      inputs.push(Tensor.fromArray(plan, [indices.length, PLAN.cols]));
    }
    try {
      const [images, status, messages] = Tensor.runOp('image_batch', inputs, { ...nativeAttrs(spec, workers), paths: paths.join('\0') }, 'cpu');
      return { images, check: this.checker(paths, status, messages) };
    } finally {
      for (const t of inputs) t.dispose();
    }
  }

  assembleBeit(indices: Int32Array, plan: Float64Array, spec: BeitViewsSpec, workers: number): AssembledBatch {
    const paths = this.pathsOf(indices);
    if (plan.length !== indices.length * BEIT_PLAN.cols) throw new RangeError(`plan has ${plan.length} values, expected ${indices.length * BEIT_PLAN.cols}`);
    const planT = Tensor.fromArray(plan, [indices.length, BEIT_PLAN.cols]);
    try {
      const [images, second, status, messages] = Tensor.runOp('image_beit_batch', [planT], { ...beitAttrs(spec, workers), paths: paths.join('\0') }, 'cpu');
      return { images, second, check: this.checker(paths, status, messages) };
    } finally {
      planT.dispose();
    }
  }

  dispose(): void {}
}

export type { ImageDataset };
