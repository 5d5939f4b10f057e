/**
 * `mood finetune` flag checking: bad or contradictory flags fail with one line naming the flag, before
 * any data or model work (in-process through the real commander program; one child process checks
 * the bin/mood.js wiring and exit code).
 */
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { buildProgram } from '../../lib/cli/main';
import { normalizeFlags } from '../../lib/cli/argv';
import { REPO_ROOT } from '../helpers/fixtures';

async function run(args: string[]): Promise<{ code: number; err: string; ms: number }> {
  const errs: string[] = [];
  const spy = vi.spyOn(process.stderr, 'write').mockImplementation((s: string | Uint8Array) => {
    errs.push(String(s));
    return true;
  });
  const prev = process.exitCode;
  const t0 = Date.now();
  try {
    await buildProgram().parseAsync(normalizeFlags(['finetune', ...args]), { from: 'user' });
    return { code: Number(process.exitCode ?? 0), err: errs.join(''), ms: Date.now() - t0 };
  } finally {
    spy.mockRestore();
    process.exitCode = prev;
  }
}

const base = ['--model', 'beit_test_micro', '--data_set', 'fashion_mnist', '--input_size', '16', '--epochs', '1'];

afterEach(() => {
  process.exitCode = 0;
});

describe('mood finetune: bad input fails before any work', () => {
  it.each([
    [['--update_freq', '0'], /--update_freq: expected an integer >= 1, got 0/],
    [['--model', 'beit_nope'], /--model: unknown model 'beit_nope': expected one of .*beit_test_micro/],
    [['--class_idx', '10'], /--class_idx: 10 is out of range for fashion_mnist: expected an integer in 0\.\.9/],
    [['--data_set', 'cifar100', '--class_idx', '20'], /--class_idx: 20 is out of range for cifar100: expected an integer in 0\.\.19/],
    [['--data_set', 'svhn2'], /--data_set: unknown data set 'svhn2'/],
    [['--lr', 'abc'], /--lr: expected a number, got 'abc'/],
    [['--lr', '1e-4', '--min_lr', '1e-3'], /--min_lr: 0\.001 is above --lr 0\.0001/],
    [['--layer_decay', '1.5'], /--layer_decay: expected a number in \(0, 1\]/],
    [['--smoothing', '1'], /--smoothing: expected a number in \[0, 1\)/],
    [['--opt_betas', '0.9'], /--opt_betas: expected two numbers, got 1/],
    [['--opt', 'sgd'], /--opt: only adamw/],
    [['--log_dir', '/etc/passwd/tb'], /--log_dir: cannot write to \/etc\/passwd\/tb: \/etc\/passwd is not a directory/],
    [['--finetune', '/nonexistent/ckpt.pth'], /--finetune: no such file: \/nonexistent\/ckpt\.pth/],
    [['--output_dir', '/etc/passwd/sub'], /--output_dir: cannot write to \/etc\/passwd\/sub: \/etc\/passwd is not a directory/],
    [['--nb_classes', '5'], /--nb_classes: 5 is smaller than the 10 classes of fashion_mnist/],
    [['--model_opts', '{"bogus": 1}'], /bogus/],
    [['--aa', 'auto-v0'], /--aa: autoAugment 'auto-v0': only RandAugment/],
    [['--no_augment', '--mixup', '0.8'], /--no_augment: contradicts --mixup\/--cutmix/],
  ])('%j', async (extra, re) => {
    const r = await run([...base, ...extra]);
    expect(r.code).toBe(1);
    expect(r.err).toMatch(re);
    expect(r.err.split('\n').filter(Boolean)).toHaveLength(1);
  });

  it('an unwritable output dir leaves nothing behind', async () => {
    const d = fs.mkdtempSync(path.join(os.tmpdir(), 'mood-ft-ro-'));
    const f = path.join(d, 'file');
    fs.writeFileSync(f, '');
    const r = await run([...base, '--output_dir', path.join(f, 'out')]);
    expect(r.code).toBe(1);
    expect(fs.readdirSync(d)).toEqual(['file']);
    fs.rmSync(d, { recursive: true });
  });

  it('bin/mood.js exits 1 with the message', () => {
    const r = spawnSync(process.execPath, [path.join(REPO_ROOT, 'bin', 'mood.js'), 'finetune', '--update_freq', '0', '--data_set', 'fashion_mnist'], { encoding: 'utf8', timeout: 60_000 });
    expect(r.status).toBe(1);
    expect(r.stderr).toContain('mood finetune: --update_freq: expected an integer >= 1, got 0');
  }, 60_000);
});
