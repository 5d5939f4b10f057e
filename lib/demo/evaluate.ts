/**
 * The demo's OOD evaluation stages on the extracted features: the multi-class protocol (ID test vs
 * held-out classes and far-OOD sets) and the one-class protocol (each class in turn as ID, within a
 * time budget). Each finished protocol — and each one-class class — leaves a marker with its rows and
 * its scores file, so a re-run only computes what is missing.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { writeNpz, ndarray } from '../npy';
import type { EvalRow, ProtocolResult } from '../report/schema';
import { rangeText, type DemoContext, type DemoRun } from './context';
import { FAR_OOD_NAMES } from './far-ood';
import type { DemoFeatures } from './features';
import { metricInfo, multiClassRows, oneClassRows, ScoreSink, selectRows } from './ood-eval';
import { explainNoSpace } from './stages';

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

function protocolResult(ctx: DemoContext, protocol: ProtocolResult['protocol'], description: string, rows: EvalRow[], incomplete?: string): ProtocolResult {
  return {
    protocol,
    description,
    fpr95_convention: 'id-positive-percentile',
    aupr_convention: 'average-precision',
    tpr_level: 0.95,
    metrics: metricInfo(ctx.s.metrics),
    rows,
    ...(incomplete ? { incomplete } : {}),
  };
}

function idName(ctx: DemoContext): string {
  return `classes ${rangeText(ctx.idClasses)}`;
}

export async function multiClassStage(ctx: DemoContext, run: DemoRun, f: DemoFeatures, key: string): Promise<void> {
  const s = ctx.s;
  const heldOut = ctx.oodClasses.length ? [`held-out classes ${rangeText(ctx.oodClasses)}`] : [];
  const farNames = s.farOod.map((k) => FAR_OOD_NAMES[k]);
  if (heldOut.length + f.far.length === 0) {
    run.notes.push('Multi-class protocol skipped: no held-out classes (every class is ID) and --far_ood none.');
    return;
  }
  const description =
    `Fine-tuned on ${idName(ctx)}; detectors fitted on their training features; ID = test images of ${idName(ctx)}; OOD = ` +
    [...heldOut, ...(farNames.length ? [`far-OOD sets built from ${f.farCount} ID test images (${farNames.join(', ')})`] : [])].join(' and ') +
    '.';
  let rows = ctx.store.get<EvalRow[]>('multi-class', key);
  if (!rows) {
    ctx.log('multi-class OOD evaluation');
    const sink = new ScoreSink('scores/multi-class.npz');
    const oods = [...heldOut.map((name) => ({ name, rows: selectRows(f.test, (l) => ctx.oodClasses.includes(l)) })), ...f.far];
    rows = await multiClassRows(idName(ctx), selectRows(f.train, ctx.isId), selectRows(f.test, ctx.isId), oods, { metrics: s.metrics, detectorOptions: detectorOptionsFor }, sink);
    writeScores(s.outputDir, sink);
    ctx.store.set('multi-class', key, rows);
  }
  run.protocols.push(protocolResult(ctx, 'multi-class', description, rows));
}

export async function oneClassStage(ctx: DemoContext, run: DemoRun, f: DemoFeatures, key: string): Promise<void> {
  const s = ctx.s;
  const rows: EvalRow[] = [];
  const skipped: number[] = [];
  const started = Date.now();
  let computed = 0; // at least one class per run, so a tiny budget still makes progress
  for (const c of ctx.oneClassList) {
    const done = ctx.store.get<EvalRow[]>(`one-class-${c}`, key);
    if (done) {
      rows.push(...done);
      continue;
    }
    if (ctx.interrupt.stopRequested || (computed > 0 && s.timeBudget > 0 && (Date.now() - started) / 1000 > s.timeBudget)) {
      skipped.push(c);
      continue;
    }
    ctx.log(`one-class: class ${c} (${ctx.classes[c]}) as ID`);
    const sink = new ScoreSink(`scores/one-class-${c}.npz`);
    const r = await oneClassRows(c, ctx.classes, f.train, f.test, { metrics: s.metrics, detectorOptions: detectorOptionsFor }, sink);
    writeScores(s.outputDir, sink);
    ctx.store.set(`one-class-${c}`, key, r);
    rows.push(...r);
    computed++;
  }
  if (skipped.length && ctx.interrupt.stopRequested) run.interrupted = true;
  const description =
    `Each class in turn is ID: the detector is fitted on that class's training features only, its test images are ID and every other class ` +
    `is a separate OOD set (mean over them, the reference's loop). The backbone is the one fine-tuned on ${idName(ctx)}, so for classes outside it ` +
    `neither backbone nor detector saw their labels.` +
    (metricInfo(s.metrics).some((m) => m.kind === 'logit')
      ? ' Logit metrics need no fit, so their scores do not depend on the ID class: averaged over all classes their AUROC is 50 by symmetry (shown for completeness).'
      : '');
  const incomplete = skipped.length ? `classes ${skipped.join(', ')} not evaluated (${ctx.interrupt.stopRequested ? 'interrupted' : `time budget of ${s.timeBudget} s reached`}); re-run to continue` : undefined;
  run.protocols.unshift(protocolResult(ctx, 'one-class', description, rows, incomplete));
}
