/**
 * The torchrun environment (RANK, LOCAL_RANK, WORLD_SIZE, LOCAL_WORLD_SIZE, MASTER_ADDR,
 * MASTER_PORT) as `mood launch` sets it, parsed with errors that name the variable.
 */

export interface DistEnv {
  rank: number;
  localRank: number;
  worldSize: number;
  localWorldSize: number;
  masterAddr: string;
  masterPort: number;
  /** True when WORLD_SIZE was set (started by a launcher), even if it is 1. */
  launched: boolean;
}

export const DEFAULT_MASTER_PORT = 29500;

function intVar(env: NodeJS.ProcessEnv, name: string, dflt: number, min: number, max = Number.MAX_SAFE_INTEGER): number {
  const v = env[name];
  if (v === undefined || v === '') return dflt;
  const n = Number(v);
  if (!Number.isInteger(n) || n < min || n > max) {
    throw new Error(`distributed: environment variable ${name}='${v}' must be an integer in ${min}..${max === Number.MAX_SAFE_INTEGER ? 'inf' : max}`);
  }
  return n;
}

/** Reads the launcher's variables; a process started without them is rank 0 of 1. */
export function readDistEnv(env: NodeJS.ProcessEnv = process.env): DistEnv {
  const launched = env.WORLD_SIZE !== undefined && env.WORLD_SIZE !== '';
  const worldSize = intVar(env, 'WORLD_SIZE', 1, 1);
  const rank = intVar(env, 'RANK', 0, 0);
  if (rank >= worldSize) throw new Error(`distributed: RANK=${rank} is not below WORLD_SIZE=${worldSize}`);
  const localWorldSize = intVar(env, 'LOCAL_WORLD_SIZE', worldSize, 1, worldSize);
  const localRank = intVar(env, 'LOCAL_RANK', rank % localWorldSize, 0, localWorldSize - 1);
  const masterAddr = env.MASTER_ADDR && env.MASTER_ADDR !== '' ? env.MASTER_ADDR : '127.0.0.1';
  const masterPort = intVar(env, 'MASTER_PORT', DEFAULT_MASTER_PORT, 1, 65535);
  return { rank, localRank, worldSize, localWorldSize, masterAddr, masterPort, launched };
}

/** This process's global rank (0 when not launched distributed). */
export function rank(env: NodeJS.ProcessEnv = process.env): number {
  return readDistEnv(env).rank;
}

/** Number of processes in the job (1 when not launched distributed). */
export function worldSize(env: NodeJS.ProcessEnv = process.env): number {
  return readDistEnv(env).worldSize;
}

/** True on the process that writes checkpoints, logs and results (global rank 0). */
export function isMain(env: NodeJS.ProcessEnv = process.env): boolean {
  return readDistEnv(env).rank === 0;
}
