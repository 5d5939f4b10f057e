/**
 * `mood demo`: MOOD's pipeline end to end on one data set, as a list of stages — data -> start
 * weights (checkpoint, MIM pre-training or scratch) -> fine-tuning -> features and logits -> OOD
 * evaluation in both protocols -> results.json, scores (.npz), HTML report with PNG plots, and the
 * AUROC tables on stdout. Every stage is resumable (stage markers, training checkpoints); Ctrl-C
 * writes the partial results and the report of what finished.
 */
import * as path from 'node:path';
import type { Beit } from '../models/beit';
import { RESULTS_SCHEMA, type ProtocolResult, type ResultsFile } from '../report/schema';
import { writeReport } from '../report';
import { loadTrainModule } from './backend';
import { hash, perClassSample, prepare, type DemoContext, type DemoDeps, type DemoRun } from './context';
import { extractFeatures } from './features';
import { multiClassStage } from './evaluate';
import { heldOutOneClassStage, oneClassMetrics, pretrainedOneClassStage } from './one-class';
import { epochCheckpoint, finetune } from './finetune';
import type { DemoSettings } from './options';
import { InterruptedError, explainNoSpace, writeJson } from './stages';
import { printedTable } from './table';
import { buildModel, startWeights, type StartWeights } from './weights';

export type { DemoDeps } from './context';
export { diskEstimate, perClassSample } from './context';

export interface DemoOutcome {
  results: ResultsFile;
  resultsFile: string;
  reportFile: string | null;
  interrupted: boolean;
}

export async function runDemo(s: DemoSettings, deps: DemoDeps = {}): Promise<DemoOutcome> {
  const ctx = await prepare(s, deps);
  const run: DemoRun = { notes: [], records: [], protocols: [], interrupted: false };
  let model: Beit | null = null;
  try {
    const built = await buildModel(ctx);
    model = built.model;
    const start = await startWeights(ctx, run, model, built.opts);
    const trained = await fineTune(ctx, run, model, start);
    ctx.interrupt.check('feature extraction');
    const features = await extractFeatures(ctx, model, trained.weights);
    const evalKey = hash({ ftKey: trained.key, metrics: s.metrics, testIdx: hash(Array.from(ctx.testIdx)), far: s.farOod, ood: ctx.oodClasses });
    await multiClassStage(ctx, run, features, evalKey, start.init);
    const ocMetrics = oneClassMetrics(ctx, run);
    const clock = { started: Date.now() };
    if (ocMetrics.length === 0) run.notes.push('One-class tables skipped: --metrics has no feature metric.');
    else {
      await heldOutOneClassStage(ctx, run, features, start.init, ocMetrics, evalKey, clock);
      // Last: it loads other weights into the model.
      await pretrainedOneClassStage(ctx, run, model, start, ocMetrics, clock);
    }
  } catch (e) {
    if (!(e instanceof InterruptedError)) throw e;
    run.interrupted = true;
    run.notes.push(`Partial results: ${e.message}; run the same command again to resume.`);
  } finally {
    model?.dispose();
    ctx.release();
  }
  return writeOutputs(ctx, run);
}

/** Fine-tuning on the ID classes (when --epochs > 0); the weights the features come from. */
async function fineTune(ctx: DemoContext, run: DemoRun, model: Beit, start: StartWeights): Promise<{ key: string; weights: string }> {
  const s = ctx.s;
  const key = hash({ initKey: start.key, epochs: s.epochs, bs: s.batchSize, lr: s.lr, wd: s.weightDecay, id: ctx.idClasses });
  if (s.epochs === 0) return { key, weights: start.file };
  const train = ctx.deps.train ?? (await loadTrainModule());
  // The learning curve's earlier points on a seeded per-class sample of the ID test split; the last
  // epoch on all of it (the accuracy results.json reports). Evaluation leaves the weights alone.
  const curveIdx = s.curvePerClass > 0 ? perClassSample(ctx.testId.targets, s.curvePerClass, s.seed + 2) : null;
  const curve = curveIdx && curveIdx.length < ctx.testId.length ? ctx.testId.subset(curveIdx) : undefined;
  await finetune({ settings: s, store: ctx.store, key, interrupt: ctx.interrupt, data: ctx.data, train, log: ctx.log }, model, ctx.trainId, ctx.testId, run.records, curve);
  return { key, weights: epochCheckpoint(s.outputDir, s.epochs - 1) };
}

/** The order of the tables: one-class without fine-tuning, one-class on held-out classes, multi-class (stages run in another order). */
function orderTables(p: ProtocolResult[]): ProtocolResult[] {
  const rank = (x: ProtocolResult) => (x.protocol === 'multi-class' ? 2 : x.variant === 'held-out' ? 1 : 0);
  return [...p].sort((a, b) => rank(a) - rank(b));
}

/** results.json, the report, the tables on stdout. */
function writeOutputs(ctx: DemoContext, run: DemoRun): DemoOutcome {
  const s = ctx.s;
  const { notes, records, interrupted } = run;
  const protocols = orderTables(run.protocols);
  const settings = ctx.settings;
  settings.elapsed_s = Math.round((Date.now() - ctx.started) / 1000);
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
    ctx.print(`\n${printedTable(p)}\n`);
  }
  ctx.print(`\nresults: ${resultsFile}\n${reportFile ? `report:  ${reportFile}\n` : ''}`);
  return { results, resultsFile, reportFile, interrupted };
}

