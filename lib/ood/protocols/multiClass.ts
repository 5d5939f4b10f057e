/**
 * Multi-class protocol (eval_with_features.py with `--class_idx` unset): fit once on the ID training
 * set, score the ID test set, then each OOD set separately; one row per OOD set and their average.
 */
import type { BaseDetector, Detector } from '../detectors/base';
import { averageRows, evaluateRow, header, newDetector } from './common';
import type { MetricChoice, MetricRow, OodRow, ProtocolHeader, SampleSet } from './types';

export interface MultiClassInput extends MetricChoice {
  train: SampleSet;
  test: SampleSet;
  /** OOD sets by name, in table order. */
  ood: Record<string, SampleSet> | Array<{ name: string } & SampleSet>;
  /** Keep per-sample scores in the result. */
  keepScores?: boolean;
}

export interface MultiClassResult extends ProtocolHeader {
  protocol: 'multi-class';
  n_in: number;
  rows: OodRow[];
  average: MetricRow;
  scores?: { in: Float64Array; ood: Record<string, Float64Array> };
}

export async function multiClassProtocol(input: MultiClassInput): Promise<MultiClassResult> {
  const sets = Array.isArray(input.ood) ? input.ood.map((o) => [o.name, o] as const) : Object.entries(input.ood);
  if (sets.length === 0) throw new RangeError('multiClassProtocol: no OOD sets given');
  const det: Detector = newDetector(input);
  try {
    await det.fit(input.train);
    const sIn = await det.score(input.test);
    const rows: OodRow[] = [];
    const scores: Record<string, Float64Array> = {};
    for (const [name, set] of sets) {
      const sOut = await det.score(set);
      rows.push(evaluateRow(name, sIn, sOut, det, input));
      if (input.keepScores) scores[name] = sOut;
    }
    const nTrain = (det as Partial<BaseDetector>).trainSize ?? 0;
    return {
      protocol: 'multi-class',
      ...header(det, input, nTrain),
      n_in: sIn.length,
      rows,
      average: averageRows(rows),
      ...(input.keepScores ? { scores: { in: sIn, ood: scores } } : {}),
    };
  } finally {
    det.dispose();
  }
}
