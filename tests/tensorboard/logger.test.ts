import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { TensorBoardLogger, TensorBoardWriter, logFinetuneEpoch, logFinetuneStep, logPretrainStep, optimizerScalars } from '../../lib/tensorboard';
import { readEventFile, scalars } from '../helpers/tfevents';

const scratch = fs.mkdtempSync(path.join(os.tmpdir(), 'mood-tblog-'));
afterAll(() => fs.rmSync(scratch, { recursive: true, force: true }));
let n = 0;
const logger = (): TensorBoardLogger => new TensorBoardLogger(path.join(scratch, `run${n++}`));
const read = (tb: TensorBoardLogger) => {
  tb.close();
  return scalars(readEventFile(tb.writer.file)).map(({ tag, step, value }) => [tag, step, value] as const);
};

describe('TensorBoardLogger (the reference utils.TensorboardLogger)', () => {
  it('set_step / update / None skipped / default head / explicit step, as utils.py:179-200', () => {
    const tb = logger();
    expect(tb.step).toBe(0);
    tb.update({ a: 1, b: null, c: undefined, d: 2 }); // head defaults to 'scalar'; None is skipped
    tb.setStep(); // +1
    tb.update({ loss: 0.5 }, { head: 'loss' });
    tb.setStep(40);
    tb.update({ lr: 0.25 }, { head: 'opt' });
    tb.update({ test_acc1: 75 }, { head: 'perf', step: 3 }); // explicit step; the held one is unchanged
    tb.update({ lr: 0.125 }, { head: 'opt' });
    expect(tb.step).toBe(40);
    expect(read(tb)).toEqual([
      ['scalar/a', 0, 1],
      ['scalar/d', 0, 2],
      ['loss/loss', 1, 0.5],
      ['opt/lr', 40, 0.25],
      ['perf/test_acc1', 3, 75],
      ['opt/lr', 40, 0.125],
    ]);
  });

  it('rejects what the reference asserts against (a value that is not a number) and a bad step', () => {
    const tb = logger();
    expect(() => tb.update({ x: '1' as unknown as number }, { head: 'h' })).toThrow(/'h\/x' must be a number, got string/);
    expect(() => tb.setStep(0.5)).toThrow(/integer/);
    tb.close();
  });

  it('wraps an existing writer', () => {
    const w = new TensorBoardWriter(path.join(scratch, `run${n++}`));
    const tb = new TensorBoardLogger(w);
    tb.update({ x: 3 });
    expect(read(tb)).toEqual([['scalar/x', 0, 3]]);
  });
});

describe("the reference's training-loop tags and cadence", () => {
  it('fine-tuning: per micro-batch loss/* and opt/* in engine_for_finetuning.py order, step from epoch * steps * update_freq; perf/* at step = epoch', () => {
    const tb = logger();
    const stepsPerEpoch = 2;
    const updateFreq = 2;
    for (let epoch = 0; epoch < 2; epoch++) {
      tb.setStep(epoch * stepsPerEpoch * updateFreq);
      for (let micro = 0; micro < stepsPerEpoch * updateFreq; micro++) {
        const last = micro % updateFreq === updateFreq - 1;
        // The first epoch without mixup (class_acc logged), the second with (None, skipped).
        logFinetuneStep(tb, { loss: 2 - micro / 8, classAcc: epoch === 0 ? 0.5 : null, lossScale: 65536, lr: 0.5, minLr: 0.125, weightDecay: 0.0625, gradNorm: last ? 3 : null });
      }
      logFinetuneEpoch(tb, epoch, { acc1: 80 + epoch, acc5: 99, loss: 0.75 });
    }
    const got = read(tb);
    const expected: Array<readonly [string, number, number]> = [];
    for (let epoch = 0; epoch < 2; epoch++) {
      for (let micro = 0; micro < 4; micro++) {
        const s = epoch * 4 + micro;
        expected.push(['loss/loss', s, 2 - micro / 8]);
        if (epoch === 0) expected.push(['loss/class_acc', s, 0.5]);
        expected.push(['opt/loss_scale', s, 65536], ['opt/lr', s, 0.5], ['opt/min_lr', s, 0.125], ['opt/weight_decay', s, 0.0625]);
        if (micro % 2 === 1) expected.push(['opt/grad_norm', s, 3]);
      }
      expected.push(['perf/test_acc1', epoch, 80 + epoch], ['perf/test_acc5', epoch, 99], ['perf/test_loss', epoch, 0.75]);
    }
    expect(got).toEqual(expected);
  });

  it('pre-training: loss/mlm_acc first, then loss/loss and opt/*, one step per optimisation step', () => {
    const tb = logger();
    tb.setStep(3 * 5); // epoch 3 of 5 steps
    logPretrainStep(tb, { mlmAcc: 0.25, loss: 6.5, lossScale: undefined, lr: 1e-3, minLr: 1e-3, weightDecay: 0.05, gradNorm: 1.5 });
    logPretrainStep(tb, { loss: 6.25, lr: 1e-3, minLr: 1e-3, gradNorm: 1.25 }); // pixel targets: no mlm_acc
    expect(tb.step).toBe(17);
    const f = Math.fround;
    expect(read(tb)).toEqual([
      ['loss/mlm_acc', 15, 0.25],
      ['loss/loss', 15, 6.5],
      ['opt/lr', 15, f(1e-3)],
      ['opt/min_lr', 15, f(1e-3)],
      ['opt/weight_decay', 15, f(0.05)],
      ['opt/grad_norm', 15, 1.5],
      ['loss/loss', 16, 6.25],
      ['opt/lr', 16, f(1e-3)],
      ['opt/min_lr', 16, f(1e-3)],
      ['opt/grad_norm', 16, 1.25],
    ]);
  });

  it('optimizerScalars: max and min lr over the groups, weight decay of the last group that has one', () => {
    expect(optimizerScalars([0.1, 0.4, 0.2], [0.05, 0, 0.03, 0])).toEqual({ lr: 0.4, minLr: 0.1, weightDecay: 0.03 });
    expect(optimizerScalars([0.1], [0])).toEqual({ lr: 0.1, minLr: 0.1, weightDecay: undefined });
  });
});
