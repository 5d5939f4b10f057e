/**
 * The model side shared by `mood eval-features`/`eval-logits`, `mood score` and `mood forward`: a BEiT
 * built from --ckpt and the flags that shape it (checked and reported the same way), the image-shape
 * check of an (N, C, H, W) batch against it, and a batched forward pass over such a batch.
 *
 * Only type imports at the top: libtorch loads when a command calls in here.
 */
import * as path from 'node:path';
import type { Beit } from '../models/beit';
import type { Tensor } from '../tensor';

/** Turns a message into the calling command's error type (main() prints its message, no stack). */
export type CliFail = (message: string) => Error;

export interface ModelFlags {
  /** --ckpt, already checked to exist by the command. */
  ckpt: string;
  /** --model: a named configuration; unknown names are refused with the known ones listed. */
  model?: string;
  /** Constructor options the command's other flags imply (num_classes, img_size, device, ...). */
  options?: Record<string, unknown>;
}

/** `Beit.fromCheckpoint(--ckpt, --model + options)`; its errors read `--ckpt FILE: <why>`. */
export async function modelFromFlags(f: ModelFlags, fail: CliFail): Promise<Beit> {
  const { Beit, beitConfigNames } = await import('../models/beit');
  if (f.model !== undefined) {
    const names = beitConfigNames();
    if (!names.includes(f.model as never)) throw fail(`--model: unknown configuration '${f.model}' (known: ${names.join(', ')})`);
  }
  try {
    return await Beit.fromCheckpoint(f.ckpt, { ...f.options, ...(f.model ? { config: f.model } : {}) });
  } catch (e) {
    // The loader names the file itself; the message names it once, after the flag.
    let msg = (e as Error).message;
    const abs = path.resolve(f.ckpt);
    for (const prefix of [`Beit.fromCheckpoint(${abs}): `, `Beit.fromCheckpoint(${f.ckpt}): `, `${abs}: `, `${f.ckpt}: `]) {
      if (msg.startsWith(prefix)) msg = msg.slice(prefix.length);
    }
    throw fail(`--ckpt ${f.ckpt}: ${msg}`);
  }
}

/** A shape as Python prints a tuple: (2, 3, 32, 32). */
export const fmtShape = (s: readonly number[]): string => `(${s.join(', ')})`;

/** Refuses an (N, C, H, W) batch the model cannot take, saying which of channels or size is off. */
export function checkImageShape(label: string, shape: readonly number[], model: Beit, fail: CliFail): void {
  const o = model.options;
  const [, c, h, w] = shape;
  if (c === o.in_chans && h === o.img_size && w === o.img_size) return;
  const what = c !== o.in_chans ? `${c} channel${c === 1 ? '' : 's'}, the model takes ${o.in_chans}` : `${h}x${w} images, the model takes ${o.img_size}x${o.img_size}`;
  throw fail(`${label}: expected shape (N, ${o.in_chans}, ${o.img_size}, ${o.img_size}), got ${fmtShape(shape)} (${what})`);
}

/** One output of `forwardInBatches`: N rows of `dim` values, row-major. */
export interface ForwardRows {
  data: Float32Array;
  dim: number;
}

/**
 * Runs the model (put in eval mode by the caller) over `images` ((N, C, H, W) float32, C order) `batchSize` images at a
 * time and gathers the pooled features and/or logits; only one batch's tensors are alive at once.
 */
export async function forwardInBatches(
  model: Beit,
  images: Float32Array,
  shape: readonly number[],
  batchSize: number,
  want: { features?: boolean; logits?: boolean },
): Promise<{ features?: ForwardRows; logits?: ForwardRows }> {
  const { Tensor: T } = await import('../tensor');
  const [n, c, h, w] = shape;
  const per = c * h * w;
  const out: { features?: ForwardRows; logits?: ForwardRows } = {};
  const gather = async (key: 'features' | 'logits', t: Tensor, start: number): Promise<void> => {
    const d = await t.data();
    const dim = t.shape[1];
    out[key] ??= { data: new Float32Array(n * dim), dim };
    out[key].data.set(d instanceof Float32Array ? d : Float32Array.from(d as ArrayLike<number>), start * dim);
  };
  for (let start = 0; start < n; start += batchSize) {
    const b = Math.min(batchSize, n - start);
    const x = T.fromArray(images.subarray(start * per, (start + b) * per), [b, c, h, w]);
    const r = model.run(x, { features: !!want.features, logits: !!want.logits });
    try {
      await Promise.all([r.features && gather('features', r.features, start), r.logits && gather('logits', r.logits, start)]);
    } finally {
      x.dispose();
      r.features?.dispose();
      r.logits?.dispose();
    }
  }
  return out;
}
