/**
 * `npm run bench`: every speed benchmark under scripts/bench/ (each against its PyTorch / numpy /
 * torchvision twin in the same run), one after the other, then one summary table: ours vs the twin,
 * the speed-up (> 1: we are faster, whatever the benchmark's own ratio convention) and the 1-minute
 * load average when the benchmark started. The full JSON (every benchmark's own output, verbatim)
 * is written atomically to tmp/bench/run-all-<time>.json (or --out FILE).
 *
 *   npm run bench [-- --only beit-forward,ood-detectors] [--quick] [--out FILE]
 *
 * --quick runs each benchmark at a smaller setting (minutes instead of ~25 min in all), for a check
 * that they all still run; its figures are noisier. Not included: the result-quality experiments
 * (pretrain-*.ts), which train models for many minutes and report AUROCs, not speed, and
 * dist-allreduce.ts, which has no twin (NCCL/Gloo bus bandwidth only).
 */
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';

/** One row of the summary table. */
export interface BenchRow {
  bench: string;
  case: string;
  ours: string;
  twin: string;
  /** > 1: ours is faster (the twin's time over ours, or our throughput over the twin's). */
  speedup: number | null;
}

interface Bench {
  name: string;
  script: string;
  args: string[];
  quickArgs: string[];
  /** Rows from the benchmark's JSON. */
  rows(j: any): Omit<BenchRow, 'bench'>[];
}

const n = (v: unknown, digits = 3): string => (typeof v === 'number' && Number.isFinite(v) ? String(Number(v.toPrecision(digits))) : '-');
const num = (v: unknown): number | null => (typeof v === 'number' && Number.isFinite(v) ? v : null);

const BENCHES: Bench[] = [
  {
    name: 'tiny-train',
    script: 'tiny-train.ts',
    args: [],
    quickArgs: ['--steps', '10', '--warmup', '2'],
    // Written by the tiny-model work; rows are whatever parts it reports with ours/twin medians.
    rows: (j) =>
      Object.entries<any>(j.results ?? j.parts ?? {}).map(([k, v]) => ({
        case: k,
        ours: `${n(v.ours?.median_s)} s`,
        twin: `${n(v.pytorch?.median_s)} s`,
        speedup: num(v.ratio),
      })),
  },
  {
    name: 'beit-forward',
    script: 'beit-forward.ts',
    args: [],
    quickArgs: ['--steps', '2', '--warmup', '1'],
    rows: (j) =>
      ['eval', 'train'].filter((p) => j[p]).map((p) => ({
        case: `beit_base ${p} batch ${j[p].batch}`,
        ours: `${n(j[p].ours?.images_per_s)} img/s`,
        twin: `${n(j[p].pytorch?.images_per_s)} img/s`,
        speedup: num(j[p].ratio),
      })),
  },
  {
    name: 'pretrain-step',
    script: 'pretrain-step.ts',
    args: [],
    quickArgs: ['--iters', '2', '--min-seconds', '1'],
    rows: (j) => [{ case: 'MIM step', ours: `${n(j.ours_images_per_s)} img/s`, twin: `${n(j.pytorch_images_per_s)} img/s`, speedup: num(j.ratio) }],
  },
  {
    name: 'dvae-encoder',
    script: 'dvae-encoder.ts',
    args: [],
    quickArgs: ['--iters', '1', '--min-seconds', '1', '--rounds', '1', '--batch', '2'],
    rows: (j) => [{ case: 'DALL-E tokens 112 px', ours: `${n(j.ours_images_per_s)} img/s`, twin: `${n(j.pytorch_images_per_s)} img/s`, speedup: num(j.ratio) }],
  },
  {
    name: 'finetune',
    script: 'finetune.ts',
    args: [],
    quickArgs: ['--steps', '5', '--rounds', '1'],
    rows: (j) => [
      { case: 'fine-tuning step loop', ours: `${n(Math.max(...j.ours_images_per_s))} img/s`, twin: `${n(Math.max(...j.pytorch_images_per_s))} img/s`, speedup: num(j.ratio) },
    ],
  },
  {
    name: 'data-pipeline',
    script: 'data-pipeline.ts',
    args: [],
    quickArgs: ['--images', '100', '--rounds', '1'],
    rows: (j) =>
      ['eval', 'train', 'train_ra'].map((k) => ({
        case: `decode+transform ${k}`,
        ours: `${n(j.ours_img_per_s?.[k])} img/s`,
        twin: `${n(j.torchvision_img_per_s?.[k])} img/s`,
        speedup: num(j.ratio?.[k]),
      })),
  },
  {
    name: 'ood-detectors',
    script: 'ood-detectors.ts',
    args: [],
    quickArgs: ['--scale', '0.05', '--rounds', '1'],
    rows: (j) =>
      Object.keys(j.ours_s ?? {}).map((k) => ({ case: k, ours: `${n(j.ours_s[k])} s`, twin: `${n(j.numpy_s?.[k])} s`, speedup: num(j.ratio?.[k]) })),
  },
  {
    name: 'checkpoint-load',
    script: 'checkpoint-load.ts',
    args: [],
    quickArgs: ['--rounds', '1'],
    rows: (j) => [
      {
        case: 'beit_base .pth load',
        ours: `${n(j.ours?.seconds_median)} s`,
        twin: `${n(j.python_torch_load?.seconds_median)} s`,
        speedup: num(j.time_ratio_median) ? 1 / j.time_ratio_median : null,
      },
    ],
  },
  {
    name: 'dispatch',
    script: 'dispatch.ts',
    args: [],
    quickArgs: [],
    rows: (j) => [
      { case: 'add 16 floats (call)', ours: `${n(j.mood?.add16_call_us)} us`, twin: `${n(j.python?.add16_us)} us`, speedup: num(j.ratio?.add16_call_vs_python_eager) ? 1 / j.ratio.add16_call_vs_python_eager : null },
      { case: 'matmul 512', ours: `${n(j.mood?.matmul512_us)} us`, twin: `${n(j.python?.matmul512_us)} us`, speedup: num(j.ratio?.matmul512_vs_python) ? 1 / j.ratio.matmul512_vs_python : null },
    ],
  },
  {
    name: 'dist-step',
    script: 'dist-step.ts',
    args: [],
    quickArgs: ['--steps', '3'],
    rows: (j) =>
      (['one_process', 'two_processes'] as const).map((k) => ({
        case: `train step, ${k.replace('_', ' ')}`,
        ours: `${n((k === 'one_process' ? j.ours?.one_process : j.ours?.two_processes_overlap)?.step_ms)} ms`,
        twin: `${n((k === 'one_process' ? j.pytorch?.one_process : j.pytorch?.two_processes_ddp)?.step_ms)} ms`,
        speedup: num(j.ratio_step_time_pytorch_over_ours?.[k]),
      })),
  },
];

function option(name: string): string | undefined {
  const i = process.argv.indexOf(`--${name}`);
  return i >= 0 ? process.argv[i + 1] : undefined;
}

/** The last JSON document a benchmark printed (some print progress lines before it). */
export function lastJson(stdout: string): unknown {
  const trimmed = stdout.trim();
  try {
    return JSON.parse(trimmed);
  } catch {
    // Pretty-printed objects start at a line holding only '{'; one-line ones are a line of their own.
    const lines = trimmed.split('\n');
    for (let i = lines.length - 1; i >= 0; i--) {
      if (!lines[i].startsWith('{')) continue;
      try {
        return JSON.parse(lines.slice(i).join('\n'));
      } catch {
        /* not the start of the document */
      }
    }
    throw new Error('no JSON document in its output');
  }
}

export function formatTable(rows: Array<BenchRow & { load: number }>): string {
  const head = ['benchmark', 'case', 'ours', 'twin', 'speed-up', 'load'];
  const body = rows.map((r) => [r.bench, r.case, r.ours, r.twin, r.speedup === null ? '-' : `${r.speedup.toFixed(2)}x`, r.load.toFixed(2)]);
  const w = head.map((h, c) => Math.max(h.length, ...body.map((b) => b[c].length)));
  const line = (cells: string[]) => cells.map((x, c) => (c >= 2 ? x.padStart(w[c]) : x.padEnd(w[c]))).join('  ');
  return [line(head), w.map((x) => '-'.repeat(x)).join('  '), ...body.map(line)].join('\n');
}

function main(): number {
  const root = path.resolve(__dirname, '..', '..');
  const only = option('only')?.split(',');
  const quick = process.argv.includes('--quick');
  const unknown = only?.filter((o) => !BENCHES.some((b) => b.name === o)) ?? [];
  if (unknown.length) {
    process.stderr.write(`run-all: unknown benchmark(s) ${unknown.join(', ')}; known: ${BENCHES.map((b) => b.name).join(', ')}\n`);
    return 2;
  }
  const chosen = BENCHES.filter((b) => (only ? only.includes(b.name) : true) && fs.existsSync(path.join(__dirname, b.script)));
  const out = option('out') ?? path.join(root, 'tmp', 'bench', `run-all-${new Date().toISOString().replace(/[:.]/g, '-')}.json`);
  const results: Record<string, unknown> = {};
  const rows: Array<BenchRow & { load: number }> = [];
  let failed = 0;
  for (const b of chosen) {
    const load = os.loadavg()[0];
    const t0 = Date.now();
    process.stderr.write(`== ${b.name} (load ${load.toFixed(2)})\n`);
    const r = spawnSync(process.execPath, ['-r', 'ts-node/register/transpile-only', path.join(__dirname, b.script), ...(quick ? b.quickArgs : b.args)], {
      cwd: root,
      encoding: 'utf8',
      maxBuffer: 1 << 26,
      stdio: ['ignore', 'pipe', 'inherit'],
    });
    const seconds = (Date.now() - t0) / 1000;
    try {
      if (r.status !== 0) throw new Error(`exited with status ${r.status}${r.signal ? ` (${r.signal})` : ''}`);
      const j = lastJson(r.stdout);
      results[b.name] = { seconds, loadavg_start: load, output: j };
      for (const row of b.rows(j)) rows.push({ bench: b.name, ...row, load });
    } catch (e) {
      failed++;
      results[b.name] = { seconds, loadavg_start: load, error: (e as Error).message, stdout_tail: r.stdout.slice(-2000) };
      rows.push({ bench: b.name, case: `FAILED: ${(e as Error).message}`, ours: '-', twin: '-', speedup: null, load });
    }
  }
  const doc = { when: new Date().toISOString(), quick, machine: { cpus: os.cpus().length, model: os.cpus()[0]?.model ?? null }, table: rows, benchmarks: results };
  fs.mkdirSync(path.dirname(out), { recursive: true });
  const tmp = `${out}.${process.pid}.tmp`;
  fs.writeFileSync(tmp, JSON.stringify(doc, null, 1) + '\n');
  fs.renameSync(tmp, out);
  process.stdout.write(formatTable(rows) + '\n');
  process.stdout.write(`JSON: ${path.relative(process.cwd(), out)}\n`);
  return failed ? 1 : 0;
}

if (require.main === module) process.exit(main());
