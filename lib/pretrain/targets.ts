/**
 * BEiT's own masked-image-modeling targets for `mood pretrain --discrete_vae_type dall-e`: the visual
 * tokens of OpenAI's DALL-E encoder (encoder.pkl in --discrete_vae_weight_path) on the tokenizer view of
 * DataAugmentationForBEiT (--second_input_size, --second_interpolation, map_pixels). The loop takes, per
 * batch, `targets(batch)`: the ids int64 [B, N] whose masked positions are the cross-entropy targets of
 * MimModel.step (engine_for_pretraining: `d_vae.get_codebook_indices(images).flatten(1)`), and mlm_acc
 * is the share of them predicted right.
 */
import type { Batch } from '../data/types';
import type { Interpolation } from '../data/beit-views';
import type { DalleEncoder } from '../dvae/encoder';
import type { Tensor } from '../tensor';
import type { PretrainOptions } from './run';

export class TokenTargetError extends Error {}

export interface TokenTargets {
  /** The tokenizer's vocabulary: the MIM head's width. */
  readonly vocabSize: number;
  readonly encoder: DalleEncoder;
  /** Loader options adding the tokenizer view (and the reference's shared crop / flip / jitter). */
  loaderOptions(): { beitViews: { secondSize: number; interpolation: Interpolation | 'random'; secondInterpolation: Interpolation; colorJitter: number } };
  /** Throws unless the token grid of --second_input_size equals the model's patch grid. */
  checkGrid(patchGrid: number, patchSize: number): void;
  /** Token ids int64 [B, N] of the batch's tokenizer view (which it consumes: secondImages is disposed). */
  targets(batch: Batch): Tensor;
  dispose(): void;
}

/** The tokenizer for these options: undefined for pixel targets; the DALL-E encoder for dall-e. */
export async function openTokenTargets(o: PretrainOptions): Promise<TokenTargets | undefined> {
  if (o.discreteVaeType === 'pixel') return undefined;
  if (o.discreteVaeType !== 'dall-e') {
    throw new TokenTargetError(
      `--discrete_vae_type ${o.discreteVaeType}: only dall-e (OpenAI's DALL-E encoder.pkl) and pixel targets are supported; BEiT's customized dVAE weights are not`,
    );
  }
  if (!o.discreteVaeWeightPath) throw new TokenTargetError('--discrete_vae_type dall-e needs --discrete_vae_weight_path DIR (the folder holding encoder.pkl)');
  const { DalleEncoder } = await import('../dvae/encoder');
  let encoder: DalleEncoder;
  try {
    encoder = await DalleEncoder.fromFile(o.discreteVaeWeightPath, { device: o.device as never });
  } catch (e) {
    throw new TokenTargetError(`--discrete_vae_weight_path ${o.discreteVaeWeightPath}: ${(e as Error).message}`);
  }
  const views = {
    secondSize: o.secondInputSize,
    interpolation: (o.trainInterpolation ?? 'bicubic') as Interpolation | 'random',
    secondInterpolation: (o.secondInterpolation ?? 'lanczos') as Interpolation,
    colorJitter: o.colorJitter ?? 0.4,
  };
  return {
    vocabSize: encoder.options.vocab_size,
    encoder,
    loaderOptions: () => ({ beitViews: views }),
    checkGrid(patchGrid: number, patchSize: number): void {
      const g = encoder.tokenGrid(o.secondInputSize);
      if (g !== patchGrid) {
        const down = o.secondInputSize / Math.max(g, 1);
        throw new TokenTargetError(
          `--second_input_size ${o.secondInputSize} gives a ${g}x${g} token grid (the tokenizer downsamples by ${down}) but the model's patch grid is ` +
            `${patchGrid}x${patchGrid} (--input_size ${o.inputSize} / patch ${patchSize}): use --second_input_size ${patchGrid * down}, or an input size / patch size with a ${g}x${g} grid`,
        );
      }
    },
    targets(batch: Batch): Tensor {
      const view = batch.secondImages;
      if (!view) throw new TokenTargetError('the batch has no tokenizer view (the loader was built without beitViews)');
      try {
        const ids = encoder.tokens(view);
        try {
          return ids.flatten(1);
        } finally {
          ids.dispose();
        }
      } finally {
        view.dispose();
        delete batch.secondImages;
      }
    },
    dispose: () => encoder.dispose(),
  };
}
