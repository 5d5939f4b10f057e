/**
 * The reference's `utils.TensorboardLogger` (dvlab-research/MOOD MOODv1/utils.py:179-200, the BEiT
 * code's logger over tensorboardX) and the tags and cadence its training loops write, so that a
 * `mood finetune --log_dir` / `mood pretrain --log_dir` run draws the same TensorBoard curves under
 * the same names.
 *
 * Semantics of the logger (utils.py:179-200): it holds a step; `set_step(s)` sets it, `set_step()`
 * adds 1; `update(head='scalar', step=None, **kw)` writes `head/key` = value at `step` if given, else
 * at the held step, skipping values that are None; `flush()` flushes the writer.
 *
 * Reference cadence, MOOD commit 06be45f (MOODv1/), rank 0 only and only with --log_dir
 * (run_class_finetuning.py:277-281, run_beit_pretraining.py:197-201):
 *
 * Fine-tuning (`mood finetune`), see logFinetuneStep / logFinetuneEpoch below:
 * - epoch start: set_step(epoch * num_training_steps_per_epoch * update_freq)  (run_class_finetuning.py:451-452)
 *   — the step axis counts micro-batches (data_iter_step), not optimizer steps;
 * - every micro-batch of the epoch (engine_for_finetuning.py:153-162), in this order, then set_step():
 *   `loss/loss`        loss of this micro-batch (before division by update_freq)
 *   `loss/class_acc`   share of argmax == target in the micro-batch; only without mixup/cutmix (else None, skipped)
 *   `opt/loss_scale`   the AMP loss scale (loss_scaler.state_dict()["scale"])
 *   `opt/lr`           max lr over the param groups (layer decay: the head's)
 *   `opt/min_lr`       min lr over the param groups
 *   `opt/weight_decay` weight decay of the last param group with weight_decay > 0 (None if none: skipped)
 *   `opt/grad_norm`    total gradient norm before clipping; None on accumulation micro-steps (skipped)
 *   micro-batches past num_training_steps_per_epoch * update_freq are skipped without logging
 *   (engine_for_finetuning.py:69-70);
 * - after each epoch's evaluation, at step = epoch (run_class_finetuning.py:477-480):
 *   `perf/test_acc1`, `perf/test_acc5`, `perf/test_loss`;
 * - flush() at the end of each epoch, before log.txt is appended (run_class_finetuning.py:492-494).
 *
 * Pre-training (`mood pretrain`), see logPretrainStep:
 * - epoch start: set_step(epoch * num_training_steps_per_epoch)  (run_beit_pretraining.py:257-258);
 * - every step (engine_for_pretraining.py:75-76, 95-103), in this order, then set_step():
 *   `loss/mlm_acc` (share of masked tokens predicted right), `loss/loss`, `opt/loss_scale`, `opt/lr`,
 *   `opt/min_lr`, `opt/weight_decay`, `opt/grad_norm` (as above);
 * - flush() at the end of each epoch (run_beit_pretraining.py:276-278).
 *
 * Values are stored as float32 (TensorBoard's simple_value), as tensorboardX stores them.
 */
import { TensorBoardWriter, type TensorBoardWriterOptions } from './writer';

/** A scalar to log; null / undefined are skipped, as the reference skips None. */
export type MaybeScalar = number | null | undefined;

export class TensorBoardLogger {
  readonly writer: TensorBoardWriter;
  /** The step that update() writes at when it is given none. */
  step = 0;

  /** A logger over a new event file in `logDir`, or over an existing writer. */
  constructor(logDirOrWriter: string | TensorBoardWriter, opts?: TensorBoardWriterOptions) {
    this.writer = typeof logDirOrWriter === 'string' ? new TensorBoardWriter(logDirOrWriter, opts) : logDirOrWriter;
  }

  /** set_step(step): with a step, hold it; without, advance the held step by one. */
  setStep(step?: number): void {
    if (step === undefined) {
      this.step += 1;
      return;
    }
    if (!Number.isSafeInteger(step)) throw new RangeError(`TensorBoardLogger.setStep: step must be an integer, got ${step}`);
    this.step = step;
  }

  /** update(head=..., step=None, **values): writes `${head}/${key}` for every value that is not null/undefined. */
  update(values: Readonly<Record<string, MaybeScalar>>, opts: { head?: string; step?: number } = {}): void {
    const head = opts.head ?? 'scalar';
    const scalars: Array<{ tag: string; value: number }> = [];
    for (const [k, v] of Object.entries(values)) {
      if (v === null || v === undefined) continue;
      if (typeof v !== 'number') throw new TypeError(`TensorBoardLogger.update: '${head}/${k}' must be a number, got ${typeof v}`);
      scalars.push({ tag: `${head}/${k}`, value: v });
    }
    if (scalars.length) this.writer.addScalars(scalars, opts.step ?? this.step);
  }

  flush(): void {
    this.writer.flush();
  }

  close(): void {
    this.writer.close();
  }
}

/** The optimizer scalars the reference logs, from per-group lrs and weight decays. */
export function optimizerScalars(lrs: readonly number[], weightDecays: readonly number[]): { lr: number; minLr: number; weightDecay: number | undefined } {
  // The reference starts its min at 10 and its max at 0 (engine_for_finetuning.py:138-143); with
  // any lr in [0, 10] - every real schedule - that is the plain min and max taken here.
  const positive = weightDecays.filter((w) => w > 0);
  return { lr: Math.max(...lrs), minLr: Math.min(...lrs), weightDecay: positive.length ? positive[positive.length - 1] : undefined };
}

export interface TrainStepScalars {
  loss: number;
  lossScale?: MaybeScalar;
  lr: number;
  minLr: number;
  weightDecay?: MaybeScalar;
  /** Before clipping; null/undefined on accumulation micro-steps. */
  gradNorm?: MaybeScalar;
}

/** engine_for_finetuning.py:153-162: once per micro-batch, then the step advances by one. */
export function logFinetuneStep(tb: TensorBoardLogger, s: TrainStepScalars & { classAcc?: MaybeScalar }): void {
  tb.update({ loss: s.loss }, { head: 'loss' });
  tb.update({ class_acc: s.classAcc }, { head: 'loss' });
  logOptimizerScalars(tb, s);
  tb.setStep();
}

/** run_class_finetuning.py:477-480: after each epoch's evaluation, at step = epoch. */
export function logFinetuneEpoch(tb: TensorBoardLogger, epoch: number, test: { acc1: number; acc5: number; loss: number }): void {
  tb.update({ test_acc1: test.acc1 }, { head: 'perf', step: epoch });
  tb.update({ test_acc5: test.acc5 }, { head: 'perf', step: epoch });
  tb.update({ test_loss: test.loss }, { head: 'perf', step: epoch });
}

/** engine_for_pretraining.py:75-76, 95-103: once per step, then the step advances by one. */
export function logPretrainStep(tb: TensorBoardLogger, s: TrainStepScalars & { mlmAcc?: MaybeScalar }): void {
  tb.update({ mlm_acc: s.mlmAcc }, { head: 'loss' });
  tb.update({ loss: s.loss }, { head: 'loss' });
  logOptimizerScalars(tb, s);
  tb.setStep();
}

function logOptimizerScalars(tb: TensorBoardLogger, s: TrainStepScalars): void {
  tb.update({ loss_scale: s.lossScale }, { head: 'opt' });
  tb.update({ lr: s.lr }, { head: 'opt' });
  tb.update({ min_lr: s.minLr }, { head: 'opt' });
  tb.update({ weight_decay: s.weightDecay }, { head: 'opt' });
  tb.update({ grad_norm: s.gradNorm }, { head: 'opt' });
}
