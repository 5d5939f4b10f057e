/**
 * Small BEiTs on the CPU, where CPU users train: a train step (forward, label-smoothing
 * cross-entropy, backward, clip_grad_norm_, AdamW over the reference's parameter groups: one
 * FinetuneOptimizer.step) and an eval forward, in mood-ood against the same model and step in
 * plain PyTorch (scripts/bench/tiny-train.py, Debian's /usr/bin/python3, OMP_WAIT_POLICY=PASSIVE,
 * same thread count). Prints one JSON object; ratio = PyTorch median step time / ours (> 1: faster).
 *
 *   npx ts-node --transpile-only scripts/bench/tiny-train.ts [--threads 2] [--steps 30] [--warmup 2]
 *       [--models tiny,demo] [--parts train,eval] [--no-python] [--py-openblas-timeout same|default|N]
 *   npx ts-node --transpile-only scripts/bench/tiny-train.ts --soak 500   (ours only: RSS and step
 *       time over a long run of the tiny model's train step)
 *
 * Models:
 *   tiny: 32 px, patch 4 (65 tokens), dim 192, depth 6, 3 heads, MLP 4, relative position bias per
 *         block, layer scale 0.1, mean pooling, drop path 0.1, 10 classes; batch 128 (train and eval).
 *   demo: `mood demo`'s model (lib/demo/options.ts DEMO_MODEL_OPTS: 28 px, patch 4, dim 96, depth 4,
 *         4 heads, MLP 2, relative position bias), 6 classes; train batch 128, eval batch 256 (the
 *         demo's).
 * Recipe (the demo's): lr 2e-3, weight decay 0.05, layer decay 0.9, clip_grad 3, smoothing 0.1.
 *
 * Same work on both sides, checked before timing: both load the same (perturbed) weights; the
 * eval-mode loss, the first train step's loss and gradient norm (same seed, so the same drop-path
 * draws) and the eval loss after that AdamW update must agree (`check`; the run fails otherwise).
 *
 * Steps alternate one by one (ours, PyTorch, PyTorch, ours, ...) so that background load on a
 * shared machine hits both alike. Drift: step 30 / step 5 and the median of the last five steps /
 * the first five, per side. RSS: ours (this process) and PyTorch's, peak and per step.
 */
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { DEMO_MODEL_OPTS } from '../../lib/demo/options';
import { writeNpy, ndarray } from '../../lib/npy';
import { saveTensors } from '../../lib/checkpoint/save-tensors';
import { createModel, type Beit } from '../../lib/models/beit';
import { info, setNumThreads } from '../../lib/runtime';
import { Tensor } from '../../lib/tensor';
import { FinetuneOptimizer } from '../../lib/train/optimizer';
import { PythonTwin, benchPython, median, round, seconds } from './twin';

type Part = 'train' | 'eval';
type ModelName = 'tiny' | 'demo';

const MODELS: Record<ModelName, { opts: Record<string, number | boolean>; trainBatch: number; evalBatch: number; describe: string }> = {
  tiny: {
    opts: { img_size: 32, patch_size: 4, embed_dim: 192, depth: 6, num_heads: 3, mlp_ratio: 4, use_rel_pos_bias: true, use_abs_pos_emb: false, init_values: 0.1, use_mean_pooling: true, drop_path_rate: 0.1, num_classes: 10 },
    trainBatch: 128,
    evalBatch: 128,
    describe: 'tiny BEiT: 32 px, patch 4, dim 192, depth 6, 3 heads, MLP 4, rel-pos per block, layer scale 0.1, mean pooling, drop path 0.1',
  },
  demo: {
    opts: { ...DEMO_MODEL_OPTS, num_classes: 6 },
    trainBatch: 128,
    evalBatch: 256,
    describe: "mood demo's model: 28 px, patch 4, dim 96, depth 4, 4 heads, MLP 2, rel-pos per block",
  },
};
const RECIPE = { lr: 2e-3, weight_decay: 0.05, layer_decay: 0.9, clip_grad: 3, smoothing: 0.1 };
// The keyword options the twin's model takes (the reference constructor's).
const TWIN_KEYS = ['img_size', 'patch_size', 'in_chans', 'num_classes', 'embed_dim', 'depth', 'num_heads', 'mlp_ratio', 'qkv_bias', 'init_values', 'use_abs_pos_emb', 'use_rel_pos_bias', 'use_mean_pooling', 'layer_norm_eps', 'drop_path_rate'] as const;

function flag(name: string): string | undefined {
  const i = process.argv.indexOf(`--${name}`);
  return i < 0 ? undefined : process.argv[i + 1];
}

function intArg(name: string, dflt: number, min: number): number {
  const v = flag(name);
  if (v === undefined) return dflt;
  const n = Number(v);
  if (!Number.isInteger(n) || n < min) throw new Error(`--${name} expects an integer >= ${min}, got '${v}'`);
  return n;
}

function listArg<T extends string>(name: string, all: readonly T[]): T[] {
  const v = flag(name);
  if (v === undefined) return [...all];
  const xs = v.split(',');
  for (const x of xs) if (!all.includes(x as T)) throw new Error(`--${name} expects a comma-separated list of ${all.join(', ')}, got '${x}'`);
  return xs as T[];
}

function lcg(seed: number): () => number {
  let s = seed >>> 0;
  return () => {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
    return s / 2 ** 32;
  };
}

const cpuSeconds = (c0: NodeJS.CpuUsage): number => {
  const d = process.cpuUsage(c0);
  return (d.user + d.system) / 1e6;
};
const rssMb = (): number => round(process.memoryUsage().rss / 2 ** 20, 1);
const loadavg = (): number[] => os.loadavg().map((x) => round(x, 2));

/**
 * The reference init leaves biases and relative position tables at zero and the head near zero, so
 * the loss would not depend on the body: every weight gets uniform noise of +-0.05 (the same on both
 * sides: the twin loads these weights).
 */
async function perturb(model: Beit, seed: number): Promise<void> {
  const rnd = lcg(seed);
  const sd = new Map<string, Tensor>();
  for (const [k, t] of model.stateDict()) {
    if (k.endsWith('relative_position_index')) {
      sd.set(k, t);
      continue;
    }
    const d = Float32Array.from((await t.data()) as Float32Array);
    for (let i = 0; i < d.length; i++) d[i] += (rnd() - 0.5) * 0.1;
    sd.set(k, Tensor.fromArray(d, t.shape, { dtype: 'float32' }));
    t.dispose();
  }
  await model.loadStateDict(sd);
  for (const t of sd.values()) t.dispose();
}

/** Wall and CPU seconds of one step (CPU: the whole process, every thread). */
interface Timing {
  seconds: number;
  cpu_seconds: number;
}

interface Side {
  train(seed: number): Promise<Timing & { loss: number; grad_norm: number }>;
  eval(): Promise<Timing>;
  evalLoss(): Promise<number>;
}

/** Our side of one model: the model, its optimizer and the batches. */
async function ourSide(name: ModelName, dir: string): Promise<{ side: Side; twinSetup: Record<string, unknown>; params: number; dispose: () => void }> {
  const m = MODELS[name];
  const model = createModel({ ...m.opts, seed: 0 });
  await perturb(model, 17);
  const o = model.options as unknown as Record<string, unknown>;
  const { img_size: size, in_chans: chans, num_classes: classes } = model.options;
  const rnd = lcg(5);
  const img = (b: number) => Float32Array.from({ length: b * chans * size * size }, () => rnd() * 2 - 1);
  const xt = img(m.trainBatch);
  const xe = img(m.evalBatch);
  const targets = Int32Array.from({ length: m.trainBatch }, (_, i) => (i * 7) % classes);
  const files = { init: path.join(dir, `${name}.init.pth`), images: path.join(dir, `${name}.images.npy`), targets: path.join(dir, `${name}.targets.npy`), eval_images: path.join(dir, `${name}.eval.npy`) };
  await saveTensors(files.init, model.stateDict());
  writeNpy(files.images, ndarray('float32', [m.trainBatch, chans, size, size], xt));
  writeNpy(files.targets, ndarray('int32', [m.trainBatch], targets));
  writeNpy(files.eval_images, ndarray('float32', [m.evalBatch, chans, size, size], xe));
  const images = Tensor.fromArray(xt, [m.trainBatch, chans, size, size]);
  const evalImages = Tensor.fromArray(xe, [m.evalBatch, chans, size, size]);
  const opt = await FinetuneOptimizer.create(model, { lr: RECIPE.lr, weightDecay: RECIPE.weight_decay, layerDecay: RECIPE.layer_decay, clipGrad: RECIPE.clip_grad, smoothing: RECIPE.smoothing });
  const smoothedLoss = async (logits: Tensor): Promise<number> => {
    const v = (await logits.data()) as Float32Array;
    let total = 0;
    for (let i = 0; i < m.trainBatch; i++) {
      const row = v.subarray(i * classes, (i + 1) * classes);
      const mx = Math.max(...row);
      const lse = Math.log(row.reduce((s, z) => s + Math.exp(z - mx), 0)) + mx;
      const meanLogp = row.reduce((s, z) => s + z, 0) / classes - lse;
      total += (1 - RECIPE.smoothing) * (lse - row[targets[i]]) - RECIPE.smoothing * meanLogp;
    }
    return total / m.trainBatch;
  };
  const side: Side = {
    async train(seed) {
      model.train();
      const c0 = process.cpuUsage();
      const t0 = process.hrtime.bigint();
      const r = opt.step(images, targets, { seed });
      const loss = await r.loss.item();
      const s = seconds(t0);
      const cpu = cpuSeconds(c0);
      const gradNorm = await r.gradNorm.item();
      r.loss.dispose();
      r.gradNorm.dispose();
      return { seconds: s, cpu_seconds: cpu, loss, grad_norm: gradNorm };
    },
    async eval() {
      model.eval();
      const c0 = process.cpuUsage();
      const t0 = process.hrtime.bigint();
      const y = model.forward(evalImages);
      await y.ready();
      const s = seconds(t0);
      const cpu = cpuSeconds(c0);
      y.dispose();
      return { seconds: s, cpu_seconds: cpu };
    },
    async evalLoss() {
      model.eval();
      const y = model.forward(images);
      const l = await smoothedLoss(y);
      y.dispose();
      return l;
    },
  };
  const twinModel = Object.fromEntries(TWIN_KEYS.map((k) => [k, o[k]]));
  const twinSetup = { cmd: 'setup', name, model: twinModel, ...files, opt: RECIPE };
  const params = model.stateSpec().filter((e) => e[3] === 'parameter').reduce((n, e) => n + e[1].reduce((a, b) => a * b, 1), 0);
  return {
    side,
    twinSetup,
    params,
    dispose: () => {
      opt.dispose();
      model.dispose();
      images.dispose();
      evalImages.dispose();
    },
  };
}

function twinSide(twin: PythonTwin, name: ModelName): Side {
  return {
    train: (seed) => twin.request(JSON.stringify({ cmd: 'train', name, seed })),
    eval: () => twin.request(JSON.stringify({ cmd: 'eval', name })),
    evalLoss: async () => (await twin.request<{ loss: number }>(JSON.stringify({ cmd: 'eval_loss', name }))).loss,
  };
}

const relDiff = (a: number, b: number): number => Math.abs(a - b) / Math.max(Math.abs(b), 1e-12);

/**
 * Both sides compute the same thing: eval loss at the start weights, the first train step's loss and
 * gradient norm (same seed: the same drop-path draws from the same generator), the eval loss after
 * that update. Bounds: float32 rounding of reductions over ~1e6 terms in a different order gives
 * relative differences of ~1e-6 in the loss; the norm and the update (Adam's first step is
 * lr * g / (|g| + eps), sign-like where |g| is tiny) amplify it, hence the wider bounds there. A
 * different model or recipe moves these by 1e-2 or more.
 */
async function check(ours: Side, py: Side): Promise<Record<string, unknown>> {
  const before = [await ours.evalLoss(), await py.evalLoss()];
  const step = [await ours.train(1000), await py.train(1000)];
  const after = [await ours.evalLoss(), await py.evalLoss()];
  const d = {
    eval_loss: relDiff(before[0], before[1]),
    train_loss: relDiff(step[0].loss, step[1].loss),
    grad_norm: relDiff(step[0].grad_norm, step[1].grad_norm),
    eval_loss_after_update: relDiff(after[0], after[1]),
  };
  const ok = d.eval_loss <= 1e-5 && d.train_loss <= 1e-5 && d.grad_norm <= 1e-4 && d.eval_loss_after_update <= 1e-4;
  return {
    ok,
    ours: { eval_loss: before[0], train_loss: step[0].loss, grad_norm: step[0].grad_norm, eval_loss_after_update: after[0] },
    pytorch: { eval_loss: before[1], train_loss: step[1].loss, grad_norm: step[1].grad_norm, eval_loss_after_update: after[1] },
    rel_diff: Object.fromEntries(Object.entries(d).map(([k, v]) => [k, Number(v.toExponential(2))])),
  };
}

function stats(xs: number[], batch: number): Record<string, unknown> {
  const at = (i: number) => xs[Math.min(xs.length - 1, i)];
  const firstFive = median(xs.slice(0, 5));
  const lastFive = median(xs.slice(-5));
  return {
    median_s: round(median(xs)),
    images_per_s: round(batch / median(xs), 1),
    step30_over_step5: xs.length >= 5 ? round(at(29) / at(4)) : null,
    last5_over_first5: round(lastFive / firstFive),
    steps_s: xs.map((x) => round(x)),
  };
}

async function race(part: Part, ours: Side, py: Side | null, steps: number, warmup: number, batch: number, twin: PythonTwin | null): Promise<Record<string, unknown>> {
  let seed = 2000;
  const one = async (s: Side): Promise<Timing> => (part === 'train' ? s.train(seed) : s.eval());
  for (let i = 0; i < warmup; i++) {
    seed++;
    await one(ours);
    if (py) await one(py);
  }
  const load = loadavg();
  const t: { ours: Timing[]; pytorch: Timing[] } = { ours: [], pytorch: [] };
  const rss: number[] = [];
  for (let i = 0; i < steps; i++) {
    seed++;
    // ABBA: neither side always runs right after the other's step.
    if (i % 2 === 0 || !py) t.ours.push(await one(ours));
    if (py) t.pytorch.push(await one(py));
    if (i % 2 === 1 && py) t.ours.push(await one(ours));
    rss.push(rssMb());
  }
  const pyRss = twin ? await twin.request<{ max_rss_kb: number; rss_kb: number }>(JSON.stringify({ cmd: 'rss' })) : null;
  const wall = (xs: Timing[]) => xs.map((x) => x.seconds);
  const cpu = (xs: Timing[]) => xs.map((x) => x.cpu_seconds);
  const [ow, pw] = [wall(t.ours), wall(t.pytorch)];
  return {
    batch,
    loadavg: { before: load, after: loadavg() },
    ours: { ...stats(ow, batch), cpu_median_s: round(median(cpu(t.ours))), rss_mb: { first: rss[0], last: rss[rss.length - 1], max: Math.max(...rss) } },
    pytorch: py ? { ...stats(pw, batch), cpu_median_s: round(median(cpu(t.pytorch))), rss_mb: { now: round(pyRss!.rss_kb / 1024, 1), peak: round(pyRss!.max_rss_kb / 1024, 1) } } : null,
    ratio: py ? round(median(pw) / median(ow)) : null,
    paired: py ? round(median(ow.map((o, i) => pw[i] / o))) : null,
    // CPU seconds per step, PyTorch / ours: the work each side does, much less sensitive to
    // background load than wall time (which is what counts; see ratio).
    cpu_ratio: py ? round(median(cpu(t.pytorch)) / median(cpu(t.ours))) : null,
  };
}

/** Ours alone for `steps` train steps of the tiny model: is RSS flat, does the step time drift? */
async function soak(steps: number, dir: string): Promise<Record<string, unknown>> {
  const o = await ourSide('tiny', dir);
  const times: number[] = [];
  const rss: Array<[number, number]> = [];
  const load = loadavg();
  for (let i = 0; i < steps; i++) {
    times.push((await o.side.train(5000 + i)).seconds);
    if (i % 25 === 0 || i === steps - 1) rss.push([i + 1, rssMb()]);
  }
  o.dispose();
  const window = (a: number) => median(times.slice(a, a + 25));
  return {
    model: 'tiny',
    steps,
    loadavg: { before: load, after: loadavg() },
    step_median_s: round(median(times)),
    drift: { first25_median_s: round(window(5)), last25_median_s: round(window(steps - 25)), ratio: round(window(steps - 25) / window(5)) },
    rss_mb: rss,
    rss_growth_mb_after_step_50: round(rss[rss.length - 1][1] - (rss.find(([s]) => s >= 51)?.[1] ?? rss[0][1]), 1),
    peak_rss_mb: round(process.resourceUsage().maxRSS / 1024, 1),
  };
}

async function main(): Promise<void> {
  const threads = intArg('threads', 2, 1);
  const steps = intArg('steps', 30, 1);
  const warmup = intArg('warmup', 2, 0);
  const soakSteps = intArg('soak', 0, 0);
  const models = listArg<ModelName>('models', ['tiny', 'demo']);
  const parts = listArg<Part>('parts', ['train', 'eval']);
  const withPython = !process.argv.includes('--no-python') && soakSteps === 0;
  const torchVersion = info().torchVersion; // loads the addon: our thread environment is set from here on
  const oursTimeout = process.env.OPENBLAS_THREAD_TIMEOUT;
  const pyTimeoutArg = flag('py-openblas-timeout') ?? 'same';
  if (pyTimeoutArg !== 'same' && pyTimeoutArg !== 'default' && !/^[0-9]+$/.test(pyTimeoutArg)) throw new Error(`--py-openblas-timeout expects same, default or a number, got '${pyTimeoutArg}'`);
  const pyTimeout = pyTimeoutArg === 'same' ? oursTimeout : pyTimeoutArg === 'default' ? undefined : pyTimeoutArg;
  setNumThreads(threads);
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'mood-tiny-train-'));
  const header = {
    benchmark: 'small BEiTs on CPU: train step (forward, label-smoothing CE, backward, clip_grad_norm_, AdamW with layer-decay groups) and eval forward, alternating step by step with PyTorch; ratio = PyTorch median / ours',
    machine: { cpus: os.cpus().length, model: os.cpus()[0]?.model, loadavg: loadavg() },
    ours: { impl: 'mood-ood', torch: torchVersion, threads, omp_wait_policy: process.env.OMP_WAIT_POLICY ?? null, openblas_thread_timeout: oursTimeout ?? null },
  };
  try {
    if (soakSteps > 0) {
      console.log(JSON.stringify({ ...header, soak: await soak(soakSteps, dir) }, null, 1));
      return;
    }
    const twin = withPython ? new PythonTwin(path.join(__dirname, 'tiny-train.py'), ['--threads', String(threads)], pyTimeout) : null;
    const hello = twin ? (JSON.parse(await twin.line()) as { torch: string; threads: number }) : null;
    const result: Record<string, unknown> = {};
    let allSame = true;
    for (const name of models) {
      const o = await ourSide(name, dir);
      const py = twin ? twinSide(twin, name) : null;
      if (twin) await twin.request(JSON.stringify(o.twinSetup));
      const same = py ? await check(o.side, py) : null;
      if (same && !same.ok) allSame = false;
      const r: Record<string, unknown> = { model: MODELS[name].describe, params: o.params, check: same };
      for (const part of parts) r[part] = await race(part, o.side, py, steps, warmup, part === 'train' ? MODELS[name].trainBatch : MODELS[name].evalBatch, twin);
      o.dispose();
      result[name] = r;
    }
    twin?.close();
    const out = {
      ...header,
      pytorch: twin ? { impl: 'pytorch eager (scripts/parity/finetune_step.py model)', python: benchPython(), torch: hello?.torch, threads: hello?.threads, omp_wait_policy: 'PASSIVE', openblas_thread_timeout: pyTimeout ?? null } : null,
      ...result,
      ours_peak_rss_mb: round(process.resourceUsage().maxRSS / 1024, 1),
    };
    console.log(JSON.stringify(out, null, 1));
    if (!allSame) throw new Error('the two sides do not compute the same thing (see check): the ratios above are void');
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
}

main().catch((e) => {
  console.error(e);
  process.exit(1);
});
