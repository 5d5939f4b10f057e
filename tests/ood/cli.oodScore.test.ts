/**
 * `mood ood-score` end to end on .npy files written with lib/npy from the fixture: JSON numbers equal
 * the manifest's, --scores-out holds the fixture's per-sample scores, errors are clear.
 */
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { Command } from 'commander';
import { registerOodScore, runOodScore, type OodScoreResult } from '../../lib/cli/ood-score';
import { normalizeFlags } from '../../lib/cli/argv';
import { ndarray, readNpz, writeNpy } from '../../lib/npy';
import { fixturePath } from '../helpers/fixtures';
import { expectArrayClose, expectClose, FLOAT64_SCORE_TOL, loadOodManifest, readFloat64 } from './helpers';

const manifest = loadOodManifest();
const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'mood-cli-'));
afterAll(() => fs.rmSync(dir, { recursive: true, force: true }));

async function cli(args: string[]): Promise<string> {
  const program = new Command().exitOverride();
  registerOodScore(program);
  let out = '';
  const orig = process.stdout.write.bind(process.stdout);
  (process.stdout as { write: unknown }).write = (s: string) => {
    out += s;
    return true;
  };
  try {
    await program.parseAsync(normalizeFlags(['ood-score', ...args]), { from: 'user' });
  } finally {
    (process.stdout as { write: unknown }).write = orig;
  }
  return out;
}

describe('mood ood-score', () => {
  const m = manifest!;
  const f = (name: string): string => {
    const e = m.files[name];
    const file = path.join(dir, `${name}.npy`);
    if (!fs.existsSync(file)) {
      if (e.dtype === 'int64') {
        const buf = fs.readFileSync(fixturePath('ood', e.file));
        const a = new BigInt64Array(buf.length / 8).map((_, i) => buf.readBigInt64LE(i * 8));
        writeNpy(file, ndarray('int64', e.shape, a));
      } else writeNpy(file, ndarray('float64', e.shape, readFloat64(e)));
    }
    return file;
  };
  // Scores recomputed in float64 within FLOAT64_SCORE_TOL rank all pairs as the fixture's: the metrics
  // differ by float64 summation rounding only (~1e-13; one swapped pair is 4e-6).
  const check = (r: OodScoreResult, name: string) => {
    const e = m.scores[name];
    expectClose(r.auroc, e.auroc, 1e-9, `${name} auroc`);
    expectClose(r.aupr_in, e.aupr_in, 1e-9, `${name} aupr_in`);
    expectClose(r.aupr_out, e.aupr_out, 1e-9, `${name} aupr_out`);
    expectClose(r.fpr95, e.fpr95_percentile, 1e-9, `${name} fpr95`);
    expect(r.fpr95_convention).toBe('id-positive-percentile');
    expect(r.orientation).toBe(e.orientation);
    expect(r.n_in).toBe(m.files.ftest.shape[0]);
    expect(r.n_ood).toBe(m.files.food.shape[0]);
  };

  it('--json on raw features (mahalanobis) with --scores-out', async () => {
    const scores = path.join(dir, 'maha.npz');
    const out = await cli(['--metric', 'mahalanobis', '--train', f('ftrain_raw'), '--test', f('ftest_raw'), '--ood', f('food_raw'), '--scores-out', scores, '--json']);
    const r = JSON.parse(out) as OodScoreResult;
    for (const k of ['metric', 'auroc', 'aupr_in', 'aupr_out', 'fpr95', 'fpr95_convention', 'n_in', 'n_ood']) expect(r).toHaveProperty(k);
    expect(r.metric).toBe('mahalanobis');
    check(r, 'mahalanobis');
    const z = readNpz(scores);
    expectArrayClose(z.get('in')!.typed() as Float64Array, readFloat64(m.scores.mahalanobis.in), FLOAT64_SCORE_TOL, 'scores in');
    expectArrayClose(z.get('ood')!.typed() as Float64Array, readFloat64(m.scores.mahalanobis.ood), FLOAT64_SCORE_TOL, 'scores ood');
  });

  it('snake_case flags, int64 labels (cc), logit metrics, gradnorm with features, text output', async () => {
    const cc = JSON.parse(await cli(['--metric', 'cc', '--train', f('ftrain_raw'), '--train_labels', f('ytrain'), '--test', f('ftest_raw'), '--ood', f('food_raw'), '--json'])) as OodScoreResult;
    check(cc, 'cc');
    const msp = JSON.parse(await cli(['--metric', 'msp', '--test_logits', f('logits_test'), '--ood_logits', f('logits_ood'), '--json'])) as OodScoreResult;
    check(msp, 'msp');
    const gn = await runOodScore({ metric: 'gradnorm', test: f('ftest_raw'), ood: f('food_raw'), testLogits: f('logits_test'), oodLogits: f('logits_ood') }, () => undefined);
    check(gn, 'gradnorm');
    const text = await cli(['--metric', 'projection', '--no-normalize', '--train', f('ftrain_raw'), '--test', f('ftest_raw'), '--ood', f('food_raw')]);
    expect(text).toMatch(/^projection\tIn-data: .*\tFPR95: \d+\.\d\d\tAUROC: 51\.25\t/);
    expect(text).toMatch(/higher_is_id; FPR95 id-positive-percentile/);
  });

  it('detector-out round trip and errors', async () => {
    const det = path.join(dir, 'det.npz');
    await runOodScore({ metric: 'kmeans', k: '4', nInit: '2', train: f('ftrain_raw'), test: f('ftest_raw'), ood: f('food_raw'), detectorOut: det }, () => undefined);
    expect(fs.existsSync(det)).toBe(true);
    await expect(cli(['--metric', 'nope', '--train', f('ftrain_raw'), '--test', f('ftest_raw'), '--ood', f('food_raw')])).rejects.toThrow(/valid metrics: mahalanobis/);
    await expect(cli(['--metric', 'mds', '--train', f('ftrain_raw'), '--test', f('ftest_raw'), '--ood', f('food_raw')])).rejects.toThrow(/needs --train-labels/);
    await expect(cli(['--metric', 'msp', '--test', f('ftest_raw'), '--ood', f('food_raw')])).rejects.toThrow(/needs --test-logits/);
    await expect(cli(['--metric', 'cos', '--train', f('ftrain_raw'), '--test', f('logits_test'), '--ood', f('food_raw')])).rejects.toThrow(/dimension mismatch/);
    await expect(runOodScore({ metric: 'knn', k: 'x', train: f('ftrain_raw'), test: f('ftest_raw'), ood: f('food_raw') })).rejects.toThrow(/--k: expected an integer, got 'x'/);
  });
});
