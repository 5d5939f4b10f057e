/**
 * The demo's one-class stages, leakage-free by construction: a one-class number is only one when no
 * stage saw labels of the classes used as OOD, so the fine-tuned backbone (trained on the ID classes'
 * labels) is never evaluated one-class with those classes in play. Two tables:
 * - pre-trained backbone: every class in turn as ID on the backbone before any fine-tuning — MIM
 *   (images of the ID classes, no labels) next to the seeded random init it grew from, with the
 *   difference (MOOD's MIM vs scratch comparison, one-class);
 * - held-out classes: each class the backbone never saw (not fine-tuned on, not pre-trained on) as
 *   ID against the other held-out classes, on the fine-tuned backbone's features.
 * Feature metrics only: a logit metric scores every image the same whatever the ID class, so its
 * one-class AUROCs average to 50 by construction (AUROC(c vs c') + AUROC(c' vs c) = 1). Each class
 * leaves a marker with its rows and scores; the loop stops starting classes after --time_budget.
 */
import type { Beit } from '../models/beit';
import type { EvalRow, MetricInfo } from '../report/schema';
import { hash, rangeText, type DemoContext, type DemoRun } from './context';
import { finetuningSeen, oneClassSeen, pretrainingSeen } from './data-seen';
import { detectorOptionsFor, protocolResult, writeScores, type ProtocolHeading } from './evaluate';
import { extractSplits, type DemoFeatures } from './features';
import { loadWeights } from './finetune';
import { metricInfo, oneClassRows, ScoreSink, selectRows, type FeatureRows } from './ood-eval';
import type { StartWeights } from './weights';

type Splits = Pick<DemoFeatures, 'train' | 'test'>;

/** One backbone of a one-class table: its name (when the table compares several) and features. */
interface Arm {
  name?: string;
  features: () => Promise<Splits>;
}

interface OneClassSpec extends Omit<ProtocolHeading, 'arms'> {
  /** Short name (markers, score files, plot names). */
  variant: string;
  /** Classes evaluated as ID in turn. */
  classes: number[];
  /** The classes in play (ID and OOD): test images of other classes are left out. */
  pool: number[];
  arms: Arm[];
}

/** Shared by both one-class stages: the budget's clock. */
export interface OneClassClock {
  started: number;
}

/** The one-class columns: feature metrics only (a note says why when logit metrics were asked for). */
export function oneClassMetrics(ctx: DemoContext, run: DemoRun): MetricInfo[] {
  const all = metricInfo(ctx.s.metrics);
  const logit = all.filter((m) => m.kind !== 'feature').map((m) => m.name);
  if (logit.length) {
    run.notes.push(
      `One-class tables show feature metrics only: ${logit.join(', ')} score an image the same whatever the ID class ` +
        `(no fit on it), so their one-class AUROCs average to 50 by construction (AUROC(c vs c') + AUROC(c' vs c) = 1).`,
    );
  }
  return all.filter((m) => m.kind === 'feature');
}

async function runOneClass(ctx: DemoContext, run: DemoRun, spec: OneClassSpec, metrics: MetricInfo[], key: string, clock: OneClassClock): Promise<void> {
  const s = ctx.s;
  const rows: EvalRow[] = [];
  const skipped: number[] = [];
  const cached = spec.arms.map(() => null as Splits | null);
  const featuresOf = async (i: number) => (cached[i] ??= await spec.arms[i].features());
  const marker = (c: number, i: number) => `one-class-${spec.variant}-${i}-${c}`;
  const inPool = (l: number) => spec.pool.includes(l);
  let computed = 0; // at least one class per stage and run, so a tiny budget still makes progress
  for (const c of spec.classes) {
    const done = spec.arms.map((_, i) => ctx.store.get<EvalRow[]>(marker(c, i), key));
    if (done.every((d) => d)) {
      done.forEach((d) => rows.push(...d!));
      continue;
    }
    if (ctx.interrupt.stopRequested || (computed > 0 && s.timeBudget > 0 && (Date.now() - clock.started) / 1000 > s.timeBudget)) {
      skipped.push(c);
      continue;
    }
    const classRows: EvalRow[] = [];
    for (let i = 0; i < spec.arms.length; i++) {
      const arm = spec.arms[i];
      let r = done[i];
      if (!r) {
        ctx.log(`one-class (${spec.variant}${arm.name ? `, ${arm.name}` : ''}): class ${c} (${ctx.classes[c]}) as ID`);
        const f = await featuresOf(i);
        const sink = new ScoreSink(`scores/one-class-${spec.variant}${arm.name ? `-${arm.name.replace(/\s+/g, '-')}` : ''}-${c}.npz`);
        const test: FeatureRows = spec.pool.length === ctx.classes.length ? f.test : selectRows(f.test, inPool);
        r = (await oneClassRows(c, ctx.classes, f.train, test, { metrics: metrics.map((m) => m.name), detectorOptions: detectorOptionsFor }, sink)).map((row) => ({ ...row, ...(arm.name ? { arm: arm.name } : {}) }));
        writeScores(s.outputDir, sink);
        ctx.store.set(marker(c, i), key, r);
      }
      classRows.push(...r);
    }
    rows.push(...classRows);
    computed++;
  }
  if (skipped.length && ctx.interrupt.stopRequested) run.interrupted = true;
  const incomplete = skipped.length
    ? `classes ${skipped.join(', ')} not evaluated (${ctx.interrupt.stopRequested ? 'interrupted' : `time budget of ${s.timeBudget} s reached`}); re-run to continue`
    : undefined;
  const names = spec.arms.map((a) => a.name).filter((n): n is string => !!n);
  const heading: ProtocolHeading = { title: spec.title, variant: spec.variant, description: spec.description, dataSeen: spec.dataSeen, ...(names.length ? { arms: names } : {}) };
  run.protocols.push(protocolResult('one-class', heading, metrics, rows, incomplete));
}

/**
 * One-class on the backbone before fine-tuning: MIM pre-trained and its random init side by side,
 * or the one start backbone there is (scratch, --checkpoint). Its features come from passes of
 * their own over the sampled splits (cached per weights file).
 */
export async function pretrainedOneClassStage(ctx: DemoContext, run: DemoRun, model: Beit, start: StartWeights, metrics: MetricInfo[], clock: OneClassClock): Promise<void> {
  const pass = (file: string, tag: string) => async () => {
    await loadWeights(model, file);
    return extractSplits(ctx, model, file, tag);
  };
  const arms: Arm[] =
    start.init === 'mim'
      ? [
          { name: 'MIM', features: pass(start.file, ' (MIM backbone)') },
          { name: 'random init', features: pass(start.randomInit!, ' (random init)') },
        ]
      : [{ features: pass(start.file, ' (start backbone)') }];
  const classes = ctx.oneClassList;
  const all = Array.from(ctx.classes.keys());
  const backbone =
    start.init === 'mim'
      ? `MIM pre-trained backbone vs its random init (difference = MIM - random init)`
      : start.init === 'checkpoint'
        ? `backbone from ${ctx.s.checkpoint}`
        : `random-init backbone (--no-pretrain: no MIM pre-training)`;
  const pretraining = start.init === 'mim' ? `MIM arm: ${pretrainingSeen(ctx, 'mim')}; random init arm: none` : pretrainingSeen(ctx, start.init);
  const key = hash({ start: start.key, metrics: metrics.map((m) => m.name), testIdx: hash(Array.from(ctx.testIdx)) });
  await runOneClass(
    ctx,
    run,
    {
      variant: 'pretrained',
      title: `One-class, classes ${rangeText(classes)}, no fine-tuning: ${backbone}; no stage saw any label`,
      description:
        `Each class in turn is ID: its detector is fitted on that class's training features only; its test images are ID and every other class is a ` +
        `separate OOD set (the row is their mean, the reference's loop). The backbone was not fine-tuned, so no stage saw a label of any class.`,
      dataSeen: oneClassSeen(ctx, pretraining, 'none (not fine-tuned: no labels)', classes, all),
      classes,
      pool: all,
      arms,
    },
    metrics,
    key,
    clock,
  );
}

/**
 * One-class among the held-out classes on the fine-tuned backbone: for each class no stage saw
 * (neither its labels nor, with MIM on the ID images, its images), that class as ID against the
 * other held-out classes. Needs two held-out classes.
 */
export async function heldOutOneClassStage(ctx: DemoContext, run: DemoRun, f: DemoFeatures, init: StartWeights['init'], metrics: MetricInfo[], key: string, clock: OneClassClock): Promise<void> {
  const held = ctx.oodClasses;
  if (held.length < 2) {
    run.notes.push(`One-class on held-out classes skipped: it needs at least 2 classes outside --id_classes (got ${held.length ? rangeText(held) : 'none'}).`);
    return;
  }
  const classes = held.filter((c) => ctx.oneClassList.includes(c));
  if (classes.length === 0) return;
  const ids = rangeText(ctx.idClasses);
  await runOneClass(
    ctx,
    run,
    {
      variant: 'held-out',
      title:
        ctx.s.epochs > 0
          ? `One-class on held-out classes ${rangeText(held)}: backbone fine-tuned on classes ${ids}, never trained on the classes in this table`
          : `One-class on held-out classes ${rangeText(held)}: start backbone, not fine-tuned (--epochs 0)`,
      description:
        `Each held-out class in turn is ID against each other held-out class (the row is their mean); classes ${ids}` +
        `${ctx.s.epochs > 0 ? ', whose labels the backbone was fine-tuned on,' : ''} take no part. The detector is fitted on the ID class's training features only.`,
      dataSeen: oneClassSeen(ctx, pretrainingSeen(ctx, init), `${finetuningSeen(ctx)}; none of classes ${rangeText(held)}`, classes, held),
      classes,
      pool: held,
      arms: [{ features: async () => f }],
    },
    metrics,
    `${key}:held-out:${metrics.map((m) => m.name).join(',')}`,
    clock,
  );
}
