/**
 * `mood score --detector D.npz [--ckpt C.pth] FILES...`: score new samples with a saved detector
 * (Detector.save, e.g. from `mood eval-features --detector-out`). FILES are
 *   - image files (JPEG, PNG, ...): decoded and put through the evaluation transform by lib/data, then
 *     the BEiT checkpoint (--ckpt);
 *   - .npy (N, C, H, W) float32/float64 batches already through the evaluation transform: run through
 *     the checkpoint for features and logits, as the detector needs;
 *   - .npy (N, D) arrays: features (feature detectors) or logits (logit detectors) computed elsewhere.
 * Output: one JSON document (default) or JSON Lines (--jsonl, one sample per line), to stdout or
 * atomically to --out.
 *
 * Only type imports (and the dependency-free ./reference-flags) at the top level: libtorch loads when
 * the command runs.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import type { Command } from 'commander';
import { ignoredLine } from './reference-flags';
import { intFlag } from '../util/flags';
import { checkImageShape, fmtShape, forwardInBatches, modelFromFlags } from './model';
import type { NdArray } from '../npy/ndarray';

export interface ScoreCliOptions {
  detector?: string;
  ckpt?: string;
  model?: string;
  nbClasses?: string;
  inputSize?: string;
  batchSize?: string;
  device?: string;
  jsonl?: boolean;
  out?: string;
  cropPct?: string;
  imagenetDefaultMeanAndStd?: boolean;
}

export interface ScoredSample {
  file: string;
  /** Row within the file. */
  index: number;
  score: number;
}

export interface ScoreResult {
  detector: string;
  metric: string;
  orientation: string;
  checkpoint: string | null;
  n: number;
  samples: ScoredSample[];
}

export class ScoreCliError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'ScoreCliError';
  }
}

const fail = (message: string): Error => new ScoreCliError(message);

export async function runScore(
  files: string[],
  opts: ScoreCliOptions,
  write: (s: string) => void = (s) => void process.stdout.write(s),
  err: (s: string) => void = (s) => void process.stderr.write(s),
): Promise<ScoreResult> {
  if (!opts.detector) throw new ScoreCliError('--detector <file.npz> is required');
  if (!fs.existsSync(opts.detector)) throw new ScoreCliError(`--detector ${opts.detector}: no such file`);
  if (files.length === 0) throw new ScoreCliError('no input files: give one or more .npy arrays (N, C, H, W images or N x D features/logits)');
  const IMAGE_EXT = ['.jpg', '.jpeg', '.png', '.ppm', '.bmp', '.pgm', '.tif', '.tiff', '.webp', '.gif'];
  const isImage = (f: string): boolean => IMAGE_EXT.includes(path.extname(f).toLowerCase());
  for (const f of files) {
    if (!fs.existsSync(f)) throw new ScoreCliError(`${f}: no such file`);
    if (!f.toLowerCase().endsWith('.npy') && !isImage(f)) {
      throw new ScoreCliError(`${f}: expected an image (${IMAGE_EXT.join(', ')}) or a .npy array`);
    }
  }
  if (opts.ckpt !== undefined && !fs.existsSync(opts.ckpt)) throw new ScoreCliError(`--ckpt ${opts.ckpt}: no such file`);
  if (opts.out) {
    const dir = path.dirname(path.resolve(opts.out));
    if (!fs.existsSync(dir)) throw new ScoreCliError(`--out ${opts.out}: directory ${dir} does not exist`);
  }
  const batchSize = intFlag('--batch_size', opts.batchSize, { min: 1 }) ?? 32;
  const nbClasses = intFlag('--nb_classes', opts.nbClasses, { min: 1 });
  const cropPct = opts.cropPct === undefined ? undefined : Number(opts.cropPct);
  if (cropPct !== undefined && !(cropPct > 0 && cropPct <= 1)) throw new ScoreCliError(`--crop_pct must be in (0, 1], got '${opts.cropPct}'`);
  const inputSize = intFlag('--input_size', opts.inputSize, { min: 1 });

  const [{ readNpy }, { loadDetector }, { writeFileAtomic }] = await Promise.all([import('../npy'), import('../ood/detectors/registry'), import('../io/atomic')]);
  let det: Awaited<ReturnType<typeof loadDetector>>;
  try {
    det = loadDetector(opts.detector);
  } catch (e) {
    throw new ScoreCliError(`--detector ${opts.detector}: ${(e as Error).message}`);
  }
  const imageFiles = files.filter(isImage);
  const arrays: Array<{ file: string; arr: NdArray }> = files.filter((f) => !isImage(f)).map((file) => {
    let arr: NdArray;
    try {
      arr = readNpy(file);
    } catch (e) {
      throw new ScoreCliError(`${file}: ${(e as Error).message}`);
    }
    if (arr.dtype !== 'float32' && arr.dtype !== 'float64') throw new ScoreCliError(`${file}: expected float32 or float64, got ${arr.dtype}`);
    if (arr.shape.length !== 4 && arr.shape.length !== 2) throw new ScoreCliError(`${file}: expected (N, C, H, W) images or (N, D) features/logits, got shape ${fmtShape(arr.shape)}`);
    if (arr.shape[0] === 0) throw new ScoreCliError(`${file}: no samples, shape ${fmtShape(arr.shape)}`);
    return { file, arr };
  });
  const needs = det.needs;
  const needImages = imageFiles.length > 0 || arrays.some((a) => a.arr.shape.length === 4);
  // Options that only matter for some inputs are named when none of those inputs is given.
  const unused = (given: Array<[unknown, string]>, why: string) => {
    for (const [v, flag] of given) if (v !== undefined) err(ignoredLine('score', flag, why, false));
  };
  if (!needImages) {
    unused([[opts.ckpt, '--ckpt'], [opts.model, '--model'], [opts.nbClasses, '--nb_classes'], [opts.inputSize, '--input_size'], [opts.batchSize, '--batch_size'], [opts.device, '--device']],
      'every input is a precomputed (N, D) array, so no model runs');
  }
  if (imageFiles.length === 0) {
    unused([[opts.cropPct, '--crop_pct'], [opts.imagenetDefaultMeanAndStd, '--imagenet_default_mean_and_std']], 'it applies to image files; .npy inputs are used as they are');
  }
  if (needImages && !opts.ckpt) throw new ScoreCliError(`${imageFiles.length ? 'image files' : 'image batches (N, C, H, W)'} need the model: give --ckpt C.pth`);
  let model: import('../models/beit').Beit | undefined;
  /** Scores per input file, in FILES order. */
  const perFile = new Map<string, Float64Array>();
  try {
    if (needImages) {
      const given: Record<string, unknown> = {};
      if (nbClasses !== undefined) given.num_classes = nbClasses;
      if (inputSize !== undefined) given.img_size = inputSize;
      if (opts.device) given.device = opts.device;
      model = await modelFromFlags({ ckpt: opts.ckpt!, model: opts.model, options: given }, fail);
      model.eval();
    }
    for (const { file, arr } of arrays) {
      const c = arr.toCOrder();
      const typed = c.typed() as Float32Array | Float64Array;
      const n = arr.shape[0];
      let input: { features?: { data: Float32Array | Float64Array; shape: number[] }; logits?: { data: Float32Array | Float64Array; shape: number[] } };
      if (arr.shape.length === 2) {
        // Precomputed rows: features for feature detectors, logits for logit detectors.
        if (needs.features && needs.logits) throw new ScoreCliError(`${file}: '${det.name}' needs features and logits; give image batches (N, C, H, W) with --ckpt`);
        input = needs.logits ? { logits: { data: typed, shape: arr.shape } } : { features: { data: typed, shape: arr.shape } };
      } else {
        checkImageShape(file, arr.shape, model!, fail);
        const f32 = typed instanceof Float32Array ? typed : Float32Array.from(typed);
        const rows = await forwardInBatches(model!, f32, arr.shape, batchSize, { features: true, logits: true });
        const feats = rows.features!;
        const logits = rows.logits!;
        input = { features: { data: feats.data, shape: [n, feats.dim] }, logits: { data: logits.data, shape: [n, logits.dim] } };
      }
      let scores: Float64Array;
      try {
        scores = await det.score(input);
      } catch (e) {
        throw new ScoreCliError(`${file}: ${(e as Error).message}`);
      }
      perFile.set(file, scores);
    }
    if (imageFiles.length) {
      // lib/data decodes (PIL convert('RGB') semantics) and applies the evaluation transform natively.
      const [{ ImageFileDataset, createLoader }, { extractFeatures }] = await Promise.all([import('../data'), import('../ood/features/extract')]);
      const unique = [...new Set(imageFiles)];
      const ds = new ImageFileDataset({ name: 'score', root: process.cwd(), split: 'test', classes: ['?'], files: unique.map((f) => path.resolve(f)), targets: new Int32Array(unique.length), strict: true });
      const loader = createLoader(ds, {
        batchSize,
        inputSize: model!.options.img_size,
        train: false,
        ...(cropPct !== undefined ? { cropPct } : {}),
        ...(opts.imagenetDefaultMeanAndStd ? { imagenetDefaultMeanAndStd: true } : {}),
      });
      const set = await extractFeatures(model!, loader, { progress: false });
      let scores: Float64Array;
      try {
        scores = await det.score({ features: { data: set.features, shape: [set.n, set.featureDim] }, logits: { data: set.logits, shape: [set.n, set.numClasses] } });
      } catch (e) {
        throw new ScoreCliError(`${unique.length} image file(s): ${(e as Error).message}`);
      }
      unique.forEach((f, i) => perFile.set(f, scores.subarray(i, i + 1)));
    }
  } finally {
    model?.dispose();
    det.dispose();
  }
  const samples: ScoredSample[] = [];
  for (const file of files) perFile.get(file)!.forEach((score, index) => samples.push({ file, index, score }));
  const result: ScoreResult = {
    detector: path.resolve(opts.detector),
    metric: det.name,
    orientation: det.orientation,
    checkpoint: needImages ? path.resolve(opts.ckpt!) : null,
    n: samples.length,
    samples,
  };
  const text = opts.jsonl
    ? samples.map((s) => JSON.stringify({ ...s, metric: result.metric, orientation: result.orientation })).join('\n') + '\n'
    : JSON.stringify(result, null, 2) + '\n';
  if (opts.out) writeFileAtomic(opts.out, text);
  else write(text);
  return result;
}

export function registerScore(program: Command): Command {
  return program
    .command('score')
    .description('score new samples with a saved OOD detector (.npz): image batches through a BEiT checkpoint, or precomputed features/logits')
    .argument('<files...>', 'image files (need --ckpt), or .npy: (N, C, H, W) transformed images (need --ckpt) or (N, D) features/logits')
    .option('--detector <file>', 'fitted detector (.npz from mood eval-features --detector-out or mood ood-score --detector-out)')
    .option('--ckpt <file>', 'BEiT checkpoint for image batches (the one the detector was fitted with)')
    .option('--model <name>', 'named configuration (default: inferred from the checkpoint)')
    .option('--nb-classes <n>', 'classifier classes (default: from the checkpoint)')
    .option('--input-size <n>', 'model image side (default: from the checkpoint)')
    .option('--batch-size <n>', 'images per forward pass (default 32)')
    .option('--device <d>', 'cpu or cuda[:i]')
    .option('--crop-pct <f>', 'evaluation crop fraction for image files (as at evaluation)')
    .option('--imagenet-default-mean-and-std', 'ImageNet normalisation for image files (as at evaluation)')
    .option('--jsonl', 'JSON Lines: one {file, index, score, metric, orientation} per sample')
    .option('--out <file>', 'write the output here (atomic) instead of stdout')
    .action(async (files: string[], opts: ScoreCliOptions) => {
      await runScore(files, opts);
    });
}
