/**
 * Distributed training and evaluation: c10d process groups (Gloo on CPU, NCCL on CUDA builds),
 * the torchrun environment helpers, and the `mood launch` process launcher.
 */
export { ProcessGroup, GradientSync, initFromEnv, defaultTimeoutMs } from './group';
export type { ReduceOp, Backend, ProcessGroupOptions, GradientSyncOptions, GradientSyncStats } from './group';
export { readDistEnv, rank, worldSize, isMain, DEFAULT_MASTER_PORT } from './env';
export type { DistEnv } from './env';
export { launch, resolveCommand } from './launch';
export type { LaunchOptions, LaunchResult } from './launch';
