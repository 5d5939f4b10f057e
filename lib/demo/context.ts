/**
 * The demo's first stage: everything later stages share — the data (seeded per-class samples of both
 * splits, the ID subsets relabelled 0..K-1), the class lists of both protocols, the settings recorded
 * in results.json, the stage store and Ctrl-C handling — checked (flags, data, free disk) before any
 * training starts.
 */
import * as crypto from 'node:crypto';
import { setNumThreads } from '../runtime';
import type { EpochRecord, ProtocolResult, SettingValue } from '../report/schema';
import { loadDataModule, type DataModule, type MemoryDataset, type PretrainModule, type TrainModule } from './backend';
import { mulberry32 } from '../util/mulberry32';
import { metricInfo } from './ood-eval';
import { DEMO_MODEL_OPTS, DemoError, checkDatasetPresent, parseClassList, type DemoSettings } from './options';
import { Interrupt, StageStore, checkOutputDir } from './stages';

export interface DemoDeps {
  data?: DataModule;
  train?: TrainModule;
  /** null: never pre-train (as when lib/pretrain is absent). */
  pretrain?: PretrainModule | null;
  log?: (s: string) => void;
  /** Stdout for the tables. */
  out?: (s: string) => void;
  interrupt?: Interrupt;
}

export interface DemoContext {
  s: DemoSettings;
  deps: DemoDeps;
  log: (s: string) => void;
  print: (s: string) => void;
  started: number;
  store: StageStore;
  interrupt: Interrupt;
  data: DataModule;
  classes: readonly string[];
  idClasses: number[];
  oodClasses: number[];
  /** One-class protocol: the ID classes to evaluate in turn. */
  oneClassList: number[];
  isId: (label: number) => boolean;
  trainIdx: Int32Array;
  testIdx: Int32Array;
  /** The sampled splits (all classes, original labels). */
  trainSub: MemoryDataset;
  testSub: MemoryDataset;
  /** Their ID-class samples, labels mapped to 0..K-1 (fine-tuning). */
  trainId: MemoryDataset;
  testId: MemoryDataset;
  /** The demo model's constructor options at this data set's resolution. */
  demoOpts: Record<string, number | boolean>;
  /** results.json 'settings' (stages add to it). */
  settings: Record<string, SettingValue>;
  /** Releases what the context installed (the SIGINT handler). */
  release(): void;
}

/** What the stages produce for results.json. */
export interface DemoRun {
  notes: string[];
  records: EpochRecord[];
  protocols: ProtocolResult[];
  interrupted: boolean;
}

export function hash(v: unknown): string {
  return crypto.createHash('sha256').update(JSON.stringify(v)).digest('hex').slice(0, 16);
}

export function rangeText(c: number[]): string {
  const contiguous = c.every((v, i) => i === 0 || v === c[i - 1] + 1);
  return contiguous && c.length > 2 ? `${c[0]}-${c[c.length - 1]}` : c.join(',');
}

/**
 * Disk the run will need: feature caches (features + logits, float32), one checkpoint per epoch plus
 * the init, scores (float64) and the report; errs high.
 */
export function diskEstimate(o: { images: number; dim: number; classes: number; params: number; checkpoints: number; testImages: number; metrics: number; oneClass: number }): number {
  const features = o.images * (o.dim + o.classes) * 4;
  const ckpt = o.params * 4 * o.checkpoints;
  const scores = 8 * o.metrics * o.testImages * (3 + 2 * o.oneClass);
  return Math.ceil(1.5 * (features + ckpt + scores) + 16 * 2 ** 20);
}

/** First `perClass` samples of every class in a seeded shuffled order (0 = all), ascending indices. */
export function perClassSample(targets: Int32Array, perClass: number, seed: number, keep: (label: number) => boolean = () => true): Int32Array {
  const order = Array.from(targets.keys());
  if (perClass > 0) {
    const r = mulberry32(seed);
    for (let i = order.length - 1; i > 0; i--) {
      const j = Math.floor(r() * (i + 1));
      [order[i], order[j]] = [order[j], order[i]];
    }
  }
  const count = new Map<number, number>();
  const out: number[] = [];
  for (const i of order) {
    const l = targets[i];
    if (!keep(l)) continue;
    const c = count.get(l) ?? 0;
    if (perClass > 0 && c >= perClass) continue;
    count.set(l, c + 1);
    out.push(i);
  }
  return Int32Array.from(out.sort((a, b) => a - b));
}

/** Checks the flags against the data, samples the splits, and refuses to start without the disk space. */
export async function prepare(s: DemoSettings, deps: DemoDeps): Promise<DemoContext> {
  const log = deps.log ?? ((m: string) => process.stderr.write(`mood demo: ${m}\n`));
  const print = deps.out ?? ((m: string) => process.stdout.write(m));
  const started = Date.now();
  checkDatasetPresent(s);
  checkOutputDir(s.outputDir, 0); // writable at all: before any work
  const store = new StageStore(s.outputDir);
  if (s.fresh) store.clear();
  if (s.threads > 0) setNumThreads(s.threads);
  const data = deps.data ?? (await loadDataModule());

  const trainFull = (await data.buildDataset({ dataSet: s.dataSet, dataPath: s.dataPath, train: true })) as MemoryDataset;
  const testFull = (await data.buildDataset({ dataSet: s.dataSet, dataPath: s.dataPath, train: false })) as MemoryDataset;
  const classes = trainFull.classes;
  const K = classes.length;
  const idClasses = parseClassList(s.idClasses.join(','), 'id_classes', K);
  const oodClasses = s.oodClasses ? parseClassList(s.oodClasses.join(','), 'ood_classes', K) : Array.from({ length: K }, (_, i) => i).filter((c) => !idClasses.includes(c));
  if (idClasses.length < 2) throw new DemoError(`--id_classes needs at least 2 classes to fine-tune a classifier (got ${idClasses.join(',')})`);
  const overlap = oodClasses.filter((c) => idClasses.includes(c));
  if (overlap.length) throw new DemoError(`--ood_classes ${overlap.join(',')} are also in --id_classes`);
  const oneClassList = s.oneClassClasses ? parseClassList(s.oneClassClasses.join(','), 'classes', K) : Array.from({ length: K }, (_, i) => i);
  const remap = new Map(idClasses.map((c, i) => [c, i]));
  const isId = (l: number) => remap.has(l);

  const trainIdx = perClassSample(trainFull.targets, s.trainPerClass, s.seed);
  const testIdx = perClassSample(testFull.targets, s.testPerClass, s.seed + 1);
  const trainSub = trainFull.subset(trainIdx);
  const testSub = testFull.subset(testIdx);
  const idNames = idClasses.map((c) => classes[c]);
  const sub = (ds: MemoryDataset, name: string) => {
    const idx = Int32Array.from([...ds.targets.keys()].filter((i) => isId(ds.targets[i])));
    return ds.subset(idx, { targets: Int32Array.from(idx, (i) => remap.get(ds.targets[i]) ?? 0), classes: idNames, name });
  };
  const trainId = sub(trainSub, `${s.dataSet}_id`);
  const testId = sub(testSub, `${s.dataSet}_id`);
  log(`${s.dataSet}: ${trainSub.length} training images (${trainId.length} of ID classes ${rangeText(idClasses)}), ${testSub.length} test images, ${K} classes`);

  // The demo model takes the data set's own resolution (28 for Fashion-MNIST, 32 for CIFAR);
  // larger images go through the loader's resize to 224 with 16-pixel patches.
  const side = trainFull.pixels.shape[3];
  const demoOpts = { ...DEMO_MODEL_OPTS, ...(side <= 64 ? { img_size: side } : { img_size: 224, patch_size: 16 }) };
  const settings: Record<string, SettingValue> = {
    command: 'mood demo',
    data_set: s.dataSet,
    data_path: s.dataPath,
    id_classes: rangeText(idClasses),
    ood_classes: rangeText(oodClasses),
    far_ood: s.farOod.join(',') || 'none',
    model: s.model,
    model_opts: JSON.stringify(s.model === 'demo' ? { ...demoOpts, ...s.modelOpts } : s.modelOpts),
    checkpoint: s.checkpoint,
    pretrain_epochs: s.pretrain && !s.checkpoint ? s.pretrainEpochs : 0,
    epochs: s.epochs,
    batch_size: s.batchSize,
    lr: s.lr,
    weight_decay: s.weightDecay,
    train_per_class: s.trainPerClass,
    curve_per_class: s.curvePerClass,
    test_per_class: s.testPerClass,
    metrics: s.metrics.join(','),
    one_class_classes: rangeText(oneClassList),
    time_budget_s: s.timeBudget,
    device: s.device,
    seed: s.seed,
    train_images: trainId.length,
    test_images: testSub.length,
  };
  metricInfo(s.metrics); // unknown metric names fail before any training
  const mo = { ...(s.model === 'demo' ? demoOpts : {}), ...s.modelOpts } as Record<string, number>;
  const dim = typeof mo.embed_dim === 'number' ? mo.embed_dim : 1024;
  const depth = typeof mo.depth === 'number' ? mo.depth : 24;
  const ratio = typeof mo.mlp_ratio === 'number' ? mo.mlp_ratio : 4;
  const farN = s.farOod.length * Math.min(2000, testId.length);
  checkOutputDir(
    s.outputDir,
    diskEstimate({
      images: trainSub.length + testSub.length + farN,
      dim,
      classes: idClasses.length,
      params: depth * (4 + 2 * ratio) * dim * dim + 2 * 2 ** 20,
      checkpoints: s.epochs + 1,
      testImages: testSub.length + farN,
      metrics: s.metrics.length,
      oneClass: oneClassList.length,
    }),
  );
  const interrupt = deps.interrupt ?? new Interrupt();
  return {
    s, deps, log, print, started, store, interrupt, data, classes, idClasses, oodClasses, oneClassList, isId,
    trainIdx, testIdx, trainSub, testSub, trainId, testId, demoOpts, settings,
    release: () => {
      if (!deps.interrupt) interrupt.dispose();
    },
  };
}
