/**
 * `mood demo`: fine-tune -> OOD evaluation (one-class and multi-class, feature and logit metrics)
 * -> results.json + HTML/PNG report, on Fashion-MNIST by default (Debian: dataset-fashion-mnist).
 * Flags are declared kebab-case; the reference's snake_case spellings work too (lib/cli/argv.ts).
 * Type-only imports at the top keep `mood --help` fast.
 */
import type { Command } from 'commander';
import { ignoredLine } from './reference-flags';
import type { DemoCliOptions } from '../demo/options';

export function registerDemo(program: Command): void {
  program
    .command('demo')
    .description("MOOD end to end: fine-tune a small BEiT on the ID classes, evaluate OOD detection (one-class and multi-class, feature and logit metrics), write results.json and an HTML report; resumable (Ctrl-C keeps what finished)")
    .option('--device <dev>', 'cpu, cuda or cuda:N (default cpu)')
    .option('--data-set <name>', 'fashion_mnist (default), cifar10, cifar100')
    .option('--data-path <dir>', 'data set folder (default for fashion_mnist: /usr/share/datasets/fashion-mnist)')
    .option('--id-classes <list>', 'classes to fine-tune on, multi-class ID (default 0-5)')
    .option('--ood-classes <list>', 'held-out classes, multi-class near-OOD (default: all other classes)')
    .option('--far-ood <list>', 'far-OOD sets built from ID test images: uniform,gaussian,vflip,invert (default all; none)')
    .option('--model <name>', "'demo' (default: BEiT 28px, patch 4, dim 96, depth 4) or a named config such as beit_base_patch16_224")
    .option('--model-opts <json>', "constructor options with the reference's keyword names, e.g. '{\"depth\": 6}'")
    .option('--checkpoint <file>', 'start from these weights (.pth, official BEiT/MOOD or ours) instead of from scratch')
    .option('--no-pretrain', 'skip MIM pre-training: fine-tune from scratch (the comparison MOOD makes)')
    .option('--pretrain-epochs <n>', 'MIM pre-training epochs on the ID training images (default 3)')
    .option('--pretrain-lr <x>', 'MIM pre-training peak learning rate (default 2e-3)')
    .option('--epochs <n>', 'fine-tuning epochs (default 6; 0 evaluates the start weights)')
    .option('--batch-size <n>', 'batch size (default 128)')
    .option('--lr <x>', 'peak learning rate (default 2e-3)')
    .option('--weight-decay <x>', 'AdamW weight decay (default 0.05)')
    .option('--train-per-class <n>', 'training images per class (default 2000; 0 = all)')
    .option('--test-per-class <n>', 'test images per class (default 0 = all)')
    .option('--curve-per-class <n>', 'learning curve: ID test images per class evaluated after each fine-tuning epoch but the last, which evaluates them all (default 200; 0 = all every epoch)')
    .option('--metrics <list>', 'OOD metrics (default mahalanobis,knn,msp,energy; any of mood ood-score --metric)')
    .option('--classes <list>', "one-class protocol: ID classes to evaluate in turn (default all)")
    .option('--time-budget <s>', 'seconds for the one-class loop; classes not reached are reported and done by the next run (default 240; 0 = no limit)')
    .option('--output-dir <dir>', 'results.json, report.html, plots/, scores/, checkpoints/, features/ (default ./mood-demo)')
    .option('--seed <n>', 'seed of sampling, shuffling and noise images (default 0)')
    .option('--threads <n>', 'CPU threads for libtorch (default: libtorch default)')
    .option('--fresh', 'ignore finished stages in output_dir and start over')
    .option('--no-report', 'skip the HTML/PNG report')
    .option('--quiet', 'no progress bars')
    .action(async (opts: DemoCliOptions) => {
      // MIM pre-training runs only without --no-pretrain and --checkpoint: its settings are named otherwise.
      const skipped = opts.pretrain === false ? '--no-pretrain skips MIM pre-training' : opts.checkpoint ? '--checkpoint gives the start weights, so no MIM pre-training runs' : undefined;
      for (const [v, flag] of [[opts.pretrainEpochs, '--pretrain_epochs'], [opts.pretrainLr, '--pretrain_lr']] as const) {
        if (skipped && v !== undefined) process.stderr.write(ignoredLine('demo', flag, skipped, false));
      }
      const { parseDemoOptions } = await import('../demo/options');
      const { runDemo } = await import('../demo/run');
      const outcome = await runDemo(parseDemoOptions(opts));
      if (outcome.interrupted) process.exitCode = 130;
    });
}
