/**
 * Resume (issue 7, "Done means"): kill -9 a fine-tuning process in the middle of an epoch, start it
 * again with auto_resume, and the loss sequence from the resumed epoch on (and the final EMA weights)
 * equal those of an uninterrupted run, bit for bit. Drop path is on, so the per-step generator seeds
 * are part of what is checked; the data order comes from the (seed, epoch) shuffle.
 */
import { spawn, spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';

const CHILD = path.join(__dirname, 'resume-child.ts');
const TS_NODE = require.resolve('ts-node/register/transpile-only', { paths: [path.resolve(__dirname, '..', '..')] });
const dirs: string[] = [];
afterAll(() => {
  for (const d of dirs) fs.rmSync(d, { recursive: true, force: true });
});

type Line = { epoch?: number; step?: number; loss?: number; gradNorm?: number; resume?: number; done?: boolean; emaHead?: number[] };

function lines(s: string): Line[] {
  return s.split('\n').filter((l) => l.startsWith('{')).map((l) => JSON.parse(l) as Line);
}

function tmp(): string {
  const d = fs.mkdtempSync(path.join(os.tmpdir(), 'mood-resume-'));
  dirs.push(d);
  return d;
}

function runToEnd(dir: string): Promise<{ status: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve, reject) => {
    const p = spawn(process.execPath, ['-r', TS_NODE, CHILD, dir]);
    let stdout = '';
    let stderr = '';
    p.stdout.on('data', (b: Buffer) => (stdout += b.toString()));
    p.stderr.on('data', (b: Buffer) => (stderr += b.toString()));
    p.on('error', reject);
    p.on('exit', (status) => resolve({ status, stdout, stderr }));
  });
}

/** Runs the child until it prints PAUSED, then SIGKILLs it; resolves with what it printed. */
function runAndKill(dir: string, pauseAt: string): Promise<{ out: string; signal: NodeJS.Signals | null }> {
  return new Promise((resolve, reject) => {
    const p = spawn(process.execPath, ['-r', TS_NODE, CHILD, dir], { env: { ...process.env, PAUSE_AT: pauseAt } });
    let out = '';
    let err = '';
    p.stdout.on('data', (b: Buffer) => {
      out += b.toString();
      if (out.includes('PAUSED')) p.kill('SIGKILL');
    });
    p.stderr.on('data', (b: Buffer) => (err += b.toString()));
    p.on('error', reject);
    p.on('exit', (code, signal) => (signal === 'SIGKILL' ? resolve({ out, signal }) : reject(new Error(`child exited ${code} before the kill: ${err}`))));
  });
}

describe('kill -9 mid-epoch, then auto_resume', () => {
  it('continues exactly as the uninterrupted run', async () => {
    const a = tmp();
    const b = tmp();
    // the uninterrupted run and the run to be killed go side by side
    const [full, killed] = await Promise.all([runToEnd(a), runAndKill(b, '1:1')]);
    expect(full.status, full.stderr).toBe(0);
    const ref = lines(full.stdout);
    const refSteps = ref.filter((l) => l.loss !== undefined);
    expect(refSteps).toHaveLength(12); // 3 epochs x (8 batches / update_freq 2)

    expect(killed.signal).toBe('SIGKILL');
    const before = lines(killed.out).filter((l) => l.loss !== undefined);
    expect(before.map((l) => [l.epoch, l.step])).toEqual([[0, 0], [0, 1], [0, 2], [0, 3], [1, 0], [1, 1]]);
    // only the finished epoch's checkpoint exists; no partial file left by the kill
    expect(fs.readdirSync(b).filter((f) => f.includes('checkpoint')).sort()).toEqual(['checkpoint-0.pth']);

    const again = spawnSync(process.execPath, ['-r', TS_NODE, CHILD, b], { encoding: 'utf8', timeout: 120_000 });
    expect(again.status, again.stderr).toBe(0);
    const after = lines(again.stdout);
    expect(after[0]).toEqual({ resume: 1 });
    const resumed = after.filter((l) => l.loss !== undefined);
    const expected = refSteps.filter((l) => l.epoch! >= 1);
    expect(resumed.map((l) => [l.epoch, l.step, l.loss, l.gradNorm])).toEqual(expected.map((l) => [l.epoch, l.step, l.loss, l.gradNorm]));
    // the killed run's epoch-0 steps equal the reference too (same start)
    expect(before.slice(0, 4).map((l) => l.loss)).toEqual(refSteps.slice(0, 4).map((l) => l.loss));
    expect(after.at(-1)!.emaHead).toEqual(ref.at(-1)!.emaHead);
    // log.txt: epoch 0 from the first process, 1 and 2 from the resumed one
    expect(fs.readFileSync(path.join(b, 'log.txt'), 'utf8').trim().split('\n').map((l) => JSON.parse(l).epoch)).toEqual([0, 1, 2]);
  }, 300_000);
});
