/**
 * What each stage behind a demo table saw, in words for results.json's `data_seen`: which images
 * pre-training used (never labels), whose labels fine-tuning used, and what the detectors were fitted
 * on. A one-class number only means "one-class" when no stage saw the OOD classes' labels; these
 * sentences let a reader check that for every table.
 */
import type { DataSeen } from '../report/schema';
import { rangeText, type DemoContext } from './context';
import type { InitKind } from './weights';

/** The start weights' history: MIM images (no labels), a random init, or a given file. */
export function pretrainingSeen(ctx: DemoContext, init: InitKind): string {
  const s = ctx.s;
  if (init === 'mim') return `MIM on the ${ctx.trainId.length} training images of classes ${rangeText(ctx.idClasses)}, no labels (${s.pretrainEpochs} epochs)`;
  if (init === 'checkpoint') return `whatever trained ${s.checkpoint} (not this demo)`;
  return 'none (seeded random init)';
}

/** The fine-tuning labels: the ID classes' (or none with --epochs 0). */
export function finetuningSeen(ctx: DemoContext): string {
  const s = ctx.s;
  return s.epochs > 0
    ? `labels of classes ${rangeText(ctx.idClasses)} (${ctx.trainId.length} training images, ${s.epochs} epochs)`
    : 'none (--epochs 0: the start weights are evaluated)';
}

/** One-class tables: the detector of each ID class sees that class's training features only. */
export function oneClassSeen(ctx: DemoContext, pretraining: string, finetuning: string, idClasses: number[], pool: number[]): DataSeen {
  const per = ctx.s.trainPerClass > 0 ? `${ctx.s.trainPerClass} ` : '';
  return {
    pretraining,
    finetuning,
    detectors: `the ID class's own ${per}training images' features, no labels (one detector per ID class)`,
    id: `test images of the ID class (each of classes ${rangeText(idClasses)} in turn)`,
    ood: `test images of each other class of ${rangeText(pool)}, one OOD set each (the row is their mean)`,
  };
}

/** The multi-class table: detectors fitted on the ID classes, OOD = held-out classes and far-OOD sets. */
export function multiClassSeen(ctx: DemoContext, init: InitKind, oodSets: string[]): DataSeen {
  const ids = rangeText(ctx.idClasses);
  return {
    pretraining: pretrainingSeen(ctx, init),
    finetuning: finetuningSeen(ctx),
    detectors: `feature metrics: training features of classes ${ids} (${ctx.trainId.length} images); logit metrics: the fine-tuned classifier, no fit`,
    id: `test images of classes ${ids} (${ctx.testId.length})`,
    ood: oodSets.join('; '),
  };
}
