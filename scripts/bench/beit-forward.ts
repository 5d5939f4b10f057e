/**
 * BEiT throughput: images/s of an eval forward (beit_base_patch16_224, batch 8) and of a train step
 * (batch 4: forward, cross-entropy, backward) in mood-ood, against the same model in plain PyTorch
 * (scripts/bench/beit-forward.py, Debian's /usr/bin/python3, OMP_WAIT_POLICY=PASSIVE,
 * torch.set_num_threads(2)). Prints one JSON object with the ratios (ours / PyTorch; > 1 = faster).
 *
 *   npx ts-node --transpile-only scripts/bench/beit-forward.ts [--threads 2] [--steps 6] [--warmup 2]
 *                                                              [--parts eval,train] [--no-python]
 *                                                              [--py-openblas-timeout same|default|N]
 *
 * PyTorch runs with our OPENBLAS_THREAD_TIMEOUT (lib/binding.ts sets 4 when unset) unless
 * --py-openblas-timeout says otherwise (`default`: unset, OpenBLAS's own 28), so that it gets
 * whichever of the two is its best setting; the JSON records what each side ran with.
 *
 * Both models live side by side (the PyTorch twin as a `--serve` child process) and the timed steps
 * alternate one by one (ours, PyTorch, PyTorch, ours, ...), so that background load on a shared
 * machine hits both alike at the grain of a step rather than of a multi-second round. The ratio is
 * PyTorch's median step time over ours; `paired` is the median of the per-pair ratios.
 */
import { ChildProcessWithoutNullStreams, spawn } from 'node:child_process';
import * as os from 'node:os';
import * as path from 'node:path';
import * as readline from 'node:readline';
import { createModel } from '../../lib/models/beit';
import { info, setNumThreads } from '../../lib/runtime';
import { Tensor } from '../../lib/tensor';

type Part = 'eval' | 'train';

function arg(name: string, dflt: number): number {
  const i = process.argv.indexOf(`--${name}`);
  if (i < 0) return dflt;
  const v = Number(process.argv[i + 1]);
  if (!Number.isInteger(v) || v < 0) throw new Error(`--${name} expects a non-negative integer, got '${process.argv[i + 1]}'`);
  return v;
}

function parts(): Part[] {
  const i = process.argv.indexOf('--parts');
  if (i < 0) return ['eval', 'train'];
  const ps = (process.argv[i + 1] ?? '').split(',');
  for (const p of ps) if (p !== 'eval' && p !== 'train') throw new Error(`--parts expects eval and/or train (comma-separated), got '${p}'`);
  return ps as Part[];
}

const median = (xs: number[]): number => {
  const s = [...xs].sort((a, b) => a - b);
  return s.length % 2 ? s[(s.length - 1) / 2] : (s[s.length / 2 - 1] + s[s.length / 2]) / 2;
};
const round = (x: number): number => Math.round(x * 1000) / 1000;
const seconds = (t0: bigint): number => Number(process.hrtime.bigint() - t0) / 1e9;

/** The PyTorch twin in --serve mode: one step per request, its seconds back. */
class Twin {
  private readonly proc: ChildProcessWithoutNullStreams;
  private readonly lines: AsyncIterator<string>;
  private stderr = '';

  constructor(threads: number, evalBatch: number, trainBatch: number, openblasTimeout: string | undefined) {
    const py = process.env.MOOD_BENCH_PYTHON ?? '/usr/bin/python3';
    const args = [path.join(__dirname, 'beit-forward.py'), '--serve', '--threads', String(threads), '--eval-batch', String(evalBatch), '--train-batch', String(trainBatch)];
    const env: NodeJS.ProcessEnv = { ...process.env, OMP_WAIT_POLICY: 'PASSIVE', OPENBLAS_THREAD_TIMEOUT: openblasTimeout };
    if (openblasTimeout === undefined) delete env.OPENBLAS_THREAD_TIMEOUT;
    this.proc = spawn(py, args, { env });
    this.proc.stderr.on('data', (d: Buffer) => (this.stderr += d.toString()));
    this.lines = readline.createInterface({ input: this.proc.stdout })[Symbol.asyncIterator]();
  }

  private async line(): Promise<string> {
    const r = await this.lines.next();
    if (r.done) throw new Error(`the PyTorch twin exited: ${this.stderr.trim().split('\n').slice(-3).join(' | ')}`);
    return r.value;
  }

  async ready(): Promise<void> {
    const l = await this.line();
    if (l !== 'ready') throw new Error(`the PyTorch twin said '${l}' instead of 'ready'`);
  }

  async step(part: Part): Promise<number> {
    this.proc.stdin.write(`${part}\n`);
    return (JSON.parse(await this.line()) as { seconds: number }).seconds;
  }

  close(): void {
    this.proc.stdin.end();
  }
}

async function main(): Promise<void> {
  const threads = arg('threads', 2);
  const steps = arg('steps', 6);
  const warmup = arg('warmup', 2);
  const evalBatch = arg('eval-batch', 8);
  const trainBatch = arg('train-batch', 4);
  if (steps < 1) throw new Error('--steps must be >= 1');
  const withPython = !process.argv.includes('--no-python');
  const torchVersion = info().torchVersion;  // loads the addon: our thread environment is set from here on
  const oursTimeout = process.env.OPENBLAS_THREAD_TIMEOUT;
  const pyTimeoutArg = process.argv.includes('--py-openblas-timeout') ? process.argv[process.argv.indexOf('--py-openblas-timeout') + 1] : 'same';
  if (pyTimeoutArg !== 'same' && pyTimeoutArg !== 'default' && !/^[0-9]+$/.test(pyTimeoutArg ?? ''))
    throw new Error(`--py-openblas-timeout expects same, default or a number, got '${pyTimeoutArg}'`);
  const pyTimeout = pyTimeoutArg === 'same' ? oursTimeout : pyTimeoutArg === 'default' ? undefined : pyTimeoutArg;
  // Started first: its model builds while ours does.
  const twin = withPython ? new Twin(threads, evalBatch, trainBatch, pyTimeout) : null;

  setNumThreads(threads);
  // MOOD's fine-tuning model: per-block relative position bias, layer scale, mean pooling, drop path 0.1.
  const model = createModel('beit_base_patch16_224', { use_abs_pos_emb: false, use_rel_pos_bias: true, init_values: 0.1, drop_path_rate: 0.1, seed: 0 });
  const xe = Tensor.randn([evalBatch, 3, 224, 224], { seed: 1 });
  const xt = Tensor.randn([trainBatch, 3, 224, 224], { seed: 2 });
  const yt = Tensor.fromArray(BigInt64Array.from({ length: trainBatch }, (_, i) => BigInt(i % 1000)), [trainBatch], { dtype: 'int64' });
  const ours = async (part: Part): Promise<number> => {
    const t0 = process.hrtime.bigint();
    if (part === 'eval') {
      model.eval();
      const y = model.forward(xe);
      await y.ready();
      y.dispose();
    } else {
      const loss = model.trainStep(xt, yt);
      await loss.ready();
      loss.dispose();
    }
    return seconds(t0);
  };
  if (twin) await twin.ready();

  const result: Record<string, unknown> = {};
  for (const part of parts()) {
    const batch = part === 'eval' ? evalBatch : trainBatch;
    for (let i = 0; i < warmup; i++) {
      await ours(part);
      if (twin) await twin.step(part);
    }
    const loadBefore = os.loadavg().map(round);
    const t: { ours: number[]; pytorch: number[] } = { ours: [], pytorch: [] };
    for (let i = 0; i < steps; i++) {
      // ABBA order: neither side always runs right after the other's step.
      if (i % 2 === 0 || !twin) t.ours.push(await ours(part));
      if (twin) t.pytorch.push(await twin.step(part));
      if (i % 2 === 1 && twin) t.ours.push(await ours(part));
    }
    const summary = (xs: number[]) => ({ median_s: round(median(xs)), images_per_s: round(batch / median(xs)), steps_s: xs.map(round) });
    result[part] = {
      batch,
      loadavg: { before: loadBefore, after: os.loadavg().map(round) },
      ours: summary(t.ours),
      pytorch: twin ? summary(t.pytorch) : null,
      ratio: twin ? round(median(t.pytorch) / median(t.ours)) : null,
      paired: twin ? round(median(t.ours.map((o, i) => t.pytorch[i] / o))) : null,
    };
  }
  twin?.close();
  model.dispose();
  for (const x of [xe, xt, yt]) x.dispose();

  console.log(
    JSON.stringify(
      {
        benchmark: `beit_base_patch16_224 (MOOD fine-tune layout) on CPU: eval forward batch ${evalBatch}, train step (forward + cross-entropy + backward) batch ${trainBatch}; ${steps} timed steps each after ${warmup} warm-up, alternating step by step with PyTorch; ratio = median PyTorch step time / median ours`,
        machine: { cpus: os.cpus().length, loadavg: os.loadavg().map(round) },
        ours: { impl: `mood-ood (attention ${model.options.attention})`, torch: torchVersion, threads, omp_wait_policy: process.env.OMP_WAIT_POLICY ?? null, openblas_thread_timeout: oursTimeout ?? null },
        pytorch: twin ? { impl: 'pytorch', python: process.env.MOOD_BENCH_PYTHON ?? '/usr/bin/python3', threads, omp_wait_policy: 'PASSIVE', openblas_thread_timeout: pyTimeout ?? null } : null,
        ...result,
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
