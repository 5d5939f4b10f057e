/**
 * `mood data preview` (the real pipeline on the first samples -> .npy + PNG contact sheet + summary)
 * and `mood data make-imagenet30` (ImageNet-30 layout as symlinks into ImageNet-1k).
 * Only type imports at the top: modules load when a subcommand runs.
 */
import type { Command } from 'commander';
import { ignoredLine } from './reference-flags';
import { intFlag } from '../util/flags';
import type { PreviewOptions, PreviewSummary } from '../data/preview';

interface PreviewFlags {
  dataSet: string;
  dataPath?: string;
  inputSize?: string;
  train?: boolean;
  count?: string;
  seed?: string;
  classIdx?: string;
  imagenetDefaultMeanAndStd?: boolean;
  out?: string;
  json?: boolean;
}

function printSummary(s: PreviewSummary): void {
  const w = (l: string): void => void process.stdout.write(l + '\n');
  w(`${s.dataSet} (${s.split}) at ${s.root}: ${s.samples} samples, ${s.classes} classes`);
  const shown = s.classNames.slice(0, 30).map((c, i) => `${c}=${s.perClass[i]}`);
  w(`  classes: ${shown.join(', ')}${s.classes > 30 ? `, ... (${s.classes - 30} more)` : ''}`);
  w(`  transform: ${s.transform}`);
  w(`  wrote ${s.count} images [${s.count}, 3, ${s.inputSize}, ${s.inputSize}] float32 to ${s.npy} and a contact sheet to ${s.png}`);
  if (s.skippedFiles.length) w(`  skipped ${s.skippedFiles.length} unreadable file(s): ${s.skippedFiles.slice(0, 10).map((f) => `${f.path} (${f.reason})`).join(', ')}`);
  if (s.truncatedFiles.length) w(`  ${s.truncatedFiles.length} truncated file(s) decoded as far as possible`);
}

export function registerData(program: Command): Command {
  const data = program.command('data').description('datasets: preview the input pipeline, build ImageNet-30');
  data
    .command('preview')
    .description('run the real pipeline on the first samples and save them (.npy float32 NCHW + PNG contact sheet)')
    .requiredOption('--data-set <name>', 'fashion_mnist, cifar10, cifar100, svhn, imagenet30, imagenet1k, image_folder, ood_folder')
    .option('--data-path <dir>', 'dataset folder (or archive / .mat)')
    .option('--input-size <n>', 'model input side (default 224; <= 32 skips resize/crop like the reference)')
    .option('--train', 'training split and augmentation (shuffled with --seed) instead of the evaluation transform')
    .option('--count <n>', 'images to save (default 16)')
    .option('--seed <n>', 'seed for order and augmentation (default 0)')
    .option('--class-idx <n>', 'one-class subset (CIFAR-100: superclass)')
    .option('--imagenet-default-mean-and-std', 'ImageNet mean/std instead of 0.5/0.5')
    .option('--out <file>', 'output .npy (default preview.npy; the PNG goes beside it)')
    .option('--json', 'machine-readable summary')
    .action(async (f: PreviewFlags) => {
      if (!f.train && f.seed !== undefined) process.stderr.write(ignoredLine('data preview', '--seed', 'without --train the samples come in dataset order through the deterministic evaluation transform', false));
      const { runPreview } = await import('../data/preview');
      const opts: PreviewOptions = {
        dataSet: f.dataSet,
        dataPath: f.dataPath,
        inputSize: intFlag('--input-size', f.inputSize),
        train: f.train,
        count: intFlag('--count', f.count),
        seed: intFlag('--seed', f.seed),
        classIdx: intFlag('--class-idx', f.classIdx),
        imagenetDefaultMeanAndStd: f.imagenetDefaultMeanAndStd,
        out: f.out,
      };
      const s = await runPreview(opts);
      if (f.json) process.stdout.write(JSON.stringify(s, null, 2) + '\n');
      else printSummary(s);
    });
  data
    .command('make-imagenet30')
    .description("build ImageNet-30 (train/, test/ with the reference's class names) as symlinks into ImageNet-1k's train/ and val/")
    .requiredOption('--imagenet1k <dir>', 'ImageNet-1k root with train/<wnid>/ and val/<wnid>/')
    .requiredOption('--out <dir>', 'ImageNet-30 root to create')
    .option('--json', 'machine-readable summary')
    .action(async (f: { imagenet1k: string; out: string; json?: boolean }) => {
      const { makeImagenet30 } = await import('../data/imagenet30');
      const r = makeImagenet30(f.imagenet1k, f.out);
      if (f.json) process.stdout.write(JSON.stringify(r) + '\n');
      else process.stdout.write(`ImageNet-30 at ${r.out}: ${r.created} links created, ${r.existing} already there (train/ and test/, 30 classes each)\n`);
    });
  return data;
}
