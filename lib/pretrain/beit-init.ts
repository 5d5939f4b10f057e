/**
 * MIM pre-training of an existing BEiT in place (the demo's "MIM init" stage): a masked-image-modeling
 * twin with the same geometry learns from the loader's images (normalised-pixel targets, no tokenizer),
 * then its backbone weights are copied into the BEiT under the shared names (cls_token, pos_embed,
 * patch_embed, rel_pos_bias / per-block tables, blocks.*); mask_token, norm and lm_head stay behind.
 */
import type { Beit } from '../models/beit';
import type { DataLoader } from '../data/types';
import { MaskingGenerator } from './masking';
import { MimModel, type MimOptions } from './model';
import { MimStep } from './step';
import { Trainer } from '../train/trainer';

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
  /** Checkpoints of the MIM twin after every epoch; a run with the same folder resumes from them. */
  outputDir?: string;
  /** Called before every step; throwing stops pre-training there (Ctrl-C). */
  checkInterrupt?: (epoch: number) => void;
  /**
   * Called once before training (and before any resume) with `model` holding the twin's seeded
   * initial backbone: the random init pre-training starts from, e.g. to save it as a baseline.
   */
  onInit?: (model: Beit) => Promise<void>;
}

/** Default masking for a grid: the reference's 75 / 16 at 14 x 14, else ~38% with blocks of >= 4. */
export function defaultMasking(grid: number): { numMaskPatches: number; minMaskPatchesPerBlock: number } {
  if (grid === 14) return { numMaskPatches: 75, minMaskPatchesPerBlock: 16 };
  const n = grid * grid;
  return { numMaskPatches: Math.max(1, Math.round((n * 75) / 196)), minMaskPatchesPerBlock: Math.min(4, (grid - 1) * (grid - 1)) };
}

/** The MIM twin of `model`: its geometry, normalised-pixel targets, its own seeded initialisation. */
export function mimTwinOptions(model: Beit, seed: number): MimOptions {
  const b = model.options;
  return {
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
    device: model.device === 'meta' ? 'cpu' : model.device,
    seed,
  };
}

export async function pretrain(o: PretrainBeitOptions): Promise<void> {
  const mim = new MimModel(mimTwinOptions(o.model, o.seed ?? 0));
  try {
    if (o.onInit) {
      await copyBackbone(mim, o.model);
      await o.onInit(o.model);
    }
    const grid = mim.grid;
    const d = defaultMasking(grid);
    const masking = new MaskingGenerator({
      height: grid,
      width: grid,
      numMaskingPatches: o.numMaskPatches ?? d.numMaskPatches,
      minNumPatches: o.minMaskPatchesPerBlock ?? d.minMaskPatchesPerBlock,
    });
    const warm = o.epochs >= 3 ? 1 : 0;
    const trainer = new Trainer({
      model: mim,
      step: new MimStep(mim, { masking, seed: o.seed ?? 0 }),
      train: o.loader,
      epochs: o.epochs,
      lr: o.lr,
      minLr: o.lr / 50,
      warmupEpochs: warm,
      warmupLr: o.lr / 100,
      weightDecay: o.weightDecay ?? 0.05,
      seed: o.seed ?? 0,
      outputDir: o.outputDir,
      autoResume: o.outputDir !== undefined,
      saveCkptFreq: o.outputDir !== undefined ? 1 : 0,
      logTxt: false,
      progress: !o.quiet,
      label: (e) => `MIM pre-training epoch ${e}`,
      checkInterrupt: o.checkInterrupt,
      sinks: o.onEpoch ? [{ epoch: (l) => o.onEpoch!(l.epoch, l.train_loss) }] : [],
    });
    await trainer.fit();
    await copyBackbone(mim, o.model);
  } finally {
    mim.dispose();
  }
}

/** The twin's weights under the BEiT's names into `model` (the buffers it derives itself excepted). */
async function copyBackbone(mim: MimModel, model: Beit): Promise<void> {
  const want = new Set(model.stateSpec().map((e) => e[0]).filter((k) => !k.endsWith('relative_position_index')));
  const sd = mim.stateDict();
  try {
    await model.loadStateDict(new Map([...sd].filter(([k]) => want.has(k))), { strict: false });
  } finally {
    for (const t of sd.values()) t.dispose();
  }
}
