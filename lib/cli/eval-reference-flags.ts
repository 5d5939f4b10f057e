/**
 * The reference scripts' flags beyond the evaluation core, for `mood eval-features` / `mood eval-logits`:
 * - the training-augmentation flags of eval_with_features.py (`--aa`, `--color_jitter`,
 *   `--train_interpolation`, `--reprob`, `--remode`, `--recount`), honoured at the reference's argparse
 *   defaults by `--train-features train-augment` (build_transform(is_train=True) + timm 0.3.2);
 * - every other reference flag, accepted so the reference's command lines run unchanged, and reported
 *   on stderr with the reason it changes nothing here — never silently dropped.
 */
import { Option, type Command } from 'commander';
import type { LoaderOptions } from '../data/types';
import type { TrainFeatureTransform } from '../ood/features';
import { intFlag, numFlag } from '../util/flags';

export type EvalKind = 'features' | 'logits';

export class EvalCliError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'EvalCliError';
  }
}

/** eval_with_features.py's argparse defaults of the augmentation flags. */
export const REFERENCE_AUGMENT_DEFAULTS = {
  aa: 'rand-m9-mstd0.5-inc1',
  colorJitter: 0.4,
  trainInterpolation: 'bicubic',
  reprob: 0.25,
  remode: 'pixel',
  recount: 1,
} as const;

/** The augmentation flags as commander gives them (undefined = not given). */
export interface AugmentFlags {
  aa?: string;
  colorJitter?: string;
  trainInterpolation?: string;
  reprob?: string;
  remode?: string;
  recount?: string;
  seed?: string;
}

/** The training augmentation of `--train-features train-augment`, as loader options. */
export type TrainAugment = Required<Pick<LoaderOptions, 'trainInterpolation' | 'reprob' | 'remode' | 'recount'>> & Pick<LoaderOptions, 'autoAugment' | 'colorJitter'>;

const FLAG: Record<keyof AugmentFlags, string> = {
  aa: '--aa',
  colorJitter: '--color_jitter',
  trainInterpolation: '--train_interpolation',
  reprob: '--reprob',
  remode: '--remode',
  recount: '--recount',
  seed: '--seed',
};

/** Validates the augmentation flags and fills in the reference's defaults. */
export async function parseTrainAugment(f: AugmentFlags & { modelPrefix?: string }): Promise<TrainAugment> {
  if (f.modelPrefix) throw new EvalCliError(`--model_prefix '${f.modelPrefix}': checkpoint keys are matched as saved (the reference's default ''); a prefix is not supported`);
  const { parseRandAugment } = await import('../data/randaugment');
  const d = REFERENCE_AUGMENT_DEFAULTS;
  const interp = f.trainInterpolation ?? d.trainInterpolation;
  if (interp !== 'bicubic' && interp !== 'bilinear' && interp !== 'random') {
    const why = interp === 'lanczos' || interp === 'hamming'
      ? `PIL's affine transforms refuse ${interp}, so the reference fails at the first rotate/shear/translate`
      : `timm 0.3.2 would silently use bilinear for '${interp}'; pass bilinear`;
    throw new EvalCliError(`--train_interpolation must be bicubic, bilinear or random, got '${interp}' (${why})`);
  }
  const aaGiven = f.aa ?? d.aa;
  // '' is how the reference turns auto-augment off (timm tests the string's truth); 'none' is ours.
  const autoAugment = aaGiven === '' || aaGiven.toLowerCase() === 'none' ? undefined : aaGiven;
  if (autoAugment !== undefined) {
    try {
      parseRandAugment(autoAugment, interp);
    } catch (e) {
      throw new EvalCliError(`--aa ${autoAugment}: ${(e as Error).message} ('' or none turns auto-augment off)`);
    }
  }
  const colorJitter = numFlag('--color_jitter', f.colorJitter, { min: 0 }) ?? d.colorJitter;
  const reprob = numFlag('--reprob', f.reprob, { min: 0, max: 1 }) ?? d.reprob;
  const remode = (f.remode ?? d.remode).toLowerCase();
  // timm lower-cases the mode; '' means const there.
  const mode = remode === '' ? 'const' : remode;
  if (mode !== 'pixel' && mode !== 'rand' && mode !== 'const') throw new EvalCliError(`--remode must be pixel, rand or const (timm RandomErasing), got '${f.remode}'`);
  const recount = intFlag('--recount', f.recount, { min: 1, max: 8 }) ?? d.recount;
  return { autoAugment, colorJitter: autoAugment === undefined ? colorJitter : undefined, trainInterpolation: interp, reprob, remode: mode, recount };
}

/** A compact description of the augmentation (result JSON, cache key). */
export function describeTrainAugment(a: TrainAugment): Record<string, string | number | null> {
  return {
    aa: a.autoAugment ?? null,
    color_jitter: a.colorJitter ?? null,
    train_interpolation: a.trainInterpolation,
    reprob: a.reprob,
    remode: a.remode,
    recount: a.recount,
  };
}

/**
 * Flags of the reference scripts that change nothing for evaluation here, each with the reason.
 * Accepted and hidden from --help so the reference's command lines run unchanged.
 */
const DROPOUT = 'dropout and drop-path are inactive in evaluation (the reference runs the model in eval() mode too)';
const FINETUNE_ONLY = 'fine-tuning bookkeeping: the reference eval scripts parse it and never use it';
const MIXUP = 'mixup/cutmix are training-only; the reference eval scripts build no Mixup';
const EMA = 'EMA belongs to fine-tuning; the eval scripts load --ckpt as saved';
const PARSED_ONLY = 'the reference eval scripts parse it and never use it';
const IGNORED_REFERENCE_FLAGS: ReadonlyArray<[flag: string, takesValue: boolean, reason: string]> = [
  ['drop', true, DROPOUT],
  ['attn-drop-rate', true, DROPOUT],
  ['drop-path', true, DROPOUT],
  ['max-num', true, 'eval_with_features.py parses it but get_features never receives it (it always uses every sample)'],
  ['method', true, "eval_with_logits.py parses it and never uses it (its one-class lines say 'MOOD' regardless)"],
  ['output-dir', true, 'the reference eval scripts write only to --results-dir'],
  ['log-dir', true, 'the reference eval scripts write only to --results-dir'],
  ['model-key', true, PARSED_ONLY + " (the checkpoint's 'model'/'state_dict'/'module' entry is found as the scripts do)"],
  ['imagenet30-key', true, PARSED_ONLY],
  ['model-prefix', true, "checkpoint keys are matched as saved, the reference's default prefix ''"],
  ['init-scale', true, "it scales the head's initial weights, and every weight comes from --ckpt"],
  ['smoothing', true, 'label smoothing belongs to the training loss'],
  ['mixup', true, MIXUP],
  ['cutmix', true, MIXUP],
  ['cutmix-minmax', true, MIXUP],
  ['mixup-prob', true, MIXUP],
  ['mixup-switch-prob', true, MIXUP],
  ['mixup-mode', true, MIXUP],
  ['model-ema-decay', true, EMA],
  ['start-epoch', true, FINETUNE_ONLY],
  ['resume', true, FINETUNE_ONLY],
  ['finetune', true, FINETUNE_ONLY],
  ['pin-mem', false, 'DataLoader memory pinning does not change results'],
  ['no-pin-mem', false, 'DataLoader memory pinning does not change results'],
  ['use-mean-pooling', false, 'mean pooling is already the default (--use_cls selects the cls token)'],
  ['rel-pos-bias', false, 'relative position bias is already the default (the architecture is read from --ckpt)'],
  ['disable-eval-during-finetuning', false, FINETUNE_ONLY],
  ['model-ema', false, EMA],
  ['model-ema-force-cpu', false, EMA],
  ['resplit', false, 'build_transform passes no split count to timm, so the reference never uses it either'],
  ['eval', false, FINETUNE_ONLY],
  ['auto-resume', false, FINETUNE_ONLY],
  ['no-auto-resume', false, FINETUNE_ONLY],
  ['save-ckpt', false, FINETUNE_ONLY],
  ['no-save-ckpt', false, FINETUNE_ONLY],
  ['disable-weight-decay-on-rel-pos-bias', false, FINETUNE_ONLY],
];

const camel = (flag: string): string => flag.replace(/-([a-z0-9])/g, (_, c: string) => c.toUpperCase());
const snake = (flag: string): string => `--${flag.replace(/-/g, '_')}`;

/** Which ignored reference flags were given (commander keys; --no-x sets x = false), with the reason. */
export function ignoredFlagsGiven(opts: Record<string, unknown>): Array<[flag: string, reason: string]> {
  const out: Array<[string, string]> = [];
  for (const [flag, , reason] of IGNORED_REFERENCE_FLAGS) {
    const neg = flag.startsWith('no-');
    const key = camel(neg ? flag.slice(3) : flag);
    if (opts[key] === undefined) continue;
    if (neg ? opts[key] === false : opts[key] !== false) out.push([snake(flag), reason]);
  }
  return out;
}

/**
 * The stderr notes for this run: every given flag that changes nothing, with its reason. Augmentation
 * flags act only on training features through `train-augment`; --color_jitter only without --aa.
 */
export function referenceFlagNotes(kind: EvalKind, opts: Record<string, unknown>, trainFeatures: TrainFeatureTransform | null, augment: TrainAugment): string[] {
  const notes = ignoredFlagsGiven(opts).map(([flag, reason]) => `${flag} ignored: ${reason}`);
  if (kind === 'logits' && opts.trainFeatures !== undefined) notes.push('--train-features ignored: logit metrics use no training features');
  const given = (Object.keys(FLAG) as Array<keyof AugmentFlags>).filter((k) => opts[k] !== undefined);
  for (const k of given) {
    if (kind === 'logits') notes.push(`${FLAG[k]} ignored: eval_with_logits.py builds no training set, so no augmentation runs (in the reference either)`);
    else if (trainFeatures !== 'train-augment') notes.push(`${FLAG[k]} ignored: the training features go through the evaluation transform (--train-features eval-transform, the default); it applies with --train-features train-augment`);
    else if (k === 'colorJitter' && augment.autoAugment !== undefined) notes.push(`--color_jitter ignored: timm applies colour jitter only when auto-augment is off (--aa ''), as in the reference`);
  }
  return notes;
}

/** Registers the reference's augmentation flags (effective) and the ignored ones (hidden). */
export function addReferenceFlagOptions(cmd: Command): Command {
  const d = REFERENCE_AUGMENT_DEFAULTS;
  const only = 'with --train-features train-augment';
  cmd
    .option('--aa <policy>', `RandAugment policy of the training features, ${only} (default ${d.aa}; '' or none: off)`)
    .option('--color-jitter <f>', `colour jitter of the training features when --aa is off, ${only} (default ${d.colorJitter})`)
    .option('--train-interpolation <m>', `filter of RandAugment's rotate/shear/translate: bicubic, bilinear or random, ${only} (default ${d.trainInterpolation})`)
    .option('--reprob <p>', `random erasing probability, ${only} (default ${d.reprob})`)
    .option('--remode <m>', `random erasing fill: pixel, rand or const, ${only} (default ${d.remode})`)
    .option('--recount <n>', `random erasing: up to n boxes per image, ${only} (default ${d.recount})`);
  for (const [flag, takesValue, reason] of IGNORED_REFERENCE_FLAGS) {
    cmd.addOption(new Option(`--${flag}${takesValue ? ' <value>' : ''}`, `reference flag, ignored: ${reason}`).hideHelp());
  }
  return cmd;
}
