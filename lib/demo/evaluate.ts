/**
 * The demo's multi-class evaluation stage on the extracted features (ID test vs held-out classes and
 * far-OOD sets) and what the evaluation stages share: the protocol record (title, what each stage
 * saw), detector options, score files. A finished protocol leaves a marker with its rows and its
 * scores file, so a re-run only computes what is missing. The one-class stages are in one-class.ts.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { writeNpz, ndarray } from '../npy';
import type { DataSeen, EvalRow, MetricInfo, ProtocolResult } from '../report/schema';
import { rangeText, type DemoContext, type DemoRun } from './context';
import { FAR_OOD_NAMES } from './far-ood';
import type { DemoFeatures } from './features';
import { metricInfo, multiClassRows, oneClassRows, ScoreSink, selectRows } from './ood-eval';
import { multiClassSeen } from './data-seen';
import { explainNoSpace } from './stages';
import type { InitKind } from './weights';

/** knn's k=50 default needs 50+ training rows; small demo subsets get a smaller k. */
export function detectorOptionsFor(metric: string) {
  return metric === 'knn' ? { k: 10 } : {};
}

export function writeScores(outputDir: string, sink: ScoreSink): void {
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

/** How a protocol's table is headed and what its stages saw. */
export interface ProtocolHeading {
  title: string;
  variant?: string;
  description: string;
  dataSeen: DataSeen;
  arms?: string[];
}

export function protocolResult(protocol: ProtocolResult['protocol'], h: ProtocolHeading, metrics: MetricInfo[], rows: EvalRow[], incomplete?: string): ProtocolResult {
  return {
    protocol,
    ...(h.variant ? { variant: h.variant } : {}),
    title: h.title,
    data_seen: h.dataSeen,
    ...(h.arms ? { arms: h.arms } : {}),
    description: h.description,
    fpr95_convention: 'id-positive-percentile',
    aupr_convention: 'average-precision',
    tpr_level: 0.95,
    metrics,
    rows,
    ...(incomplete ? { incomplete } : {}),
  };
}

function idName(ctx: DemoContext): string {
  return `classes ${rangeText(ctx.idClasses)}`;
}

export async function multiClassStage(ctx: DemoContext, run: DemoRun, f: DemoFeatures, key: string, init: InitKind): Promise<void> {
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
  const farSets = farNames.length ? [`${farNames.join(', ')}: far-OOD sets made from ${f.farCount} ID test images`] : [];
  const heading: ProtocolHeading = {
    title: `Multi-class: classes ${rangeText(ctx.idClasses)} as ID (the fine-tuning classes) vs ${[...heldOut, ...(farNames.length ? ['far-OOD sets'] : [])].join(' and ')}`,
    description,
    dataSeen: multiClassSeen(ctx, init, [...heldOut.map((h) => `test images of ${h} (no stage of this demo saw their images or labels)`), ...farSets]),
  };
  run.protocols.push(protocolResult('multi-class', heading, metricInfo(s.metrics), rows));
}

