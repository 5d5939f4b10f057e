/**
 * `mood demo`: MOOD's pipeline end to end on one data set — (optional MIM pre-training) -> fine-tune
 * on the ID classes -> features and logits -> OOD evaluation in both protocols -> results.json,
 * scores (.npz), HTML report with PNG plots, and the AUROC tables on stdout. Every stage is resumable
 * (see stages.ts); Ctrl-C writes the partial results and the report of what finished.
 */
import * as crypto from 'node:crypto';
import * as fs from 'node:fs';
import * as path from 'node:path';
import type { ImageDataset } from '../data/types';
import { Beit, createModel } from '../models/beit';
import { Tensor } from '../tensor';
import { setNumThreads } from '../runtime';
import { extractCached } from '../ood/features/extract';
import { writeNpz, ndarray } from '../npy';
import { RESULTS_SCHEMA, type EpochRecord, type EvalRow, type ProtocolResult, type ResultsFile, type SettingValue } from '../report/schema';
import { writeReport } from '../report';
import { loadDataModule, loadPretrainModule, loadTrainModule, type DataModule, type MemoryDataset, type PretrainModule, type TrainModule } from './backend';
import { FAR_OOD_NAMES, farOodPixels, seededRandom } from './far-ood';
import { epochCheckpoint, finetune, loadWeights, saveWeights } from './finetune';
import { metricInfo, multiClassRows, oneClassRows, ScoreSink, selectRows, type FeatureRows } from './ood-eval';
import { DEMO_MODEL_OPTS, DemoError, checkDatasetPresent, parseClassList, type DemoSettings } from './options';
import { Interrupt, InterruptedError, StageStore, checkOutputDir, explainNoSpace, writeJson } from './stages';
import { aurocTable } from './table';

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

export interface DemoOutcome {
  results: ResultsFile;
  resultsFile: string;
  reportFile: string | null;
  interrupted: boolean;
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

function hash(v: unknown): string {
  return crypto.createHash('sha256').update(JSON.stringify(v)).digest('hex').slice(0, 16);
}

/** First `perClass` samples of every class in a seeded shuffled order (0 = all), ascending indices. */
export function perClassSample(targets: Int32Array, perClass: number, seed: number, keep: (label: number) => boolean = () => true): Int32Array {
  const order = Array.from(targets.keys());
  if (perClass > 0) {
    const r = seededRandom(seed);
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

function rangeText(c: number[]): string {
  const contiguous = c.every((v, i) => i === 0 || v === c[i - 1] + 1);
  return contiguous && c.length > 2 ? `${c[0]}-${c[c.length - 1]}` : c.join(',');
}

async function pixelsOf(ds: MemoryDataset, idx: Int32Array): Promise<{ pixels: Uint8Array; n: number; c: number; h: number; w: number }> {
  const [, c, h, w] = ds.pixels.shape;
  const all = (await ds.pixels.data()) as Uint8Array;
  const plane = c * h * w;
  const out = new Uint8Array(idx.length * plane);
  idx.forEach((j, k) => {
    const row = ds.rows ? ds.rows[j] : j;
    out.set(all.subarray(row * plane, (row + 1) * plane), k * plane);
  });
  return { pixels: out, n: idx.length, c, h, w };
}

export async function runDemo(s: DemoSettings, deps: DemoDeps = {}): Promise<DemoOutcome> {
  const log = deps.log ?? ((m: string) => process.stderr.write(`mood demo: ${m}\n`));
  const print = deps.out ?? ((m: string) => process.stdout.write(m));
  const t0 = Date.now();
  checkDatasetPresent(s);
  checkOutputDir(s.outputDir, 0); // writable at all: before any work
  const store = new StageStore(s.outputDir);
  if (s.fresh) store.clear();
  if (s.threads > 0) setNumThreads(s.threads);
  const interrupt = deps.interrupt ?? new Interrupt();
  const ownInterrupt = !deps.interrupt;
  const data = deps.data ?? (await loadDataModule());

  // ---- data ------------------------------------------------------------------------------------
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
  const sub = (ds: MemoryDataset, keep: (l: number) => boolean, name: string) => {
    const idx = Int32Array.from([...ds.targets.keys()].filter((i) => keep(ds.targets[i])));
    return ds.subset(idx, { targets: Int32Array.from(idx, (i) => remap.get(ds.targets[i]) ?? 0), classes: idNames, name });
  };
  const trainId = sub(trainSub, isId, `${s.dataSet}_id`);
  const testId = sub(testSub, isId, `${s.dataSet}_id`);
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
  {
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
  }

  const notes: string[] = [];
  const records: EpochRecord[] = [];
  const protocols: ProtocolResult[] = [];
  let interrupted = false;
  let model: Beit | null = null;
  try {
    // ---- model ----------------------------------------------------------------------------------
    const numClasses = idClasses.length;
    const baseOpts = s.model === 'demo' ? demoOpts : {};
    const opts = { ...baseOpts, ...(s.modelOpts as object), num_classes: numClasses, device: s.device } as Record<string, unknown>;
    const pretrainMod = deps.pretrain === undefined ? (s.pretrain && !s.checkpoint ? await loadPretrainModule() : null) : deps.pretrain;
    let init: 'checkpoint' | 'mim' | 'scratch';
    if (s.checkpoint) {
      // The checkpoint implies the architecture; only the user's --model/--model_opts constrain it
      // (the demo's own default config would contradict e.g. an official BEiT-base file).
      const ckOpts = { ...(s.modelOpts as object), num_classes: numClasses, device: s.device, ...(s.model !== 'demo' ? { config: s.model } : {}) };
      try {
        model = await Beit.fromCheckpoint(s.checkpoint, ckOpts as never);
      } catch (e) {
        throw new DemoError(`--checkpoint ${s.checkpoint}: ${(e as Error).message}`);
      }
      init = 'checkpoint';
    } else {
      model = createModel(s.model === 'demo' ? (opts as never) : s.model, opts as never);
      init = s.pretrain && pretrainMod && s.pretrainEpochs > 0 ? 'mim' : 'scratch';
    }
    const initKey = hash({ v: 1, dataSet: s.dataSet, model: s.model, opts, checkpoint: s.checkpoint, init, seed: s.seed, trainPerClass: s.trainPerClass, id: idClasses, ...(init === 'mim' ? { pe: s.pretrainEpochs, plr: s.pretrainLr, bs: s.batchSize } : {}) });
    const initFile = path.join(s.outputDir, 'checkpoints', 'init.pth');
    if (store.get('init', initKey) && fs.existsSync(initFile)) {
      await loadWeights(model, initFile);
    } else {
      if (init === 'mim') {
        log(`MIM pre-training on the ${trainId.length} ID training images, ${s.pretrainEpochs} epochs`);
        const loader = data.createLoader(trainId, { batchSize: s.batchSize, inputSize: model.options.img_size, shuffle: true, dropLast: trainId.length > s.batchSize, seed: s.seed, device: s.device });
        // Ctrl-C stops after the current pre-training epoch (pre-training restarts on the next run).
        await pretrainMod!.pretrain({ model, loader, epochs: s.pretrainEpochs, lr: s.pretrainLr, seed: s.seed, quiet: s.quiet, onEpoch: (e, loss) => {
          log(`MIM epoch ${e + 1}/${s.pretrainEpochs}: loss ${loss.toFixed(4)}`);
          interrupt.check(`MIM pre-training epoch ${e}`);
        } });
      }
      await saveWeights(model, initFile);
      store.set('init', initKey, { init });
    }
    settings.init = init;
    notes.push(
      init === 'mim'
        ? `Backbone: MIM pre-training (normalised-pixel targets, ${s.pretrainEpochs} epochs) on the ID training images, then fine-tuning.`
        : init === 'checkpoint'
          ? `Backbone: weights from ${s.checkpoint}, then fine-tuning.`
          : `Backbone: trained from scratch (${s.pretrain ? (s.pretrainEpochs > 0 ? 'no MIM pre-training available' : '--pretrain_epochs 0') : '--no-pretrain'}); MOOD's masked-image-modeling pre-training is what makes OOD detection strong, so expect far lower AUROC than the paper's.`,
    );

    // ---- fine-tuning ------------------------------------------------------------------------------
    const ftKey = hash({ initKey, epochs: s.epochs, bs: s.batchSize, lr: s.lr, wd: s.weightDecay, id: idClasses });
    if (s.epochs > 0) {
      const train = deps.train ?? (await loadTrainModule());
      await finetune({ settings: s, store, key: ftKey, interrupt, data, train, log }, model, trainId, testId, records);
    }
    const weights = s.epochs > 0 ? epochCheckpoint(s.outputDir, s.epochs - 1) : initFile;
    interrupt.check('feature extraction');

    // ---- features ------------------------------------------------------------------------------------
    const cache = { dir: path.join(s.outputDir, 'features'), checkpoint: weights };
    const inputSize = model.options.img_size;
    const extract = async (ds: ImageDataset, label: string, extra: Record<string, unknown>): Promise<FeatureRows> => {
      const loader = data.createLoader(ds, { batchSize: Math.max(256, s.batchSize), inputSize, device: s.device });
      try {
        const r = await extractCached(model!, loader, { train: false, inputSize, extra }, cache, { label, progress: s.quiet ? false : {} });
        return r.set;
      } catch (e) {
        return explainNoSpace(e, cache.dir);
      }
    };
    const trainF = await extract(trainSub, 'train', { demo: 'train', idx: hash(Array.from(trainIdx)) });
    const testF = await extract(testSub, 'test', { demo: 'test', idx: hash(Array.from(testIdx)) });
    interrupt.check('feature extraction');
    const idTestIdx = Int32Array.from([...testSub.targets.keys()].filter((i) => isId(testSub.targets[i])));
    const farCount = Math.min(idTestIdx.length, 2000);
    const farBase = await pixelsOf(testSub, idTestIdx.subarray(0, farCount));
    const far: Array<{ name: string; rows: FeatureRows }> = [];
    for (const kind of s.farOod) {
      const px = farOodPixels(kind, farBase, s.seed);
      const t = Tensor.fromArray(px.pixels, [px.n, px.c, px.h, px.w], { dtype: 'uint8' });
      const ds = new data.InMemoryDataset({ name: `far_ood_${kind}`, root: `synthetic:${kind}`, split: 'test', classes, targets: new Int32Array(px.n), pixels: t });
      try {
        far.push({ name: FAR_OOD_NAMES[kind], rows: await extract(ds, FAR_OOD_NAMES[kind], { demo: kind, n: px.n, seed: s.seed }) });
      } finally {
        ds.dispose();
        t.dispose();
      }
      interrupt.check('feature extraction');
    }

    // ---- multi-class --------------------------------------------------------------------------------------
    const evalKey = hash({ ftKey, metrics: s.metrics, testIdx: hash(Array.from(testIdx)), far: s.farOod, ood: oodClasses });
    const idName = `classes ${rangeText(idClasses)}`;
    const header = (protocol: 'one-class' | 'multi-class', description: string, rows: EvalRow[], incomplete?: string): ProtocolResult => ({
      protocol,
      description,
      fpr95_convention: 'id-positive-percentile',
      aupr_convention: 'average-precision',
      tpr_level: 0.95,
      metrics: metricInfo(s.metrics),
      rows,
      ...(incomplete ? { incomplete } : {}),
    });
    const heldOut = oodClasses.length ? [`held-out classes ${rangeText(oodClasses)}`] : [];
    const farNames = s.farOod.map((k) => FAR_OOD_NAMES[k]);
    const mcDesc =
      `Fine-tuned on ${idName}; detectors fitted on their training features; ID = test images of ${idName}; OOD = ` +
      [...heldOut, ...(farNames.length ? [`far-OOD sets built from ${farCount} ID test images (${farNames.join(', ')})`] : [])].join(' and ') +
      '.';
    if (heldOut.length + far.length === 0) {
      notes.push('Multi-class protocol skipped: no held-out classes (every class is ID) and --far_ood none.');
    } else {
      let mcRows = store.get<EvalRow[]>('multi-class', evalKey);
      if (!mcRows) {
        log('multi-class OOD evaluation');
        const sink = new ScoreSink('scores/multi-class.npz');
        const oods = [...heldOut.map((name) => ({ name, rows: selectRows(testF, (l) => oodClasses.includes(l)) })), ...far];
        mcRows = await multiClassRows(idName, selectRows(trainF, isId), selectRows(testF, isId), oods, { metrics: s.metrics, detectorOptions: detectorOptionsFor }, sink);
        writeScores(s.outputDir, sink);
        store.set('multi-class', evalKey, mcRows);
      }
      protocols.push(header('multi-class', mcDesc, mcRows));
    }

    // ---- one-class ------------------------------------------------------------------------------------------
    const ocRows: EvalRow[] = [];
    const skipped: number[] = [];
    const ocStart = Date.now();
    let computed = 0; // at least one class per run, so a tiny budget still makes progress
    for (const c of oneClassList) {
      const done = store.get<EvalRow[]>(`one-class-${c}`, evalKey);
      if (done) {
        ocRows.push(...done);
        continue;
      }
      if (interrupt.stopRequested || (computed > 0 && s.timeBudget > 0 && (Date.now() - ocStart) / 1000 > s.timeBudget)) {
        skipped.push(c);
        continue;
      }
      log(`one-class: class ${c} (${classes[c]}) as ID`);
      const sink = new ScoreSink(`scores/one-class-${c}.npz`);
      const rows = await oneClassRows(c, classes, trainF, testF, { metrics: s.metrics, detectorOptions: detectorOptionsFor }, sink);
      writeScores(s.outputDir, sink);
      store.set(`one-class-${c}`, evalKey, rows);
      ocRows.push(...rows);
      computed++;
    }
    if (skipped.length && interrupt.stopRequested) interrupted = true;
    const ocDesc =
      `Each class in turn is ID: the detector is fitted on that class's training features only, its test images are ID and every other class ` +
      `is a separate OOD set (mean over them, the reference's loop). The backbone is the one fine-tuned on ${idName}, so for classes outside it ` +
      `neither backbone nor detector saw their labels.` +
      (metricInfo(s.metrics).some((m) => m.kind === 'logit')
        ? ' Logit metrics need no fit, so their scores do not depend on the ID class: averaged over all classes their AUROC is 50 by symmetry (shown for completeness).'
        : '');
    protocols.unshift(
      header('one-class', ocDesc, ocRows, skipped.length ? `classes ${skipped.join(', ')} not evaluated (${interrupt.stopRequested ? 'interrupted' : `time budget of ${s.timeBudget} s reached`}); re-run to continue` : undefined),
    );
  } catch (e) {
    if (!(e instanceof InterruptedError)) throw e;
    interrupted = true;
    notes.push(`Partial results: ${e.message}; run the same command again to resume.`);
  } finally {
    model?.dispose();
    if (ownInterrupt) interrupt.dispose();
  }

  // ---- results and report ---------------------------------------------------------------------------------
  settings.elapsed_s = Math.round((Date.now() - t0) / 1000);
  const results: ResultsFile = {
    schema: RESULTS_SCHEMA,
    title: `mood demo: ${s.dataSet}${interrupted ? ' (partial)' : ''}`,
    created: new Date().toISOString(),
    settings,
    ...(records.length ? { training: { epochs: records } } : {}),
    protocols,
    notes,
  };
  const resultsFile = path.join(s.outputDir, 'results.json');
  writeJson(resultsFile, results);
  let reportFile: string | null = null;
  if (s.report) {
    try {
      reportFile = writeReport(results, s.outputDir).html;
    } catch (e) {
      explainNoSpace(e, path.join(s.outputDir, 'report.html'));
    }
  }
  for (const p of protocols) {
    if (p.rows.length === 0) continue;
    print(`\n${p.protocol} AUROC (%)${p.incomplete ? ` [incomplete: ${p.incomplete}]` : ''}\n${aurocTable(p)}\n`);
  }
  print(`\nresults: ${resultsFile}\n${reportFile ? `report:  ${reportFile}\n` : ''}`);
  return { results, resultsFile, reportFile, interrupted };
}

/** knn's k=50 default needs 50+ training rows; small demo subsets get a smaller k. */
function detectorOptionsFor(metric: string) {
  return metric === 'knn' ? { k: 10 } : {};
}

function writeScores(outputDir: string, sink: ScoreSink): void {
  const file = path.join(outputDir, sink.file);
  fs.mkdirSync(path.dirname(file), { recursive: true });
  const arrays: Record<string, ReturnType<typeof ndarray>> = {};
  for (const [k, v] of sink.arrays) arrays[k] = ndarray('float64', [v.length], v);
  try {
    writeNpz(file, arrays);
  } catch (e) {
    explainNoSpace(e, file);
  }
}
