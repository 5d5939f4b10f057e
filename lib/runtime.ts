/** Runtime facts and settings: libtorch build, CUDA, threads. */
import type { NativeBuildInfo, NativeThreads } from './binding';
import { loadNative } from './native';

export interface RuntimeInfo extends NativeBuildInfo {
  threads: NativeThreads;
  ompWaitPolicy: string;
  /** OPENBLAS_THREAD_TIMEOUT as OpenBLAS read it at load ('' when unset: OpenBLAS's own 28). */
  openblasThreadTimeout: string;
  packageVersion: string;
}

export function info(): RuntimeInfo {
  const b = loadNative();
  // eslint-disable-next-line @typescript-eslint/no-var-requires
  const pkg = require('../package.json') as { version: string };
  return { ...b.buildInfo(), threads: b.threads(), ompWaitPolicy: process.env.OMP_WAIT_POLICY ?? '', openblasThreadTimeout: process.env.OPENBLAS_THREAD_TIMEOUT ?? '', packageVersion: pkg.version };
}

/** Sets intra-op and BLAS threads together (n <= 0: all cores). */
export function setNumThreads(n: number): NativeThreads {
  if (!Number.isInteger(n)) throw new TypeError(`threads must be an integer, got ${n}`);
  return loadNative().configureThreads(n, 'explicit');
}

export function getNumThreads(): number {
  return loadNative().threads().intraOp;
}

export const cuda = {
  isAvailable(): boolean {
    return loadNative().buildInfo().cudaAvailable;
  },
  deviceCount(): number {
    return loadNative().buildInfo().cudaDeviceCount;
  },
};
