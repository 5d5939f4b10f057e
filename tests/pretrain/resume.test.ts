/**
 * `mood pretrain` resume (issue 21): kill -9 in the middle of an epoch, run the same command again,
 * and auto-resume from the last finished epoch's checkpoint (weights, AdamW moments and step count)
 * repeats the uninterrupted run's steps and per-epoch losses bit for bit: the data order and the
 * augmentation come from (seed, epoch), the masks from (seed, epoch, image), the schedule from the
 * global step. Micro MIM model, Fashion-MNIST class 1 (6,000 images, 23 steps of 256 per epoch).
 */
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { afterAll, expect, it } from 'vitest';
import { jsonLines, runAndKill, runChild } from '../helpers/kill-resume';
import { describeWith, FASHION_MNIST_DIR } from '../helpers/requirements';

const CHILD = path.join(__dirname, 'resume-child.ts');
const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'mood-pretrain-resume-'));
afterAll(() => fs.rmSync(tmp, { recursive: true, force: true }));

type Line = { epoch?: number; step?: number; loss?: number; gradNorm?: number; resume?: number; done?: boolean };
const steps = (s: string) => jsonLines<Line>(s).filter((l) => l.loss !== undefined);
const logTxt = (dir: string) => fs.readFileSync(path.join(dir, 'log.txt'), 'utf8').trim().split('\n').map((l) => JSON.parse(l) as Record<string, number>);

describeWith(['fashion-mnist'])('mood pretrain: kill -9 mid-epoch, then the same command again', () => {
  it('continues exactly as the uninterrupted run', async () => {
    const a = path.join(tmp, 'full');
    const b = path.join(tmp, 'killed');
    const [full, killed] = await Promise.all([runChild(CHILD, [a, FASHION_MNIST_DIR]), runAndKill(CHILD, [b, FASHION_MNIST_DIR], '1:5')]);
    expect(full.status, full.stderr).toBe(0);
    const ref = steps(full.stdout);
    expect(ref).toHaveLength(3 * 23);

    expect(killed.signal).toBe('SIGKILL');
    const before = steps(killed.out);
    expect(before.map((l) => [l.epoch, l.step]).slice(-2)).toEqual([[1, 4], [1, 5]]);
    expect(before.map((l) => l.loss)).toEqual(ref.slice(0, before.length).map((l) => l.loss));
    // only the finished epoch's checkpoint; log.txt has its line
    expect(fs.readdirSync(b).filter((f) => f.endsWith('.pth'))).toEqual(['checkpoint-0.pth']);
    expect(logTxt(b).map((l) => l.epoch)).toEqual([0]);

    const again = await runChild(CHILD, [b, FASHION_MNIST_DIR]);
    expect(again.status, again.stderr).toBe(0);
    expect(jsonLines<Line>(again.stdout)[0]).toEqual({ resume: 1 });
    const resumed = steps(again.stdout);
    const expected = ref.filter((l) => l.epoch! >= 1);
    expect(resumed.map((l) => [l.epoch, l.step, l.loss, l.gradNorm])).toEqual(expected.map((l) => [l.epoch, l.step, l.loss, l.gradNorm]));
    // per-epoch log lines: epoch 0 from the killed process, 1 and 2 from the resumed one, equal to the uninterrupted run's
    const keys = ['epoch', 'train_loss', 'train_lr', 'train_weight_decay', 'train_grad_norm'];
    const pick = (l: Record<string, number>) => keys.map((k) => l[k]);
    expect(logTxt(b).map(pick)).toEqual(logTxt(a).map(pick));
    expect(fs.readdirSync(b).filter((f) => f.endsWith('.pth')).sort()).toEqual(['checkpoint-0.pth', 'checkpoint-1.pth', 'checkpoint-2.pth']);
  }, 300_000);
});
