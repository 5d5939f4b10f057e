/**
 * Child process of resume.test.ts: `mood demo` (runDemo on parsed flags, lib/train's fine-tuning step,
 * lib/pretrain's MIM init) on a tiny seeded model and the first Fashion-MNIST images, output in
 * argv[2]. Prints one JSON line per MIM epoch and per fine-tuning step. PAUSE_AT=mim:epoch:step or
 * ft:epoch:step stops at that step (MIM: before it; fine-tuning: after it) for the parent to kill -9.
 */
import { loadPretrainModule, loadTrainModule } from '../../lib/demo/backend';
import { parseDemoOptions } from '../../lib/demo/options';
import { runDemo } from '../../lib/demo/run';
import { Interrupt } from '../../lib/demo/stages';
import { pauseAt, pauseForKill } from '../helpers/kill-resume';
import { TINY } from './common';
import { fakeDataModule } from './fake-data';

async function main(): Promise<void> {
  const [outputDir] = process.argv.slice(2);
  const pause = pauseAt();
  const at = (stage: string, epoch: number, step: number) => pause !== undefined && pause[0] === stage && Number(pause[1]) === epoch && Number(pause[2]) === step;
  const print = (v: unknown) => process.stdout.write(JSON.stringify(v) + '\n');
  const train = await loadTrainModule();
  const mim = await loadPretrainModule();
  let mimEpoch = -1;
  let mimStep = 0;
  const r = await runDemo(
    parseDemoOptions({
      ...TINY,
      modelOpts: JSON.stringify({ embed_dim: 24, depth: 1, num_heads: 2, patch_size: 7, mlp_ratio: 2, seed: 7 }),
      pretrainEpochs: 2,
      epochs: 3,
      classes: '0-1',
      metrics: 'mahalanobis,msp',
      farOod: 'uniform',
      outputDir,
    }),
    {
      data: fakeDataModule({ train: 600, test: 300 }),
      train: {
        async createStep(model, o) {
          const step = await train.createStep(model, o);
          return {
            model: step.model,
            state: step.state,
            async run(batch, s) {
              const out = await step.run(batch, s);
              print({ ft: s.epoch, step: s.step, loss: out.loss, gradNorm: out.gradNorm });
              if (at('ft', s.epoch, s.step)) pauseForKill();
              return out;
            },
            rates: () => step.rates(),
            numParameters: () => step.numParameters(),
            dispose: () => step.dispose(),
          };
        },
      },
      pretrain: {
        pretrain: (o) =>
          mim.pretrain({
            ...o,
            checkInterrupt: (e) => {
              o.checkInterrupt?.(e);
              mimStep = e === mimEpoch ? mimStep + 1 : 0;
              mimEpoch = e;
              if (at('mim', e, mimStep)) pauseForKill();
            },
            onEpoch: (e, loss) => {
              o.onEpoch?.(e, loss);
              print({ mim: e, loss });
            },
          }),
      },
      log: (m) => print({ log: m }),
      out: () => {},
      interrupt: new Interrupt(false),
    },
  );
  print({ done: true, interrupted: r.interrupted });
}

main().catch((e) => {
  process.stderr.write(String((e as Error).stack) + '\n');
  process.exit(1);
});
