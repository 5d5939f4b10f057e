/**
 * No flag is ignored silently: the reference's flags that mean nothing here are accepted (so its
 * command lines run) and named on stderr with the reason; a value that cannot be ignored without
 * changing the result is refused before any work; options of our own commands that have no effect in
 * the run at hand (another flag turns them off, or the inputs do not need them) are named the same way.
 */
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { afterAll, afterEach, describe, expect, it } from 'vitest';
import { main } from '../../lib/cli/main';
import { unusedOodScoreOptions } from '../../lib/cli/ood-score';
import { runScore } from '../../lib/cli/score';
import { createDetector } from '../../lib/ood/detectors/registry';
import { ndarray, writeNpy } from '../../lib/npy';

const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'mood-ignored-'));
afterAll(() => fs.rmSync(dir, { recursive: true, force: true }));
afterEach(() => {
  process.exitCode = undefined;
});

/** Runs `mood ...` in this process; returns stderr, stdout and the exit status it set. */
async function mood(args: string[], env: Record<string, string> = {}): Promise<{ err: string; out: string; status: number }> {
  let err = '';
  let out = '';
  const w = { err: process.stderr.write.bind(process.stderr), out: process.stdout.write.bind(process.stdout) };
  const saved = Object.fromEntries(Object.keys(env).map((k) => [k, process.env[k]]));
  Object.assign(process.env, env);
  (process.stderr as { write: unknown }).write = (s: string) => ((err += s), true);
  (process.stdout as { write: unknown }).write = (s: string) => ((out += s), true);
  try {
    process.exitCode = undefined;
    await main(args);
  } finally {
    (process.stderr as { write: unknown }).write = w.err;
    (process.stdout as { write: unknown }).write = w.out;
    for (const [k, v] of Object.entries(saved)) if (v === undefined) delete process.env[k];
    else process.env[k] = v;
  }
  return { err, out, status: Number(process.exitCode ?? 0) };
}

const compat = (cmd: string, flag: string) => new RegExp(`^mood ${cmd}: ${flag} is accepted for compatibility and ignored: \\S`, 'm');
const own = (cmd: string, flag: string) => new RegExp(`^mood ${cmd}: ${flag} is ignored: \\S`, 'm');

describe('mood finetune with the reference flags', () => {
  it("accepts the reference's no-effect flags and names each given one on stderr, then runs (here: stops at the bad data set)", async () => {
    const r = await mood(['finetune', '--enable_deepspeed', '--local_rank=3', '--world_size', '8', '--pin_mem', '--momentum', '0.9', '--model_ema_force_cpu', '--color_jitter', '0.4', '--de-rot', '--dist_url', 'env://', '--train_interpolation', 'bicubic', '--data_set', 'nope']);
    for (const f of ['--enable_deepspeed', '--local_rank', '--world_size', '--pin_mem', '--momentum', '--model_ema_force_cpu', '--color_jitter', '--de-rot']) expect(r.err).toMatch(compat('finetune', f));
    // Values that mean what happens here anyway are honoured without a note.
    expect(r.err).not.toMatch(/--dist_url|--train_interpolation/);
    expect(r.err).toMatch(/^mood finetune: --data_set: unknown data set 'nope'/m);
    expect(r.status).toBe(1);
  });

  it('refuses a value it cannot honour, before the command runs', async () => {
    for (const [flag, value, why] of [
      ['--train_interpolation', 'bilinear', 'only bicubic'],
      ['--dist_url', 'tcp://10.0.0.1:23456', 'only env://'],
      ['--start_epoch', '3', 'not supported'],
      ['--model_key', 'model_ema', "only the default 'model|module'"],
      ['--remode', 'const', 'only pixel'],
    ]) {
      const r = await mood(['finetune', flag, value, '--data_set', 'nope']);
      expect(r.err).toBe(`mood finetune: ${flag} ${value}: ${r.err.slice(`mood finetune: ${flag} ${value}: `.length)}`);
      expect(r.err).toContain(why);
      expect(r.err.trim().split('\n')).toHaveLength(1); // the data set was never looked at
      expect(r.status).toBe(1);
    }
    const both = await mood(['finetune', '--freeze_backbone', '--disable_freeze_backbone', '--data_set', 'nope']);
    expect(both.err).toBe('mood finetune: --disable_freeze_backbone: contradicts --freeze_backbone\n');
  });

  it('names its own flags that another flag turns off, and only then', async () => {
    const off = await mood(['finetune', '--model_ema_decay', '0.99', '--mixup_prob', '0.5', '--warmup_steps', '10', '--warmup_epochs', '2', '--no_save_ckpt', '--save_ckpt_freq', '2', '--data_set', 'nope']);
    for (const f of ['--model_ema_decay', '--mixup_prob', '--warmup_epochs', '--save_ckpt_freq']) expect(off.err).toMatch(own('finetune', f));
    const on = await mood(['finetune', '--model_ema', '--model_ema_decay', '0.99', '--mixup', '0.8', '--mixup_prob', '0.5', '--warmup_epochs', '2', '--save_ckpt_freq', '2', '--data_set', 'nope']);
    expect(on.err).not.toMatch(/ignored/);
    const noAug = await mood(['finetune', '--no_augment', '--aa', 'rand-m9-mstd0.5', '--reprob', '0.1', '--data_set', 'nope']);
    expect(noAug.err).toMatch(own('finetune', '--aa'));
    expect(noAug.err).toMatch(own('finetune', '--reprob'));
  });

  it('only rank 0 prints the notes under mood launch', async () => {
    const r = await mood(['finetune', '--enable_deepspeed', '--data_set', 'nope'], { RANK: '1' });
    expect(r.err).not.toMatch(/enable_deepspeed/);
    expect(r.err).toMatch(/unknown data set/);
  });

  it('keeps the accepted reference flags out of --help', async () => {
    const r = await mood(['finetune', '--help']);
    expect(r.out).toContain('--layer-decay');
    expect(r.out).not.toMatch(/deepspeed|pin-mem|local-rank/);
  });
});

describe('mood pretrain', () => {
  it('names the tokenizer flags under pixel targets and the launcher flags; not under dVAE targets', async () => {
    const pixel = await mood(['pretrain', '--discrete_vae_type', 'pixel', '--second_input_size', '100', '--second_interpolation', 'bicubic', '--local_rank', '0', '--no_pin_mem', '--data_set', 'nope']);
    for (const f of ['--second_input_size', '--second_interpolation']) expect(pixel.err).toMatch(own('pretrain', f));
    for (const f of ['--local_rank', '--no_pin_mem']) expect(pixel.err).toMatch(compat('pretrain', f));
    expect(pixel.err).toMatch(/unknown data set 'nope'/);
    const dalle = await mood(['pretrain', '--discrete_vae_type', 'dall-e', '--discrete_vae_weight_path', 'x', '--second_input_size', '100', '--data_set', 'nope']);
    expect(dalle.err).not.toMatch(/ignored/);
  });

  it('the two-view flags: honoured under dVAE targets, named (or refused) under pixel targets', async () => {
    const dalle = await mood(['pretrain', '--discrete_vae_type', 'dall-e', '--discrete_vae_weight_path', 'x', '--train_interpolation', 'bilinear', '--color_jitter', '0.2', '--data_set', 'nope']);
    expect(dalle.err).not.toMatch(/ignored|only bicubic/);
    const jitter = await mood(['pretrain', '--discrete_vae_type', 'pixel', '--color_jitter', '0.2', '--data_set', 'nope']);
    expect(jitter.err).toMatch(own('pretrain', '--color_jitter'));
    const bilinear = await mood(['pretrain', '--discrete_vae_type', 'pixel', '--train_interpolation', 'bilinear', '--data_set', 'nope']);
    expect(bilinear.err).toBe('mood pretrain: --train_interpolation bilinear: with --discrete_vae_type pixel only bicubic (the reference default) is implemented\n');
    expect(bilinear.status).toBe(1);
  });
});

describe('options that have no effect on the inputs given', () => {
  it('mood score: model options with only (N, D) arrays, image options without image files', async () => {
    const det = createDetector('mahalanobis');
    const feats = new Float32Array(40 * 4).map((_, i) => Math.sin(i * 1.7) + (i % 4));
    await det.fit({ features: { data: feats, shape: [40, 4] } });
    const detFile = path.join(dir, 'maha.npz');
    await det.save(detFile);
    det.dispose();
    const featFile = path.join(dir, 'f.npy');
    writeNpy(featFile, ndarray('float32', [5, 4], feats.slice(0, 20)));
    const ckpt = path.join(dir, 'unused.pth');
    fs.writeFileSync(ckpt, 'never read');
    let err = '';
    const r = await runScore([featFile], { detector: detFile, ckpt, nbClasses: '3', cropPct: '0.9', imagenetDefaultMeanAndStd: true }, () => undefined, (s) => void (err += s));
    expect(r.n).toBe(5);
    for (const f of ['--ckpt', '--nb_classes', '--crop_pct', '--imagenet_default_mean_and_std']) expect(err).toMatch(own('score', f));
    expect(err.trim().split('\n')).toHaveLength(4);
    let quiet = '';
    await runScore([featFile], { detector: detFile }, () => undefined, (s) => void (quiet += s));
    expect(quiet).toBe('');
  });

  it("mood ood-score: options the metric's detector does not use (read from the options it saves)", () => {
    const check = (metric: string, opts: Record<string, unknown>, kind = 'feature') => {
      const d = createDetector(metric);
      try {
        return unusedOodScoreOptions({ metric, ...opts }, d, kind).join('');
      } finally {
        d.dispose();
      }
    };
    expect(check('mahalanobis', { k: '5', temperature: '2', train: 'a', test: 'b', ood: 'c' })).toMatch(/--k is ignored: metric 'mahalanobis' does not use it[\s\S]*--temperature is ignored/);
    expect(check('knn', { k: '5', train: 'a', test: 'b', ood: 'c' })).toBe('');
    expect(check('energy', { temperature: '2', testLogits: 'l', oodLogits: 'm' }, 'logit')).toBe('');
    const msp = check('msp', { temperature: '2', normalize: false, test: 'b', testLogits: 'l', oodLogits: 'm', headWeight: 'w' }, 'logit');
    for (const f of ['--temperature', '--no-normalize', '--test', '--head-weight']) expect(msp).toMatch(own('ood-score', f));
    expect(check('kmeans', { k: '3', trainLabels: 'y', train: 'a', test: 'b', ood: 'c' })).toMatch(own('ood-score', '--train-labels'));
    expect(check('kmeans', { trainLabels: 'y', train: 'a', test: 'b', ood: 'c' })).toBe('');
    expect(check('cc', { trainLabels: 'y', train: 'a', test: 'b', ood: 'c' })).toBe('');
  });

  it('mood demo: pre-training settings when no pre-training runs', async () => {
    const r = await mood(['demo', '--no-pretrain', '--pretrain_epochs', '5', '--epochs', '-1']);
    expect(r.err).toMatch(own('demo', '--pretrain_epochs'));
    expect(r.status).not.toBe(0); // --epochs -1 is refused before any work
  });

  it('mood data preview: --seed without --train', async () => {
    const r = await mood(['data', 'preview', '--data_set', 'nope', '--seed', '3']);
    expect(r.err).toMatch(own('data preview', '--seed'));
    const t = await mood(['data', 'preview', '--data_set', 'nope', '--seed', '3', '--train']);
    expect(t.err).not.toMatch(/ignored/);
  });
});
