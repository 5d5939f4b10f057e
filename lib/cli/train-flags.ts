/**
 * The flags `mood finetune` and `mood pretrain` share, as the reference's run_class_finetuning.py and
 * run_beit_pretraining.py share them: one declaration (name, help), each script's own defaults where
 * they differ.
 */
import type { Command } from 'commander';

/** --data_set / --data_path. */
export function addDataFlags(cmd: Command): Command {
  return cmd
    .option('--data-set <name>', 'fashion_mnist | cifar10 | cifar100')
    .option('--data-path <dir>', 'dataset folder (fashion_mnist defaults to /usr/share/datasets/fashion-mnist)');
}

/** The AdamW and cosine-schedule flags; `minLr` is the script's --min_lr default. */
export function addOptimizerFlags(cmd: Command, defaults: { minLr: string }): Command {
  return cmd
    .option('--lr <x>', 'peak learning rate', '5e-4')
    .option('--min-lr <x>', 'final learning rate of the cosine', defaults.minLr)
    .option('--warmup-lr <x>', 'warmup start learning rate', '1e-6')
    .option('--warmup-epochs <n>', 'linear warmup epochs', '5')
    .option('--warmup-steps <n>', 'warmup steps (> 0 overrides --warmup_epochs)', '-1')
    .option('--weight-decay <x>', 'AdamW weight decay', '0.05')
    .option('--weight-decay-end <x>', 'final weight decay of its cosine (default: --weight_decay)')
    .option('--opt <name>', 'optimizer (adamw)', 'adamw')
    .option('--opt-eps <x>', 'AdamW eps', '1e-8')
    .option('--opt-betas <b...>', 'AdamW betas (default 0.9 0.999)')
    .option('--clip-grad <x>', 'clip the global gradient norm');
}

/** --resume and the auto-resume switches (checkpoint-N.pth in --output_dir). */
export function addResumeFlags(cmd: Command): Command {
  return cmd
    .option('--resume <file>', 'resume from this checkpoint')
    .option('--auto-resume', 'resume from the newest checkpoint-N.pth in --output_dir (default)')
    .option('--no-auto-resume', 'start afresh even when --output_dir has checkpoints');
}
