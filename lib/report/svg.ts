/** Chart -> inline SVG markup (no scripts, no external references: the page stays self-contained). */
import { formatTick, layout, legendBox, type Chart } from './chart';

export function escapeXml(s: string): string {
  return s.replace(/[&<>"']/g, (c) => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' })[c]!);
}

const f = (v: number): string => (Math.round(v * 100) / 100).toString();

export function chartSvg(c: Chart): string {
  const L = layout(c);
  const out: string[] = [];
  out.push(
    `<svg xmlns="http://www.w3.org/2000/svg" class="chart" id="${escapeXml(c.id)}" data-kind="${escapeXml(c.kind)}" ` +
      `width="${L.width}" height="${L.height}" viewBox="0 0 ${L.width} ${L.height}" role="img" aria-label="${escapeXml(c.title)}" ` +
      `font-family="sans-serif" font-size="10">`,
  );
  out.push(`<rect x="0" y="0" width="${L.width}" height="${L.height}" fill="#ffffff"/>`);
  out.push(`<text x="${f(L.width / 2)}" y="16" text-anchor="middle" font-size="12" font-weight="bold">${escapeXml(c.title)}</text>`);
  // Grid and ticks.
  for (const t of L.xTicks) {
    const x = f(L.sx(t));
    out.push(`<line x1="${x}" y1="${L.y0}" x2="${x}" y2="${L.y1}" stroke="#e5e5e5"/>`);
    out.push(`<text x="${x}" y="${L.y1 + 13}" text-anchor="middle">${escapeXml(formatTick(t, L.xTicks))}</text>`);
  }
  for (const t of L.yTicks) {
    const y = f(L.sy(t));
    out.push(`<line x1="${L.x0}" y1="${y}" x2="${L.x1}" y2="${y}" stroke="#e5e5e5"/>`);
    out.push(`<text x="${L.x0 - 4}" y="${f(L.sy(t) + 3)}" text-anchor="end">${escapeXml(formatTick(t, L.yTicks))}</text>`);
  }
  out.push(`<rect x="${L.x0}" y="${L.y0}" width="${L.x1 - L.x0}" height="${L.y1 - L.y0}" fill="none" stroke="#333333"/>`);
  out.push(`<text x="${f((L.x0 + L.x1) / 2)}" y="${L.height - 6}" text-anchor="middle">${escapeXml(c.xLabel)}</text>`);
  out.push(`<text transform="translate(12 ${f((L.y0 + L.y1) / 2)}) rotate(-90)" text-anchor="middle">${escapeXml(c.yLabel)}</text>`);
  // Data, clipped to the plot area.
  const clip = `${c.id}-clip`;
  out.push(`<clipPath id="${escapeXml(clip)}"><rect x="${L.x0}" y="${L.y0}" width="${L.x1 - L.x0}" height="${L.y1 - L.y0}"/></clipPath>`);
  out.push(`<g clip-path="url(#${escapeXml(clip)})">`);
  if (c.diagonal) {
    out.push(`<line class="diagonal" x1="${f(L.sx(c.xRange[0]))}" y1="${f(L.sy(c.xRange[0]))}" x2="${f(L.sx(c.xRange[1]))}" y2="${f(L.sy(c.xRange[1]))}" stroke="#999999" stroke-dasharray="4 3"/>`);
  }
  for (const s of c.series) {
    if (s.kind === 'bars') {
      const parts: string[] = [];
      for (let i = 0; i < s.values.length; i++) {
        const xa = L.sx(s.edges[i]);
        const xb = L.sx(s.edges[i + 1]);
        const ya = L.sy(s.values[i]);
        const h = L.sy(c.yRange[0]) - ya;
        if (h <= 0) continue;
        parts.push(`<rect x="${f(xa)}" y="${f(ya)}" width="${f(Math.max(0.5, xb - xa))}" height="${f(h)}"/>`);
      }
      out.push(`<g class="series bars" data-name="${escapeXml(s.name)}" fill="${s.color}" fill-opacity="${s.opacity ?? 0.5}">${parts.join('')}</g>`);
    } else {
      const pts: string[] = [];
      for (let i = 0; i < s.x.length; i++) pts.push(`${f(L.sx(s.x[i]))},${f(L.sy(s.y[i]))}`);
      out.push(
        `<polyline class="series line" data-name="${escapeXml(s.name)}" fill="none" stroke="${s.color}" stroke-width="2"` +
          `${s.dashed ? ' stroke-dasharray="6 3"' : ''} points="${pts.join(' ')}"/>`,
      );
      if (s.markers) for (const p of pts) {
        const [x, y] = p.split(',');
        out.push(`<circle cx="${x}" cy="${y}" r="2.5" fill="${s.color}"/>`);
      }
    }
  }
  out.push('</g>');
  // Legend, top-right inside the plot.
  const names = c.series.map((s) => s.name);
  if (names.length > 0) {
    const box = legendBox(c, L, names.length, Math.max(...names.map((n) => n.length)));
    const lx = box.x;
    let ly = box.y;
    out.push(`<rect class="legend" x="${lx}" y="${ly}" width="${box.w}" height="${box.h}" fill="#ffffff" fill-opacity="0.85" stroke="#cccccc"/>`);
    for (const s of c.series) {
      out.push(`<rect x="${lx + 4}" y="${ly + 5}" width="12" height="6" fill="${s.color}"/>`);
      out.push(`<text x="${lx + 20}" y="${ly + 12}">${escapeXml(s.name)}</text>`);
      ly += 13;
    }
  }
  out.push('</svg>');
  return out.join('\n');
}
