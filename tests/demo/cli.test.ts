/**
 * `mood demo` as users run it (bin/mood.js in a child process, real lib/data on Fashion-MNIST): a real
 * SIGINT mid-run exits 130 with partial results, the same command then resumes and completes.
 * (The missing-data-set message is checked in units.test.ts without a child process: each spawn
 * costs a ts-node start.)
 */
import { spawn } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { afterAll, expect, it } from 'vitest';
import { readResults } from '../../lib/report';
import { REPO_ROOT } from '../helpers/fixtures';
import { describeWith } from '../helpers/requirements';

const BIN = path.join(REPO_ROOT, 'bin', 'mood.js');
const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'mood-demo-cli-'));
afterAll(() => fs.rmSync(tmp, { recursive: true, force: true }));

interface Run {
  code: number | null;
  stdout: string;
  stderr: string;
}

/** Runs `mood ...`; `onStderr` may send a signal to the child. */
function mood(args: string[], onStderr?: (text: string, kill: (sig: NodeJS.Signals) => void) => void): Promise<Run> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [BIN, ...args], { cwd: REPO_ROOT, env: { ...process.env, OMP_NUM_THREADS: '1' } });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d) => (stdout += d));
    child.stderr.on('data', (d) => {
      stderr += d;
      onStderr?.(stderr, (sig) => child.kill(sig));
    });
    child.on('error', reject);
    child.on('close', (code) => resolve({ code, stdout, stderr }));
  });
}

const TINY = [
  '--model_opts', '{"embed_dim": 16, "depth": 1, "num_heads": 2, "patch_size": 7}',
  '--train_per_class', '40', '--test_per_class', '20', '--epochs', '1', '--pretrain_epochs', '0',
  '--batch_size', '64', '--classes', '0-3', '--metrics', 'mahalanobis,msp', '--far_ood', 'uniform', '--time_budget', '0', '--quiet',
];

describeWith(['fashion-mnist'])('mood demo CLI', () => {
  it('Ctrl-C (SIGINT) exits 130 with partial results; the same command resumes and completes', async () => {
    const out = path.join(tmp, 'run');
    let sent = false;
    const first = await mood(['demo', ...TINY, '--output_dir', out], (text, kill) => {
      if (!sent && text.includes('one-class (pretrained): class 0')) {
        sent = true;
        kill('SIGINT');
      }
    });
    expect(first.stderr).toMatch(/stopping at the next safe point and saving partial results/);
    expect(first.code).toBe(130);
    const part = readResults(path.join(out, 'results.json'));
    expect(part.title).toMatch(/partial/);
    // The signal lands while class 0 (or, on a fast machine, a later class) is being evaluated: the
    // classes after the safe point are listed, and exactly the finished ones have rows.
    const m = /classes? ([\d, ]+) not evaluated \(interrupted\)/.exec(String(part.protocols[0].incomplete));
    expect(m, String(part.protocols[0].incomplete)).not.toBeNull();
    const missing = m![1].split(', ').map(Number);
    expect(missing[missing.length - 1]).toBe(3);
    expect(part.protocols[0].rows.length).toBe(4 - missing.length); // one-class: mahalanobis only (msp is class-independent)
    expect(first.stdout).toMatch(/One-class, classes 0-3, no fine-tuning: random-init backbone .*\[incomplete/);

    const second = await mood(['demo', ...TINY, '--output_dir', out]);
    expect(second.code, second.stderr).toBe(0);
    expect(second.stderr).toMatch(/fine-tuning: epochs 0-0 done earlier/);
    expect(second.stderr).not.toMatch(/one-class \(pretrained\): class 0/);
    const done = readResults(path.join(out, 'results.json'));
    expect(done.protocols[0].rows.length).toBe(4);
    expect(done.protocols[0].rows.slice(0, part.protocols[0].rows.length)).toEqual(part.protocols[0].rows);
    expect(second.stdout).toMatch(/no stage saw any label\n  pre-training: none \(seeded random init\)\n[\s\S]*?AUROC \(%\)\nID class\s+mahalanobis\nclass 0 T-shirt\/top/);
    expect(fs.existsSync(path.join(out, 'report.html'))).toBe(true);
  });
});
