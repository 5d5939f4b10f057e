/**
 * `mood pretrain` end to end on a tiny model and Fashion-MNIST (one class): checkpoints and log.txt,
 * resume (epoch and optimizer moments continue), the checkpoint in PyTorch and as a fine-tuning
 * starting point through Beit.fromCheckpoint, and flag errors.
 */
import { execFile, execFileSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { promisify } from 'node:util';
import { afterAll, describe, expect, it } from 'vitest';
import { parsePretrainFlags } from '../../lib/pretrain/options';
import { runPretrain, latestCheckpoint } from '../../lib/pretrain/run';
import { readCheckpoint, PyDict } from '../../lib/checkpoint';
import { Beit } from '../../lib/models/beit';
import { REPO_ROOT, SYSTEM_PYTHON } from '../helpers/fixtures';
import { describeWith, itWith } from '../helpers/requirements';

const FMNIST = '/usr/share/datasets/fashion-mnist';
const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'mood-pretrain-'));
afterAll(() => fs.rmSync(tmp, { recursive: true, force: true }));
const execFileP = promisify(execFile);

const base = {
  model: 'beit_test_tiny_8k_vocab', modelOpts: '{"patch_size": 4}', inputSize: '28', dataSet: 'fashion_mnist', dataPath: FMNIST, classIdx: '1',
  discreteVaeType: 'pixel', numMaskPatches: '20', minMaskPatchesPerBlock: '4', batchSize: '32', epochs: '3', warmupEpochs: '1', saveCkptFreq: '1', quiet: true,
};

describeWith(['fashion-mnist'])('pretrain run (Fashion-MNIST at /usr/share/datasets/fashion-mnist)', () => {
  const out = path.join(tmp, 'run');
  it('trains, checkpoints, logs, and resumes', async () => {
    const quiet = () => {};
    const r1 = await runPretrain(parsePretrainFlags({ ...base, outputDir: out, maxSteps: '8' }), quiet);
    expect(r1.steps).toBe(8);
    expect(r1.lastCheckpoint).toBe(path.join(out, 'checkpoint-0.pth'));
    const lines = fs.readFileSync(path.join(out, 'log.txt'), 'utf8').trim().split('\n').map((l) => JSON.parse(l));
    expect(lines).toHaveLength(1);
    expect(lines[0].epoch).toBe(0);
    expect(lines[0].train_loss).toBeGreaterThan(0);
    expect(lines[0].train_loss).toBeLessThan(2);
    expect(lines[0].n_parameters).toBeGreaterThan(50000);
    // Warmup from 1e-6 towards 5e-4 over the 187 steps of epoch 0.
    expect(lines[0].train_lr).toBeGreaterThan(1e-6);
    expect(lines[0].train_lr).toBeLessThan(5e-5);

    // Auto-resume from checkpoint-0: epoch 1 next, optimizer steps continue.
    const r2 = await runPretrain(parsePretrainFlags({ ...base, outputDir: out, maxSteps: '5' }), quiet);
    expect(r2.epochs[0].epoch).toBe(1);
    expect(latestCheckpoint(out)).toBe(path.join(out, 'checkpoint-1.pth'));
    const ck = readCheckpoint(path.join(out, 'checkpoint-1.pth')).root as PyDict;
    expect(Number(ck.get('epoch'))).toBe(1);
    expect(Number((ck.get('optimizer') as PyDict).get('steps'))).toBe(13);
    expect(fs.readFileSync(path.join(out, 'log.txt'), 'utf8').trim().split('\n')).toHaveLength(2);
  });

  it('the checkpoint loads in PyTorch with the official names', () => {
    const script = [
      'import sys, torch',
      'ck = torch.load(sys.argv[1], map_location="cpu")',
      'sd = ck["model"]',
      'ks = list(sd.keys())',
      'assert ks[:3] == ["cls_token", "mask_token", "patch_embed.proj.weight"], ks[:3]',
      'assert "rel_pos_bias.relative_position_bias_table" in sd and ks[-2:] == ["lm_head.weight", "lm_head.bias"], ks[-2:]',
      'assert tuple(sd["lm_head.weight"].shape) == (4 * 4 * 3, 48)',
      'assert set(ck["optimizer"]["exp_avg"].keys()) == {k for k in ks if not k.endswith("relative_position_index")}',
      'print(ck["epoch"], len(ks))',
    ].join('\n');
    const r = execFileSync(SYSTEM_PYTHON, ['-c', script, path.join(out, 'checkpoint-1.pth')], { encoding: 'utf8' });
    expect(r.trim().split(' ')[0]).toBe('1');
  });

  it('fine-tuning starts from it through the BEiT adaptation', async () => {
    const m = await Beit.fromCheckpoint(path.join(out, 'checkpoint-1.pth'), {
      config: 'beit_test_tiny', img_size: 28, patch_size: 4, num_classes: 10, use_rel_pos_bias: true, use_abs_pos_emb: false, init_values: 0.1,
    });
    const rep = m.loadReport!;
    // Only the fine-tuning head and pooling norm are new; mask_token / lm_head / norm are pre-training only.
    expect(rep.missingKeys.sort()).toEqual(['fc_norm.bias', 'fc_norm.weight', 'head.bias', 'head.weight']);
    expect(rep.unexpectedKeys).toEqual(expect.arrayContaining(['mask_token', 'lm_head.weight', 'lm_head.bias']));
    const sd = m.stateDict();
    const table = await sd.get('blocks.1.attn.relative_position_bias_table')!.data();
    expect(Array.from(table as Float32Array).some((v) => v !== 0)).toBe(true);  // the shared table, expanded per block
    for (const t of sd.values()) t.dispose();
    m.dispose();
  });
});

describe('pretrain flag errors', () => {
  it('names the flag and what was expected', () => {
    expect(() => parsePretrainFlags({ ...base, batchSize: 'x' })).toThrow(/--batch_size: expected a positive integer, got 'x'/);
    expect(() => parsePretrainFlags({ ...base, discreteVaeType: 'vqgan' })).toThrow(/--discrete_vae_type: expected dall-e, customized or pixel/);
    expect(() => parsePretrainFlags({ ...base, discreteVaeType: 'dall-e' })).toThrow(/needs --discrete_vae_weight_path/);
    expect(() => parsePretrainFlags({ ...base, dataSet: undefined })).toThrow(/--data_set is required/);
    expect(() => parsePretrainFlags({ ...base, modelOpts: '{' })).toThrow(/--model_opts: not valid JSON/);
    expect(() => parsePretrainFlags({ ...base, optBetas: ['0.9'] })).toThrow(/--opt_betas: expected two numbers/);
  });
  itWith(['fashion-mnist'])('impossible masks and unavailable tokenizers fail before training', async () => {
    await expect(runPretrain(parsePretrainFlags({ ...base, numMaskPatches: '75' }), () => {})).rejects.toThrow(/--num_mask_patches 75 is more than the 49 patches of the 7x7 window/);
    const dalle = parsePretrainFlags({ ...base, discreteVaeType: 'dall-e', discreteVaeWeightPath: '/nonexistent' });
    await expect(runPretrain(dalle, () => {})).rejects.toThrow(/--discrete_vae_weight_path \/nonexistent: \/nonexistent: no such file or folder/);
    const customized = parsePretrainFlags({ ...base, discreteVaeType: 'customized', discreteVaeWeightPath: '/nonexistent' });
    await expect(runPretrain(customized, () => {})).rejects.toThrow(/--discrete_vae_type customized: only dall-e .* and pixel targets are supported/);
  });
  it('the CLI exits 1 with the message', async () => {
    const r = await execFileP(process.execPath, [path.join(REPO_ROOT, 'bin/mood.js'), 'pretrain', '--data_set', 'fashion_mnist', '--batch_size', '0'], { cwd: REPO_ROOT, encoding: 'utf8' }).then(
      () => ({ code: 0, stderr: '' }),
      (e: { code: number; stderr: string }) => e,
    );
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(/--batch_size: expected a positive integer, got '0'/);
  });
});

