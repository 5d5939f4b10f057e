/**
 * What the training loop reports to its sinks (what a TensorBoard writer attaches to): per micro-batch
 * and per optimizer step the loss, lr range, weight decay and gradient norm on the reference's step
 * axes, per epoch the log.txt line with the test statistics, the resume; rank 0 only. Checked against
 * the Trainer's own schedules and the log.txt it writes.
 */
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { createModel } from '../../lib/models/beit';
import { Trainer } from '../../lib/train/trainer';
import type { EpochLog, EpochStart, MicroEvent, ResumeEvent, StepEvent, TrainingSink } from '../../lib/train/sinks';
import { ArrayLoader, quadrantData } from './helpers';

const S = 16;
const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'mood-sinks-'));
afterAll(() => fs.rmSync(tmp, { recursive: true, force: true }));

function recorder() {
  const r = { starts: [] as EpochStart[], micro: [] as MicroEvent[], steps: [] as StepEvent[], epochs: [] as EpochLog[], resumes: [] as ResumeEvent[], checkpoints: [] as string[], closed: 0 };
  const sink: TrainingSink = {
    epochStart: (e) => r.starts.push(e),
    micro: (e) => r.micro.push(e),
    step: (e) => r.steps.push(e),
    epoch: (e) => r.epochs.push(e),
    resume: (e) => r.resumes.push(e),
    checkpoint: (f) => r.checkpoints.push(f),
    close: () => void r.closed++,
  };
  return { r, sink };
}

function trainer(dir: string, sink: TrainingSink, o: { epochs: number; rank?: number }) {
  const model = createModel('beit_test_micro', { img_size: S, num_classes: 4, use_rel_pos_bias: true, init_values: 0.1, drop_path_rate: 0, seed: 2 });
  const tr = quadrantData(32, S, 1);
  const te = quadrantData(16, S, 2);
  return new Trainer({
    model,
    train: new ArrayLoader({ ...tr, size: S, batchSize: 4, classes: 4, shuffle: true, seed: 3 }),
    val: new ArrayLoader({ ...te, size: S, batchSize: 8, classes: 4 }),
    epochs: o.epochs, seed: 1, outputDir: dir, autoResume: true, saveCkptFreq: 1, saveBest: false, warmupEpochs: 1, warmupLr: 1e-4, minLr: 1e-5,
    optimizer: { lr: 2e-3, weightDecay: 0.05, layerDecay: 0.8, updateFreq: 2 }, progress: false, rank: o.rank, sinks: [sink],
  });
}

describe('training sinks', () => {
  const dir = path.join(tmp, 'run');
  const { r, sink } = recorder();

  it('get every micro-batch, step and epoch with the values the loop used', async () => {
    const t = trainer(dir, sink, { epochs: 2 });
    await t.fit();
    const spe = t.stepsPerEpoch;
    expect(spe).toBe(4); // 8 batches / update_freq 2
    expect(r.starts).toEqual([{ epoch: 0, steps: 4 }, { epoch: 1, steps: 4 }]);
    // micro-batches: the reference's fine-tuning TensorBoard axis counts them, without gaps across epochs
    expect(r.micro.map((m) => m.index)).toEqual(Array.from({ length: 2 * spe * 2 }, (_, i) => i));
    expect(r.micro.map((m) => m.gradNorm !== undefined)).toEqual(r.micro.map((m) => m.micro === 1));
    for (const m of r.micro) expect(m.index).toBe((m.epoch * spe + m.step) * 2 + m.micro);
    // optimizer steps: the scheduled lr (the top group has scale 1) and wd, the last micro-batch's loss and norm
    expect(r.steps.map((s) => s.it)).toEqual(Array.from({ length: 2 * spe }, (_, i) => i));
    for (const s of r.steps) {
      expect(s.lr).toBe(t.lrSchedule[s.it]);
      // float64 lr x 0.8^3 on both sides (lr <= 2e-3): an ulp or two (4e-19 each), far inside 15 digits.
      expect(s.minLr).toBeCloseTo(t.lrSchedule[s.it] * 0.8 ** 3, 15);
      expect(s.weightDecay).toBe(t.wdSchedule[s.it]);
      const last = r.micro.find((m) => m.it === s.it && m.micro === 1)!;
      expect([s.loss, s.gradNorm]).toEqual([last.loss, last.gradNorm]);
      expect(s.lossScale).toBeUndefined(); // float32: no loss scaler
    }
    // epochs: exactly log.txt's lines, with the test statistics
    const log = fs.readFileSync(path.join(dir, 'log.txt'), 'utf8').trim().split('\n').map((l) => JSON.parse(l));
    expect(r.epochs).toEqual(log);
    for (const e of r.epochs) for (const k of ['test_acc1', 'test_acc5', 'test_loss'] as const) expect(typeof e[k]).toBe('number');
    const mean = (xs: number[]) => xs.reduce((a, b) => a + b, 0) / xs.length;
    // Means of the same float64 numbers summed in another order: a few ulps of a loss ~2 (4e-16) and of
    // an lr <= 2e-3 (4e-19), inside 12 and 15 digits; a missing or extra micro-batch moves them by O(1/8).
    expect(r.epochs[0].train_loss).toBeCloseTo(mean(r.micro.filter((m) => m.epoch === 0).map((m) => m.loss)), 12);
    expect(r.epochs[0].train_lr).toBeCloseTo(mean(r.steps.filter((s) => s.epoch === 0).map((s) => s.lr)), 15);
    expect(r.checkpoints).toEqual([path.join(dir, 'checkpoint-0.pth'), path.join(dir, 'checkpoint-1.pth')]);
    expect(r.closed).toBe(1);
    t.options.model.dispose();
    t.dispose();
  });

  it('get the resume with the restored best accuracy', async () => {
    const again = recorder();
    const t = trainer(dir, again.sink, { epochs: 3 });
    const res = await t.fit();
    expect(again.r.resumes).toEqual([{ file: path.join(dir, 'checkpoint-1.pth'), startEpoch: 2, restoredOptimizer: true, maxAccuracy: Math.max(...r.epochs.map((e) => e.test_acc1!)) }]);
    expect(again.r.epochs.map((e) => e.epoch)).toEqual([2]);
    expect(res.maxAccuracy).toBe(Math.max(...[...r.epochs, ...again.r.epochs].map((e) => e.test_acc1!)));
    t.options.model.dispose();
    t.dispose();
  });

  it('are not called on ranks other than 0', async () => {
    const other = recorder();
    const t = trainer(path.join(tmp, 'rank1'), other.sink, { epochs: 1, rank: 1 });
    await t.fit();
    expect(other.r).toMatchObject({ starts: [], micro: [], steps: [], epochs: [], checkpoints: [], closed: 0 });
    expect(fs.existsSync(path.join(tmp, 'rank1', 'log.txt'))).toBe(false);
    t.options.model.dispose();
    t.dispose();
  });
});
