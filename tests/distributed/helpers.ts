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

/** A checkpoint's model weights as float32 arrays (relative_position_index buffers left out). */
export async function checkpointWeights(file: string): Promise<Map<string, Float32Array>> {
  const { loadTensors } = await import('../../lib/checkpoint');
  const sd = await loadTensors(file, { key: 'model' });
  const out = new Map<string, Float32Array>();
  for (const [k, t] of sd) {
    if (!k.endsWith('relative_position_index')) out.set(k, Float32Array.from((await t.data()) as Float32Array));
    t.dispose();
  }
  return out;
}

/** Largest absolute difference between two weight sets with the same keys. */
export function maxWeightDiff(a: Map<string, Float32Array>, b: Map<string, Float32Array>): number {
  let m = 0;
  for (const [k, x] of a) {
    const y = b.get(k);
    if (!y || y.length !== x.length) throw new Error(`weights differ in '${k}'`);
    for (let i = 0; i < x.length; i++) m = Math.max(m, Math.abs(x[i] - y[i]));
  }
  return m;
}
