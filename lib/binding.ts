/**
 * The native addon's boundary: its whole surface declared once (every function and class it exports,
 * with their TypeScript types), and the one place that loads it.
 *
 * `NativeBinding` types the surface; `NATIVE_SURFACE` lists the same names at run time (the compiler
 * holds the two to the same keys), so the loader can refuse a stale build that lacks a declared
 * member, and tests/native/binding.test.ts holds the real addon to exactly this list. The classes'
 * own method types sit beside the wrappers that use them and are imported here as types only.
 */
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';

import type { NativeTensorHandle } from './native';
import type { NativeBeitInstance, NativeBeitStatic } from './models/native-beit';
import type { NativeMimInstance, NativeMimStatic } from './pretrain/model';
import type { NativeProcessGroupInstance, NativeProcessGroupStatic } from './distributed/native';
import type { NativeTrainerInstance, NativeTrainerStatic } from './train/native-trainer';
import type { NativeDalleEncoderClass, NativeDalleEncoderInstance } from './dvae/encoder';

/** The package root: lib/ (ts-node, vitest) and dist/ (published) both sit one level below it. */
export const PACKAGE_ROOT = path.resolve(__dirname, '..');

// ---- the typed surface -----------------------------------------------------------------------------

export interface NativeBuildInfo {
  torchVersion: string;
  cudaCompiled: boolean;
  cudaAvailable: boolean;
  cudaDeviceCount: number;
  gloo: boolean;
  nccl: boolean;
  cxxAbi: string;
  parallelInfo: string;
  blas: string;
  napiVersion: number;
}

export interface NativeThreads {
  intraOp: number;
  /** OpenBLAS threads, -1 when the BLAS is not OpenBLAS. */
  blas: number;
  source: string;
}

export interface NativeMeta {
  dtype: string;
  shape: number[];
  device: string;
}

/** Op attributes by name; each op takes a fixed set of names (an unknown one is an error). */
export type NativeAttrs = Record<string, number | boolean | string | number[] | bigint | undefined>;

/** The NativeTensor table (native/addon/tensor_wrap.cc): tensors live there by id, see tensor_wrap.h. */
export interface NativeTensorStatic {
  setHandleClass(cls: new (id: number) => NativeTensorHandle): void;
  fromTypedArray(data: ArrayBufferView, shape: number[], dtype: string, device?: string): number;
  /** One id for single-output ops, else an array; inputs are ids or handles. */
  op(name: string, inputs: Array<number | NativeTensorHandle>, attrs?: NativeAttrs, device?: string): number | number[];
  isReady(id: number): boolean;
  meta(id: number): NativeMeta;
  /** The values now when the tensor is ready on the CPU, else a Promise of them. */
  read(id: number): ArrayBufferView | Promise<ArrayBufferView>;
  whenReady(id: number): Promise<void>;
  release(id: number): void;
}

/** Everything native/addon/addon.cc exports. */
export interface NativeBinding {
  buildInfo(): NativeBuildInfo;
  configureThreads(n: number, source: string): NativeThreads;
  threads(): NativeThreads;
  opNames(): string[];
  NativeTensor: NativeTensorStatic;
  NativeBeit: NativeBeitStatic;
  NativeMim: NativeMimStatic;
  NativeProcessGroup: NativeProcessGroupStatic;
  NativeTrainer: NativeTrainerStatic;
  NativeDalleEncoder: NativeDalleEncoderClass;
}

// ---- the same surface at run time -------------------------------------------------------------------

/** Every member name of T, each once: an object literal of this type lists exactly T's keys. */
export type MemberNames<T> = { readonly [K in keyof T]-?: true };

export type SurfaceEntry =
  | { kind: 'function' }
  /** A plain object of functions. */
  | { kind: 'namespace'; functions: MemberNames<object> }
  /** A constructor (napi DefineClass): static methods on it, instance methods on its prototype. */
  | { kind: 'class'; statics: MemberNames<object>; methods: MemberNames<object> };

const fn = { kind: 'function' } as const;
const namespace = <T>(functions: MemberNames<T>): SurfaceEntry => ({ kind: 'namespace', functions });
const cls = <S, I>(statics: MemberNames<S>, methods: MemberNames<I>): SurfaceEntry => ({ kind: 'class', statics, methods });

/** The addon's exports by name and kind, down to each class's static and instance method names. */
export const NATIVE_SURFACE: { readonly [K in keyof NativeBinding]-?: SurfaceEntry } = {
  buildInfo: fn,
  configureThreads: fn,
  threads: fn,
  opNames: fn,
  NativeTensor: namespace<NativeTensorStatic>({
    setHandleClass: true, fromTypedArray: true, op: true, isReady: true, meta: true, read: true, whenReady: true, release: true,
  }),
  NativeBeit: cls<NativeBeitStatic, NativeBeitInstance>(
    { configNames: true, config: true, fusedAttentionAvailable: true },
    {
      options: true, stateSpec: true, namedParameters: true, stateDict: true, loadStateDict: true, forward: true, trainStep: true,
      train: true, isTraining: true, dispose: true,
    },
  ),
  NativeMim: cls<NativeMimStatic, NativeMimInstance>(
    { configNames: true, config: true },
    {
      options: true, stateSpec: true, stateDict: true, loadStateDict: true, forward: true, lossBackward: true, grads: true, step: true,
      moments: true, loadMoments: true, train: true, isTraining: true, dispose: true,
    },
  ),
  NativeProcessGroup: cls<NativeProcessGroupStatic, NativeProcessGroupInstance>(
    { create: true, available: true },
    {
      rank: true, worldSize: true, allReduce: true, broadcast: true, allGather: true, allGatherOrdered: true, broadcastInPlace: true,
      barrier: true, createGradientSync: true, gradientSyncStats: true, releaseGradientSync: true, shutdown: true,
    },
  ),
  NativeTrainer: cls<NativeTrainerStatic, NativeTrainerInstance>(
    {},
    {
      ready: true, step: true, paramNames: true, groupSizes: true, state: true, setState: true, grads: true, emaNames: true,
      emaState: true, setEma: true, dispose: true,
    },
  ),
  NativeDalleEncoder: cls<object, NativeDalleEncoderInstance>(
    {},
    { options: true, stateSpec: true, stateDict: true, loadStateDict: true, forward: true, outputSide: true, dispose: true },
  ),
};

function isFunction(v: unknown): v is (...args: unknown[]) => unknown {
  return typeof v === 'function';
}

/**
 * The declared members `mod` lacks or has as something else ('NativeBeit.prototype.forward: missing',
 * 'opNames: not a function'); empty when it provides the whole surface (it may export more).
 */
export function surfaceGaps(mod: unknown): string[] {
  const gaps: string[] = [];
  const m = (mod ?? {}) as Record<string, unknown>;
  const need = (owner: unknown, name: string, where: string): void => {
    const v = owner === undefined || owner === null ? undefined : (owner as Record<string, unknown>)[name];
    if (v === undefined) gaps.push(`${where}: missing`);
    else if (!isFunction(v)) gaps.push(`${where}: not a function`);
  };
  for (const [name, entry] of Object.entries(NATIVE_SURFACE) as Array<[string, SurfaceEntry]>) {
    const v = m[name];
    if (entry.kind === 'namespace') {
      if (v === null || typeof v !== 'object') {
        gaps.push(`${name}: ${v === undefined ? 'missing' : 'not an object'}`);
        continue;
      }
      for (const f of Object.keys(entry.functions)) need(v, f, `${name}.${f}`);
      continue;
    }
    need(m, name, name);
    if (entry.kind !== 'class' || !isFunction(v)) continue;
    for (const f of Object.keys(entry.statics)) need(v, f, `${name}.${f}`);
    for (const f of Object.keys(entry.methods)) need(v.prototype, f, `${name}.prototype.${f}`);
  }
  return gaps;
}

/** The module as the typed binding, or an error naming every declared member it lacks. */
export function checkedBinding(mod: unknown, file: string): NativeBinding {
  const gaps = surfaceGaps(mod);
  if (gaps.length > 0) {
    throw new Error(
      `mood-ood: the native addon ${file} does not provide what this package declares (${gaps.join('; ')}): ` +
        'it was built from other sources; rebuild it (npm run build:native)',
    );
  }
  return mod as NativeBinding;
}

// ---- loading ----------------------------------------------------------------------------------------

let ompSeeded = false;

/**
 * libgomp reads OMP_WAIT_POLICY once, when libtorch is loaded. Spinning OpenMP workers fight
 * OpenBLAS's pool on small machines (measured 1.6-2.5x slower), so passive waiting is our default.
 */
function prepareThreadEnvironment(): void {
  if (process.env.OMP_WAIT_POLICY === undefined) process.env.OMP_WAIT_POLICY = 'PASSIVE';
  // OpenBLAS's workers (read once, when it loads) spin on sched_yield for 2^28 cycles (~0.1 s)
  // after each multi-threaded gemm, on the cores where libtorch's intra-op threads run next: they
  // slowed the BEiT attention core (many single-threaded gemms side by side) from 5.5 / 8.2 ms
  // to 9.3 / 15.8 ms per layer forward / backward (measured; train steps of the math path alike
  // with either). 2^4 cycles: a worker sleeps as soon as its work is done.
  if (process.env.OPENBLAS_THREAD_TIMEOUT === undefined) process.env.OPENBLAS_THREAD_TIMEOUT = '4';
  // The native side sets intra-op threads per thread (cheap; see apply_threads_to_this_thread):
  // threads it does not configure, such as decode or c10d workers, take ATen's default on their first
  // parallel op, which is OMP_NUM_THREADS when set and else the physical core count (1 on a 2-vCPU
  // VM). Seed it with what configureThreads will use: MOOD_NUM_THREADS, else all cores.
  const n = process.env.MOOD_NUM_THREADS;
  if (process.env.OMP_NUM_THREADS === undefined) {
    process.env.OMP_NUM_THREADS = n !== undefined && /^[1-9][0-9]*$/.test(n) ? n : String(Math.max(1, os.cpus().length));
    ompSeeded = true;
  }
}

/**
 * True when OMP_NUM_THREADS in this process's environment was set by us (above), not by the user:
 * it then describes this process's thread count, and a launcher should not pass it on to ranks that
 * get their own MOOD_NUM_THREADS.
 */
export function ompThreadsSeeded(): boolean {
  return ompSeeded;
}

interface PrebuildRecord {
  torchVersion?: string;
  torchLibDir?: string;
}

function readPrebuildRecord(): PrebuildRecord | undefined {
  const file = path.join(PACKAGE_ROOT, 'prebuilds', `${process.platform}-${process.arch}`, 'mood-build.json');
  try {
    return JSON.parse(fs.readFileSync(file, 'utf8')) as PrebuildRecord;
  } catch {
    return undefined;
  }
}

/** Versions of libtorch installs visible from here, for the error message. */
function findLocalTorchVersions(): string[] {
  const found: string[] = [];
  const candidates = [
    process.env.LIBTORCH,
    process.env.Torch_DIR,
    '/usr/lib/x86_64-linux-gnu/cmake/Torch',
    '/usr/lib/aarch64-linux-gnu/cmake/Torch',
  ].filter((p): p is string => !!p);
  for (const c of candidates) {
    for (const dir of [c, path.join(c, 'Torch'), path.join(c, 'share', 'cmake', 'Torch')]) {
      const f = path.join(dir, 'TorchConfigVersion.cmake');
      if (!fs.existsSync(f)) continue;
      const m = /PACKAGE_VERSION "([^"]+)"/.exec(fs.readFileSync(f, 'utf8'));
      found.push(`${m ? m[1] : 'unknown version'} at ${dir}`);
      break;
    }
  }
  return found;
}

function explainLoadFailure(err: Error): Error {
  const rec = readPrebuildRecord();
  const local = findLocalTorchVersions();
  const lines = [`mood-ood: cannot load the native addon: ${err.message.split('\n')[0]}`];
  if (rec?.torchVersion) lines.push(`The prebuilt addon was built against libtorch ${rec.torchVersion} (${rec.torchLibDir ?? '?'}).`);
  lines.push(local.length ? `libtorch found here: ${local.join('; ')}.` : 'No libtorch found in LIBTORCH, Torch_DIR or Debian\'s libtorch-dev.');
  lines.push(
    'Rebuild against the libtorch you have:',
    '  sudo apt-get install libtorch-dev libgloo-dev && npm run build:native      # Debian CPU build',
    "  LIBTORCH=\"$(python3 -c 'import torch;print(torch.utils.cmake_prefix_path)')\" npm run build:native  # a PyTorch install",
  );
  const e = new Error(lines.join('\n'));
  (e as Error & { cause?: unknown }).cause = err;
  return e;
}

let loaded: NativeBinding | undefined;

/**
 * The addon (a prebuild via node-gyp-build, else the local cmake-js/node-gyp build), loaded once after
 * putting the thread environment in its good state. lib/native.ts's loadNative() adds the one-time
 * set-up (tensor handle class, thread counts): library code calls that.
 */
export function loadBinding(): NativeBinding {
  if (loaded) return loaded;
  prepareThreadEnvironment();
  let file: string;
  let mod: unknown;
  try {
    // eslint-disable-next-line @typescript-eslint/no-var-requires
    file = (require('node-gyp-build') as { resolve(dir: string): string }).resolve(PACKAGE_ROOT);
    // eslint-disable-next-line @typescript-eslint/no-var-requires
    mod = require(file);
  } catch (err) {
    throw explainLoadFailure(err as Error);
  }
  loaded = checkedBinding(mod, path.relative(PACKAGE_ROOT, file));
  return loaded;
}
