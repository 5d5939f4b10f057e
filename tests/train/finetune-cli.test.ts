/**
 * `mood finetune` end to end on one class of Fashion-MNIST (issues 17 and 20):
 * - one-class fine-tuning evaluates the ID class's test images only, as the reference's build_dataset
 *   filters both splits (1,000 of the 10,000 test images; test acc@1 ~100 on this easy task, where all
 *   10,000 gave 10);
 * - after a resume, the closing line names the best accuracy over all epochs (restored from the
 *   checkpoint) and the last checkpoint: both when the same command finds nothing left to train and
 *   when it resumes mid-run (the run killed during epoch 1, here: only checkpoint-0.pth left).
 */
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { afterAll, expect, it } from 'vitest';
import { MOOD, run } from '../distributed/helpers';
import { describeWith, FASHION_MNIST_DIR } from '../helpers/requirements';

const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'mood-ft-cli-'));
afterAll(() => fs.rmSync(tmp, { recursive: true, force: true }));

const flags = (out: string) => ['finetune', '--model', 'beit_test_micro', '--model_opts', '{"img_size":28,"patch_size":7}', '--input_size', '28', '--data_set', 'fashion_mnist', '--data_path', FASHION_MNIST_DIR,
  '--class_idx', '1', '--epochs', '2', '--warmup_epochs', '0', '--batch_size', '128', '--save_ckpt_freq', '1', '--seed', '4', '--quiet', '--output_dir', out];
const logTxt = (dir: string) => fs.readFileSync(path.join(dir, 'log.txt'), 'utf8').trim().split('\n').map((l) => JSON.parse(l) as Record<string, number>);

describeWith(['fashion-mnist'])('mood finetune --class_idx', () => {
  const a = path.join(tmp, 'a');

  it('evaluates the ID class only and logs its accuracy', async () => {
    const r = await run(process.execPath, [MOOD, ...flags(a)], {}, 240_000);
    expect(r.code, r.stderr).toBe(0);
    const log = logTxt(a);
    expect(log.map((l) => l.epoch)).toEqual([0, 1]);
    for (const l of log) expect(l.test_acc1).toBeGreaterThan(90);
    const best = Math.max(...log.map((l) => l.test_acc1));
    expect(r.stdout.trim()).toBe(`Max accuracy: ${best.toFixed(2)}%, last checkpoint ${path.join(a, 'checkpoint-1.pth')}`);
    const ev = await run(process.execPath, [MOOD, ...flags(a), '--eval'], {}, 120_000);
    expect(ev.code, ev.stderr).toBe(0);
    expect(ev.stdout).toMatch(/^Accuracy of the network on the 1000 test images: \d+\.\d%/);
  }, 300_000);

  it('after a resume names the best accuracy of all epochs and the last checkpoint', async () => {
    const best = Math.max(...logTxt(a).map((l) => l.test_acc1));
    // Nothing left to train: the same command again.
    const again = await run(process.execPath, [MOOD, ...flags(a)], {}, 120_000);
    expect(again.code, again.stderr).toBe(0);
    expect(again.stdout.trim()).toBe(`Max accuracy: ${best.toFixed(2)}%, last checkpoint ${path.join(a, 'checkpoint-1.pth')}`);
    // A run stopped during epoch 1 (only its epoch-0 checkpoint and log line): the same command finishes it.
    const b = path.join(tmp, 'b');
    fs.mkdirSync(b);
    fs.copyFileSync(path.join(a, 'checkpoint-0.pth'), path.join(b, 'checkpoint-0.pth'));
    fs.writeFileSync(path.join(b, 'log.txt'), JSON.stringify(logTxt(a)[0]) + '\n');
    const resumed = await run(process.execPath, [MOOD, ...flags(b)], {}, 240_000);
    expect(resumed.code, resumed.stderr).toBe(0);
    expect(resumed.stdout.trim()).toBe(`Max accuracy: ${best.toFixed(2)}%, last checkpoint ${path.join(b, 'checkpoint-1.pth')}`);
    expect(logTxt(b).map((l) => [l.epoch, l.train_loss, l.test_acc1])).toEqual(logTxt(a).map((l) => [l.epoch, l.train_loss, l.test_acc1]));
  }, 300_000);
});
