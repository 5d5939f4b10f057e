/**
 * Trainer behaviour on a micro BEiT and a learnable synthetic set: learning, the per-step lr/wd the
 * schedules prescribe, log.txt lines, checkpoints torch.load reads, evaluation math vs
 * torch, auto_resume choice, NaN handling (stops, no update, last good checkpoint intact).
 */
import { execFileSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createModel } from '../../lib/models/beit';
import { Trainer, TrainingDivergedError, scoreBatch, StepEvent, FitResult } from '../../lib/train/trainer';
import { latestCheckpoint, loadTrainCheckpoint } from '../../lib/train/checkpoint';
import { FinetuneOptimizer } from '../../lib/train/optimizer';
import { Tensor } from '../../lib/tensor';
import { SYSTEM_PYTHON } from '../helpers/fixtures';
import { ArrayLoader, quadrantData } from './helpers';

const S = 16;
const MODEL = { img_size: S, num_classes: 4, use_rel_pos_bias: true, use_abs_pos_emb: false, init_values: 0.1, drop_path_rate: 0.1, seed: 1 };
let dir = '';
let fit: FitResult;
const steps: StepEvent[] = [];
let trainer: Trainer;

function loaders(seed = 0): { train: ArrayLoader; val: ArrayLoader } {
  const tr = quadrantData(64, S, 1);
  const te = quadrantData(32, S, 2);
  return {
    train: new ArrayLoader({ ...tr, size: S, batchSize: 8, classes: 4, shuffle: true, seed }),
    val: new ArrayLoader({ ...te, size: S, batchSize: 12, classes: 4 }),
  };
}

beforeAll(async () => {
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'mood-trainer-'));
  const model = createModel('beit_test_micro', MODEL);
  const { train, val } = loaders();
  trainer = new Trainer({
    model, train, val, epochs: 3, seed: 5, outputDir: dir, saveCkptFreq: 1, warmupEpochs: 1, warmupLr: 1e-4, minLr: 1e-5, weightDecayEnd: 0.1,
    optimizer: { lr: 3e-3, weightDecay: 0.05, layerDecay: 0.75, clipGrad: 1, smoothing: 0.1, updateFreq: 2, emaDecay: 0.99 },
    args: { model: 'beit_test_micro', lr: 3e-3 }, progress: false,
  });
  trainer.on('step', (e) => steps.push(e));
  fit = await trainer.fit();
}, 120_000);

afterAll(() => {
  trainer?.options.model.dispose();
  trainer?.dispose();
  if (dir) fs.rmSync(dir, { recursive: true, force: true });
});

describe('Trainer.fit', () => {
  it('learns the synthetic task', () => {
    expect(fit.history).toHaveLength(3);
    expect(fit.history[2].train_loss).toBeLessThan(fit.history[0].train_loss);
    expect(fit.history[2].test_acc1!).toBeGreaterThan(60);
  });

  it('runs steps_per_epoch = batches / update_freq optimizer steps with the scheduled lr and wd', () => {
    expect(trainer.stepsPerEpoch).toBe(4);
    expect(steps).toHaveLength(12);
    // the top lr_scale group (head, final norm) has scale 1: max lr = schedule value
    steps.forEach((e) => {
      expect(e.lr).toBeCloseTo(trainer.lrSchedule[e.it], 15);
      expect(e.weightDecay).toBeCloseTo(trainer.wdSchedule[e.it], 15);
      expect(e.minLr).toBeCloseTo(trainer.lrSchedule[e.it] * 0.75 ** 3, 15);
    });
    expect(trainer.lrSchedule[0]).toBeCloseTo(1e-4, 15); // warmup starts at warmup_lr
    expect(trainer.lrSchedule[4]).toBeCloseTo(3e-3, 15); // cosine starts at lr after 1 epoch
    expect(trainer.wdSchedule[11]).toBeGreaterThan(trainer.wdSchedule[0]);
  });

  it('writes log.txt JSON lines with the reference keys', () => {
    const lines = fs.readFileSync(path.join(dir, 'log.txt'), 'utf8').trim().split('\n').map((l) => JSON.parse(l));
    expect(lines).toHaveLength(3);
    for (const [i, l] of lines.entries()) {
      expect(l.epoch).toBe(i);
      for (const k of ['train_loss', 'train_lr', 'train_min_lr', 'train_weight_decay', 'train_grad_norm', 'test_acc1', 'test_acc5', 'test_loss', 'n_parameters']) expect(typeof l[k], k).toBe('number');
    }
    expect(lines[0].n_parameters).toBeGreaterThan(1000);
  });

  it('checkpoints load in torch with model, optimizer, epoch, scaler, args, model_ema', () => {
    expect(fs.readdirSync(dir).filter((f) => f.endsWith('.pth')).sort()).toEqual(['checkpoint-0.pth', 'checkpoint-1.pth', 'checkpoint-2.pth', 'checkpoint-best.pth']);
    expect(latestCheckpoint(dir)).toBe(path.join(dir, 'checkpoint-2.pth'));
    const py = `
import sys, json, torch
c = torch.load(sys.argv[1])  # torch 1.13's weights_only unpickler has no BINFLOAT (its own AdamW dicts fail too)
o = c['optimizer']
print(json.dumps({'keys': sorted(c.keys()), 'epoch': c['epoch'], 'scaler': c['scaler'], 'lr': c['args']['lr'],
  'groups': len(o['param_groups']), 'nstate': len(o['state']), 'step': float(o['state'][0]['step']),
  'ema_keys': len(c['model_ema']), 'model_keys': len(c['model']), 'betas': list(o['param_groups'][0]['betas'])}))`;
    const r = JSON.parse(execFileSync(SYSTEM_PYTHON, ['-c', py, path.join(dir, 'checkpoint-2.pth')]).toString());
    expect(r.keys).toEqual(['args', 'epoch', 'model', 'model_ema', 'optimizer', 'scaler']);
    expect(r.epoch).toBe(2);
    expect(r.scaler).toEqual({});
    expect(r.lr).toBe(3e-3);
    expect(r.step).toBe(12);
    expect(r.ema_keys).toBe(r.model_keys);
    expect(r.betas).toEqual([0.9, 0.999]);
    expect(r.nstate).toBe(trainer.optimizerInstance!.paramNames.length);
  });

  it('a resumed trainer starts after the saved epoch with the saved weights and optimizer state', async () => {
    const model = createModel('beit_test_micro', { ...MODEL, seed: 99 });
    const { train } = loaders();
    const t2 = new Trainer({ model, train, epochs: 3, outputDir: dir, autoResume: true, optimizer: { lr: 3e-3, weightDecay: 0.05, layerDecay: 0.75, updateFreq: 2, emaDecay: 0.99 }, progress: false });
    const r = await t2.fit(); // nothing left to train: epochs 0..2 done
    expect(r.startEpoch).toBe(3);
    expect(r.history).toHaveLength(0);
    const a = await trainer.options.model.stateDict().get('head.weight')!.data();
    const b = await model.stateDict().get('head.weight')!.data();
    expect(Array.from(b)).toEqual(Array.from(a));
    t2.dispose();
    model.dispose();
  });
});

describe('evaluation math', () => {
  it('scoreBatch: CE, top-1, top-5 (capped at K) equal torch', () => {
    const B = 7;
    const K = 6;
    const z = Float32Array.from({ length: B * K }, (_, i) => Math.sin(i * 1.7) * 3);
    const t = Int32Array.from({ length: B }, (_, i) => (i * 5) % K);
    const ours = scoreBatch(z, K, t);
    const py = `
import sys, json, torch
z = torch.tensor(json.loads(sys.argv[1]), dtype=torch.float32).view(${B}, ${K}); t = torch.tensor(json.loads(sys.argv[2]))
top = z.topk(5, 1).indices
print(json.dumps({'loss': float(torch.nn.functional.cross_entropy(z.double(), t)), 'top1': int((top[:, 0] == t).sum()), 'top5': int((top == t[:, None]).any(1).sum())}))`;
    const r = JSON.parse(execFileSync(SYSTEM_PYTHON, ['-c', py, JSON.stringify(Array.from(z)), JSON.stringify(Array.from(t))]).toString());
    // Both in float64 from the same float32 logits (|z| <= 3, K = 6): a few ulps (~1e-15), inside 6 digits.
    expect(ours.loss).toBeCloseTo(r.loss, 6);
    expect(ours.top1).toBe(r.top1);
    expect(ours.top5).toBe(r.top5);
  });
});

describe('non-finite loss', () => {
  it('the native step skips backward and update and reports the NaN', async () => {
    const model = createModel('beit_test_micro', { ...MODEL, drop_path_rate: 0 });
    const opt = await FinetuneOptimizer.create(model, { lr: 1e-3, weightDecay: 0.05 });
    const before = await model.stateDict().get('blocks.0.mlp.fc1.weight')!.data();
    const x = Tensor.fromArray(new Float32Array(2 * 3 * S * S).fill(NaN), [2, 3, S, S]);
    const r = opt.step(x, Int32Array.from([0, 1]));
    expect(Number.isNaN(await r.loss.item())).toBe(true);
    const after = await model.stateDict().get('blocks.0.mlp.fc1.weight')!.data();
    expect(Array.from(after)).toEqual(Array.from(before));
    const sd = await opt.stateDict();
    expect(sd.state.size).toBe(0); // no AdamW state was created
    opt.dispose();
    model.dispose();
  });

  it('fit stops with a clear error and keeps the last good checkpoint loadable', async () => {
    const d2 = fs.mkdtempSync(path.join(os.tmpdir(), 'mood-nan-'));
    try {
      const model = createModel('beit_test_micro', MODEL);
      const tr = quadrantData(32, S, 1);
      const train = new ArrayLoader({ ...tr, size: S, batchSize: 8, classes: 4, poison: (e, b, img) => e === 1 && b === 2 && img.fill(NaN) });
      const t = new Trainer({ model, train, epochs: 3, outputDir: d2, optimizer: { lr: 1e-3, weightDecay: 0.05 }, progress: false });
      await expect(t.fit()).rejects.toThrow(TrainingDivergedError);
      await expect(t.fit()).rejects.toThrow(/Loss is NaN at epoch 1, step 2 .*checkpoint-0\.pth is intact/);
      const m2 = createModel('beit_test_micro', MODEL);
      const info = await loadTrainCheckpoint(path.join(d2, 'checkpoint-0.pth'), m2);
      expect(info.file).toContain('checkpoint-0.pth');
      expect(fs.existsSync(path.join(d2, 'checkpoint-1.pth'))).toBe(false);
      m2.dispose();
      t.dispose();
      model.dispose();
    } finally {
      fs.rmSync(d2, { recursive: true, force: true });
    }
  });
});
