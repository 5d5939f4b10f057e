/** Chart -> PNG through the built-in bitmap: the same layout as the SVG, drawn at `scale` x. */
import { Bitmap, parseColor } from './bitmap';
import { GLYPH_HEIGHT } from './font';
import { formatTick, layout, legendBox, type Chart } from './chart';
import { encodePng } from '../io/png';

const INK = parseColor('#333333');
const GRID = parseColor('#e5e5e5');

export function chartBitmap(c: Chart, scale = 2): Bitmap {
  const L = layout(c);
  const S = scale;
  const bm = new Bitmap(Math.round(L.width * S), Math.round(L.height * S));
  const sx = (v: number) => L.sx(v) * S;
  const sy = (v: number) => L.sy(v) * S;
  const th = GLYPH_HEIGHT * S;
  const centred = (x: number, y: number, s: string, k = S) => bm.text(x - Bitmap.textWidth(s, k) / 2, y, s, INK, k);
  for (const t of L.xTicks) bm.line(sx(t), L.y0 * S, sx(t), L.y1 * S, GRID);
  for (const t of L.yTicks) bm.line(L.x0 * S, sy(t), L.x1 * S, sy(t), GRID);
  // Data, then the margins painted over it (clipping), then labels on the clean margins.
  if (c.diagonal) bm.line(sx(c.xRange[0]), sy(c.xRange[0]), sx(c.xRange[1]), sy(c.xRange[1]), parseColor('#999999'), S, [4 * S, 3 * S]);
  for (const s of c.series) {
    const col = parseColor(s.color);
    if (s.kind === 'bars') {
      const base = sy(c.yRange[0]);
      for (let i = 0; i < s.values.length; i++) {
        const top = sy(s.values[i]);
        if (base - top <= 0) continue;
        bm.fillRect(sx(s.edges[i]), top, Math.max(sx(s.edges[i + 1]), sx(s.edges[i]) + 1), base, col, s.opacity ?? 0.5);
      }
    } else {
      const xs = Array.from(s.x as ArrayLike<number>, sx);
      const ys = Array.from(s.y as ArrayLike<number>, sy);
      bm.polyline(xs, ys, col, 2 * S, s.dashed ? [6 * S, 3 * S] : undefined);
      if (s.markers) for (let i = 0; i < xs.length; i++) bm.fillRect(xs[i] - 2.5 * S, ys[i] - 2.5 * S, xs[i] + 2.5 * S, ys[i] + 2.5 * S, col);
    }
  }
  const white = parseColor('#ffffff');
  bm.fillRect(0, 0, bm.width, L.y0 * S, white);
  bm.fillRect(0, L.y1 * S + 1, bm.width, bm.height, white);
  bm.fillRect(0, 0, L.x0 * S, bm.height, white);
  bm.fillRect(L.x1 * S + 1, 0, bm.width, bm.height, white);
  for (const t of L.xTicks) centred(sx(t), L.y1 * S + 4 * S, formatTick(t, L.xTicks));
  for (const t of L.yTicks) {
    const s = formatTick(t, L.yTicks);
    bm.text(L.x0 * S - 4 * S - Bitmap.textWidth(s, S), sy(t) - th / 2, s, INK, S);
  }
  // Frame, title, axis labels.
  bm.line(L.x0 * S, L.y0 * S, L.x1 * S, L.y0 * S, INK, S);
  bm.line(L.x0 * S, L.y1 * S, L.x1 * S, L.y1 * S, INK, S);
  bm.line(L.x0 * S, L.y0 * S, L.x0 * S, L.y1 * S, INK, S);
  bm.line(L.x1 * S, L.y0 * S, L.x1 * S, L.y1 * S, INK, S);
  const titleScale = S + (S >= 2 ? 0 : 1);
  centred((L.width * S) / 2, 6 * S, c.title, titleScale);
  centred(((L.x0 + L.x1) / 2) * S, L.height * S - 14 * S, c.xLabel);
  bm.textUp(3 * S, ((L.y0 + L.y1) / 2) * S + Bitmap.textWidth(c.yLabel, S) / 2, c.yLabel, INK, S);
  // Legend.
  const names = c.series.map((s) => s.name);
  if (names.length > 0) {
    const box = legendBox(c, L, names.length, Math.max(...names.map((n) => n.length)));
    const lx = box.x * S;
    let ly = box.y * S;
    bm.fillRect(lx, ly, lx + box.w * S, ly + box.h * S, white, 0.85);
    const grey = parseColor('#cccccc');
    bm.line(lx, ly, lx + box.w * S, ly, grey);
    bm.line(lx, ly + box.h * S, lx + box.w * S, ly + box.h * S, grey);
    bm.line(lx, ly, lx, ly + box.h * S, grey);
    bm.line(lx + box.w * S, ly, lx + box.w * S, ly + box.h * S, grey);
    for (const s of c.series) {
      bm.fillRect(lx + 4 * S, ly + 5 * S, lx + 16 * S, ly + 11 * S, parseColor(s.color));
      bm.text(lx + 20 * S, ly + 4 * S, s.name, INK, S);
      ly += 13 * S;
    }
  }
  return bm;
}

export function chartPng(c: Chart, scale = 2): Buffer {
  const bm = chartBitmap(c, scale);
  return encodePng(bm.width, bm.height, bm.data);
}
