/**
 * Loads the native addon (a prebuild via node-gyp-build, else the local cmake-js/node-gyp build) after
 * putting the thread environment in its good state, and explains load failures.
 */
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';

/** The package root: lib/ (ts-node, vitest) and dist/ (published) both sit one level below it. */
export const PACKAGE_ROOT = path.resolve(__dirname, '..');

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

export type NativeAttrs = Record<string, number | boolean | string | number[] | bigint | undefined>;

/** A native tensor id with its table methods; see native/addon/tensor_wrap.h for why ids. */
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

interface HandleRecord {
  id: number;
  /** Wrapped by a lib Tensor (for tensorStats). */
  owned: boolean;
}

let collectedOwned = 0;
// The safety net for handles nobody disposed: the GC reclaims the JS object, this frees the slot.
const handleRegistry = new FinalizationRegistry<HandleRecord>((rec) => {
  if (rec.owned) collectedOwned++;
  binding?.NativeTensor.release(rec.id);
});

/** How many Tensor-owned handles the garbage collector reclaimed without dispose(). */
export function collectedOwnedHandles(): number {
  return collectedOwned;
}

/**
 * The JS handle of one (possibly still pending) native tensor. Native functions take and return
 * these (the native side reads `id`); lib/tensor.ts's Tensor wraps one.
 */
export class NativeTensorHandle {
  /** The native table id; -1 once disposed. */
  id: number;
  private readonly rec: HandleRecord;

  constructor(id: number) {
    this.id = id;
    this.rec = { id, owned: false };
    handleRegistry.register(this, this.rec, this);
  }
  /** @internal marks the handle as a Tensor's, for tensorStats(). */
  adopt(): this {
    this.rec.owned = true;
    return this;
  }
  isReady(): boolean {
    return tensorNative().isReady(this.id);
  }
  meta(): NativeMeta {
    return tensorNative().meta(this.id);
  }
  read(): Promise<ArrayBufferView> {
    const r = tensorNative().read(this.id);
    return r instanceof Promise ? r : Promise.resolve(r);
  }
  whenReady(): Promise<void> {
    return tensorNative().whenReady(this.id);
  }
  dispose(): void {
    if (this.id < 0) return;
    handleRegistry.unregister(this);
    tensorNative().release(this.id);
    this.id = -1;
  }
  isDisposed(): boolean {
    return this.id < 0;
  }
}

function tensorNative(): NativeTensorStatic {
  return (binding ?? loadNative()).NativeTensor;
}

export interface NativeBinding {
  buildInfo(): NativeBuildInfo;
  configureThreads(n: number, source: string): NativeThreads;
  threads(): NativeThreads;
  opNames(): string[];
  NativeTensor: NativeTensorStatic;
}

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

let ompSeeded = false;

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

let binding: NativeBinding | undefined;

export function loadNative(): NativeBinding {
  if (binding) return binding;
  prepareThreadEnvironment();
  try {
    // eslint-disable-next-line @typescript-eslint/no-var-requires
    const nodeGypBuild = require('node-gyp-build') as (dir: string) => NativeBinding;
    binding = nodeGypBuild(PACKAGE_ROOT);
  } catch (err) {
    throw explainLoadFailure(err as Error);
  }
  binding.NativeTensor.setHandleClass(NativeTensorHandle);
  configureDefaultThreads(binding);
  return binding;
}

/** All cores unless MOOD_NUM_THREADS says otherwise (libtorch's own default halves them). */
function configureDefaultThreads(b: NativeBinding): void {
  const env = process.env.MOOD_NUM_THREADS;
  if (env !== undefined && env !== '') {
    const n = Number(env);
    if (!Number.isInteger(n) || n < 1) throw new Error(`MOOD_NUM_THREADS must be a positive integer, got '${env}'`);
    b.configureThreads(n, 'MOOD_NUM_THREADS');
  } else {
    b.configureThreads(0, 'default (all cores)');
  }
}
