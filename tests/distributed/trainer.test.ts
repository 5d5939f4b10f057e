/**
 * The Trainer (lib/train) on 2 Gloo ranks: with `gradSyncId` and `rank`, Trainer.fit over 2 epochs
 * (warmup + cosine schedules, layer decay, clipping) gives the weights of one process on the whole
 * batches (to 1e-5; float64), identical on both ranks, and only rank 0 writes checkpoints/log.txt.
 */
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { freePort, rankJson, run, runLaunch } from './helpers';

const WORKER = path.join(__dirname, 'workers', 'trainer.ts');
const TS_NODE = require.resolve('ts-node/register/transpile-only', { paths: [path.resolve(__dirname, '..', '..')] });
const dirs: string[] = [];
afterAll(() => {
  for (const d of dirs) fs.rmSync(d, { recursive: true, force: true });
});

type Out = { rank: number; stats?: { syncs: number }; params: Record<string, number[]> };

function maxDiff(a: Record<string, number[]>, b: Record<string, number[]>): number {
  let m = 0;
  for (const k of Object.keys(b)) for (let i = 0; i < b[k].length; i++) m = Math.max(m, Math.abs(a[k][i] - b[k][i]));
  return m;
}

describe('Trainer with the GradientSync on 2 Gloo processes', () => {
  it('update_freq 2: weights equal one process; rank 0 alone writes', async () => {
    const d1 = fs.mkdtempSync(path.join(os.tmpdir(), 'mood-dist-tr1-'));
    const d2 = fs.mkdtempSync(path.join(os.tmpdir(), 'mood-dist-tr2-'));
    dirs.push(d1, d2);
    const port = await freePort();
    const [single, dist] = await Promise.all([
      run(process.execPath, ['-r', TS_NODE, WORKER, d1, '2'], { WORLD_SIZE: '', RANK: '' }),
      runLaunch(['--nproc_per_node', '2', '--master_port', String(port), '--', WORKER, d2, '2']),
    ]);
    expect(single.code, single.stderr).toBe(0);
    expect(dist.code, dist.stderr).toBe(0);
    const ref = JSON.parse(single.stdout.trim()) as Out;
    const ranks = rankJson(dist.stdout) as unknown as Record<number, Out>;
    expect(ranks[0].stats!.syncs).toBe(2); // 2 epochs x 1 optimizer step (2 micro-steps each)
    expect(maxDiff(ranks[0].params, ranks[1].params)).toBe(0);
    // float64, as in train-helpers: ~1e-15 measured; 1e-5 is far below the ~lr = 3e-3 a wrong average moves.
    expect(maxDiff(ranks[0].params, ref.params)).toBeLessThanOrEqual(1e-5);
    // Rank 0 wrote one log line per epoch (not two) and the checkpoints.
    expect(fs.readFileSync(path.join(d2, 'log.txt'), 'utf8').trim().split('\n')).toHaveLength(2);
    expect(fs.readdirSync(d2).sort()).toEqual(fs.readdirSync(d1).sort());
  });
});
