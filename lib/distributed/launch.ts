/**
 * The process launcher behind `mood launch`: one child per local rank with torchrun's environment,
 * output lines prefixed with the rank, signals forwarded, and fail-fast: when one rank fails the
 * others are stopped and the launcher exits with the failing rank's status and error.
 */
import { ChildProcess, spawn } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import * as readline from 'node:readline';
import { PACKAGE_ROOT, ompThreadsSeeded } from '../binding';
import { DEFAULT_MASTER_PORT } from './env';

export interface LaunchOptions {
  nprocPerNode: number;
  nnodes?: number;
  nodeRank?: number;
  masterAddr?: string;
  masterPort?: number;
  /** A `mood` subcommand with its arguments, or a node script (.js/.ts/.mjs/.cjs) with its arguments. */
  command: string[];
  /** Extra environment for every rank. */
  env?: NodeJS.ProcessEnv;
  /** After a failure or a signal, how long ranks get to exit after SIGTERM before SIGKILL. Default 5 s. */
  graceMs?: number;
  /** Where prefixed output goes (tests capture it). */
  stdout?: NodeJS.WritableStream;
  stderr?: NodeJS.WritableStream;
}

export interface LaunchResult {
  /** The launcher's exit status: 0, the failing rank's status, or 128+signal. */
  exitCode: number;
  /** The first rank that failed, if any. */
  failedRank?: number;
  /** A one-paragraph explanation when exitCode != 0. */
  message?: string;
}

interface Rank {
  rank: number;
  localRank: number;
  child: ChildProcess;
  exited: boolean;
  code: number | null;
  signal: NodeJS.Signals | null;
  stderrTail: string[];
}

const TAIL_LINES = 20;

function checkInt(name: string, v: number | undefined, min: number, max: number): void {
  if (v === undefined) return;
  if (!Number.isInteger(v) || v < min || v > max) throw new Error(`mood launch: --${name} must be an integer in ${min}..${max}, got ${v}`);
}

/** The argv that runs `command` with this Node: a script directly, anything else as a mood subcommand. */
export function resolveCommand(command: string[]): { file: string; args: string[] } {
  if (command.length === 0) throw new Error('mood launch: nothing to run; give a mood subcommand or a node script after --');
  const [first, ...rest] = command;
  if (/\.(c|m)?js$/.test(first)) return { file: process.execPath, args: [first, ...rest] };
  if (/\.ts$/.test(first)) {
    // Sources in a checkout: ts-node, as bin/mood does.
    const tsNode = require.resolve('ts-node/register/transpile-only', { paths: [PACKAGE_ROOT, process.cwd()] });
    return { file: process.execPath, args: ['-r', tsNode, first, ...rest] };
  }
  if (first === 'launch') throw new Error('mood launch: the command to launch cannot itself be `launch`');
  return { file: process.execPath, args: [path.join(PACKAGE_ROOT, 'bin', 'mood.js'), ...command] };
}

/** Cores per rank, so N ranks on one machine do not each start a pool of all cores. */
function threadsPerRank(nproc: number): string {
  const cores = typeof os.availableParallelism === 'function' ? os.availableParallelism() : os.cpus().length;
  return String(Math.max(1, Math.floor(cores / nproc)));
}

export async function launch(opts: LaunchOptions): Promise<LaunchResult> {
  const nproc = opts.nprocPerNode;
  const nnodes = opts.nnodes ?? 1;
  const nodeRank = opts.nodeRank ?? 0;
  checkInt('nproc_per_node', nproc, 1, 4096);
  checkInt('nnodes', nnodes, 1, 65536);
  checkInt('node_rank', nodeRank, 0, nnodes - 1);
  checkInt('master_port', opts.masterPort, 1, 65535);
  const masterAddr = opts.masterAddr ?? '127.0.0.1';
  const masterPort = opts.masterPort ?? DEFAULT_MASTER_PORT;
  const { file, args } = resolveCommand(opts.command);
  if (file === process.execPath && /\.(c|m)?[jt]s$/.test(args[args[0] === '-r' ? 2 : 0]) && !fs.existsSync(args[args[0] === '-r' ? 2 : 0])) {
    throw new Error(`mood launch: script not found: ${args[args[0] === '-r' ? 2 : 0]}`);
  }
  const out = opts.stdout ?? process.stdout;
  const err = opts.stderr ?? process.stderr;
  const graceMs = opts.graceMs ?? 5000;
  const worldSize = nnodes * nproc;

  const ranks: Rank[] = [];
  let failed: Rank | undefined;
  let stopping = false;
  let signalled: NodeJS.Signals | undefined;
  let killTimer: NodeJS.Timeout | undefined;

  const stopAll = (sig: NodeJS.Signals) => {
    if (stopping) return;
    stopping = true;
    for (const r of ranks) if (!r.exited) r.child.kill(sig);
    killTimer = setTimeout(() => {
      for (const r of ranks) if (!r.exited) r.child.kill('SIGKILL');
    }, graceMs);
    killTimer.unref();
  };

  const onSignal = (sig: NodeJS.Signals) => {
    signalled = signalled ?? sig;
    // Forward the first one (children may shut down cleanly); a second one force-stops.
    if (stopping) {
      for (const r of ranks) if (!r.exited) r.child.kill('SIGKILL');
      return;
    }
    stopAll(sig);
  };
  const signals: NodeJS.Signals[] = ['SIGINT', 'SIGTERM', 'SIGHUP'];
  for (const s of signals) process.on(s, onSignal);

  const exits: Promise<void>[] = [];
  for (let local = 0; local < nproc; local++) {
    const rank = nodeRank * nproc + local;
    const env: NodeJS.ProcessEnv = {
      ...process.env,
      ...opts.env,
      RANK: String(rank),
      LOCAL_RANK: String(local),
      WORLD_SIZE: String(worldSize),
      LOCAL_WORLD_SIZE: String(nproc),
      GROUP_RANK: String(nodeRank),
      NODE_RANK: String(nodeRank),
      MASTER_ADDR: masterAddr,
      MASTER_PORT: String(masterPort),
    };
    if (env.MOOD_NUM_THREADS === undefined && nproc > 1) {
      env.MOOD_NUM_THREADS = threadsPerRank(nproc);
      // Our own seeded OMP_NUM_THREADS is this process's count: each rank seeds its own from the above.
      if (ompThreadsSeeded() && opts.env?.OMP_NUM_THREADS === undefined) delete env.OMP_NUM_THREADS;
    }
    const child = spawn(file, args, { env, stdio: ['inherit', 'pipe', 'pipe'] });
    const r: Rank = { rank, localRank: local, child, exited: false, code: null, signal: null, stderrTail: [] };
    ranks.push(r);
    const prefix = `[rank ${rank}] `;
    const lineDone: Promise<void>[] = [];
    for (const [stream, sink, keep] of [
      [child.stdout!, out, false],
      [child.stderr!, err, true],
    ] as const) {
      const rl = readline.createInterface({ input: stream, crlfDelay: Infinity });
      rl.on('line', (line) => {
        sink.write(prefix + line + '\n');
        if (keep) {
          r.stderrTail.push(line);
          if (r.stderrTail.length > TAIL_LINES) r.stderrTail.shift();
        }
      });
      lineDone.push(new Promise((res) => rl.on('close', () => res())));
    }
    exits.push(
      new Promise<void>((resolve) => {
        let spawnError: Error | undefined;
        child.on('error', (e) => {
          spawnError = e;
        });
        child.on('close', (code, signal) => {
          void Promise.all(lineDone).then(() => {
            r.exited = true;
            r.code = spawnError ? 127 : code;
            r.signal = signal;
            if (spawnError) r.stderrTail.push(`cannot start: ${spawnError.message}`);
            const bad = r.code !== 0 || r.signal !== null;
            if (bad && !failed && !stopping) {
              failed = r;
              stopAll('SIGTERM');
            }
            resolve();
          });
        });
      }),
    );
  }

  await Promise.all(exits);
  if (killTimer) clearTimeout(killTimer);
  for (const s of signals) process.removeListener(s, onSignal);

  if (failed) {
    const f: Rank = failed;
    const how = f.signal ? `was killed by ${f.signal}` : `exited with status ${f.code}`;
    const tail = f.stderrTail.length ? `\nits last error output:\n  ${f.stderrTail.join('\n  ')}` : '';
    const message = `mood launch: rank ${f.rank} (local rank ${f.localRank}, pid ${f.child.pid}) ${how}; stopped the other ranks.${tail}`;
    err.write(message + '\n');
    const exitCode = f.code && f.code > 0 ? f.code : f.signal ? 128 + (os.constants.signals[f.signal] ?? 0) : 1;
    return { exitCode, failedRank: f.rank, message };
  }
  if (signalled) {
    const message = `mood launch: stopped by ${signalled}`;
    err.write(message + '\n');
    return { exitCode: 128 + (os.constants.signals[signalled] ?? 0), message };
  }
  return { exitCode: 0 };
}
