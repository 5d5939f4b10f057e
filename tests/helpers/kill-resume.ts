/**
 * Kill -9 and resume, for the resume tests of `mood finetune`, `mood pretrain` and `mood demo`: a
 * child script (run through ts-node) prints JSON lines as it trains; with PAUSE_AT set it prints
 * PAUSED at the chosen step and blocks, the parent SIGKILLs it there (mid-epoch, nothing flushed
 * after), then runs the same child again to resume.
 */
import { spawn } from 'node:child_process';
import * as path from 'node:path';
import { REPO_ROOT } from './fixtures';

const TS_NODE = require.resolve('ts-node/register/transpile-only', { paths: [REPO_ROOT] });

export interface ChildRun {
  status: number | null;
  stdout: string;
  stderr: string;
}

/** The JSON lines of a child's stdout. */
export function jsonLines<T = Record<string, unknown>>(s: string): T[] {
  return s.split('\n').filter((l) => l.startsWith('{')).map((l) => JSON.parse(l) as T);
}

/** Runs `child` (a .ts file) with `args` to its end. */
export function runChild(child: string, args: string[], env: NodeJS.ProcessEnv = {}): Promise<ChildRun> {
  return new Promise((resolve, reject) => {
    const p = spawn(process.execPath, ['-r', TS_NODE, path.resolve(child), ...args], { env: { ...process.env, ...env } });
    let stdout = '';
    let stderr = '';
    p.stdout.on('data', (b: Buffer) => (stdout += b.toString()));
    p.stderr.on('data', (b: Buffer) => (stderr += b.toString()));
    p.on('error', reject);
    p.on('exit', (status) => resolve({ status, stdout, stderr }));
  });
}

/** Runs `child` with PAUSE_AT=`pauseAt` until it prints PAUSED, then SIGKILLs it; resolves with what it printed. */
export function runAndKill(child: string, args: string[], pauseAt: string): Promise<{ out: string; signal: NodeJS.Signals | null }> {
  return new Promise((resolve, reject) => {
    const p = spawn(process.execPath, ['-r', TS_NODE, path.resolve(child), ...args], { env: { ...process.env, PAUSE_AT: pauseAt } });
    let out = '';
    let err = '';
    p.stdout.on('data', (b: Buffer) => {
      out += b.toString();
      if (out.includes('PAUSED')) p.kill('SIGKILL');
    });
    p.stderr.on('data', (b: Buffer) => (err += b.toString()));
    p.on('error', reject);
    p.on('exit', (code, signal) => (signal === 'SIGKILL' ? resolve({ out, signal }) : reject(new Error(`child exited ${code} before the kill: ${err}`))));
  });
}

/** In a child: PAUSE_AT's value split on ':' (undefined when not set). */
export function pauseAt(): string[] | undefined {
  return process.env.PAUSE_AT?.split(':');
}

/** In a child: says PAUSED and blocks synchronously, so no further step or checkpoint can happen before the kill. */
export function pauseForKill(): void {
  process.stdout.write('PAUSED\n');
  const until = Date.now() + 120_000;
  while (Date.now() < until) Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, 100);
}
