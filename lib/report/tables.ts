/**
 * The AUROC table of a protocol as a grid, shared by the printed tables (`mood demo`) and the HTML
 * report: one line per (ID, OOD) pair, one column per metric — per metric and arm when the protocol
 * compares backbones, with the difference arms[0] - arms[1] — and a mean line. Also the protocol's
 * heading lines (what each stage saw), so both outputs state the protocol the same way.
 */
import { DATA_SEEN_KEYS, type DataSeen, type EvalRow, type ProtocolResult } from './schema';

export interface AurocColumn {
  metric: string;
  /** The arm this column shows; undefined for a protocol without arms. */
  arm?: string;
  /** arms[0] - arms[1] of this metric. */
  diff?: boolean;
  header: string;
}

export interface AurocLine {
  id: string;
  ood: string;
  /** The line's name in a one-column layout: the ID class (one-class) or the OOD set (multi-class). */
  label: string;
  /** AUROC fractions per column (differences for diff columns); undefined where missing. */
  cells: Array<number | undefined>;
}

export interface AurocGrid {
  columns: AurocColumn[];
  lines: AurocLine[];
  /** Per-column means over the lines (null with a single line). */
  mean: Array<number | undefined> | null;
}

export function lineLabel(p: ProtocolResult, r: Pick<EvalRow, 'id' | 'ood'>): string {
  return p.protocol === 'one-class' ? r.id : r.ood;
}

function mean(v: number[]): number | undefined {
  return v.length ? v.reduce((a, b) => a + b, 0) / v.length : undefined;
}

export function aurocGrid(p: ProtocolResult): AurocGrid {
  const arms = p.arms ?? [];
  const columns: AurocColumn[] = [];
  for (const m of p.metrics) {
    if (arms.length === 0) {
      columns.push({ metric: m.name, header: m.name });
      continue;
    }
    for (const arm of arms) columns.push({ metric: m.name, arm, header: `${m.name} ${arm}` });
    if (arms.length === 2) columns.push({ metric: m.name, diff: true, header: `${m.name} difference` });
  }
  const byLine = new Map<string, { id: string; ood: string; values: Map<string, number> }>();
  for (const r of p.rows) {
    const k = `${r.id}\u0000${r.ood}`;
    if (!byLine.has(k)) byLine.set(k, { id: r.id, ood: r.ood, values: new Map() });
    byLine.get(k)!.values.set(`${r.metric}\u0000${r.arm ?? ''}`, r.auroc);
  }
  const cell = (values: Map<string, number>, c: AurocColumn): number | undefined => {
    if (!c.diff) return values.get(`${c.metric}\u0000${c.arm ?? ''}`);
    const a = values.get(`${c.metric}\u0000${arms[0]}`);
    const b = values.get(`${c.metric}\u0000${arms[1]}`);
    return a === undefined || b === undefined ? undefined : a - b;
  };
  const lines = [...byLine.values()].map((l) => ({ id: l.id, ood: l.ood, label: lineLabel(p, l), cells: columns.map((c) => cell(l.values, c)) }));
  const colMean = (i: number) => mean(lines.map((l) => l.cells[i]).filter((v): v is number => v !== undefined));
  return { columns, lines, mean: lines.length > 1 ? columns.map((_, i) => colMean(i)) : null };
}

/** AUROC fraction as a percentage; differences with their sign. */
export function formatCell(v: number | undefined, diff = false): string {
  if (v === undefined) return '-';
  const s = (100 * v).toFixed(2);
  return diff && v >= 0 ? `+${s}` : s;
}

export const DATA_SEEN_LABELS: Readonly<Record<keyof DataSeen, string>> = {
  pretraining: 'pre-training',
  finetuning: 'fine-tuning',
  detectors: 'detectors fitted on',
  id: 'ID',
  ood: 'OOD',
};

/** The protocol's "what each stage saw" as (label, text) pairs, in a fixed order. */
export function dataSeenLines(p: ProtocolResult): Array<[string, string]> {
  const d = p.data_seen;
  return d ? DATA_SEEN_KEYS.map((k) => [DATA_SEEN_LABELS[k], d[k]]) : [];
}
