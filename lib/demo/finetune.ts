/**
 * The demo's fine-tuning stage on lib/train's Trainer: the fine-tuning step (the reference's AdamW
 * parameter groups, one native call per step) under the reference's per-step cosine schedule with
 * warmup. Each finished epoch leaves a checkpoint (checkpoints/epoch-<e>.pth, the training checkpoint
 * layout: model, optimizer with the AdamW moments, epoch, args) and a marker with its curve record,
 * so an interrupted run resumes at the first unfinished epoch from the last finished epoch's state;
 * the data order, the schedule and the per-step seeds are functions of (seed, epoch, step).
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import type { ImageDataset } from '../data/types';
import type { Beit } from '../models/beit';
import type { EpochRecord } from '../report/schema';
import { checkpointPath, loadTrainCheckpoint, saveTrainCheckpoint } from '../train/checkpoint';
import type { TrainingSink } from '../train/sinks';
import { Trainer } from '../train/trainer';
import type { DataModule, TrainModule } from './backend';
import type { DemoSettings } from './options';
import { explainNoSpace, type Interrupt, type StageStore } from './stages';

export interface FinetuneContext {
  settings: DemoSettings;
  store: StageStore;
  /** Identity of everything that determines the weights (settings that matter + start weights). */
  key: string;
  interrupt: Interrupt;
  data: DataModule;
  train: TrainModule;
  log: (s: string) => void;
}

const ARGS = { source: 'mood demo' };

export function checkpointDir(outputDir: string): string {
  return path.join(outputDir, 'checkpoints');
}

export function epochCheckpoint(outputDir: string, epoch: number): string {
  return checkpointPath(checkpointDir(outputDir), epoch, 'epoch');
}

/** The model's weights as a training checkpoint without optimizer state (the demo's start weights). */
export async function saveWeights(model: Beit, file: string, tag: string): Promise<void> {
  fs.mkdirSync(path.dirname(file), { recursive: true });
  try {
    await saveTrainCheckpoint(file, { model, epoch: tag, args: ARGS });
  } catch (e) {
    explainNoSpace(e, file);
  }
}

export async function loadWeights(model: Beit, file: string): Promise<void> {
  await loadTrainCheckpoint(file, model);
}

/** Epochs finished by an earlier run with the same key: their records, in order (a checkpoint each). */
function finishedEpochs(ctx: FinetuneContext): EpochRecord[] {
  const out: EpochRecord[] = [];
  for (let e = 0; e < ctx.settings.epochs; e++) {
    const r = ctx.store.get<EpochRecord>(`finetune-epoch-${e}`, ctx.key);
    if (!r || !fs.existsSync(epochCheckpoint(ctx.settings.outputDir, e))) break;
    out.push(r);
  }
  return out;
}

/**
 * Trains `model` for settings.epochs on `trainSet` (targets already mapped to 0..K-1), evaluating on
 * `testSet` after the last epoch and on `curveSet` (a sample of it, when given) after the others,
 * appending each epoch's record to `records` as it finishes (so the caller has the curve so far when
 * Ctrl-C ends the stage with an InterruptedError).
 */
export async function finetune(ctx: FinetuneContext, model: Beit, trainSet: ImageDataset, testSet: ImageDataset, records: EpochRecord[] = [], curveSet?: ImageDataset): Promise<EpochRecord[]> {
  const s = ctx.settings;
  records.push(...finishedEpochs(ctx));
  const start = records.length;
  if (start >= s.epochs) {
    if (start > 0) {
      await loadWeights(model, epochCheckpoint(s.outputDir, start - 1));
      ctx.log(`fine-tuning: epochs 0-${start - 1} done earlier (nothing left)`);
    }
    return records;
  }
  const inputSize = model.options.img_size;
  const loader = ctx.data.createLoader(trainSet, { batchSize: s.batchSize, inputSize, shuffle: true, dropLast: trainSet.length > s.batchSize, seed: s.seed, device: s.device });
  const evalOpts = { batchSize: Math.max(s.batchSize, 256), inputSize, device: s.device };
  const testLoader = ctx.data.createLoader(testSet, evalOpts);
  const curveLoader = curveSet ? ctx.data.createLoader(curveSet, evalOpts) : undefined;
  const sampled = (e: number) => curveLoader !== undefined && e < s.epochs - 1;
  const steps = loader.numBatches;
  const warmupEpochs = s.epochs >= 4 ? 1 : 0;
  const step = await ctx.train.createStep(model, { lr: s.lr, weightDecay: s.weightDecay, layerDecay: 0.9, clipGrad: 3, smoothing: 0.1 });
  try {
    const trainer: Trainer = new Trainer({
      model,
      step,
      train: loader,
      val: testLoader,
      valSample: (e) => (sampled(e) ? curveLoader : undefined),
      epochs: s.epochs,
      lr: s.lr,
      minLr: s.lr / 100,
      warmupEpochs,
      warmupSteps: warmupEpochs ? 0 : Math.min(steps, 20),
      weightDecay: s.weightDecay,
      seed: s.seed,
      outputDir: checkpointDir(s.outputDir),
      checkpointPrefix: 'epoch',
      saveCkptFreq: 1,
      saveBest: false,
      resume: start > 0 ? epochCheckpoint(s.outputDir, start - 1) : undefined,
      startEpoch: start,
      args: ARGS,
      progress: !s.quiet,
      logTxt: false,
      label: (e) => `fine-tune epoch ${e + 1}/${s.epochs}`,
      checkInterrupt: (e) => ctx.interrupt.check(`fine-tuning epoch ${e}`),
      sinks: [recordSink(ctx, records, (e) => trainer.lrSchedule[(e + 1) * trainer.stepsPerEpoch - 1], (e) => (sampled(e) ? curveSet!.length : testSet.length))],
    });
    try {
      await trainer.fit();
    } catch (e) {
      explainNoSpace(e, (e as NodeJS.ErrnoException).path ?? checkpointDir(s.outputDir));
    }
  } finally {
    step.dispose();
  }
  return records;
}

/** Each finished epoch: its curve record (marker + `records`) and a log line; the resume line. */
function recordSink(ctx: FinetuneContext, records: EpochRecord[], lastLr: (epoch: number) => number, testImages: (epoch: number) => number): TrainingSink {
  const s = ctx.settings;
  return {
    resume(e) {
      const how = e.restoredOptimizer ? 'weights and AdamW moments' : 'weights; AdamW moments restart';
      ctx.log(`fine-tuning: epochs 0-${e.startEpoch - 1} done earlier, resuming at epoch ${e.startEpoch} (${how})`);
    },
    epoch(l) {
      const n = testImages(l.epoch);
      const rec: EpochRecord = { epoch: l.epoch, train_loss: l.train_loss, test_loss: l.test_loss!, test_acc1: l.test_acc1!, test_images: n, lr: lastLr(l.epoch), seconds: l.seconds };
      ctx.store.set(`finetune-epoch-${l.epoch}`, ctx.key, rec);
      records.push(rec);
      ctx.log(`epoch ${l.epoch + 1}/${s.epochs}: train loss ${rec.train_loss.toFixed(4)}  test loss ${rec.test_loss!.toFixed(4)}  acc@1 ${rec.test_acc1!.toFixed(2)}% on ${n} test images  (${rec.seconds!.toFixed(0)} s)`);
    },
  };
}
