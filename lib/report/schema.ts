/**
 * The results file (`results.json`) the demo writes and `mood report` renders. Plain JSON, versioned
 * by `schema`; every number the report shows comes from here, so a report can be rebuilt (or the
 * numbers re-checked) from the file alone.
 *
 * Conventions (named in the file, never implied):
 * - AUROC: OOD as positive on oriented scores (equal to ID-positive AUROC on the negated score).
 * - AUPR-In / AUPR-Out: ID / OOD as positive; `aupr_convention` says average precision or trapezoid.
 * - FPR95: `fpr95_convention` (MOOD's default 'id-positive-percentile': share of OOD accepted at the
 *   threshold that accepts 95 % of ID).
 * - One-class rows are the reference's loop: the ID class against every other class separately,
 *   averaged (`parts` holds each pair); the row's curves pool all other classes.
 * - What the numbers mean depends on what each stage saw: `title` names the protocol and `data_seen`
 *   says which images and labels pre-training, fine-tuning and the detectors saw, and what is ID and
 *   OOD (a one-class result whose backbone was trained on the OOD classes' labels is not one).
 */

export const RESULTS_SCHEMA = 'mood-results/1';

export type SettingValue = string | number | boolean | null;

export interface EpochRecord {
  epoch: number;
  train_loss: number;
  test_loss?: number | null;
  /** Top-1 accuracy on the ID test set, in %. */
  test_acc1?: number | null;
  /** Test images behind test_loss/test_acc1 (fewer than the split: a seeded sample, for the curve). */
  test_images?: number | null;
  lr?: number | null;
  seconds?: number | null;
}

export interface MetricInfo {
  name: string;
  kind: 'feature' | 'logit' | 'head';
  orientation: 'higher_is_ood' | 'higher_is_id';
}

/** ROC points (OOD positive), sklearn `roc_curve` layout, possibly thinned for plotting. */
export interface RocPoints {
  fpr: number[];
  tpr: number[];
}

/** Per-bin share of each set's samples (each sums to 1) over common `edges` (bins + 1 values). */
export interface ScoreHistogram {
  edges: number[];
  in: number[];
  ood: number[];
  /** Samples outside [edges[0], edges[last]] were counted in the end bins. */
  clipped?: boolean;
}

/** Where the raw per-sample scores are: keys of an .npz next to the results file. */
export interface ScoreRefs {
  file: string;
  in: string;
  ood: string;
}

export interface MetricNumbers {
  auroc: number;
  aupr_in: number;
  aupr_out: number;
  fpr95: number;
  detection_error?: number;
}

export interface EvalPart extends MetricNumbers {
  ood: string;
  n_ood: number;
  scores?: ScoreRefs;
}

export interface EvalRow extends MetricNumbers {
  /** The ID set, e.g. 'class 0 (T-shirt/top)' or 'classes 0-5'. */
  id: string;
  /** The OOD set, e.g. 'held-out classes 6-9', 'gaussian noise', 'other classes (mean of 9)'. */
  ood: string;
  metric: string;
  n_in: number;
  n_ood: number;
  roc?: RocPoints;
  histogram?: ScoreHistogram;
  scores?: ScoreRefs;
  /** One-class: the per-OOD-class rows whose mean this row is. */
  parts?: EvalPart[];
  /** The backbone this row's features came from, one of the protocol's `arms` (when it has them). */
  arm?: string;
}

/** Which data and labels each stage behind a protocol's numbers saw (plain sentences). */
export interface DataSeen {
  /** Pre-training of the backbone: its images, and that it saw no labels (or 'none'). */
  pretraining: string;
  /** Fine-tuning of the backbone: the labels (classes) it trained on (or 'none'). */
  finetuning: string;
  /** What the OOD detectors were fitted on. */
  detectors: string;
  /** The ID test images. */
  id: string;
  /** The OOD test images. */
  ood: string;
}

export const DATA_SEEN_KEYS: ReadonlyArray<keyof DataSeen> = ['pretraining', 'finetuning', 'detectors', 'id', 'ood'];

export interface ProtocolResult {
  protocol: 'one-class' | 'multi-class';
  /** Short name of the variant when a file has several of one protocol (e.g. 'held-out'); plot names use it. */
  variant?: string;
  /** Heading naming the protocol, e.g. 'One-class on held-out classes 6-9, never seen by the backbone'. */
  title?: string;
  data_seen?: DataSeen;
  /**
   * Backbones compared side by side (e.g. ['MIM', 'random init']): every row names its `arm`, and
   * the tables show each arm and the difference arms[0] - arms[1].
   */
  arms?: string[];
  description: string;
  fpr95_convention: string;
  aupr_convention: string;
  tpr_level: number;
  metrics: MetricInfo[];
  rows: EvalRow[];
  /** Set when the protocol stopped early (time budget, interruption): what was left out. */
  incomplete?: string;
}

export interface ResultsFile {
  schema: typeof RESULTS_SCHEMA;
  title?: string;
  /** ISO-8601 time the results were written. */
  created: string;
  /** Run settings as flat key -> value (shown as the settings table). */
  settings: Record<string, SettingValue>;
  training?: { epochs: EpochRecord[] };
  protocols: ProtocolResult[];
  notes?: string[];
}

export class ResultsFormatError extends Error {
  constructor(file: string, where: string, expected: string, got: unknown) {
    const shown = got === undefined ? 'nothing' : JSON.stringify(got)?.slice(0, 80);
    super(`${file}: ${where} must be ${expected} (got ${shown})`);
    this.name = 'ResultsFormatError';
  }
}

/** Checks the shape of a parsed results file, naming the first bad key; returns it typed. */
export function validateResults(v: unknown, file = 'results.json'): ResultsFile {
  const fail = (where: string, expected: string, got: unknown): never => {
    throw new ResultsFormatError(file, where, expected, got);
  };
  const obj = (x: unknown, where: string): Record<string, unknown> =>
    x !== null && typeof x === 'object' && !Array.isArray(x) ? (x as Record<string, unknown>) : fail(where, 'an object', x);
  const arr = (x: unknown, where: string): unknown[] => (Array.isArray(x) ? x : fail(where, 'an array', x));
  const str = (x: unknown, where: string): string => (typeof x === 'string' ? x : fail(where, 'a string', x));
  const num = (x: unknown, where: string, lo = -Infinity, hi = Infinity): number =>
    typeof x === 'number' && Number.isFinite(x) && x >= lo && x <= hi ? x : fail(where, `a finite number in [${lo}, ${hi}]`, x);
  const optNum = (x: unknown, where: string) => (x === undefined || x === null ? undefined : num(x, where));
  const nums = (x: unknown, where: string, lo?: number, hi?: number) => arr(x, where).map((e, i) => num(e, `${where}[${i}]`, lo, hi));
  const metricsOf = (o: Record<string, unknown>, where: string, withDetection = true) => {
    num(o.auroc, `${where}.auroc`, 0, 1);
    num(o.aupr_in, `${where}.aupr_in`, 0, 1);
    num(o.aupr_out, `${where}.aupr_out`, 0, 1);
    num(o.fpr95, `${where}.fpr95`, 0, 1);
    if (withDetection) optNum(o.detection_error, `${where}.detection_error`);
  };
  const scoresOf = (x: unknown, where: string) => {
    if (x === undefined) return;
    const s = obj(x, where);
    str(s.file, `${where}.file`);
    str(s.in, `${where}.in`);
    str(s.ood, `${where}.ood`);
  };

  const r = obj(v, '(top level)');
  if (r.schema !== RESULTS_SCHEMA) fail('schema', `'${RESULTS_SCHEMA}'`, r.schema);
  str(r.created, 'created');
  if (r.title !== undefined) str(r.title, 'title');
  const settings = obj(r.settings, 'settings');
  for (const [k, x] of Object.entries(settings)) {
    if (x !== null && !['string', 'number', 'boolean'].includes(typeof x)) fail(`settings.${k}`, 'a string, number, boolean or null', x);
  }
  if (r.training !== undefined) {
    const t = obj(r.training, 'training');
    arr(t.epochs, 'training.epochs').forEach((e, i) => {
      const w = `training.epochs[${i}]`;
      const o = obj(e, w);
      num(o.epoch, `${w}.epoch`, 0);
      num(o.train_loss, `${w}.train_loss`);
      for (const k of ['test_loss', 'test_acc1', 'test_images', 'lr', 'seconds']) optNum(o[k], `${w}.${k}`);
    });
  }
  arr(r.protocols, 'protocols').forEach((p, pi) => {
    const w = `protocols[${pi}]`;
    const o = obj(p, w);
    if (o.protocol !== 'one-class' && o.protocol !== 'multi-class') fail(`${w}.protocol`, "'one-class' or 'multi-class'", o.protocol);
    str(o.description, `${w}.description`);
    str(o.fpr95_convention, `${w}.fpr95_convention`);
    str(o.aupr_convention, `${w}.aupr_convention`);
    num(o.tpr_level, `${w}.tpr_level`, 0, 1);
    if (o.incomplete !== undefined) str(o.incomplete, `${w}.incomplete`);
    if (o.title !== undefined) str(o.title, `${w}.title`);
    if (o.variant !== undefined) str(o.variant, `${w}.variant`);
    if (o.data_seen !== undefined) {
      const d = obj(o.data_seen, `${w}.data_seen`);
      for (const k of DATA_SEEN_KEYS) str(d[k], `${w}.data_seen.${k}`);
    }
    const arms = o.arms === undefined ? null : arr(o.arms, `${w}.arms`).map((a, i) => str(a, `${w}.arms[${i}]`));
    const names = new Set<string>();
    arr(o.metrics, `${w}.metrics`).forEach((m, mi) => {
      const mo = obj(m, `${w}.metrics[${mi}]`);
      names.add(str(mo.name, `${w}.metrics[${mi}].name`));
      if (!['feature', 'logit', 'head'].includes(mo.kind as string)) fail(`${w}.metrics[${mi}].kind`, "'feature', 'logit' or 'head'", mo.kind);
      if (mo.orientation !== 'higher_is_ood' && mo.orientation !== 'higher_is_id') fail(`${w}.metrics[${mi}].orientation`, "'higher_is_ood' or 'higher_is_id'", mo.orientation);
    });
    arr(o.rows, `${w}.rows`).forEach((row, ri) => {
      const rw = `${w}.rows[${ri}]`;
      const ro = obj(row, rw);
      str(ro.id, `${rw}.id`);
      str(ro.ood, `${rw}.ood`);
      const metric = str(ro.metric, `${rw}.metric`);
      if (!names.has(metric)) fail(`${rw}.metric`, `one of the protocol's metrics (${[...names].join(', ')})`, metric);
      if (arms && !arms.includes(ro.arm as string)) fail(`${rw}.arm`, `one of the protocol's arms (${arms.join(', ')})`, ro.arm);
      if (!arms && ro.arm !== undefined) fail(`${rw}.arm`, 'absent (the protocol has no arms)', ro.arm);
      metricsOf(ro, rw);
      num(ro.n_in, `${rw}.n_in`, 0);
      num(ro.n_ood, `${rw}.n_ood`, 0);
      if (ro.roc !== undefined) {
        const rc = obj(ro.roc, `${rw}.roc`);
        const fpr = nums(rc.fpr, `${rw}.roc.fpr`, 0, 1);
        const tpr = nums(rc.tpr, `${rw}.roc.tpr`, 0, 1);
        if (fpr.length !== tpr.length) fail(`${rw}.roc.tpr`, `as long as roc.fpr (${fpr.length})`, tpr.length);
      }
      if (ro.histogram !== undefined) {
        const h = obj(ro.histogram, `${rw}.histogram`);
        const edges = nums(h.edges, `${rw}.histogram.edges`);
        if (edges.length < 2) fail(`${rw}.histogram.edges`, 'at least 2 edges', edges.length);
        for (let i = 1; i < edges.length; i++) if (!(edges[i] > edges[i - 1])) fail(`${rw}.histogram.edges[${i}]`, `greater than edges[${i - 1}] (${edges[i - 1]})`, edges[i]);
        for (const k of ['in', 'ood'] as const) {
          const c = nums(h[k], `${rw}.histogram.${k}`, 0);
          if (c.length !== edges.length - 1) fail(`${rw}.histogram.${k}`, `${edges.length - 1} values (one per bin)`, c.length);
        }
      }
      scoresOf(ro.scores, `${rw}.scores`);
      if (ro.parts !== undefined) {
        arr(ro.parts, `${rw}.parts`).forEach((pt, i) => {
          const pw = `${rw}.parts[${i}]`;
          const po = obj(pt, pw);
          str(po.ood, `${pw}.ood`);
          num(po.n_ood, `${pw}.n_ood`, 0);
          metricsOf(po, pw);
          scoresOf(po.scores, `${pw}.scores`);
        });
      }
    });
  });
  if (r.notes !== undefined) arr(r.notes, 'notes').forEach((n, i) => str(n, `notes[${i}]`));
  return r as unknown as ResultsFile;
}
