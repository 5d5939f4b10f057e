/** `mood info`: what libtorch, devices and threads are in effect. */
import { info } from '../runtime';

export function runInfo(opts: { json?: boolean }): void {
  const i = info();
  if (opts.json) {
    process.stdout.write(JSON.stringify(i, null, 2) + '\n');
    return;
  }
  const yes = (b: boolean): string => (b ? 'yes' : 'no');
  const lines = [
    `mood-ood ${i.packageVersion}`,
    `libtorch        ${i.torchVersion} (C++ ABI ${i.cxxAbi}, Node-API ${i.napiVersion})`,
    `CUDA            compiled: ${yes(i.cudaCompiled)}, available: ${yes(i.cudaAvailable)}, devices: ${i.cudaDeviceCount}`,
    `distributed     gloo: ${yes(i.gloo)}, nccl: ${yes(i.nccl)}`,
    `threads         intra-op ${i.threads.intraOp}, BLAS ${i.threads.blas < 0 ? 'n/a' : i.threads.blas} (${i.threads.source}; MOOD_NUM_THREADS overrides)`,
    `OMP_WAIT_POLICY ${i.ompWaitPolicy || '(unset)'}`,
    `OPENBLAS_THREAD_TIMEOUT ${i.openblasThreadTimeout || '(unset)'}`,
    `BLAS            ${i.blas || 'unknown'}`,
  ];
  process.stdout.write(lines.join('\n') + '\n');
}
