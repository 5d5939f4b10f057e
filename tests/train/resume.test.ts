/**
 * Resume (issue 7, "Done means"): kill -9 a fine-tuning process in the middle of an epoch, start it
 * again with auto_resume, and the loss sequence from the resumed epoch on (and the final EMA weights)
 * equal those of an uninterrupted run, bit for bit. Drop path is on, so the per-step generator seeds
 * are part of what is checked; the data order comes from the (seed, epoch) shuffle.
 */
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { jsonLines, runAndKill as killAt, runChild } from '../helpers/kill-resume';

const CHILD = path.join(__dirname, 'resume-child.ts');
const dirs: string[] = [];
afterAll(() => {
  for (const d of dirs) fs.rmSync(d, { recursive: true, force: true });
});

type Line = { epoch?: number; step?: number; loss?: number; gradNorm?: number; resume?: number; done?: boolean; emaHead?: number[] };

const lines = (s: string) => jsonLines<Line>(s);

function tmp(): string {
  const d = fs.mkdtempSync(path.join(os.tmpdir(), 'mood-resume-'));
  dirs.push(d);
  return d;
}

const runToEnd = (dir: string) => runChild(CHILD, [dir]);
const runAndKill = (dir: string, pauseAt: string) => killAt(CHILD, [dir], pauseAt);

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

    const again = await runToEnd(b);
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
