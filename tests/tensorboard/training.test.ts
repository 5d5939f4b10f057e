/**
 * `--log_dir` end to end (issue #20): a 2-epoch `mood finetune` and a `mood pretrain` write one event
 * file each, read back by the test's own TFRecord + protobuf reader (tests/helpers/tfevents.ts), whose
 * scalars follow the reference's tags and cadence (lib/tensorboard/logger.ts) and equal log.txt's
 * numbers: each epoch's mean of the per-step scalars is log.txt's train_* value (the reference's
 * MetricLogger averages), and perf/test_* at step = epoch are log.txt's test_*. Event values are
 * float32 (TensorBoard's simple_value), so every comparison allows the float32 rounding of the values
 * averaged: |mean(fround(v)) - mean(v)| <= max|v| * 2^-24.
 */
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { afterAll, expect, it } from 'vitest';
import { MOOD, run } from '../distributed/helpers';
import { describeWith, FASHION_MNIST_DIR } from '../helpers/requirements';
import { eventFiles, readEventFile, scalars } from '../helpers/tfevents';

const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'mood-tb-'));
afterAll(() => fs.rmSync(tmp, { recursive: true, force: true }));

type Scalar = { tag: string; step: number; value: number };
const logTxt = (dir: string) => fs.readFileSync(path.join(dir, 'log.txt'), 'utf8').trim().split('\n').map((l) => JSON.parse(l) as Record<string, number>);

function readRun(dir: string): Map<string, Scalar[]> {
  const files = eventFiles(dir);
  expect(files).toHaveLength(1);
  const byTag = new Map<string, Scalar[]>();
  for (const s of scalars(readEventFile(files[0]))) byTag.set(s.tag, [...(byTag.get(s.tag) ?? []), s]);
  return byTag;
}

/** The epoch's mean of a per-step tag equals log.txt's value, to the float32 rounding of the values. */
function expectEpochMean(points: Scalar[], from: number, to: number, logged: number, what: string): void {
  const vs = points.filter((p) => p.step >= from && p.step < to).map((p) => p.value);
  expect(vs.length, what).toBe(to - from);
  const mean = vs.reduce((a, b) => a + b, 0) / vs.length;
  expect(Math.abs(mean - logged), what).toBeLessThanOrEqual(Math.max(...vs.map(Math.abs)) * 2 ** -24 + Number.EPSILON * Math.abs(logged));
}

/** Each epoch of log.txt: the mean of each named tag's points over that epoch's steps equals its train_<key>. */
function expectEpochMeans(tags: Map<string, Scalar[]>, log: Record<string, number>[], perEpoch: number, keys: Record<string, string>): void {
  for (const [e, l] of log.entries()) {
    const [a, b] = [e * perEpoch, (e + 1) * perEpoch];
    for (const [tag, key] of Object.entries(keys)) expectEpochMean(tags.get(tag)!, a, b, l[`train_${key}`], `epoch ${e} ${key}`);
  }
}

describeWith(['fashion-mnist'])('TensorBoard event files of training runs', () => {
  it('mood finetune --log_dir: per micro-batch loss/opt scalars, per-epoch perf/test_*, equal to log.txt', async () => {
    const out = path.join(tmp, 'ft'), tb = path.join(tmp, 'ft-tb');
    const r = await run(process.execPath, [MOOD, 'finetune', '--model', 'beit_test_micro', '--model_opts', '{"img_size":28,"patch_size":7}', '--input_size', '28',
      '--data_set', 'fashion_mnist', '--data_path', FASHION_MNIST_DIR, '--class_idx', '1', '--epochs', '2', '--warmup_epochs', '0', '--batch_size', '256',
      '--seed', '4', '--quiet', '--output_dir', out, '--log_dir', tb], {}, 240_000);
    expect(r.code, r.stderr).toBe(0);
    const log = logTxt(out);
    const tags = readRun(tb);
    expect([...tags.keys()].sort()).toEqual(['loss/loss', 'opt/grad_norm', 'opt/lr', 'opt/min_lr', 'opt/weight_decay', 'perf/test_acc1', 'perf/test_acc5', 'perf/test_loss']);
    // 6000 class-1 training images, batch 256, drop_last: 23 steps per epoch; the axis counts micro-batches.
    const perEpoch = Math.floor(6000 / 256);
    expect(tags.get('loss/loss')!.map((s) => s.step)).toEqual(Array.from({ length: 2 * perEpoch }, (_, i) => i));
    expectEpochMeans(tags, log, perEpoch, { 'loss/loss': 'loss', 'opt/lr': 'lr', 'opt/min_lr': 'min_lr', 'opt/weight_decay': 'weight_decay', 'opt/grad_norm': 'grad_norm' });
    for (const [e, l] of log.entries()) {
      for (const k of ['acc1', 'acc5', 'loss']) {
        const at = tags.get(`perf/test_${k}`)!.filter((s) => s.step === e);
        expect(at.map((s) => s.value), `epoch ${e} test_${k}`).toEqual([Math.fround(l[`test_${k}`])]);
      }
    }
  }, 300_000);

  it('mood pretrain --log_dir: per-step loss/opt scalars on the step axis, equal to log.txt', async () => {
    const out = path.join(tmp, 'pt'), tb = path.join(tmp, 'pt-tb');
    const r = await run(process.execPath, [MOOD, 'pretrain', '--model', 'beit_test_tiny_8k_vocab', '--model_opts', '{"patch_size": 4}', '--input_size', '28',
      '--data_set', 'fashion_mnist', '--data_path', FASHION_MNIST_DIR, '--class_idx', '1', '--discrete_vae_type', 'pixel', '--num_mask_patches', '20',
      '--min_mask_patches_per_block', '4', '--batch_size', '256', '--epochs', '2', '--warmup_epochs', '1', '--quiet', '--output_dir', out, '--log_dir', tb], {}, 240_000);
    expect(r.code, r.stderr).toBe(0);
    const log = logTxt(out);
    const tags = readRun(tb);
    // Pixel targets: no loss/mlm_acc (token targets only), no opt/loss_scale (float32).
    expect([...tags.keys()].sort()).toEqual(['loss/loss', 'opt/grad_norm', 'opt/lr', 'opt/min_lr', 'opt/weight_decay']);
    const perEpoch = Math.floor(6000 / 256);
    expect(tags.get('loss/loss')!.map((s) => s.step)).toEqual(Array.from({ length: 2 * perEpoch }, (_, i) => i));
    expectEpochMeans(tags, log, perEpoch, { 'loss/loss': 'loss', 'opt/lr': 'lr', 'opt/grad_norm': 'grad_norm' });
  }, 300_000);
});
