/**
 * OOD detector benchmark: fit + score time (train 50,000 x 768, ID test 10,000, OOD 10,000, float32
 * features as BEiT gives them, MOOD normalisation) for mahalanobis, cos, knn, kmeans, gauss, and the
 * exact AUROC over 1M scores, against numpy/sklearn on the same data in the same run
 * (scripts/bench/ood-detectors.py under Debian's /usr/bin/python3, OMP_WAIT_POLICY=PASSIVE, same thread
 * count). Ours and numpy alternate metric by metric (ours, then numpy, per metric and round), so both
 * sides see the same load on a shared machine. Prints one JSON object: median seconds per side,
 * `ratio` = numpy median / our median (> 1: we are faster), the per-round ratios, the AUROCs of both
 * sides and the load average before and after.
 *
 *   npx ts-node --transpile-only scripts/bench/ood-detectors.ts [--scale 0.2] [--threads 2] [--rounds 2]
 *       [--metrics mahalanobis,cos,knn,kmeans,gauss] [--no-python] [--keep-data DIR]
 *
 * kmeans: k = 10 (the number of classes), n_init = 3 on both sides; knn: k = 50; gauss is timed as
 * its log-density (the density underflows to 0 at D = 768 in both).
 */
import { execFileSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { createDetector, type DetectorOptions } from '../../lib/ood/detectors';
import { auroc } from '../../lib/ood/evaluation';
import { ndarray, writeNpy } from '../../lib/npy';
import { info, setNumThreads } from '../../lib/runtime';
import { Tensor } from '../../lib/tensor';

function arg(name: string, dflt: string): string {
  const i = process.argv.indexOf(`--${name}`);
  return i >= 0 ? process.argv[i + 1] : dflt;
}
const scale = Number(arg('scale', '1'));
const threads = Number(arg('threads', String(Math.min(os.cpus().length, 16))));
const metrics = arg('metrics', 'mahalanobis,cos,knn,kmeans,gauss').split(',');
const withPython = !process.argv.includes('--no-python');
const keep = arg('keep-data', '');
const rounds = Math.max(1, Number(arg('rounds', '1')));
const D = 768;
const CLASSES = 10;
const nTrain = Math.round(50_000 * scale);
const nTest = Math.round(10_000 * scale);
const nOod = Math.round(10_000 * scale);
const nAuroc = Math.round(1_000_000 * scale);
const KNN_K = 50;
const KMEANS_N_INIT = 3;

const OPTS: Record<string, DetectorOptions> = {
  mahalanobis: {},
  cos: {},
  knn: { k: KNN_K },
  kmeans: { k: CLASSES, nInit: KMEANS_N_INIT, seed: 0 },
  gauss: {},
};
const NAME: Record<string, string> = { gauss: 'gauss_logp' };

async function classData(n: number, means: Tensor, seed: number, noise: number): Promise<{ data: Float32Array; labels: BigInt64Array }> {
  const labels = BigInt64Array.from({ length: n }, (_, i) => BigInt(i % CLASSES));
  const idx = Tensor.fromArray(labels, [n], { dtype: 'int64' });
  const x = means.indexSelect(0, idx).add(Tensor.randn([n, D], { seed }).mul(noise));
  const data = (await x.data()) as Float32Array;
  return { data: data.slice(), labels };
}

async function main(): Promise<void> {
  setNumThreads(threads);
  const dir = keep || fs.mkdtempSync(path.join(os.tmpdir(), 'mood-ood-bench-'));
  fs.mkdirSync(dir, { recursive: true });
  // Class means ~0.1 per dimension against unit noise, OOD between shrunk class means: AUROCs
  // well inside (0.5, 1) so that the comparison of results means something.
  const means = Tensor.randn([CLASSES, D], { seed: 1 }).mul(0.1);
  const oodMeans = Tensor.randn([CLASSES, D], { seed: 2 }).mul(0.06).add(means.mul(0.6));
  const train = await classData(nTrain, means, 3, 1.0);
  const test = await classData(nTest, means, 4, 1.0);
  const ood = await classData(nOod, oodMeans, 5, 1.1);
  writeNpy(path.join(dir, 'train.npy'), ndarray('float32', [nTrain, D], train.data));
  writeNpy(path.join(dir, 'train_labels.npy'), ndarray('int64', [nTrain], train.labels));
  writeNpy(path.join(dir, 'test.npy'), ndarray('float32', [nTest, D], test.data));
  writeNpy(path.join(dir, 'ood.npy'), ndarray('float32', [nOod, D], ood.data));
  // 1M scores with ties (rounded to 1e-4) for the AUROC.
  const half = nAuroc / 2;
  const scoresT = Tensor.randn([nAuroc], { seed: 6, dtype: 'float64' }).add(Tensor.cat([Tensor.zeros([half], { dtype: 'float64' }), Tensor.full([nAuroc - half], 0.5, { dtype: 'float64' })])).mul(1e4).round().div(1e4);
  const scores = ((await scoresT.data()) as Float64Array).slice();
  writeNpy(path.join(dir, 'auroc_scores.npy'), ndarray('float64', [nAuroc], scores));
  writeNpy(path.join(dir, 'auroc_n_in.npy'), ndarray('int64', [1], BigInt64Array.of(BigInt(half))));
  // Flush the ~250 MB just written, so that their write-back does not run during the first timings.
  for (const f of fs.readdirSync(dir)) {
    const fd = fs.openSync(path.join(dir, f), 'r+');
    fs.fsyncSync(fd);
    fs.closeSync(fd);
  }

  type Run = { seconds: number; auroc: number };
  const ours: Record<string, Run[]> = {};
  const numpy: Record<string, Run[]> = {};
  const push = (to: Record<string, Run[]>, k: string, r: Run) => (to[k] ??= []).push(r);
  const input = (x: Float32Array, n: number) => ({ data: x, shape: [n, D] });
  const env: NodeJS.ProcessEnv = { ...process.env, OMP_WAIT_POLICY: 'PASSIVE', OMP_NUM_THREADS: String(threads), OPENBLAS_NUM_THREADS: String(threads), MKL_NUM_THREADS: String(threads) };
  delete env.OPENBLAS_CORETYPE;
  delete env.OPENBLAS_L2_SIZE;
  const py = process.env.MOOD_TEST_PYTHON ?? '/usr/bin/python3';
  let versions: unknown = null;
  const runPython = (m: string) => {
    const out = execFileSync(py, [path.join(__dirname, 'ood-detectors.py'), dir, '--metrics', m, '--knn-k', String(KNN_K), '--kmeans-k', String(CLASSES), '--kmeans-n-init', String(KMEANS_N_INIT)], { env, encoding: 'utf8', maxBuffer: 1 << 24 });
    const r = JSON.parse(out.trim().split('\n').pop()!) as Record<string, Run> & { versions: unknown };
    versions = r.versions;
    push(numpy, m, r[m]);
    push(numpy, 'auroc', r.auroc);
  };
  const load0 = os.loadavg();
  for (let round = 0; round < rounds; round++) {
    for (const m of metrics) {
      const t0 = process.hrtime.bigint();
      const det = createDetector(NAME[m] ?? m, OPTS[m]);
      await det.fit({ features: input(train.data, nTrain), labels: train.labels });
      const sIn = await det.score({ features: input(test.data, nTest) });
      const sOut = await det.score({ features: input(ood.data, nOod) });
      const seconds = Number(process.hrtime.bigint() - t0) / 1e9;
      push(ours, m, { seconds, auroc: auroc(sIn, sOut, { orientation: det.orientation }) });
      det.dispose();
      process.stderr.write(`round ${round + 1} ours ${m}: ${seconds.toFixed(2)} s\n`);
      if (withPython) {
        runPython(m);
        process.stderr.write(`round ${round + 1} numpy ${m}: ${numpy[m][numpy[m].length - 1].seconds.toFixed(2)} s\n`);
      }
    }
    const t0 = process.hrtime.bigint();
    const v = auroc(scores.subarray(0, half), scores.subarray(half), { orientation: 'higher_is_ood' });
    push(ours, 'auroc', { seconds: Number(process.hrtime.bigint() - t0) / 1e9, auroc: v });
  }
  const load1 = os.loadavg();
  if (!keep) fs.rmSync(dir, { recursive: true, force: true });
  const round = (x: number) => Math.round(x * 1000) / 1000;
  const median = (a: number[]) => {
    const v = [...a].sort((x, y) => x - y);
    return v.length % 2 ? v[(v.length - 1) / 2] : (v[v.length / 2 - 1] + v[v.length / 2]) / 2;
  };
  const keys = [...metrics, 'auroc'];
  const med = (runs: Record<string, Run[]>) => Object.fromEntries(keys.map((k) => [k, round(median(runs[k].map((r) => r.seconds)))]));
  const hasPy = withPython && metrics.length > 0;
  const i = info();
  process.stdout.write(
    JSON.stringify(
      {
        benchmark: `OOD detectors fit+score on CPU: train ${nTrain} x ${D}, ID test ${nTest}, OOD ${nOod} (float32 features, MOOD normalisation); exact AUROC over ${nAuroc} scores`,
        scale,
        threads,
        rounds,
        loadavg_before: load0.map(round),
        loadavg_after: load1.map(round),
        omp_wait_policy: process.env.OMP_WAIT_POLICY ?? null,
        torch: i.torchVersion,
        blas: i.blas,
        python: versions,
        settings: { knn_k: KNN_K, kmeans_k: CLASSES, kmeans_n_init: KMEANS_N_INIT, gauss: 'log-density' },
        ours_s: med(ours),
        numpy_s: hasPy ? med(numpy) : null,
        ratio: hasPy ? Object.fromEntries(keys.map((k) => [k, round(median(numpy[k].map((r) => r.seconds)) / median(ours[k].map((r) => r.seconds)))])) : null,
        ratio_per_round: hasPy ? Object.fromEntries(metrics.map((k) => [k, ours[k].map((r, j) => round(numpy[k][j].seconds / r.seconds))])) : null,
        auroc_ours: Object.fromEntries(keys.map((k) => [k, ours[k][0].auroc])),
        auroc_numpy: hasPy ? Object.fromEntries(keys.map((k) => [k, numpy[k][0].auroc])) : null,
      },
      null,
      2,
    ) + '\n',
  );
}

main().catch((e) => {
  process.stderr.write(`${(e as Error).stack}\n`);
  process.exit(1);
});
