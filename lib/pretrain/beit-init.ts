/**
 * MIM pre-training of an existing BEiT in place (the demo's "MIM init" stage): a masked-image-modeling
 * twin with the same geometry learns from the loader's images (normalised-pixel targets, no tokenizer),
 * then its backbone weights are copied into the BEiT under the shared names (cls_token, pos_embed,
 * patch_embed, rel_pos_bias / per-block tables, blocks.*); mask_token, norm and lm_head stay behind.
 */
import type { Beit } from '../models/beit';
import type { DataLoader } from '../data/types';
import { MaskingGenerator } from './masking';
import { MimModel } from './model';
import { cosineScheduler } from '../train/schedule';
import { mimEpoch } from './run';

export interface PretrainBeitOptions {
  model: Beit;
  loader: DataLoader;
  epochs: number;
  /** Peak learning rate (cosine to lr / 50 after one warmup epoch when there are >= 3 epochs). */
  lr: number;
  weightDecay?: number;
  seed?: number;
  /** Patches masked per image (default: 40% of the grid, as 75 of 196 in the reference). */
  numMaskPatches?: number;
  minMaskPatchesPerBlock?: number;
  quiet?: boolean;
  onEpoch?: (epoch: number, loss: number) => void;
}

/** Default masking for a grid: the reference's 75 / 16 at 14 x 14, else ~38% with blocks of >= 4. */
export function defaultMasking(grid: number): { numMaskPatches: number; minMaskPatchesPerBlock: number } {
  if (grid === 14) return { numMaskPatches: 75, minMaskPatchesPerBlock: 16 };
  const n = grid * grid;
  return { numMaskPatches: Math.max(1, Math.round((n * 75) / 196)), minMaskPatchesPerBlock: Math.min(4, (grid - 1) * (grid - 1)) };
}

export async function pretrain(o: PretrainBeitOptions): Promise<void> {
  const b = o.model.options;
  const mim = new MimModel({
    img_size: b.img_size,
    patch_size: b.patch_size,
    in_chans: b.in_chans,
    embed_dim: b.embed_dim,
    depth: b.depth,
    num_heads: b.num_heads,
    mlp_ratio: b.mlp_ratio,
    qkv_bias: b.qkv_bias,
    init_values: b.init_values,
    use_abs_pos_emb: b.use_abs_pos_emb,
    use_rel_pos_bias: b.use_rel_pos_bias,
    use_shared_rel_pos_bias: b.use_shared_rel_pos_bias,
    layer_norm_eps: b.layer_norm_eps,
    target: 'pixels',
    device: o.model.device === 'meta' ? 'cpu' : o.model.device,
    seed: o.seed ?? 0,
  });
  try {
    const grid = mim.grid;
    const d = defaultMasking(grid);
    const masking = new MaskingGenerator({
      height: grid,
      width: grid,
      numMaskingPatches: o.numMaskPatches ?? d.numMaskPatches,
      minNumPatches: o.minMaskPatchesPerBlock ?? d.minMaskPatchesPerBlock,
    });
    const steps = o.loader.numBatches;
    const warm = o.epochs >= 3 ? 1 : 0;
    const lr = cosineScheduler({ baseValue: o.lr, finalValue: o.lr / 50, epochs: o.epochs, stepsPerEpoch: steps, warmupEpochs: warm, startWarmupValue: o.lr / 100 });
    const wd = cosineScheduler({ baseValue: o.weightDecay ?? 0.05, finalValue: o.weightDecay ?? 0.05, epochs: o.epochs, stepsPerEpoch: steps });
    mim.train();
    for (let e = 0; e < o.epochs; e++) {
      const r = await mimEpoch(mim, o.loader, masking, e, { seed: o.seed ?? 0, lr, wd, quiet: o.quiet, label: `MIM pre-training epoch ${e}` });
      o.onEpoch?.(e, r.n ? r.sumLoss / r.n : NaN);
    }
    const want = new Set(o.model.stateSpec().map((e) => e[0]).filter((k) => !k.endsWith('relative_position_index')));
    const sd = mim.stateDict();
    try {
      await o.model.loadStateDict(new Map([...sd].filter(([k]) => want.has(k))), { strict: false });
    } finally {
      for (const t of sd.values()) t.dispose();
    }
  } finally {
    mim.dispose();
  }
}
