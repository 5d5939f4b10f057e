/**
 * `mood pretrain`: BEiT masked-image-modeling pre-training (the reference's run_beit_pretraining.py,
 * same flags in snake_case or kebab-case). Only type imports at the top: libtorch loads when it runs.
 */
import type { Command } from 'commander';
import type { RawPretrainFlags } from '../pretrain/options';
import { addDataFlags, addOptimizerFlags, addResumeFlags } from './train-flags';

export function registerPretrain(program: Command): Command {
  const cmd = program
    .command('pretrain')
    .description('masked image modeling pre-training of a BEiT (run_beit_pretraining.py): blockwise masks, AdamW, cosine schedules, checkpoints/resume, log.txt')
    .option('--model <name>', 'beit_base_patch16_224_8k_vocab | beit_large_patch16_224_8k_vocab | beit_test_tiny_8k_vocab | beit_test_micro_8k_vocab', 'beit_base_patch16_224_8k_vocab')
    .option('--model-opts <json>', "constructor options over the named model, e.g. '{\"patch_size\": 4}'");
  addDataFlags(cmd)
    .option('--class-idx <n>', 'one-class: pre-train on this class only')
    .option('--discrete-vae-type <type>', "dall-e (BEiT's visual tokens from OpenAI's DALL-E encoder.pkl) | pixel (tokenizer-free normalised-pixel targets); customized is refused", 'dall-e')
    .option('--discrete-vae-weight-path <path>', 'dall-e: the folder holding encoder.pkl')
    .option('--num-mask-patches <n>', 'patches masked per image', '75')
    .option('--max-mask-patches-per-block <n>', 'largest block (default: num_mask_patches)')
    .option('--min-mask-patches-per-block <n>', 'smallest block', '16')
    .option('--input-size <n>', 'backbone input side', '224')
    .option('--second-input-size <n>', 'tokenizer input side (dVAE targets)', '112')
    .option('--second-interpolation <mode>', 'tokenizer view interpolation (dVAE targets): lanczos | bicubic | bilinear | hamming', 'lanczos')
    .option('--train-interpolation <mode>', 'patch view interpolation (dVAE targets): bicubic | bilinear | lanczos | hamming | random', 'bicubic')
    .option('--color-jitter <x>', 'ColorJitter(x, x, x) shared by both views (dVAE targets; 0 = off)', '0.4')
    .option('--batch-size <n>', 'images per step', '64')
    .option('--epochs <n>', 'epochs', '300')
    .option('--save-ckpt-freq <n>', 'save checkpoint-<epoch>.pth every n epochs (and the last)', '20');
  addOptimizerFlags(cmd, { minLr: '1e-5' })
    .option('--layer-scale-init-value <x>', 'layer scale (0 disables)', '0.1')
    .option('--rel-pos-bias', 'shared relative position bias (default on)')
    .option('--shared-rel-pos-bias', 'same as --rel_pos_bias')
    .option('--disable-rel-pos-bias', 'no shared relative position bias')
    .option('--abs-pos-emb', 'absolute position embedding')
    .option('--drop-path <x>', 'stochastic depth rate', '0.1')
    .option('--imagenet-default-mean-and-std', 'ImageNet normalisation instead of mean = std = 0.5')
    .option('--output-dir <dir>', 'checkpoints and log.txt')
    .option('--log-dir <dir>', 'TensorBoard event files (rank 0): loss/mlm_acc and opt scalars per step')
    .option('--seed <n>', 'seed (init, sampling, masks)', '0');
  addResumeFlags(cmd)
    .option('--start-epoch <n>', 'first epoch (without a checkpoint)', '0')
    .option('--num-workers <n>', 'native data threads')
    .option('--device <dev>', 'cpu | cuda | cuda:N', 'cpu')
    .option('--max-steps <n>', 'stop after n optimisation steps in this run (a time budget), checkpointing there')
    .option('--quiet', 'no progress output')
    .action(async (flags: RawPretrainFlags) => {
      const { parsePretrainFlags } = await import('../pretrain/options');
      const { runPretrain } = await import('../pretrain/run');
      const r = await runPretrain(parsePretrainFlags(flags));
      if (r.lastCheckpoint) process.stdout.write(`${r.lastCheckpoint}\n`);
    });
  return cmd;
}
