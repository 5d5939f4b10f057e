/**
 * Flags of the reference scripts (run_class_finetuning.py, run_beit_pretraining.py) that mean nothing
 * here. They are accepted, hidden from --help, so the reference's command lines run unchanged, and each
 * one given is named on stderr with the reason: never ignored silently. A value that would change the
 * result if it were ignored (e.g. `--train_interpolation bilinear`) is refused instead, naming the flag.
 *
 * Also the helper other commands use to report their own options that have no effect in the run at hand
 * (e.g. `mood score --ckpt` with only feature arrays).
 */
import { CommanderError, Option, type Command } from 'commander';

export interface ReferenceFlag {
  /** As the reference spells it, without dashes (snake_case; kebab-case parses the same). */
  name: string;
  /** Takes a value (else a switch). */
  value?: boolean;
  /** Why it has no effect here (the end of the stderr line). */
  why: string;
  /**
   * A value, given the other parsed options, that cannot be ignored without changing the result:
   * returns the refusal (the flag is refused with it). undefined: ignoring it is harmless.
   */
  refuse?: (value: unknown, opts: Record<string, unknown>) => string | undefined;
  /** The value (given the other options) means what happens here anyway: accepted without a note. */
  honoured?: (value: unknown, opts: Record<string, unknown>) => boolean;
}

/** commander's attribute name of a flag (`--pin_mem` / `--no-pin-mem` -> pinMem). */
function attribute(name: string): string {
  const kebab = name.replace(/_/g, '-').replace(/^no-/, '');
  return kebab.replace(/-([a-z])/g, (_, c: string) => c.toUpperCase());
}

/**
 * The one wording every command uses: `mood <command>: --flag is accepted for compatibility and
 * ignored: why` for the reference's flags, `mood <command>: --flag is ignored: why` for our own.
 */
export function ignoredLine(command: string, flag: string, why: string, reference = true): string {
  return `mood ${command}: ${flag} is ${reference ? 'accepted for compatibility and ' : ''}ignored: ${why}\n`;
}

/**
 * Adds the flags `cmd` does not define yet, hidden from --help, and checks the given ones before the
 * command's action runs: ignored ones are named on stderr (by rank 0 under `mood launch`), a refused
 * value stops the command with exit status 1 and one line naming the flag.
 */
export function acceptReferenceFlags(cmd: Command, flags: readonly ReferenceFlag[], err: (s: string) => void = (s) => void process.stderr.write(s)): Command {
  for (const f of flags) {
    const long = `--${f.name.replace(/_/g, '-')}`;
    if (cmd.options.some((o) => o.long === long)) continue;
    cmd.addOption(new Option(`${long}${f.value ? ' <value>' : ''}`, `reference flag: ${f.why}`).hideHelp());
  }
  return cmd.hook('preAction', (_, action) => {
    let lines: string[];
    try {
      lines = referenceFlagNotes(action, flags);
    } catch (e) {
      if (!(e instanceof ReferenceFlagError)) throw e;
      const message = `mood ${action.name()}: ${e.message}`;
      err(message + '\n');
      throw new CommanderError(1, 'mood.referenceFlag', message);
    }
    if ((process.env.RANK ?? '0') === '0') for (const l of lines) err(l);
  });
}

export class ReferenceFlagError extends Error {}

/**
 * Checks the reference flags given on the command line (commander's value source 'cli'): throws
 * ReferenceFlagError for a refused value, returns the stderr lines for the ignored ones.
 */
export function referenceFlagNotes(cmd: Command, flags: readonly ReferenceFlag[]): string[] {
  const opts = cmd.opts() as Record<string, unknown>;
  const lines: string[] = [];
  for (const f of flags) {
    const key = attribute(f.name);
    if (cmd.getOptionValueSource(key) !== 'cli') continue;
    const value = opts[key];
    // A --x / --no-x pair shares one attribute: report the spelling whose value is set.
    const negated = f.name.startsWith('no_') || f.name.startsWith('no-');
    if (!f.value && (negated ? value !== false : value !== true)) continue;
    const flag = `--${f.name}`;
    const refused = f.refuse?.(value, opts);
    if (refused) throw new ReferenceFlagError(`${f.value ? `${flag} ${String(value)}` : flag}: ${refused}`);
    if (f.honoured?.(value, opts)) continue;
    // Flags the command declares itself are ours too, not only accepted for compatibility.
    const own = cmd.options.some((o) => o.attributeName() === key && !o.hidden);
    lines.push(ignoredLine(cmd.name(), flag, f.why, !own));
  }
  return lines;
}

const LAUNCH_ENV = 'the process group is set up from the torchrun environment that `mood launch` provides (RANK, LOCAL_RANK, WORLD_SIZE, MASTER_ADDR, MASTER_PORT)';

/** Flags both training scripts share. */
const TRAINING_FLAGS: readonly ReferenceFlag[] = [
  { name: 'local_rank', value: true, why: LAUNCH_ENV },
  { name: 'world_size', value: true, why: LAUNCH_ENV },
  {
    name: 'dist_url',
    value: true,
    why: LAUNCH_ENV,
    honoured: (v) => v === 'env://',
    refuse: (v) => (v === 'env://' ? undefined : 'only env:// is supported: the rendezvous is MASTER_ADDR:MASTER_PORT, which `mood launch` sets'),
  },
  { name: 'pin_mem', why: 'batches are assembled natively where the model runs; there is no pinned staging copy to turn on or off' },
  { name: 'no_pin_mem', why: 'batches are assembled natively where the model runs; there is no pinned staging copy to turn on or off' },
  { name: 'momentum', value: true, why: 'only SGD-type optimizers use it and --opt is adamw (the reference ignores it with adamw too)' },
  {
    name: 'train_interpolation',
    value: true,
    why: 'bicubic is the interpolation of the training crops',
    honoured: (v) => v === 'bicubic',
    refuse: (v) => (v === 'bicubic' ? undefined : 'only bicubic (the reference default) is implemented'),
  },
];

const n = (v: unknown): number => Number(v ?? 0);
const WARMUP_EPOCHS: ReferenceFlag = { name: 'warmup_epochs', value: true, why: '--warmup_steps > 0 sets the warmup', honoured: (_, o) => !(n(o.warmupSteps) > 0) };

/**
 * run_class_finetuning.py flags `mood finetune` does not define itself, and its own flags that another
 * flag turns off (as in the reference, where they are silently unused).
 */
export const FINETUNE_REFERENCE_FLAGS: readonly ReferenceFlag[] = [
  ...TRAINING_FLAGS,
  WARMUP_EPOCHS,
  { name: 'model_ema_decay', value: true, why: 'no EMA is kept without --model_ema', honoured: (_, o) => o.modelEma === true },
  ...(['mixup_prob', 'mixup_switch_prob', 'mixup_mode'] as const).map(
    (name): ReferenceFlag => ({ name, value: true, why: 'mixup and cutmix are off (--mixup 0, --cutmix 0, no --cutmix_minmax)', honoured: (_, o) => n(o.mixup) > 0 || n(o.cutmix) > 0 || o.cutmixMinmax !== undefined }),
  ),
  ...(['aa', 'reprob'] as const).map((name): ReferenceFlag => ({ name, value: true, why: '--no_augment: training images take the evaluation transform', honoured: (_, o) => o.augment !== false })),
  { name: 'save_ckpt_freq', value: true, why: '--no_save_ckpt: no checkpoints are written', honoured: (_, o) => o.saveCkpt !== false },
  { name: 'enable_deepspeed', why: 'DeepSpeed is a PyTorch engine; the native step runs the same AdamW in float32 (the reference under DeepSpeed trains in fp16 with dynamic loss scaling, so losses differ by that rounding)' },
  { name: 'model_ema_force_cpu', why: 'the EMA weights are kept where the model is; their values do not depend on it' },
  { name: 'color_jitter', value: true, why: 'colour jitter is not implemented; timm applies it only when no auto-augment policy is set, and --aa sets one by default' },
  {
    name: 'disable_freeze_backbone',
    why: 'the backbone is trained unless --freeze_backbone is given',
    honoured: () => true,
    refuse: (_, o) => (o.freezeBackbone ? 'contradicts --freeze_backbone' : undefined),
  },
  { name: 'remode', value: true, why: 'random erasing fills with per-pixel noise', honoured: (v) => v === 'pixel', refuse: (v) => (v === 'pixel' ? undefined : 'only pixel (the reference default) is implemented') },
  { name: 'recount', value: true, why: 'random erasing draws one box', honoured: (v) => Number(v) === 1, refuse: (v) => (Number(v) === 1 ? undefined : 'only 1 (the reference default) is implemented') },
  { name: 'resplit', why: 'not implemented', refuse: () => 'split random erasing is not implemented' },
  {
    name: 'model_key',
    value: true,
    why: "the weights are taken from the checkpoint's 'model', else 'module', entry",
    honoured: (v) => v === 'model|module',
    refuse: (v) => (v === 'model|module' ? undefined : "only the default 'model|module' is supported"),
  },
  { name: 'model_prefix', value: true, why: 'state-dict keys are used as they are', honoured: (v) => v === '', refuse: (v) => (v === '' ? undefined : 'key prefixes are not supported') },
  {
    name: 'start_epoch',
    value: true,
    why: 'training starts at epoch 0 unless a checkpoint is resumed',
    honoured: (v) => Number(v) === 0,
    refuse: (v) => (Number(v) === 0 ? undefined : 'starting at a later epoch without a checkpoint is not supported; --resume continues from one'),
  },
  { name: 'de-mixup', why: 'run_class_finetuning.py defines it but never reads it' },
  { name: 'np-de-mixup', why: 'run_class_finetuning.py defines it but never reads it' },
  { name: 'de-rot', why: 'run_class_finetuning.py defines it but never reads it' },
  { name: 'no-de-rot', why: 'run_class_finetuning.py defines it but never reads it' },
];

const PIXEL_TARGETS = (_: unknown, o: Record<string, unknown>): boolean => (o.discreteVaeType ?? 'dall-e') !== 'pixel';

/** run_beit_pretraining.py flags `mood pretrain` does not define, and its own flags another one turns off. */
export const PRETRAIN_REFERENCE_FLAGS: readonly ReferenceFlag[] = [
  // dall-e targets build the reference's two views with any of Pillow's filters (lib/data/beit-views.ts);
  // pixel targets crop with lib/data's training transform, which is bicubic.
  ...TRAINING_FLAGS.filter((f) => f.name !== 'train_interpolation'),
  {
    name: 'train_interpolation',
    value: true,
    why: "--discrete_vae_type pixel crops with lib/data's training transform (bicubic)",
    honoured: (v, o) => PIXEL_TARGETS(v, o) || v === 'bicubic',
    refuse: (v, o) => (PIXEL_TARGETS(v, o) || v === 'bicubic' ? undefined : 'with --discrete_vae_type pixel only bicubic (the reference default) is implemented'),
  },
  { name: 'color_jitter', value: true, why: "--discrete_vae_type pixel takes lib/data's training transform, which has no colour jitter", honoured: PIXEL_TARGETS },
  WARMUP_EPOCHS,
  { name: 'second_input_size', value: true, why: '--discrete_vae_type pixel regresses the pixels of the training view itself; there is no tokenizer view', honoured: PIXEL_TARGETS },
  { name: 'second_interpolation', value: true, why: '--discrete_vae_type pixel regresses the pixels of the training view itself; there is no tokenizer view', honoured: PIXEL_TARGETS },
  { name: 'discrete_vae_weight_path', value: true, why: '--discrete_vae_type pixel needs no tokenizer weights', honoured: PIXEL_TARGETS },
];
