/**
 * Data-parallel step time on CPU/Gloo: the native fine-tuning step (forward, loss, backward,
 * bucketed gradient all-reduce, clip, AdamW) of a small BEiT with 1 process vs 2 processes (same
 * per-process batch: weak scaling, so the ideal is equal step times), and how much communication the
 * overlap hides: the same 2-process run with the all-reduces launched from the autograd hooks
 * during backward (overlap) and only after backward (no overlap): the difference of their step
 * times is the communication time the overlap hid.
 *
 * Against PyTorch DDP (Gloo, same bucket size, same model shape) in scripts/bench/dist-step.py run
 * with Debian's /usr/bin/python3 (OMP_WAIT_POLICY=PASSIVE, same threads per process).
 *
 *   npx ts-node --transpile-only scripts/bench/dist-step.ts [--steps 10] [--batch 16] [--bucket-mb 1] [--threads 1] [--no-python]
 *
 * Prints one JSON object. Medians over the measured steps (after 2 warm-up steps).
 */
import { execFileSync } from 'node:child_process';
import * as net from 'node:net';
import * as path from 'node:path';
import { Writable } from 'node:stream';

const MODEL = {
  img_size: 32, patch_size: 8, in_chans: 3, num_classes: 10, embed_dim: 192, depth: 6, num_heads: 3, mlp_ratio: 4,
  qkv_bias: true, init_values: 0.1, use_abs_pos_emb: false, use_rel_pos_bias: true, use_shared_rel_pos_bias: false,
  use_mean_pooling: true, drop_path_rate: 0, attention: 'exact' as const,
};

function arg(name: string, dflt: number): number {
  const i = process.argv.indexOf(`--${name}`);
  return i >= 0 ? Number(process.argv[i + 1]) : dflt;
}

function median(v: number[]): number {
  const s = [...v].sort((a, b) => a - b);
  return s.length % 2 ? s[(s.length - 1) / 2] : (s[s.length / 2 - 1] + s[s.length / 2]) / 2;
}

interface ChildResult {
  rank: number;
  world: number;
  overlap: boolean;
  stepMs: number[];
  waitMs: number[];
  buckets: number;
  launchedDuringBackward: number;
  params: number;
}

/** All-reduce bandwidth of the group: sum of a 64 MB float32 tensor, bus bandwidth as nccl-tests defines it. */
async function allReduceChild(): Promise<void> {
  const { initFromEnv } = await import('../../lib/distributed');
  const { Tensor } = await import('../../lib/tensor');
  const pg = (await initFromEnv({ timeoutMs: 120_000 }))!;
  const n = 16 * 1024 * 1024;
  const x = Tensor.fromArray(new Float32Array(n).fill(1));
  const times: number[] = [];
  for (let i = 0; i < 5; i++) {
    await pg.barrier();
    const t0 = process.hrtime.bigint();
    const y = pg.allReduce(x, 'sum');
    await y.ready();
    times.push(Number(process.hrtime.bigint() - t0) / 1e6);
    y.dispose();
  }
  const ms = median(times.slice(1));
  const w = pg.worldSize;
  process.stdout.write(`RESULT ${JSON.stringify({ rank: pg.rank, world: w, bytes: n * 4, ms, busGBps: ((2 * (w - 1)) / w) * ((n * 4) / (ms / 1e3)) / 1e9 })}\n`);
  await pg.destroy();
}

/** One process of a run: under `launch` (2 ranks) or alone. */
async function child(): Promise<void> {
  const { initFromEnv } = await import('../../lib/distributed');
  const { createModel } = await import('../../lib/models/beit');
  const { Tensor } = await import('../../lib/tensor');
  const { FinetuneOptimizer } = await import('../../lib/train/optimizer');
  const steps = arg('steps', 10);
  const batch = arg('batch', 16);
  const overlap = !process.argv.includes('--no-overlap');
  const pg = await initFromEnv({ timeoutMs: 120_000 });
  const model = createModel(MODEL, { seed: 0 });
  model.train();
  if (pg) await pg.broadcastModel(model);
  const sync = pg?.createGradientSync({ bucketBytes: arg('bucket-mb', 1) * 1024 * 1024, overlap });
  const opt = await FinetuneOptimizer.create(model, { lr: 1e-4, weightDecay: 0.05, layerDecay: 0.75, clipGrad: 1.0, gradSyncId: sync?.id });
  const x = Tensor.fromArray(new Float32Array(batch * 3 * 32 * 32).map((_, i) => Math.sin(i)), [batch, 3, 32, 32]);
  const y = new Int32Array(batch).map((_, i) => i % 10);
  const stepMs: number[] = [];
  const waitMs: number[] = [];
  for (let it = 0; it < steps + 2; it++) {
    const t0 = process.hrtime.bigint();
    const out = opt.step(x, y);
    await out.loss.data();
    const ms = Number(process.hrtime.bigint() - t0) / 1e6;
    out.loss.dispose();
    out.gradNorm.dispose();
    if (it < 2) continue;
    stepMs.push(ms);
    if (sync) waitMs.push(sync.stats().waitMs);
  }
  const params = model.stateSpec().filter((e) => e[3] === 'parameter').reduce((n, e) => n + e[1].reduce((a, b) => a * b, 1), 0);
  const st = sync?.stats();
  const r: ChildResult = { rank: pg?.rank ?? 0, world: pg?.worldSize ?? 1, overlap, stepMs, waitMs, buckets: st?.buckets ?? 0, launchedDuringBackward: st?.launchedDuringBackward ?? 0, params };
  process.stdout.write(`RESULT ${JSON.stringify(r)}\n`);
  await pg?.destroy();
}

async function freePort(): Promise<number> {
  return new Promise((resolve) => {
    const s = net.createServer();
    s.listen(0, '127.0.0.1', () => {
      const p = (s.address() as net.AddressInfo).port;
      s.close(() => resolve(p));
    });
  });
}

function collect(): { stream: Writable; results: () => ChildResult[] } {
  let buf = '';
  const stream = new Writable({
    write(chunk, _enc, cb) {
      buf += String(chunk);
      cb();
    },
  });
  return {
    stream,
    results: () => buf.split('\n').flatMap((l) => {
      const m = /RESULT (\{.*\})$/.exec(l);
      return m ? [JSON.parse(m[1]) as ChildResult] : [];
    }),
  };
}

async function runOurs(nproc: number, extra: string[], threads: number): Promise<ChildResult[]> {
  const { launch } = await import('../../lib/distributed/launch');
  const c = collect();
  const args = [__filename, 'child', ...process.argv.slice(2).filter((a) => a !== '--no-python'), ...extra];
  const r = await launch({ nprocPerNode: nproc, masterPort: await freePort(), command: args, env: { MOOD_NUM_THREADS: String(threads) }, stdout: c.stream });
  if (r.exitCode !== 0) throw new Error(`bench run failed: ${r.message}`);
  return c.results();
}

function summary(rs: ChildResult[]): Record<string, number> {
  const r0 = rs.find((r) => r.rank === 0)!;
  // A synchronous step ends together on all ranks; take the slower rank's median.
  return {
    step_ms: Math.max(...rs.map((r) => median(r.stepMs))),
    wait_after_backward_ms: rs.length > 1 ? Math.max(...rs.map((r) => median(r.waitMs))) : 0,
    buckets: r0.buckets,
    buckets_launched_during_backward: r0.launchedDuringBackward,
  };
}

async function main(): Promise<void> {
  if (process.argv[2] === 'child') return child();
  if (process.argv[2] === 'allreduce') return allReduceChild();
  const threads = arg('threads', 1);
  const single = await runOurs(1, [], threads);
  const overlap = await runOurs(2, [], threads);
  const noOverlap = await runOurs(2, ['--no-overlap'], threads);
  const ar = await (async () => {
    const { launch } = await import('../../lib/distributed/launch');
    const c = collect();
    const r = await launch({ nprocPerNode: 2, masterPort: await freePort(), command: [__filename, 'allreduce'], env: { MOOD_NUM_THREADS: String(threads) }, stdout: c.stream });
    if (r.exitCode !== 0) throw new Error(`all-reduce run failed: ${r.message}`);
    return c.results() as unknown as Array<{ rank: number; bytes: number; ms: number; busGBps: number }>;
  })();
  const s1 = summary(single);
  const s2 = summary(overlap);
  const s2n = summary(noOverlap);
  const result: Record<string, unknown> = {
    bench: 'dist-step',
    model: MODEL,
    params: single[0].params,
    batch_per_process: arg('batch', 16),
    bucket_mb: arg('bucket-mb', 1),
    threads_per_process: threads,
    steps: arg('steps', 10),
    gloo_allreduce_2_processes: { bytes: ar[0].bytes, ms: Math.max(...ar.map((r) => r.ms)), bus_GBps: Math.min(...ar.map((r) => r.busGBps)) },
    ours: {
      one_process: s1,
      two_processes_overlap: s2,
      two_processes_no_overlap: s2n,
      // Weak scaling: 2 processes do twice the work per step; 1.0 would be perfect.
      scaling_efficiency: s1.step_ms / s2.step_ms,
      // Communication hidden by overlap: what the step gains when the buckets go out during
      // backward instead of after it. The waits after backward are informational: on a loaded
      // machine they also contain the time spent waiting for the slower rank.
      comm_ms_hidden_by_overlap: s2n.step_ms - s2.step_ms,
      wait_after_backward_ms_no_overlap: s2n.wait_after_backward_ms,
      wait_after_backward_ms_overlap: s2.wait_after_backward_ms,
    },
  };
  if (!process.argv.includes('--no-python')) {
    try {
      const py = execFileSync('/usr/bin/python3', [path.join(__dirname, 'dist-step.py'), '--steps', String(arg('steps', 10)), '--batch', String(arg('batch', 16)), '--bucket-mb', String(arg('bucket-mb', 1)), '--threads', String(threads)], {
        env: { ...process.env, OMP_WAIT_POLICY: 'PASSIVE' },
        encoding: 'utf8',
        timeout: 900_000,
      });
      const p = JSON.parse(py.trim().split('\n').pop()!) as { one_process: { step_ms: number }; two_processes_ddp: { step_ms: number } };
      result.pytorch = p;
      result.ratio_step_time_pytorch_over_ours = {
        one_process: p.one_process.step_ms / s1.step_ms,
        two_processes: p.two_processes_ddp.step_ms / s2.step_ms,
      };
    } catch (e) {
      result.pytorch = { error: (e as Error).message.split('\n')[0] };
    }
  }
  process.stdout.write(JSON.stringify(result, null, 2) + '\n');
}

main().catch((e) => {
  process.stderr.write(`dist-step: ${(e as Error).message}\n`);
  process.exit(1);
});
