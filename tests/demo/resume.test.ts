/**
 * `mood demo` resume (issue 21): kill -9 in the middle of a MIM pre-training epoch, run the same
 * command again, kill -9 in the middle of a fine-tuning epoch, run it once more: every MIM epoch loss,
 * every fine-tuning step and epoch record, and every result row equal those of the uninterrupted run,
 * bit for bit (both stages resume from the last finished epoch's checkpoint with the optimizer state).
 * Tiny seeded model, the first 600/300 Fashion-MNIST images.
 */
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { afterAll, expect, it } from 'vitest';
import { readResults } from '../../lib/report';
import { jsonLines, runAndKill, runChild } from '../helpers/kill-resume';
import { describeWith } from '../helpers/requirements';

const CHILD = path.join(__dirname, 'resume-child.ts');
const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'mood-demo-resume-'));
afterAll(() => fs.rmSync(tmp, { recursive: true, force: true }));

type Line = { mim?: number; ft?: number; step?: number; loss?: number; gradNorm?: number; log?: string; done?: boolean };
const mimLosses = (s: string) => jsonLines<Line>(s).filter((l) => l.mim !== undefined).map((l) => [l.mim, l.loss]);
const ftSteps = (s: string) => jsonLines<Line>(s).filter((l) => l.ft !== undefined).map((l) => [l.ft, l.step, l.loss, l.gradNorm]);
const logs = (s: string) => jsonLines<Line>(s).filter((l) => l.log !== undefined).map((l) => l.log!);

describeWith(['fashion-mnist'])('mood demo: kill -9 mid-epoch in MIM pre-training and in fine-tuning, then the same command again', () => {
  it('ends with the uninterrupted run\'s losses and results', async () => {
    const a = path.join(tmp, 'full');
    const b = path.join(tmp, 'killed');
    const [full, kill1] = await Promise.all([runChild(CHILD, [a]), runAndKill(CHILD, [b], 'mim:1:2')]);
    expect(full.status, full.stderr).toBe(0);
    const refMim = mimLosses(full.stdout);
    const refFt = ftSteps(full.stdout);
    expect(refMim.map((l) => l[0])).toEqual([0, 1]);
    expect(refFt).toHaveLength(3 * 5); // 360 ID images, batches of 64, drop_last

    // Killed in MIM epoch 1: its epoch-0 checkpoint is there, no start weights yet.
    expect(kill1.signal).toBe('SIGKILL');
    expect(mimLosses(kill1.out)).toEqual(refMim.slice(0, 1));
    expect(fs.readdirSync(path.join(b, 'checkpoints', 'mim'))).toEqual(['checkpoint-0.pth']);
    expect(fs.existsSync(path.join(b, 'checkpoints', 'init.pth'))).toBe(false);
    // The random init MIM started from (the one-class table's baseline arm) is kept as it was.
    const randomInit = fs.readFileSync(path.join(b, 'checkpoints', 'random-init.pth'));

    // Same command: MIM resumes at epoch 1; killed again in fine-tuning epoch 1.
    const kill2 = await runAndKill(CHILD, [b], 'ft:1:2');
    expect(mimLosses(kill2.out)).toEqual(refMim.slice(1));
    const ft2 = ftSteps(kill2.out);
    expect(ft2).toEqual(refFt.slice(0, ft2.length));
    expect(ft2.at(-1)!.slice(0, 2)).toEqual([1, 2]);
    expect(fs.readdirSync(path.join(b, 'checkpoints')).sort()).toEqual(['epoch-0.pth', 'init.pth', 'random-init.pth']);
    expect(fs.readFileSync(path.join(b, 'checkpoints', 'random-init.pth')).equals(randomInit)).toBe(true); // not re-written by the resumed MIM run

    // Same command: fine-tuning resumes at epoch 1 with the AdamW moments; evaluation completes.
    const last = await runChild(CHILD, [b]);
    expect(last.status, last.stderr).toBe(0);
    expect(mimLosses(last.stdout)).toEqual([]);
    expect(logs(last.stdout)).toContain('fine-tuning: epochs 0-0 done earlier, resuming at epoch 1 (weights and AdamW moments)');
    expect(ftSteps(last.stdout)).toEqual(refFt.filter((l) => l[0]! >= 1));

    const ra = readResults(path.join(a, 'results.json'));
    const rb = readResults(path.join(b, 'results.json'));
    const noTime = (e: { seconds?: number | null }) => ({ ...e, seconds: 0 });
    expect(rb.training!.epochs.map(noTime)).toEqual(ra.training!.epochs.map(noTime));
    expect(rb.protocols).toEqual(ra.protocols);
  }, 300_000);
});
