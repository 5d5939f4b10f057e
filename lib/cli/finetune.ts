/**
 * `mood finetune`: the reference `run_class_finetuning.py` with its flag names (snake_case works too,
 * see argv.ts). Every flag is parsed and validated before any data or model is touched; mistakes exit
 * 1 with one line naming the flag.
 *
 * Only type imports at the top: libtorch loads when the command runs (`mood --help` stays fast).
 */
import type { Command } from 'commander';
import type { FinetuneOptions } from '../train/finetune';
import { FlagError, numFlag } from '../util/flags';
import { addDataFlags, addOptimizerFlags, addResumeFlags } from './train-flags';

export interface RawFinetuneFlags {
  model: string;
  modelOpts?: string;
  finetune?: string;
  dataSet?: string;
  dataPath?: string;
  classIdx?: string;
  nbClasses?: string;
  inputSize?: string;
  batchSize?: string;
  epochs?: string;
  updateFreq?: string;
  lr?: string;
  minLr?: string;
  warmupLr?: string;
  warmupEpochs?: string;
  warmupSteps?: string;
  weightDecay?: string;
  weightDecayEnd?: string;
  opt?: string;
  optEps?: string;
  optBetas?: string[];
  clipGrad?: string;
  layerDecay?: string;
  smoothing?: string;
  drop?: string;
  attnDropRate?: string;
  dropPath?: string;
  layerScaleInitValue?: string;
  relPosBias?: boolean;
  absPosEmb?: boolean;
  useMeanPooling?: boolean;
  useCls?: boolean;
  initScale?: string;
  disableWeightDecayOnRelPosBias?: boolean;
  mixup?: string;
  cutmix?: string;
  cutmixMinmax?: string[];
  mixupProb?: string;
  mixupSwitchProb?: string;
  mixupMode?: string;
  reprob?: string;
  aa?: string;
  augment?: boolean;
  imagenetDefaultMeanAndStd?: boolean;
  modelEma?: boolean;
  modelEmaDecay?: string;
  l2Alpha?: string;
  l2Beta?: string;
  freezeBackbone?: boolean;
  outputDir?: string;
  logDir?: string;
  resume?: string;
  autoResume?: boolean;
  saveCkpt?: boolean;
  saveCkptFreq?: string;
  eval?: boolean;
  seed?: string;
  device?: string;
  numWorkers?: string;
  quiet?: boolean;
  json?: boolean;
}

/** Raw commander strings -> typed options (numbers checked; ranges are validateFinetuneOptions' job). */
export async function parseFinetuneFlags(f: RawFinetuneFlags): Promise<FinetuneOptions> {
  if (f.opt && f.opt.toLowerCase() !== 'adamw') throw new FlagError(`--opt: only adamw is implemented (the reference recipe), got '${f.opt}'`);
  let modelOpts: Record<string, unknown> | undefined;
  if (f.modelOpts) {
    const { parseModelOpts } = await import('./forward');
    modelOpts = parseModelOpts(f.modelOpts);
  }
  const pair = (flag: string, v: string[] | undefined): [number, number] | undefined => {
    if (!v) return undefined;
    if (v.length !== 2) throw new FlagError(`${flag}: expected two numbers, got ${v.length}`);
    return [numFlag(flag, v[0])!, numFlag(flag, v[1])!];
  };
  return {
    model: f.model,
    modelOpts: modelOpts as FinetuneOptions['modelOpts'],
    finetune: f.finetune || undefined,
    dataSet: f.dataSet ?? '',
    dataPath: f.dataPath,
    classIdx: numFlag('--class_idx', f.classIdx),
    nbClasses: f.nbClasses !== undefined && Number(f.nbClasses) > 0 ? numFlag('--nb_classes', f.nbClasses) : undefined,
    inputSize: numFlag('--input_size', f.inputSize),
    batchSize: numFlag('--batch_size', f.batchSize),
    epochs: numFlag('--epochs', f.epochs),
    updateFreq: numFlag('--update_freq', f.updateFreq),
    lr: numFlag('--lr', f.lr),
    minLr: numFlag('--min_lr', f.minLr),
    warmupLr: numFlag('--warmup_lr', f.warmupLr),
    warmupEpochs: numFlag('--warmup_epochs', f.warmupEpochs),
    warmupSteps: numFlag('--warmup_steps', f.warmupSteps),
    weightDecay: numFlag('--weight_decay', f.weightDecay),
    weightDecayEnd: numFlag('--weight_decay_end', f.weightDecayEnd),
    optEps: numFlag('--opt_eps', f.optEps),
    optBetas: pair('--opt_betas', f.optBetas),
    clipGrad: numFlag('--clip_grad', f.clipGrad),
    layerDecay: numFlag('--layer_decay', f.layerDecay),
    smoothing: numFlag('--smoothing', f.smoothing),
    drop: numFlag('--drop', f.drop),
    attnDropRate: numFlag('--attn_drop_rate', f.attnDropRate),
    dropPath: numFlag('--drop_path', f.dropPath),
    layerScaleInitValue: numFlag('--layer_scale_init_value', f.layerScaleInitValue),
    relPosBias: f.relPosBias,
    absPosEmb: f.absPosEmb,
    useMeanPooling: f.useCls ? false : f.useMeanPooling,
    initScale: numFlag('--init_scale', f.initScale),
    disableWeightDecayOnRelPosBias: f.disableWeightDecayOnRelPosBias,
    mixup: numFlag('--mixup', f.mixup),
    cutmix: numFlag('--cutmix', f.cutmix),
    cutmixMinmax: pair('--cutmix_minmax', f.cutmixMinmax),
    mixupProb: numFlag('--mixup_prob', f.mixupProb),
    mixupSwitchProb: numFlag('--mixup_switch_prob', f.mixupSwitchProb),
    mixupMode: f.mixupMode as FinetuneOptions['mixupMode'],
    reprob: numFlag('--reprob', f.reprob),
    aa: f.aa,
    augment: f.augment === false ? false : undefined,
    imagenetDefaultMeanAndStd: f.imagenetDefaultMeanAndStd,
    modelEma: f.modelEma,
    modelEmaDecay: numFlag('--model_ema_decay', f.modelEmaDecay),
    l2Alpha: numFlag('--l2_alpha', f.l2Alpha),
    l2Beta: numFlag('--l2_beta', f.l2Beta),
    freezeBackbone: f.freezeBackbone,
    outputDir: f.outputDir || undefined,
    logDir: f.logDir || undefined,
    resume: f.resume || undefined,
    autoResume: f.autoResume,
    saveCkpt: f.saveCkpt,
    saveCkptFreq: numFlag('--save_ckpt_freq', f.saveCkptFreq),
    eval: f.eval,
    seed: numFlag('--seed', f.seed),
    device: f.device,
    workers: numFlag('--num_workers', f.numWorkers),
    progress: f.quiet ? false : undefined,
  };
}

export async function runFinetuneCommand(f: RawFinetuneFlags): Promise<number> {
  let opts: FinetuneOptions;
  try {
    opts = await parseFinetuneFlags(f);
    const { validateFinetuneOptions } = await import('../train/finetune');
    const { beitConfigNames } = await import('../models/beit');
    validateFinetuneOptions(opts, beitConfigNames());
  } catch (e) {
    process.stderr.write(`mood finetune: ${(e as Error).message}\n`);
    return 1;
  }
  // Under `mood launch` (RANK / WORLD_SIZE set): one process group, sharded sampling, rank 0's
  // weights everywhere, gradients averaged by the native step; only rank 0 prints and writes.
  let group: import('../distributed').ProcessGroup | null = null;
  let sync: import('../distributed').GradientSync | undefined;
  try {
    const { initFromEnv } = await import('../distributed');
    group = await initFromEnv();
    const pg = group;
    if (pg && pg.worldSize > 1) sync = pg.createGradientSync();
    const main = !pg || pg.rank === 0;
    const { finetune } = await import('../train/finetune');
    const r = await finetune({
      ...opts,
      rank: pg?.rank,
      worldSize: pg?.worldSize,
      gradSyncId: sync?.id,
      beforeTrain: pg && pg.worldSize > 1 ? (m) => pg.broadcastModel(m) : undefined,
      onEpoch: (l) => {
        if (main && !f.quiet && !f.json) process.stderr.write(`epoch ${l.epoch}: ${JSON.stringify(l)}\n`);
      },
    });
    if (!main) return 0;
    const summary = { checkpoint: r.checkpoint ?? null, max_accuracy: r.maxAccuracy ?? null, start_epoch: r.startEpoch, epochs_run: r.history.length, evaluation: r.evaluation ?? null, history: r.history };
    process.stdout.write(f.json ? JSON.stringify(summary) + '\n' : summaryLine(r));
    return 0;
  } catch (e) {
    process.stderr.write(`mood finetune: ${(e as Error).message}\n`);
    return 1;
  } finally {
    sync?.release();
    await group?.destroy();
  }
}

/** The reference's closing print: the --eval accuracy, or the best accuracy and the last checkpoint. */
function summaryLine(r: import('../train/finetune').FinetuneResult): string {
  if (r.evaluation) {
    const e = r.evaluation;
    return `Accuracy of the network on the ${e.n} test images: ${e.acc1.toFixed(1)}% (acc@5 ${e.acc5.toFixed(1)}%, loss ${e.loss.toFixed(4)})\n`;
  }
  const best = r.maxAccuracy === undefined ? 'Max accuracy: not recorded (no evaluation)' : `Max accuracy: ${r.maxAccuracy.toFixed(2)}%`;
  return `${best}${r.checkpoint ? `, last checkpoint ${r.checkpoint}` : ''}\n`;
}

export function registerFinetune(program: Command): Command {
  const cmd = program
    .command('finetune')
    .description('fine-tune BEiT as run_class_finetuning.py (AdamW + layer decay, cosine schedules, EMA, L2-SP, checkpoints and log.txt in --output_dir)')
    .option('--model <name>', 'named configuration (mood info / beitConfigNames)', 'beit_base_patch16_224')
    .option('--model-opts <json>', "constructor keywords over the named model, e.g. '{\"patch_size\": 4}'")
    .option('--finetune <file>', 'pre-trained checkpoint to start from (adapted like the reference)');
  addDataFlags(cmd)
    .option('--class-idx <n>', 'one-class fine-tuning on this class (CIFAR-100: superclass)')
    .option('--nb-classes <n>', 'classes of the head (default: the dataset\'s)')
    .option('--input-size <n>', 'image side', '224')
    .option('--batch-size <n>', 'images per micro-step', '64')
    .option('--epochs <n>', 'epochs', '200')
    .option('--update-freq <n>', 'gradient accumulation micro-steps per optimizer step', '1');
  addOptimizerFlags(cmd, { minLr: '1e-6' })
    .option('--layer-decay <x>', 'layer-wise lr decay', '0.9')
    .option('--smoothing <x>', 'label smoothing', '0.1')
    .option('--drop <x>', 'dropout rate', '0')
    .option('--attn-drop-rate <x>', 'attention dropout rate', '0')
    .option('--drop-path <x>', 'stochastic depth rate', '0.1')
    .option('--layer-scale-init-value <x>', 'layer scale (0 disables)', '0.1')
    .option('--rel-pos-bias', 'per-block relative position bias (default)')
    .option('--disable-rel-pos-bias', 'no relative position bias')
    .option('--abs-pos-emb', 'absolute position embedding')
    .option('--use-mean-pooling', 'mean-pool patch tokens (default)')
    .option('--use-cls', 'classify from the cls token')
    .option('--init-scale <x>', 'head init scale', '0.001')
    .option('--disable-weight-decay-on-rel-pos-bias', 'no weight decay on relative position tables')
    .option('--mixup <x>', 'mixup alpha', '0')
    .option('--cutmix <x>', 'cutmix alpha', '0')
    .option('--cutmix-minmax <f...>', 'cutmix box area bounds')
    .option('--mixup-prob <x>', 'probability of mixup/cutmix per batch', '1.0')
    .option('--mixup-switch-prob <x>', 'probability of cutmix when both are on', '0.5')
    .option('--mixup-mode <mode>', 'batch | pair | elem', 'batch')
    .option('--reprob <x>', 'random erasing probability', '0.25')
    .option('--aa <policy>', "auto-augment policy ('none' turns it off)", 'rand-m9-mstd0.5-inc1')
    .option('--no-augment', 'training images take the evaluation transform: no crop, flip, --aa or --reprob (fast learning in short CPU runs; not a reference flag)')
    .option('--imagenet-default-mean-and-std', 'ImageNet normalisation instead of 0.5/0.5')
    .option('--model-ema', 'keep an exponential moving average of the weights')
    .option('--model-ema-decay <x>', 'EMA decay', '0.9999')
    .option('--l2-alpha <x>', 'L2-SP weight toward the pre-trained backbone')
    .option('--l2-beta <x>', 'L2 weight on the head')
    .option('--freeze-backbone', 'train the head only')
    .option('--output-dir <dir>', 'checkpoints and log.txt')
    .option('--log-dir <dir>', 'TensorBoard event files (rank 0): loss/opt scalars per micro-batch, perf/test_* per epoch');
  addResumeFlags(cmd)
    .option('--save-ckpt', 'save checkpoints (default)')
    .option('--no-save-ckpt', 'do not save checkpoints')
    .option('--save-ckpt-freq <n>', 'save checkpoint-<epoch>.pth every n epochs (and the last)', '50')
    .option('--eval', 'only evaluate the loaded model on the test split')
    .option('--seed <n>', 'seed', '0')
    .option('--device <dev>', 'cpu | cuda | cuda:N')
    .option('--num-workers <n>', 'native data threads')
    .option('--quiet', 'no progress or per-epoch lines')
    .option('--json', 'print a JSON summary')
    .action(async (opts: RawFinetuneFlags & { disableRelPosBias?: boolean }) => {
      if (opts.disableRelPosBias) opts.relPosBias = false;
      process.exitCode = await runFinetuneCommand(opts);
    });
  return cmd;
}
