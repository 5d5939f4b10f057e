/** The AUROC tables the demo prints: one line per ID class (one-class) or OOD set (multi-class). */
import type { ProtocolResult } from '../report/schema';

export function aurocTable(p: ProtocolResult): string {
  const metrics = p.metrics.map((m) => m.name);
  const label = (r: { id: string; ood: string }) => (p.protocol === 'one-class' ? r.id : r.ood);
  const lines = new Map<string, Map<string, number>>();
  for (const r of p.rows) {
    if (!lines.has(label(r))) lines.set(label(r), new Map());
    lines.get(label(r))!.set(r.metric, r.auroc);
  }
  const first = Math.max(p.protocol === 'one-class' ? 'ID class'.length : 'OOD set'.length, 'mean'.length, ...[...lines.keys()].map((k) => k.length));
  const w = metrics.map((m) => Math.max(m.length, 6));
  const fmt = (name: string, vals: Array<number | undefined>) =>
    name.padEnd(first) + vals.map((v, i) => '  ' + (v === undefined ? '-' : (100 * v).toFixed(2)).padStart(w[i])).join('');
  const out = [fmt(p.protocol === 'one-class' ? 'ID class' : 'OOD set', []).padEnd(first) + metrics.map((m, i) => '  ' + m.padStart(w[i])).join('')];
  for (const [k, cells] of lines) out.push(fmt(k, metrics.map((m) => cells.get(m))));
  if (lines.size > 1) {
    out.push(
      fmt(
        'mean',
        metrics.map((m) => {
          const v = p.rows.filter((r) => r.metric === m).map((r) => r.auroc);
          return v.length ? v.reduce((a, b) => a + b, 0) / v.length : undefined;
        }),
      ),
    );
  }
  return out.join('\n');
}
