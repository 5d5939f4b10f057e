/**
 * A chart description shared by the SVG and the PNG renderers, so both show exactly the same plot:
 * axes ranges, ticks, series (polylines or histogram bars) and a legend. Layout is in SVG user units;
 * the raster renderer scales it.
 */

export interface LineSeries {
  kind: 'line';
  name: string;
  color: string;
  x: ArrayLike<number>;
  y: ArrayLike<number>;
  dashed?: boolean;
  /** Draw a dot at each point (short series such as per-epoch curves). */
  markers?: boolean;
}

/** Histogram: bars between consecutive edges, heights = values (densities or counts). */
export interface BarSeries {
  kind: 'bars';
  name: string;
  color: string;
  edges: ArrayLike<number>;
  values: ArrayLike<number>;
  /** Fill opacity; overlapping ID and OOD histograms stay readable at 0.5. */
  opacity?: number;
}

export type Series = LineSeries | BarSeries;

export interface Chart {
  /** Stable id: file name of the PNG, id of the SVG element. */
  id: string;
  /** What the plot shows, for tests and accessibility ('roc', 'histogram', 'training'). */
  kind: string;
  title: string;
  xLabel: string;
  yLabel: string;
  xRange: [number, number];
  yRange: [number, number];
  series: Series[];
  /** Dashed y = x line (chance level of a ROC curve). */
  diagonal?: boolean;
  /** Legend corner inside the plot (default top-right; ROC plots use bottom-right, which they leave empty). */
  legend?: 'top-right' | 'bottom-right';
  width?: number;
  height?: number;
}

export const MARGIN = { left: 52, right: 12, top: 26, bottom: 38 };
export const DEFAULT_SIZE = { width: 420, height: 300 };

/** Distinguishable colours (Okabe-Ito, colour-blind safe), cycled. */
export const PALETTE = ['#0072b2', '#e69f00', '#009e73', '#d55e00', '#cc79a7', '#56b4e9', '#000000', '#8c564b', '#7f7f7f', '#bcbd22', '#17becf', '#9467bd'];
export const ID_COLOR = '#0072b2';
export const OOD_COLOR = '#d55e00';

export interface Layout {
  width: number;
  height: number;
  /** Plot area in user units. */
  x0: number;
  x1: number;
  y0: number;
  y1: number;
  sx: (v: number) => number;
  sy: (v: number) => number;
  xTicks: number[];
  yTicks: number[];
}

/** About `n` round tick values covering [lo, hi] (1, 2, 5 x 10^k steps). */
export function niceTicks(lo: number, hi: number, n = 5): number[] {
  if (!(hi > lo)) return [lo];
  const raw = (hi - lo) / n;
  const mag = 10 ** Math.floor(Math.log10(raw));
  const step = [1, 2, 2.5, 5, 10].map((m) => m * mag).find((s) => s >= raw) ?? 10 * mag;
  const out: number[] = [];
  for (let v = Math.ceil(lo / step - 1e-9) * step; v <= hi + step * 1e-9; v += step) out.push(Math.abs(v) < step * 1e-9 ? 0 : v);
  return out;
}

/** Tick label: as few decimals as the tick spacing needs; exponent form for huge/tiny values. */
export function formatTick(v: number, ticks: number[]): string {
  const step = ticks.length > 1 ? Math.abs(ticks[1] - ticks[0]) : Math.abs(v) || 1;
  const big = Math.max(...ticks.map(Math.abs));
  if (big >= 1e5 || (big > 0 && big < 1e-3)) return v.toExponential(1);
  // Fewest decimals that write every tick exactly (0.025 steps need 3).
  let dec = 0;
  while (dec < 6 && Math.abs(Math.round(step * 10 ** dec) - step * 10 ** dec) > 1e-6) dec++;
  return v.toFixed(dec);
}

export function layout(c: Chart): Layout {
  const width = c.width ?? DEFAULT_SIZE.width;
  const height = c.height ?? DEFAULT_SIZE.height;
  const x0 = MARGIN.left;
  const x1 = width - MARGIN.right;
  const y0 = MARGIN.top;
  const y1 = height - MARGIN.bottom;
  const [xa, xb] = c.xRange;
  const [ya, yb] = c.yRange;
  const dx = xb > xa ? xb - xa : 1;
  const dy = yb > ya ? yb - ya : 1;
  return {
    width,
    height,
    x0,
    x1,
    y0,
    y1,
    sx: (v) => x0 + ((v - xa) / dx) * (x1 - x0),
    sy: (v) => y1 - ((v - ya) / dy) * (y1 - y0),
    xTicks: niceTicks(xa, xb),
    yTicks: niceTicks(ya, yb),
  };
}

/** Range of finite values with a little headroom; [0, 1] when there is nothing finite. */
export function dataRange(values: Iterable<number>, pad = 0.04): [number, number] {
  let lo = Infinity;
  let hi = -Infinity;
  for (const v of values) {
    if (!Number.isFinite(v)) continue;
    if (v < lo) lo = v;
    if (v > hi) hi = v;
  }
  if (lo === Infinity) return [0, 1];
  if (hi === lo) return [lo - 0.5, hi + 0.5];
  const p = (hi - lo) * pad;
  return [lo - p, hi + p];
}

/** Legend box position (user units) for `n` entries whose longest name has `chars` characters. */
export function legendBox(c: Chart, L: Layout, n: number, chars: number): { x: number; y: number; w: number; h: number } {
  const w = chars * 6 + 26;
  const h = n * 13 + 4;
  const x = L.x1 - w - 6;
  const y = c.legend === 'bottom-right' ? L.y1 - h - 6 : L.y0 + 6;
  return { x, y, w, h };
}
