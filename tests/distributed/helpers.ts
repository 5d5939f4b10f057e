import { spawn } from 'node:child_process';
import * as net from 'node:net';
import * as path from 'node:path';

export const ROOT = path.resolve(__dirname, '..', '..');
export const WORKER = path.join(__dirname, 'workers', 'worker.ts');
export const MOOD = path.join(ROOT, 'bin', 'mood.js');
const TS_NODE = require.resolve('ts-node/register/transpile-only', { paths: [ROOT] });

/** A port nobody listens on right now. */
export async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = net.createServer();
    s.unref();
    s.on('error', reject);
    s.listen(0, '127.0.0.1', () => {
      const port = (s.address() as net.AddressInfo).port;
      s.close(() => resolve(port));
    });
  });
}

export interface Run {
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
  ms: number;
}

/** Runs a command to completion (killed after limitMs). */
export function run(file: string, args: string[], env: NodeJS.ProcessEnv = {}, limitMs = 60_000): Promise<Run> {
  const t0 = Date.now();
  return new Promise((resolve) => {
    const child = spawn(file, args, { env: { ...process.env, MOOD_NUM_THREADS: '1', ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d) => (stdout += d));
    child.stderr.on('data', (d) => (stderr += d));
    const timer = setTimeout(() => child.kill('SIGKILL'), limitMs);
    child.on('close', (code, signal) => {
      clearTimeout(timer);
      resolve({ code, signal, stdout, stderr, ms: Date.now() - t0 });
    });
  });
}

/** One rank of the worker, started directly with the torchrun environment. */
export function runRank(mode: string, rank: number, worldSize: number, port: number, extra: NodeJS.ProcessEnv = {}, limitMs = 60_000): Promise<Run> {
  return run(process.execPath, ['-r', TS_NODE, WORKER, mode], {
    RANK: String(rank),
    LOCAL_RANK: String(rank),
    WORLD_SIZE: String(worldSize),
    LOCAL_WORLD_SIZE: String(worldSize),
    MASTER_ADDR: '127.0.0.1',
    MASTER_PORT: String(port),
    ...extra,
  }, limitMs);
}

/** `mood launch ...` */
export function runLaunch(args: string[], env: NodeJS.ProcessEnv = {}, limitMs = 90_000): Promise<Run> {
  return run(process.execPath, [MOOD, 'launch', ...args], env, limitMs);
}

/** The JSON lines of each rank in prefixed launcher output: "[rank R] {...}". */
export function rankJson(stdout: string): Record<number, Record<string, unknown>> {
  const out: Record<number, Record<string, unknown>> = {};
  for (const line of stdout.split('\n')) {
    const m = /^\[rank (\d+)\] (\{.*\})$/.exec(line);
    if (m) out[Number(m[1])] = JSON.parse(m[2]) as Record<string, unknown>;
  }
  return out;
}
