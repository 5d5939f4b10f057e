/**
 * Child process of resume.test.ts: `mood pretrain`'s run (the CLI's flag parsing and runPretrain) on
 * a micro MIM model and Fashion-MNIST class 1 (folder argv[3]), output in argv[2], printing one JSON line per
 * optimizer step through a training sink. With PAUSE_AT=epoch:step it stops after that step's line
 * (for the parent to kill -9 mid-epoch).
 */
import { parsePretrainFlags } from '../../lib/pretrain/options';
import { runPretrain } from '../../lib/pretrain/run';
import { pauseAt, pauseForKill } from '../helpers/kill-resume';

export const FLAGS = {
  model: 'beit_test_micro_8k_vocab', modelOpts: '{"patch_size": 4}', inputSize: '28', dataSet: 'fashion_mnist',
  classIdx: '1', discreteVaeType: 'pixel', numMaskPatches: '19', minMaskPatchesPerBlock: '4', batchSize: '256', epochs: '3', warmupEpochs: '1',
  saveCkptFreq: '1', lr: '2e-3', clipGrad: '3', quiet: true,
};

async function main(): Promise<void> {
  const [outputDir, dataPath] = process.argv.slice(2);
  const pause = pauseAt()?.map(Number);
  const print = (v: unknown) => process.stdout.write(JSON.stringify(v) + '\n');
  await runPretrain(
    {
      ...parsePretrainFlags({ ...FLAGS, dataPath, outputDir }),
      sinks: [
        {
          resume: (r) => print({ resume: r.startEpoch }),
          step: (e) => {
            print({ epoch: e.epoch, step: e.step, loss: e.loss, gradNorm: e.gradNorm });
            if (pause && e.epoch === pause[0] && e.step === pause[1]) pauseForKill();
          },
        },
      ],
    },
    () => {},
  );
  print({ done: true });
}

main().catch((e) => {
  process.stderr.write(String((e as Error).stack) + '\n');
  process.exit(1);
});
