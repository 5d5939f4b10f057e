/**
 * `mood report RESULTS.json [--out DIR] [--no-png]`: rebuild the HTML report and PNG plots from a
 * results file (by default next to it). Type-only imports at the top keep `mood --help` fast.
 */
import type { Command } from 'commander';

export interface ReportCliOptions {
  out?: string;
  /** commander's --no-png gives png: false. */
  png?: boolean;
}

export async function runReport(resultsFile: string, opts: ReportCliOptions, write: (s: string) => void = (s) => process.stdout.write(s)): Promise<void> {
  const path = await import('node:path');
  const { readResults, writeReport } = await import('../report');
  const results = readResults(resultsFile);
  const out = opts.out ?? path.dirname(path.resolve(resultsFile));
  const w = writeReport(results, out, { png: opts.png !== false });
  write(`report: ${w.html}\n`);
  if (w.pngs.length) write(`plots: ${w.pngs.length} PNG files in ${path.dirname(w.pngs[0])}\n`);
}

export function registerReport(program: Command): void {
  program
    .command('report')
    .description('rebuild the HTML report (tables, ROC curves, score histograms, training curve, settings) and PNG plots from a results.json')
    .argument('<results>', 'results file written by `mood demo` (schema mood-results/1)')
    .option('--out <dir>', 'output folder (default: the results file folder)')
    .option('--no-png', 'skip the PNG images')
    .action(async (results: string, opts: ReportCliOptions) => {
      await runReport(results, opts);
    });
}
