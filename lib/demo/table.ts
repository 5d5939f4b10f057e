/**
 * The tables the demo prints: the protocol's title, what each stage saw, then the AUROC grid of
 * lib/report/tables (the same grid the HTML report shows): one line per ID class (one-class) or OOD
 * set (multi-class), a column per metric (and backbone, with the difference), a mean line.
 */
import type { ProtocolResult } from '../report/schema';
import { aurocGrid, dataSeenLines, formatCell } from '../report/tables';

export function aurocTable(p: ProtocolResult): string {
  const g = aurocGrid(p);
  const firstHead = p.protocol === 'one-class' ? 'ID class' : 'OOD set';
  const first = Math.max(firstHead.length, 'mean'.length, ...g.lines.map((l) => l.label.length));
  const w = g.columns.map((c) => Math.max(c.header.length, 6));
  const fmt = (name: string, cells: string[]) => name.padEnd(first) + cells.map((v, i) => '  ' + v.padStart(w[i])).join('');
  const out = [fmt(firstHead, g.columns.map((c) => c.header))];
  for (const l of g.lines) out.push(fmt(l.label, l.cells.map((v, i) => formatCell(v, g.columns[i].diff))));
  if (g.mean) out.push(fmt('mean', g.mean.map((v, i) => formatCell(v, g.columns[i].diff))));
  return out.join('\n');
}

/** Title, "what each stage saw" lines and the AUROC table of one protocol. */
export function printedTable(p: ProtocolResult): string {
  const title = p.title ?? `${p.protocol} protocol`;
  const seen = dataSeenLines(p).map(([k, v]) => `  ${k}: ${v}`);
  return [`${title}${p.incomplete ? ` [incomplete: ${p.incomplete}]` : ''}`, ...seen, 'AUROC (%)', aurocTable(p)].join('\n');
}
