/**
 * Dispatch-overhead benchmark: microseconds per small op (add of two 16-float tensors: the call alone,
 * and awaited with its values read) and
 * per 512x512 matmul, side by side with eager PyTorch (Debian python3-torch, same libtorch) in its
 * best setting (OMP_WAIT_POLICY=PASSIVE, 2 threads). Prints one JSON object.
 *   npx ts-node --transpile-only scripts/bench/dispatch.ts
 */
import { execFileSync } from 'node:child_process';
import * as path from 'node:path';
import { Tensor, getNumThreads, info } from '../../lib';

async function perCallUs(fn: () => Promise<void>, iters: number, repeats = 5): Promise<number> {
  let best = Infinity;
  for (let r = 0; r < repeats; r++) {
    const t0 = process.hrtime.bigint();
    for (let i = 0; i < iters; i++) await fn();
    best = Math.min(best, Number(process.hrtime.bigint() - t0) / iters / 1000);
  }
  return best;
}

async function main(): Promise<void> {
  const a = Tensor.randn([16], { seed: 1 });
  const b = Tensor.randn([16], { seed: 2 });
  const m1 = Tensor.randn([512, 512], { seed: 3 });
  const m2 = Tensor.randn([512, 512], { seed: 4 });
  for (let i = 0; i < 20; i++) {
    const c = m1.matmul(m2);
    await c.ready();
    c.dispose();
  }
  const add16 = await perCallUs(async () => {
    const c = a.add(b);
    await c.data();
    c.dispose();
  }, 20000);
  // The op call alone (small CPU ops run inline, so the add is done when it returns), like Python's
  // `a + b` without reading the values.
  const add16Call = await perCallUs(async () => {
    a.add(b).dispose();
  }, 20000);
  const matmul512 = await perCallUs(async () => {
    const c = m1.matmul(m2);
    await c.ready();
    c.dispose();
  }, 50);
  // RSS over 10,000 create/op/dispose cycles (issue: memory stays flat).
  const rss0 = process.memoryUsage().rss;
  for (let i = 0; i < 10000; i++) {
    const x = Tensor.fromArray(new Float32Array(4096), [64, 64]);
    const y = x.add(1);
    await y.data();
    x.dispose();
    y.dispose();
  }
  const rssGrowthMiB = (process.memoryUsage().rss - rss0) / 2 ** 20;

  const py = JSON.parse(
    execFileSync(process.env.MOOD_TEST_PYTHON ?? '/usr/bin/python3', [path.join(__dirname, 'dispatch.py')], {
      env: { ...process.env, OMP_WAIT_POLICY: 'PASSIVE', BENCH_THREADS: String(getNumThreads()) },
      encoding: 'utf8',
    }),
  ) as { add16_us: number; add16_read_us: number; matmul512_us: number; threads: number; torch: string };
  const i = info();
  const result = {
    bench: 'dispatch',
    libtorch: i.torchVersion,
    threads: i.threads.intraOp,
    omp_wait_policy: i.ompWaitPolicy,
    mood: { add16_awaited_us: add16, add16_call_us: add16Call, matmul512_us: matmul512, rss_growth_10k_cycles_mib: rssGrowthMiB },
    python: { torch: py.torch, threads: py.threads, add16_us: py.add16_us, add16_with_numpy_read_us: py.add16_read_us, matmul512_us: py.matmul512_us },
    ratio: {
      add16_vs_python_eager: add16 / py.add16_us,
      add16_call_vs_python_eager: add16Call / py.add16_us,
      add16_vs_python_eager_with_read: add16 / py.add16_read_us,
      matmul512_vs_python: matmul512 / py.matmul512_us,
    },
    targets: { per_op_vs_python_eager: '<= 2 (add16_call vs a + b; add16 awaited vs (a + b).numpy())', matmul512_vs_python: '<= 1.05' },
  };
  process.stdout.write(JSON.stringify(result) + '\n');
}

main().catch((e) => {
  process.stderr.write(String(e?.stack ?? e) + '\n');
  process.exit(1);
});
