/**
 * BEiT throughput: images/s of an eval forward (beit_base_patch16_224, batch 8) and of a train step
 * (batch 4: forward, cross-entropy, backward) in mood-ood, against the same model in plain PyTorch
 * (scripts/bench/beit-forward.py, Debian's /usr/bin/python3, OMP_WAIT_POLICY=PASSIVE,
 * torch.set_num_threads(2)). Prints one JSON object with the ratios (ours / PyTorch; > 1 = faster).
 *
 *   npx ts-node --transpile-only scripts/bench/beit-forward.ts [--threads 2] [--iters 3] [--rounds 2] [--no-python]
 *
 * The ratio compares the best round of each (rounds alternate the implementations, so that load from
 * other processes on a shared machine hits both alike).
 */
import { execFileSync } from 'node:child_process';
import * as os from 'node:os';
import * as path from 'node:path';
import { createModel } from '../../lib/models/beit';
import { info, setNumThreads } from '../../lib/runtime';
import { Tensor } from '../../lib/tensor';

function arg(name: string, dflt: number): number {
  const i = process.argv.indexOf(`--${name}`);
  return i >= 0 ? Number(process.argv[i + 1]) : dflt;
}

async function timed(step: () => Promise<void>, iters: number, minSeconds: number): Promise<{ iters: number; seconds: number }> {
  await step(); // warm-up
  let n = 0;
  const t0 = process.hrtime.bigint();
  const elapsed = (): number => Number(process.hrtime.bigint() - t0) / 1e9;
  while (n < iters || elapsed() < minSeconds) {
    await step();
    n++;
  }
  return { iters: n, seconds: elapsed() };
}

interface Result {
  impl: string;
  torch: string;
  threads: number;
  omp_wait_policy?: string | null;
  eval: { batch: number; iters: number; seconds: number; images_per_s: number };
  train: { batch: number; iters: number; seconds: number; images_per_s: number };
}

async function runOurs(threads: number, iters: number, minSeconds: number, evalBatch: number, trainBatch: number): Promise<Result> {
  setNumThreads(threads);
  // MOOD's fine-tuning model: per-block relative position bias, layer scale, mean pooling, drop path 0.1.
  const model = createModel('beit_base_patch16_224', { use_abs_pos_emb: false, use_rel_pos_bias: true, init_values: 0.1, drop_path_rate: 0.1, seed: 0 });
  const xe = Tensor.randn([evalBatch, 3, 224, 224], { seed: 1 });
  const xt = Tensor.randn([trainBatch, 3, 224, 224], { seed: 2 });
  const yt = Tensor.fromArray(BigInt64Array.from({ length: trainBatch }, (_, i) => BigInt(i % 1000)), [trainBatch], { dtype: 'int64' });
  model.eval();
  const ev = await timed(async () => {
    const y = model.forward(xe);
    await y.ready();
    y.dispose();
  }, iters, minSeconds);
  const tr = await timed(async () => {
    const loss = model.trainStep(xt, yt);
    await loss.ready();
    loss.dispose();
  }, iters, minSeconds);
  model.dispose();
  for (const t of [xe, xt, yt]) t.dispose();
  return {
    impl: `mood-ood (attention ${model.options.attention})`,
    torch: info().torchVersion,
    threads,
    omp_wait_policy: process.env.OMP_WAIT_POLICY,
    eval: { batch: evalBatch, ...ev, images_per_s: (ev.iters * evalBatch) / ev.seconds },
    train: { batch: trainBatch, ...tr, images_per_s: (tr.iters * trainBatch) / tr.seconds },
  };
}

function runPython(threads: number, iters: number, minSeconds: number, evalBatch: number, trainBatch: number): Result {
  const py = process.env.MOOD_BENCH_PYTHON ?? '/usr/bin/python3';
  const out = execFileSync(
    py,
    [path.join(__dirname, 'beit-forward.py'), '--threads', String(threads), '--iters', String(iters), '--min-seconds', String(minSeconds), '--eval-batch', String(evalBatch), '--train-batch', String(trainBatch)],
    { env: { ...process.env, OMP_WAIT_POLICY: 'PASSIVE' }, encoding: 'utf8', maxBuffer: 1 << 20 },
  );
  return JSON.parse(out.trim().split('\n').pop()!) as Result;
}

function best(rs: Result[], k: 'eval' | 'train'): number {
  return Math.max(...rs.map((r) => r[k].images_per_s));
}

async function main(): Promise<void> {
  const threads = arg('threads', 2);
  const iters = arg('iters', 3);
  const minSeconds = arg('min-seconds', 0);
  const evalBatch = arg('eval-batch', 8);
  const trainBatch = arg('train-batch', 4);
  // Rounds alternate the two implementations so that both see the same background load.
  const rounds = arg('rounds', 2);
  const withPython = !process.argv.includes('--no-python');
  const ours: Result[] = [];
  const pytorch: Result[] = [];
  for (let r = 0; r < rounds; r++) {
    ours.push(await runOurs(threads, iters, minSeconds, evalBatch, trainBatch));
    if (withPython) pytorch.push(runPython(threads, iters, minSeconds, evalBatch, trainBatch));
  }
  const round = (x: number): number => Math.round(x * 1000) / 1000;
  const summary = (rs: Result[]) =>
    rs.length ? { impl: rs[0].impl, torch: rs[0].torch, threads: rs[0].threads, omp_wait_policy: rs[0].omp_wait_policy, eval_images_per_s: round(best(rs, 'eval')), train_images_per_s: round(best(rs, 'train')), rounds: rs.map((r) => ({ eval: round(r.eval.images_per_s), train: round(r.train.images_per_s) })) } : null;
  console.log(
    JSON.stringify(
      {
        benchmark: `beit_base_patch16_224 (MOOD fine-tune layout) on CPU: eval forward batch ${evalBatch}, train step (forward + cross-entropy + backward) batch ${trainBatch}; best of ${rounds} alternating rounds of ${iters} timed iterations`,
        machine: { cpus: os.cpus().length, loadavg: os.loadavg().map(round) },
        ours: summary(ours),
        pytorch: summary(pytorch),
        ratio: withPython ? { eval: round(best(ours, 'eval') / best(pytorch, 'eval')), train: round(best(ours, 'train') / best(pytorch, 'train')) } : null,
      },
      null,
      1,
    ),
  );
}

main().catch((e) => {
  console.error(e);
  process.exit(1);
});
