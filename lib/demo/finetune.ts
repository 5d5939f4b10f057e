/**
 * The demo's fine-tuning stage: lib/train's optimizer (the reference's AdamW parameter groups, one
 * native call per step) under the reference's per-step cosine schedule with warmup, one epoch at a
 * time. Each finished epoch leaves a checkpoint (checkpoints/epoch-<e>.pth, loadable by torch.load:
 * `model`, and with lib/train's checkpoints also `optimizer` with the AdamW moments) and a marker with
 * its curve record, so an interrupted run resumes at the first unfinished epoch from the last
 * finished epoch's state; the data order and the schedule are functions of (seed, epoch, step).
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import type { DataLoader, ImageDataset } from '../data/types';
import type { Beit } from '../models/beit';
import { loadTensors } from '../checkpoint/load-tensors';
import { saveTensors } from '../checkpoint/save-tensors';
import { Progress } from '../util/progress';
import type { EpochRecord } from '../report/schema';
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

export function epochCheckpoint(outputDir: string, epoch: number): string {
  return path.join(outputDir, 'checkpoints', `epoch-${epoch}.pth`);
}

export async function saveWeights(model: Beit, file: string): Promise<void> {
  fs.mkdirSync(path.dirname(file), { recursive: true });
  try {
    await saveTensors(file, { model: model.stateDict() });
  } catch (e) {
    explainNoSpace(e, file);
  }
}

export async function loadWeights(model: Beit, file: string): Promise<void> {
  const sd = await loadTensors(file, { key: 'model' });
  try {
    await model.loadStateDict(sd);
  } finally {
    for (const t of sd.values()) t.dispose();
  }
}

/** Cross-entropy and top-1 accuracy (%) of the model on a loader (targets = model classes). */
export async function evaluateAccuracy(model: Beit, loader: DataLoader): Promise<{ loss: number; acc1: number }> {
  model.eval();
  let n = 0;
  let correct = 0;
  let lossSum = 0;
  for await (const b of loader) {
    const logits = model.forward(b.images);
    try {
      const v = (await logits.data()) as Float32Array;
      const [B, C] = logits.shape;
      for (let i = 0; i < B; i++) {
        let mx = -Infinity;
        let arg = 0;
        for (let k = 0; k < C; k++) if (v[i * C + k] > mx) ((mx = v[i * C + k]), (arg = k));
        let s = 0;
        for (let k = 0; k < C; k++) s += Math.exp(v[i * C + k] - mx);
        lossSum += Math.log(s) + mx - v[i * C + b.targets[i]];
        if (arg === b.targets[i]) correct++;
      }
      n += B;
    } finally {
      logits.dispose();
      b.images.dispose();
      b.softTargets?.dispose();
    }
  }
  return { loss: lossSum / Math.max(1, n), acc1: (100 * correct) / Math.max(1, n) };
}

/**
 * Trains `model` for settings.epochs on `trainSet` (targets already mapped to 0..K-1), evaluating on
 * `testSet` after each epoch, appending each epoch's record to `records` as it finishes (so the
 * caller has the curve so far when Ctrl-C ends the stage with an InterruptedError).
 */
export async function finetune(ctx: FinetuneContext, model: Beit, trainSet: ImageDataset, testSet: ImageDataset, records: EpochRecord[] = []): Promise<EpochRecord[]> {
  const s = ctx.settings;
  let start = 0;
  for (let e = 0; e < s.epochs; e++) {
    const r = ctx.store.get<EpochRecord>(`finetune-epoch-${e}`, ctx.key);
    if (!r || !fs.existsSync(epochCheckpoint(s.outputDir, e))) break;
    records.push(r);
    start = e + 1;
  }
  if (start >= s.epochs) {
    if (start > 0) {
      await loadWeights(model, epochCheckpoint(s.outputDir, start - 1));
      ctx.log(`fine-tuning: epochs 0-${start - 1} done earlier (nothing left)`);
    }
    return records;
  }
  const inputSize = model.options.img_size;
  const loader = ctx.data.createLoader(trainSet, { batchSize: s.batchSize, inputSize, shuffle: true, dropLast: trainSet.length > s.batchSize, seed: s.seed, device: s.device });
  const testLoader = ctx.data.createLoader(testSet, { batchSize: Math.max(s.batchSize, 256), inputSize, device: s.device });
  const steps = loader.numBatches;
  const warmupEpochs = s.epochs >= 4 ? 1 : 0;
  const lrs = ctx.train.cosineScheduler({ baseValue: s.lr, finalValue: s.lr / 100, epochs: s.epochs, stepsPerEpoch: steps, warmupEpochs, warmupSteps: warmupEpochs ? 0 : Math.min(steps, 20) });
  const wds = ctx.train.cosineScheduler({ baseValue: s.weightDecay, finalValue: s.weightDecay, epochs: s.epochs, stepsPerEpoch: steps });
  const opt = await ctx.train.createOptimizer(model, { lr: s.lr, weightDecay: s.weightDecay, layerDecay: 0.9, clipGrad: 3, smoothing: 0.1 });
  try {
    if (start > 0) {
      const file = epochCheckpoint(s.outputDir, start - 1);
      let how = 'weights and AdamW moments';
      if (ctx.train.loadCheckpoint) {
        try {
          await ctx.train.loadCheckpoint(file, model, opt);
        } catch {
          // A weights-only file (e.g. from a build without lib/train checkpoints): moments restart.
          await loadWeights(model, file);
          how = 'weights; AdamW moments restart';
        }
      } else {
        await loadWeights(model, file);
        how = 'weights; AdamW moments restart';
      }
      ctx.log(`fine-tuning: epochs 0-${start - 1} done earlier, resuming at epoch ${start} (${how})`);
    }
    for (let e = start; e < s.epochs; e++) {
      const t0 = Date.now();
      model.train();
      loader.setEpoch(e);
      const bar = new Progress({ label: `fine-tune epoch ${e + 1}/${s.epochs}`, total: loader.numSamples, unit: 'img', silent: s.quiet });
      let lossSum = 0;
      let seen = 0;
      let it = e * steps;
      for await (const b of loader) {
        try {
          ctx.interrupt.check(`fine-tuning epoch ${e}`);
          opt.setSchedule(lrs[it], wds[it]);
          const out = opt.step(b.images, b.targets, { first: true, last: true, seed: s.seed * 1_000_003 + it });
          try {
            const l = Number((await out.loss.data())[0]);
            if (!Number.isFinite(l)) throw new Error(`fine-tuning diverged: loss ${l} at epoch ${e}, step ${it - e * steps} (try a smaller --lr)`);
            lossSum += l * b.targets.length;
            seen += b.targets.length;
            bar.tick(b.targets.length, `loss ${(lossSum / seen).toFixed(4)}`);
          } finally {
            out.loss.dispose();
            out.gradNorm.dispose();
          }
          it++;
        } finally {
          b.images.dispose();
          b.softTargets?.dispose();
        }
      }
      bar.finish();
      ctx.interrupt.check(`fine-tuning epoch ${e}`);
      const ev = await evaluateAccuracy(model, testLoader);
      const rec: EpochRecord = { epoch: e, train_loss: lossSum / Math.max(1, seen), test_loss: ev.loss, test_acc1: ev.acc1, lr: lrs[Math.min(lrs.length - 1, (e + 1) * steps - 1)], seconds: (Date.now() - t0) / 1000 };
      const file = epochCheckpoint(s.outputDir, e);
      if (ctx.train.saveCheckpoint) {
        fs.mkdirSync(path.dirname(file), { recursive: true });
        try {
          await ctx.train.saveCheckpoint(file, model, opt, e);
        } catch (err) {
          explainNoSpace(err, file);
        }
      } else {
        await saveWeights(model, file);
      }
      ctx.store.set(`finetune-epoch-${e}`, ctx.key, rec);
      records.push(rec);
      ctx.log(`epoch ${e + 1}/${s.epochs}: train loss ${rec.train_loss.toFixed(4)}  test loss ${ev.loss.toFixed(4)}  acc@1 ${ev.acc1.toFixed(2)}%  (${rec.seconds!.toFixed(0)} s)`);
    }
  } finally {
    opt.dispose();
  }
  return records;
}
