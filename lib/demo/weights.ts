/**
 * The demo's start-weights stage: the model (the demo's BEiT, a named config, or --checkpoint's), then
 * its start weights — the checkpoint's, MIM pre-training on the ID training images (lib/pretrain on
 * lib/train's loop, checkpointed per epoch so Ctrl-C or a kill resumes it), or the seeded init —
 * saved as checkpoints/init.pth with a marker, so a re-run with the same settings loads them.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { Beit, createModel } from '../models/beit';
import { loadPretrainModule, type PretrainModule } from './backend';
import { hash, type DemoContext, type DemoRun } from './context';
import { checkpointDir, loadWeights, saveWeights } from './finetune';
import { DemoError } from './options';

export type InitKind = 'checkpoint' | 'mim' | 'scratch';

export interface StartWeights {
  init: InitKind;
  /** Identity of the start weights (settings that determine them). */
  key: string;
  file: string;
  /**
   * The seeded random init the start weights grew from (init.pth itself when nothing trained it;
   * null for --checkpoint): the baseline that shows what MIM pre-training learned.
   */
  randomInit: string | null;
}

/** The model to train: --checkpoint's architecture (and weights), else the configured one, seeded. */
export async function buildModel(ctx: DemoContext): Promise<{ model: Beit; opts: Record<string, unknown> }> {
  const s = ctx.s;
  const numClasses = ctx.idClasses.length;
  // Seeded: the head (and, without MIM, the whole start backbone) is a function of --seed, so two runs
  // with the same flags train the same weights.
  const opts = { ...(s.model === 'demo' ? ctx.demoOpts : {}), ...(s.modelOpts as object), num_classes: numClasses, device: s.device, seed: s.seed } as Record<string, unknown>;
  if (!s.checkpoint) return { model: createModel(s.model === 'demo' ? (opts as never) : s.model, opts as never), opts };
  // The checkpoint implies the architecture; only the user's --model/--model_opts constrain it
  // (the demo's own default config would contradict e.g. an official BEiT-base file).
  const ckOpts = { ...(s.modelOpts as object), num_classes: numClasses, device: s.device, seed: s.seed, ...(s.model !== 'demo' ? { config: s.model } : {}) };
  try {
    return { model: await Beit.fromCheckpoint(s.checkpoint, ckOpts as never), opts };
  } catch (e) {
    throw new DemoError(`--checkpoint ${s.checkpoint}: ${(e as Error).message}`);
  }
}

export async function startWeights(ctx: DemoContext, run: DemoRun, model: Beit, opts: Record<string, unknown>): Promise<StartWeights> {
  const s = ctx.s;
  const pretrainMod = ctx.deps.pretrain === undefined ? (s.pretrain && !s.checkpoint ? await loadPretrainModule() : null) : ctx.deps.pretrain;
  const init: InitKind = s.checkpoint ? 'checkpoint' : s.pretrain && pretrainMod && s.pretrainEpochs > 0 ? 'mim' : 'scratch';
  const key = hash({ v: 3, dataSet: s.dataSet, model: s.model, opts, checkpoint: s.checkpoint, init, seed: s.seed, trainPerClass: s.trainPerClass, id: ctx.idClasses, ...(init === 'mim' ? { pe: s.pretrainEpochs, plr: s.pretrainLr, bs: s.batchSize } : {}) });
  const file = path.join(checkpointDir(s.outputDir), 'init.pth');
  const randomInit = init === 'mim' ? path.join(checkpointDir(s.outputDir), 'random-init.pth') : init === 'scratch' ? file : null;
  if (ctx.store.get('init', key) && fs.existsSync(file) && (!randomInit || fs.existsSync(randomInit))) {
    await loadWeights(model, file);
  } else {
    const mimDir = init === 'mim' ? await mimInit(ctx, model, key, pretrainMod!, randomInit!) : null;
    await saveWeights(model, file, 'init');
    ctx.store.set('init', key, { init });
    if (mimDir) fs.rmSync(mimDir, { recursive: true, force: true }); // init.pth has what they led to
  }
  ctx.settings.init = init;
  run.notes.push(
    init === 'mim'
      ? `Backbone: MIM pre-training (normalised-pixel targets, ${s.pretrainEpochs} epochs) on the ID training images, then fine-tuning.`
      : init === 'checkpoint'
        ? `Backbone: weights from ${s.checkpoint}, then fine-tuning.`
        : `Backbone: trained from scratch (${s.pretrain ? (s.pretrainEpochs > 0 ? 'no MIM pre-training available' : '--pretrain_epochs 0') : '--no-pretrain'}); MOOD's masked-image-modeling pre-training is what makes OOD detection strong, so expect far lower AUROC than the paper's.`,
  );
  return { init, key, file, randomInit };
}

/** MIM pre-training of `model` in place, checkpointed per epoch in checkpoints/mim (resumed when there); returns that folder. */
async function mimInit(ctx: DemoContext, model: Beit, key: string, pretrainMod: PretrainModule, randomInit: string): Promise<string> {
  const s = ctx.s;
  // MIM checkpoints of other settings never resume: the folder belongs to one key.
  const mimDir = path.join(checkpointDir(s.outputDir), 'mim');
  // The random init MIM starts from (the MIM twin's seeded init, which lib/pretrain hands over before
  // training) is kept as the one-class table's baseline arm: written before the marker, so a MIM run
  // resumed after a kill keeps the init it really started from.
  const fresh = !ctx.store.get('mim-checkpoints', key) || !fs.existsSync(randomInit);
  if (fresh) fs.rmSync(mimDir, { recursive: true, force: true });
  const onInit = fresh
    ? async (m: Beit) => {
        await saveWeights(m, randomInit, 'random-init');
        ctx.store.set('mim-checkpoints', key, { dir: mimDir });
      }
    : undefined;
  ctx.log(`MIM pre-training on the ${ctx.trainId.length} ID training images, ${s.pretrainEpochs} epochs`);
  const loader = ctx.data.createLoader(ctx.trainId, { batchSize: s.batchSize, inputSize: model.options.img_size, shuffle: true, dropLast: ctx.trainId.length > s.batchSize, seed: s.seed, device: s.device });
  await pretrainMod.pretrain({
    model,
    loader,
    epochs: s.pretrainEpochs,
    lr: s.pretrainLr,
    seed: s.seed,
    quiet: s.quiet,
    outputDir: mimDir,
    checkInterrupt: (e) => ctx.interrupt.check(`MIM pre-training epoch ${e}`),
    onEpoch: (e, loss) => ctx.log(`MIM epoch ${e + 1}/${s.pretrainEpochs}: loss ${loss.toFixed(4)}`),
    onInit,
  });
  return mimDir;
}
