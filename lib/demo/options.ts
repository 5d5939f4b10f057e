/**
 * `mood demo` settings: defaults that finish on 2 CPU cores in about 10 minutes, the flags that scale
 * the same run to the paper's settings, and validation that names the flag and what was expected
 * before any work starts.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { intFlag, listFlag, numFlag } from '../util/flags';

export const FASHION_MNIST_DEFAULT_PATH = '/usr/share/datasets/fashion-mnist';

/**
 * The demo's default model: a small BEiT for 28x28 grey images (patch 4 -> 7x7 tokens). Keyword
 * names as the reference's constructor (and `--model_opts`).
 */
export const DEMO_MODEL_OPTS: Readonly<Record<string, number | boolean>> = {
  img_size: 28,
  patch_size: 4,
  embed_dim: 96,
  depth: 4,
  num_heads: 4,
  mlp_ratio: 2,
  use_rel_pos_bias: true,
  use_abs_pos_emb: false,
};

export const FAR_OOD_KINDS = ['uniform', 'gaussian', 'vflip', 'invert'] as const;
export type FarOodKind = (typeof FAR_OOD_KINDS)[number];

/** Raw CLI values (strings from commander, snake_case flags mapped to camelCase). */
export interface DemoCliOptions {
  device?: string;
  dataSet?: string;
  dataPath?: string;
  idClasses?: string;
  oodClasses?: string;
  farOod?: string;
  model?: string;
  modelOpts?: string;
  checkpoint?: string;
  pretrain?: boolean;
  pretrainEpochs?: string | number;
  pretrainLr?: string | number;
  epochs?: string | number;
  batchSize?: string | number;
  lr?: string | number;
  weightDecay?: string | number;
  trainPerClass?: string | number;
  testPerClass?: string | number;
  curvePerClass?: string | number;
  metrics?: string;
  classes?: string;
  timeBudget?: string | number;
  outputDir?: string;
  seed?: string | number;
  threads?: string | number;
  fresh?: boolean;
  report?: boolean;
  quiet?: boolean;
}

export interface DemoSettings {
  device: string;
  dataSet: string;
  dataPath: string;
  /** Labels the model is fine-tuned on (multi-class ID). */
  idClasses: number[];
  /** Held-out labels (multi-class near-OOD); default: every other class. */
  oodClasses: number[] | null;
  farOod: FarOodKind[];
  /** Named config, or 'demo' for DEMO_MODEL_OPTS. */
  model: string;
  modelOpts: Record<string, unknown>;
  /** Starting weights (.pth); null: from scratch (or MIM pre-training when available). */
  checkpoint: string | null;
  /** Run MIM pre-training first (--no-pretrain: never). */
  pretrain: boolean;
  /** MIM pre-training epochs over the ID training images (0: none). */
  pretrainEpochs: number;
  pretrainLr: number;
  epochs: number;
  batchSize: number;
  lr: number;
  weightDecay: number;
  /** Training images per ID class (0 = all). */
  trainPerClass: number;
  /** Test images per class (0 = all). */
  testPerClass: number;
  /**
   * ID test images per class evaluated after each fine-tuning epoch but the last (a seeded sample:
   * the learning curve); the last epoch evaluates the whole ID test split. 0: all, every epoch.
   * Evaluation never changes the weights, so this moves no result but the curve's earlier points.
   */
  curvePerClass: number;
  metrics: string[];
  /** One-class protocol: the ID classes to evaluate in turn (null: all). */
  oneClassClasses: number[] | null;
  /** Seconds for the one-class loop; classes not reached are listed as left out (0 = no limit). */
  timeBudget: number;
  outputDir: string;
  seed: number;
  threads: number;
  fresh: boolean;
  report: boolean;
  quiet: boolean;
}

export class DemoError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'DemoError';
  }
}

/** '0-5', '0,2,4', '0-3,7' -> sorted unique integers; every value checked against [0, numClasses). */
export function parseClassList(v: string, flag: string, numClasses = Infinity): number[] {
  const out = new Set<number>();
  for (const part of listFlag(v)) {
    const m = /^(\d+)(?:-(\d+))?$/.exec(part);
    if (!m) throw new DemoError(`--${flag}: '${part}' is not a class index or range (e.g. 0-5 or 0,2,4)`);
    const a = Number(m[1]);
    const b = m[2] === undefined ? a : Number(m[2]);
    if (b < a) throw new DemoError(`--${flag}: range '${part}' runs backwards`);
    for (let c = a; c <= b; c++) {
      if (c >= numClasses) throw new DemoError(`--${flag}: class ${c} is out of range (the data set has classes 0-${numClasses - 1})`);
      out.add(c);
    }
  }
  if (out.size === 0) throw new DemoError(`--${flag} is empty`);
  return [...out].sort((x, y) => x - y);
}

export function parseDemoOptions(o: DemoCliOptions): DemoSettings {
  const dataSet = o.dataSet ?? 'fashion_mnist';
  const dataPath = o.dataPath ?? (dataSet === 'fashion_mnist' ? FASHION_MNIST_DEFAULT_PATH : '');
  if (!dataPath) throw new DemoError(`--data_path is required for --data_set ${dataSet} (${datasetHint(dataSet)})`);
  const model = o.model ?? 'demo';
  let modelOpts: Record<string, unknown> = {};
  if (o.modelOpts !== undefined) {
    try {
      const v = JSON.parse(o.modelOpts) as unknown;
      if (v === null || typeof v !== 'object' || Array.isArray(v)) throw new Error('not an object');
      modelOpts = v as Record<string, unknown>;
    } catch (e) {
      throw new DemoError(`--model_opts must be a JSON object such as '{"depth": 6}' (${(e as Error).message})`);
    }
  }
  const farOod = listFlag(o.farOod === 'none' ? '' : o.farOod ?? FAR_OOD_KINDS.join(','));
  for (const k of farOod) if (!(FAR_OOD_KINDS as readonly string[]).includes(k)) throw new DemoError(`--far_ood: unknown kind '${k}' (choose from ${FAR_OOD_KINDS.join(', ')}, or 'none')`);
  const metrics = listFlag(o.metrics ?? 'mahalanobis,knn,msp,energy');
  if (metrics.length === 0) throw new DemoError('--metrics is empty');
  const device = o.device ?? 'cpu';
  if (!/^(cpu|cuda(:\d+)?)$/.test(device)) throw new DemoError(`--device must be cpu, cuda or cuda:N, got '${device}'`);
  return {
    device,
    dataSet,
    dataPath,
    idClasses: parseClassList(o.idClasses ?? '0-5', 'id_classes'),
    oodClasses: o.oodClasses === undefined ? null : parseClassList(o.oodClasses, 'ood_classes'),
    farOod: farOod as FarOodKind[],
    model,
    modelOpts,
    checkpoint: o.checkpoint ?? null,
    pretrain: o.pretrain !== false,
    pretrainEpochs: intFlag('--pretrain_epochs', o.pretrainEpochs, { min: 0, max: 10_000 }) ?? 3,
    pretrainLr: numFlag('--pretrain_lr', o.pretrainLr, { min: 0, max: 10 }) ?? 2e-3,
    epochs: intFlag('--epochs', o.epochs, { min: 0, max: 10_000 }) ?? 6,
    batchSize: intFlag('--batch_size', o.batchSize, { min: 1, max: 65_536 }) ?? 128,
    lr: numFlag('--lr', o.lr, { min: 0, max: 10 }) ?? 2e-3,
    weightDecay: numFlag('--weight_decay', o.weightDecay, { min: 0, max: 10 }) ?? 0.05,
    trainPerClass: intFlag('--train_per_class', o.trainPerClass, { min: 0 }) ?? 2000,
    testPerClass: intFlag('--test_per_class', o.testPerClass, { min: 0 }) ?? 0,
    curvePerClass: intFlag('--curve_per_class', o.curvePerClass, { min: 0 }) ?? 200,
    metrics,
    oneClassClasses: o.classes === undefined || o.classes === 'all' ? null : parseClassList(o.classes, 'classes'),
    timeBudget: numFlag('--time_budget', o.timeBudget, { min: 0, max: 1e9 }) ?? 240,
    outputDir: path.resolve(o.outputDir ?? 'mood-demo'),
    seed: intFlag('--seed', o.seed, { min: 0, max: 2 ** 31 - 1 }) ?? 0,
    threads: intFlag('--threads', o.threads, { min: 0, max: 1024 }) ?? 0,
    fresh: o.fresh === true,
    report: o.report !== false,
    quiet: o.quiet === true,
  };
}

/** How to get a data set, for "not found" messages. */
export function datasetHint(dataSet: string): string {
  switch (dataSet) {
    case 'fashion_mnist':
      return `install it with 'sudo apt-get install dataset-fashion-mnist' (files in ${FASHION_MNIST_DEFAULT_PATH}), or pass --data_path DIR holding train-images-idx3-ubyte.gz, train-labels-idx1-ubyte.gz, t10k-images-idx3-ubyte.gz, t10k-labels-idx1-ubyte.gz`;
    case 'cifar10':
      return "pass --data_path DIR holding cifar-10-batches-py/ (or cifar-10-python.tar.gz) from https://www.cs.toronto.edu/~kriz/cifar.html";
    case 'cifar100':
      return "pass --data_path DIR holding cifar-100-python/ (or cifar-100-python.tar.gz) from https://www.cs.toronto.edu/~kriz/cifar.html";
    case 'imagenet30':
      return 'pass --data_path DIR in the reference layout (one_class_train/<class>/*.JPEG, one_class_test/<class>/*.JPEG)';
    default:
      return 'supported: fashion_mnist, cifar10, cifar100, imagenet30';
  }
}

/** Fails early, saying how to get the data, when the data path is missing or empty. */
export function checkDatasetPresent(s: DemoSettings): void {
  let entries: string[];
  try {
    entries = fs.readdirSync(s.dataPath);
  } catch {
    throw new DemoError(`no ${s.dataSet} data set found at ${s.dataPath}: ${datasetHint(s.dataSet)}`);
  }
  if (entries.length === 0) throw new DemoError(`no ${s.dataSet} data set found: ${s.dataPath} is empty; ${datasetHint(s.dataSet)}`);
  if (s.dataSet === 'fashion_mnist') {
    const need = ['train-images-idx3-ubyte', 'train-labels-idx1-ubyte', 't10k-images-idx3-ubyte', 't10k-labels-idx1-ubyte'];
    const missing = need.filter((n) => ![n, `${n}.gz`].some((f) => [s.dataPath, path.join(s.dataPath, 'raw'), path.join(s.dataPath, 'FashionMNIST', 'raw')].some((d) => fs.existsSync(path.join(d, f)))));
    if (missing.length) throw new DemoError(`no complete fashion_mnist data set at ${s.dataPath} (missing ${missing.join(', ')}): ${datasetHint(s.dataSet)}`);
  }
}
