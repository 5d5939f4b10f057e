/**
 * What the training loop reports, and where it goes. The Trainer calls every attached sink on rank 0
 * only; a sink never changes training. Two sinks come with every run that asks for them
 * (`standardSinks`): the progress bar (plain lines in logs) and `<output_dir>/log.txt`, one JSON line
 * per epoch with the reference's keys. Anything else that watches training (TensorBoard scalars,
 * the demo's stage markers, a test that kills the process at a chosen step) is one more sink.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { Progress } from '../util/progress';
import { TensorBoardLogger, logFinetuneEpoch, logFinetuneStep, logPretrainStep } from '../tensorboard';

/**
 * One optimizer step, with the values the reference's MetricLogger / TensorboardLogger record per step
 * (`loss`, `lr`, `min_lr`, `weight_decay`, `grad_norm`, `loss_scale`).
 */
export interface StepEvent {
  epoch: number;
  /** Optimizer step within the epoch. */
  step: number;
  /** Global optimizer iteration (the schedules' index). */
  it: number;
  /** Loss of the step's last micro-batch. */
  loss: number;
  /** Largest learning rate over the parameter groups (the schedule value where a group has scale 1). */
  lr: number;
  /** Smallest learning rate over the parameter groups (layer decay). */
  minLr: number;
  /** Weight decay of the decaying groups. */
  weightDecay: number;
  /** Global gradient norm before clipping. */
  gradNorm: number;
  /** The loss scaler's scale; absent: training without loss scaling (float32), so nothing to log. */
  lossScale?: number;
  /** Step-specific values averaged into log.txt as `train_<name>` (MIM token targets: `mlm_acc`). */
  metrics?: Readonly<Record<string, number>>;
}

/**
 * One micro-batch (update_freq of them make an optimizer step): the reference's fine-tuning logs its
 * TensorBoard scalars per micro-batch, on a step axis that counts them (`index`).
 */
export interface MicroEvent {
  epoch: number;
  step: number;
  it: number;
  /** Micro-batch within the optimizer step. */
  micro: number;
  /** Micro-batches before this one since epoch 0: (epoch * stepsPerEpoch + step) * updateFreq + micro. */
  index: number;
  loss: number;
  /** Before clipping; on the step's last micro-batch only. */
  gradNorm?: number;
  lr: number;
  minLr: number;
  weightDecay: number;
  lossScale?: number;
  metrics?: Readonly<Record<string, number>>;
}

/** Test statistics of the reference's evaluate(): acc@1 / acc@5 in percent, mean batch loss. */
export interface EvalStats {
  acc1: number;
  acc5: number;
  loss: number;
  n: number;
}

/** One line of log.txt: the epoch's training averages, the evaluation when there is one. */
export interface EpochLog {
  train_loss: number;
  train_lr: number;
  train_min_lr: number;
  train_weight_decay: number;
  train_grad_norm: number;
  /** MIM with token targets: share of masked patches predicted right. */
  train_mlm_acc?: number;
  test_acc1?: number;
  test_acc5?: number;
  test_loss?: number;
  epoch: number;
  n_parameters: number;
  seconds: number;
}

export interface ResumeEvent {
  file: string;
  /** First epoch this run trains. */
  startEpoch: number;
  /** The optimizer state (moments, EMA) came back too, so training continues exactly. */
  restoredOptimizer: boolean;
  /** Best test acc@1 so far, from the checkpoint. */
  maxAccuracy?: number;
}

export interface EpochStart {
  epoch: number;
  /** Optimizer steps this epoch will run. */
  steps: number;
}

/** Receives what the loop reports; every method is optional. */
export interface TrainingSink {
  resume?(e: ResumeEvent): void;
  epochStart?(e: EpochStart): void;
  /** Every micro-batch (before `step` on the last one). */
  micro?(e: MicroEvent): void;
  step?(e: StepEvent): void;
  /** The epoch is over (training, evaluation and its checkpoint). */
  epoch?(e: EpochLog): void;
  checkpoint?(file: string): void;
  /** Training ended, normally or by an error: flush and release. */
  close?(): void | Promise<void>;
}

/** A progress bar per epoch (TTY) or plain timestamped lines (logs), with the running loss and lr. */
export function progressSink(label: (epoch: number) => string = (e) => `epoch ${e}`): TrainingSink {
  let bar: Progress | null = null;
  const end = () => {
    bar?.finish();
    bar = null;
  };
  return {
    epochStart(e) {
      end();
      bar = new Progress({ label: label(e.epoch), total: e.steps, unit: 'step' });
    },
    step(e) {
      bar?.tick(1, `loss ${e.loss.toFixed(4)} lr ${e.lr.toExponential(2)}`);
    },
    epoch: end,
    close: end,
  };
}

/** `<dir>/log.txt`: one JSON line per finished epoch, appended (a resumed run continues the file). */
export function logTxtSink(dir: string): TrainingSink {
  return {
    epoch(e) {
      fs.appendFileSync(path.join(dir, 'log.txt'), JSON.stringify(e) + '\n');
    },
  };
}

/** Which of the reference's TensorBoard cadences a run writes (lib/tensorboard/logger.ts has both). */
export interface TensorBoardOptions {
  /** The reference's --log_dir: a new event file goes there. */
  logDir: string;
  /**
   * 'finetune' (run_class_finetuning.py): loss/opt scalars per micro-batch on a micro-batch axis,
   * perf/test_* per epoch at step = epoch. 'pretrain' (run_beit_pretraining.py): loss/mlm_acc + opt
   * scalars per optimizer step.
   */
  cadence: 'finetune' | 'pretrain';
}

/**
 * TensorBoard scalars under the reference's tags and cadence, flushed at the end of every epoch (as
 * the reference flushes before appending log.txt) and closed with the run. Not written: `opt/loss_scale`
 * (float32 training has no loss scaler) and fine-tuning's `loss/class_acc` (the native step returns no
 * per-micro-batch accuracy).
 */
export function tensorboardSink(o: TensorBoardOptions): TrainingSink {
  const tb = new TensorBoardLogger(o.logDir);
  const finetune = o.cadence === 'finetune';
  return {
    micro: finetune
      ? (e) => {
          tb.setStep(e.index);
          logFinetuneStep(tb, e);
        }
      : undefined,
    step: finetune
      ? undefined
      : (e) => {
          tb.setStep(e.it);
          logPretrainStep(tb, { ...e, mlmAcc: e.metrics?.mlm_acc });
        },
    epoch(e) {
      if (finetune && e.test_acc1 !== undefined && e.test_acc5 !== undefined && e.test_loss !== undefined)
        logFinetuneEpoch(tb, e.epoch, { acc1: e.test_acc1, acc5: e.test_acc5, loss: e.test_loss });
      tb.flush();
    },
    close: () => tb.close(),
  };
}

/**
 * The sinks every training command attaches: progress (unless off), log.txt (with an output dir) and
 * TensorBoard (with a log dir).
 */
export function standardSinks(o: { outputDir?: string; progress?: boolean; label?: (epoch: number) => string; tensorboard?: TensorBoardOptions }): TrainingSink[] {
  const out: TrainingSink[] = [];
  if (o.progress !== false) out.push(progressSink(o.label));
  if (o.outputDir) out.push(logTxtSink(o.outputDir));
  if (o.tensorboard) out.push(tensorboardSink(o.tensorboard));
  return out;
}
