/**
 * Child process of resume.test.ts: fine-tunes a micro BEiT (drop path on, EMA, update_freq 2) on an
 * in-memory set with auto_resume in OUT_DIR, printing one JSON line per optimizer step. With
 * PAUSE_AT=epoch:step it stops after that step's line (for the parent to kill -9 mid-epoch).
 */
import { createModel } from '../../lib/models/beit';
import { Trainer } from '../../lib/train/trainer';
import { pauseAt, pauseForKill } from '../helpers/kill-resume';
import { ArrayLoader, quadrantData } from './helpers';

async function main(): Promise<void> {
  const [outDir] = process.argv.slice(2);
  const pause = pauseAt()?.map(Number);
  const S = 16;
  const model = createModel('beit_test_micro', { img_size: S, num_classes: 4, use_rel_pos_bias: true, init_values: 0.1, drop_path_rate: 0.2, seed: 3 });
  const data = quadrantData(32, S, 4);
  const train = new ArrayLoader({ ...data, size: S, batchSize: 4, classes: 4, shuffle: true, seed: 9 });
  const t = new Trainer({
    model, train, epochs: 3, seed: 21, outputDir: outDir, autoResume: true, saveCkptFreq: 1, warmupEpochs: 1, warmupLr: 1e-4, minLr: 1e-5,
    optimizer: { lr: 2e-3, weightDecay: 0.05, layerDecay: 0.8, updateFreq: 2, clipGrad: 1, smoothing: 0.1, emaDecay: 0.9 }, progress: false,
  });
  t.on('resume', (r) => process.stdout.write(JSON.stringify({ resume: r.startEpoch }) + '\n'));
  t.on('step', (e) => {
    process.stdout.write(JSON.stringify({ epoch: e.epoch, step: e.step, loss: e.loss, gradNorm: e.gradNorm }) + '\n');
    if (pause && e.epoch === pause[0] && e.step === pause[1]) pauseForKill();
  });
  await t.fit();
  const ema = t.optimizerInstance!.emaStateDict();
  const w = await ema.get('head.weight')!.data();
  process.stdout.write(JSON.stringify({ done: true, emaHead: Array.from(w) }) + '\n');
  t.dispose();
  model.dispose();
}

main().catch((e) => {
  process.stderr.write(String((e as Error).stack) + '\n');
  process.exit(1);
});
