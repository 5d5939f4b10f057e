/**
 * Report writer: results JSON -> self-contained `report.html` (inline SVG plots, tables, settings)
 * and one PNG per plot under `plots/`. Every file is written atomically.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { writeFileAtomic } from '../io/atomic';
import { allCharts, reportFigures } from './figures';
import { reportHtml } from './html';
import { chartPng } from './raster';
import { validateResults, type ResultsFile } from './schema';

export * from './schema';
export { rocPoints, scoreHistogram } from './curves';
export { chartSvg } from './svg';
export { chartPng, chartBitmap } from './raster';
export { encodePng } from '../io/png';
export type { Chart, Series, LineSeries, BarSeries } from './chart';

export { writeFileAtomic };

/** Reads and validates a results file; errors name the file and the bad key. */
export function readResults(file: string): ResultsFile {
  let text: string;
  try {
    text = fs.readFileSync(file, 'utf8');
  } catch (e) {
    throw new Error(`cannot read results file ${file}: ${(e as NodeJS.ErrnoException).code === 'ENOENT' ? 'no such file' : (e as Error).message}`);
  }
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch (e) {
    throw new Error(`${file} is not valid JSON: ${(e as Error).message}`);
  }
  return validateResults(json, file);
}

export interface WriteReportOptions {
  /** Write PNG images of the plots (default true). */
  png?: boolean;
  /** PNG pixels per SVG unit (default 2). */
  pngScale?: number;
}

export interface WrittenReport {
  html: string;
  pngs: string[];
}

/** Writes `report.html` and `plots/*.png` into `outDir` (created if missing). */
export function writeReport(results: ResultsFile, outDir: string, opts: WriteReportOptions = {}): WrittenReport {
  validateResults(results, 'results');
  fs.mkdirSync(outDir, { recursive: true });
  const fig = reportFigures(results);
  const pngs: string[] = [];
  if (opts.png !== false) {
    const dir = path.join(outDir, 'plots');
    fs.mkdirSync(dir, { recursive: true });
    for (const c of allCharts(fig)) {
      const file = path.join(dir, `${c.id}.png`);
      writeFileAtomic(file, chartPng(c, opts.pngScale ?? 2));
      pngs.push(file);
    }
  }
  const html = path.join(outDir, 'report.html');
  writeFileAtomic(html, reportHtml(results, fig));
  return { html, pngs };
}
