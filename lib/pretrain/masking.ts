/**
 * Blockwise masking for masked image modeling: the reference's MaskingGenerator (BEiT
 * `masking_generator.py`), same parameters and the same algorithm, drawn from our seeded stream.
 *
 * Blocks of `target_area ~ U(min, max_left)` patches with log-uniform aspect ratio are placed at random
 * until `num_masking_patches` patches are masked; a block only counts if it adds between 1 and
 * `max_left` new patches, each block gets 10 tries, and generation stops early when a block
 * cannot be placed (the reference's behaviour: then fewer patches are masked).
 */
import { planRng, Rng } from './rng';

export interface MaskingOptions {
  /** Patch grid (height, width), e.g. 14 x 14 for 224 / 16. */
  height: number;
  width: number;
  /** --num_mask_patches (reference default 75). */
  numMaskingPatches: number;
  /** --min_mask_patches_per_block (reference default 16; the class default is 4). */
  minNumPatches?: number;
  /** --max_mask_patches_per_block (default: numMaskingPatches). */
  maxNumPatches?: number | null;
  /** Aspect ratio range (default 0.3 .. 1 / 0.3), sampled uniformly in log space. */
  minAspect?: number;
  maxAspect?: number | null;
}

/** Python's round(): halves go to the even neighbour. */
function roundHalfEven(x: number): number {
  const f = Math.floor(x);
  const diff = x - f;
  if (diff > 0.5) return f + 1;
  if (diff < 0.5) return f;
  return f % 2 === 0 ? f : f + 1;
}

export class MaskingGenerator {
  readonly height: number;
  readonly width: number;
  readonly numPatches: number;
  readonly numMaskingPatches: number;
  readonly minNumPatches: number;
  readonly maxNumPatches: number;
  readonly logAspectRatio: [number, number];

  constructor(o: MaskingOptions) {
    const int = (name: string, v: number, min: number): number => {
      if (!Number.isInteger(v) || v < min) throw new RangeError(`masking: ${name} must be an integer >= ${min}, got ${v}`);
      return v;
    };
    this.height = int('height (patch grid rows)', o.height, 1);
    this.width = int('width (patch grid columns)', o.width, 1);
    this.numPatches = this.height * this.width;
    this.numMaskingPatches = int('--num_mask_patches', o.numMaskingPatches, 1);
    this.minNumPatches = int('--min_mask_patches_per_block', o.minNumPatches ?? 4, 1);
    this.maxNumPatches = int('--max_mask_patches_per_block', o.maxNumPatches ?? this.numMaskingPatches, 1);
    const grid = `${this.height}x${this.width}`;
    if (this.numMaskingPatches > this.numPatches) {
      throw new RangeError(`masking: --num_mask_patches ${this.numMaskingPatches} is more than the ${this.numPatches} patches of the ${grid} window`);
    }
    if (this.minNumPatches > this.maxNumPatches) {
      throw new RangeError(`masking: --min_mask_patches_per_block ${this.minNumPatches} exceeds --max_mask_patches_per_block ${this.maxNumPatches}`);
    }
    // A block is h x w with h < height and w < width (strict, as the reference), so it never covers
    // more than (height - 1) * (width - 1) patches; a 1-row or 1-column window cannot hold any block.
    const largest = (this.height - 1) * (this.width - 1);
    if (largest === 0) throw new RangeError(`masking: the ${grid} window is too small for blocks (blocks are at most ${this.height - 1}x${this.width - 1})`);
    if (this.minNumPatches > largest) {
      throw new RangeError(`masking: --min_mask_patches_per_block ${this.minNumPatches} cannot fit the ${grid} window (largest block ${this.height - 1}x${this.width - 1} = ${largest} patches)`);
    }
    const minAspect = o.minAspect ?? 0.3;
    if (!(minAspect > 0)) throw new RangeError(`masking: min aspect ratio must be > 0, got ${minAspect}`);
    const maxAspect = o.maxAspect || 1 / minAspect;  // the reference's `max_aspect or 1 / min_aspect`
    if (!(maxAspect >= minAspect)) throw new RangeError(`masking: max aspect ratio ${maxAspect} is below the min ${minAspect}`);
    this.logAspectRatio = [Math.log(minAspect), Math.log(maxAspect)];
  }

  /** One block into `mask` (row-major 0/1); returns how many new patches it masked (0: gave up). */
  private placeBlock(mask: Uint8Array, maxMaskPatches: number, rng: Rng, blocks?: Array<[number, number]>): number {
    const H = this.height, W = this.width;
    let delta = 0;
    for (let attempt = 0; attempt < 10; attempt++) {
      const targetArea = rng.uniform(this.minNumPatches, maxMaskPatches);
      const aspect = Math.exp(rng.uniform(this.logAspectRatio[0], this.logAspectRatio[1]));
      const h = roundHalfEven(Math.sqrt(targetArea * aspect));
      const w = roundHalfEven(Math.sqrt(targetArea / aspect));
      if (w < W && h < H) {
        const top = rng.randint(0, H - h);
        const left = rng.randint(0, W - w);
        let already = 0;
        for (let i = top; i < top + h; i++) for (let j = left; j < left + w; j++) already += mask[i * W + j];
        const fresh = h * w - already;
        if (fresh > 0 && fresh <= maxMaskPatches) {
          blocks?.push([h, w]);
          for (let i = top; i < top + h; i++) {
            for (let j = left; j < left + w; j++) {
              if (mask[i * W + j] === 0) {
                mask[i * W + j] = 1;
                delta++;
              }
            }
          }
        }
        if (delta > 0) break;
      }
    }
    return delta;
  }

  /** A mask (row-major height x width, 1 = masked) drawn from `rng`. */
  generate(rng: Rng): Uint8Array {
    return this.generateWithBlocks(rng).mask;
  }

  /** The mask and the (h, w) of every block placed, in order (for statistics). */
  generateWithBlocks(rng: Rng): { mask: Uint8Array; blocks: Array<[number, number]> } {
    const blocks: Array<[number, number]> = [];
    const mask = new Uint8Array(this.numPatches);
    let count = 0;
    while (count < this.numMaskingPatches) {
      const left = Math.min(this.numMaskingPatches - count, this.maxNumPatches);
      const delta = this.placeBlock(mask, left, rng, blocks);
      if (delta === 0) break;
      count += delta;
    }
    return { mask, blocks };
  }

  /** The mask of one sample in the seeded plan: a pure function of (seed, epoch, index). */
  forSample(seed: number, epoch: number, index: number): Uint8Array {
    return this.generate(planRng(seed, epoch, index));
  }

  toString(): string {
    return `Generator(${this.height}, ${this.width} -> [${this.minNumPatches} ~ ${this.maxNumPatches}], max = ${this.numMaskingPatches}, ` +
      `${this.logAspectRatio[0].toFixed(3)} ~ ${this.logAspectRatio[1].toFixed(3)})`;
  }
}

/** Masks of a batch as one row-major [B, height*width] 0/1 array (the native step's bool_masked_pos). */
export function batchMasks(gen: MaskingGenerator, seed: number, epoch: number, indices: ArrayLike<number>): Uint8Array {
  const n = gen.numPatches;
  const out = new Uint8Array(indices.length * n);
  for (let b = 0; b < indices.length; b++) out.set(gen.forSample(seed, epoch, indices[b]), b * n);
  return out;
}
