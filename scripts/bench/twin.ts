/**
 * What the benchmarks that race a PyTorch twin step by step share: the twin as a `--serve` child
 * process (one request line in, one JSON line out) and the statistics of the step times.
 */
import { ChildProcessWithoutNullStreams, spawn } from 'node:child_process';
import * as readline from 'node:readline';

export const median = (xs: number[]): number => {
  const s = [...xs].sort((a, b) => a - b);
  return s.length % 2 ? s[(s.length - 1) / 2] : (s[s.length / 2 - 1] + s[s.length / 2]) / 2;
};
export const round = (x: number, digits = 3): number => Math.round(x * 10 ** digits) / 10 ** digits;
/** Seconds since `t0` (process.hrtime.bigint()). */
export const seconds = (t0: bigint): number => Number(process.hrtime.bigint() - t0) / 1e9;

/** Debian's Python with python3-torch unless MOOD_BENCH_PYTHON says otherwise. */
export const benchPython = (): string => process.env.MOOD_BENCH_PYTHON ?? '/usr/bin/python3';

/**
 * A Python script started with `--serve`: it prints one line when ready, then answers each request
 * line with one JSON line. PyTorch runs in its best CPU setting (OMP_WAIT_POLICY=PASSIVE); an
 * OPENBLAS_THREAD_TIMEOUT of undefined is removed from its environment (OpenBLAS's default).
 */
export class PythonTwin {
  private readonly proc: ChildProcessWithoutNullStreams;
  private readonly lines: AsyncIterator<string>;
  private stderr = '';

  constructor(script: string, args: string[], openblasTimeout: string | undefined) {
    const env: NodeJS.ProcessEnv = { ...process.env, OMP_WAIT_POLICY: 'PASSIVE', OPENBLAS_THREAD_TIMEOUT: openblasTimeout };
    if (openblasTimeout === undefined) delete env.OPENBLAS_THREAD_TIMEOUT;
    this.proc = spawn(benchPython(), [script, '--serve', ...args], { env });
    this.proc.stderr.on('data', (d: Buffer) => (this.stderr += d.toString()));
    this.lines = readline.createInterface({ input: this.proc.stdout })[Symbol.asyncIterator]();
  }

  /** The next line the twin prints (its ready line, or the answer to a request). */
  async line(): Promise<string> {
    const r = await this.lines.next();
    if (r.done) throw new Error(`the PyTorch twin exited: ${this.stderr.trim().split('\n').slice(-3).join(' | ')}`);
    return r.value;
  }

  /** Sends one request line and parses the JSON answer. */
  async request<T>(line: string): Promise<T> {
    this.proc.stdin.write(`${line}\n`);
    const answer = await this.line();
    try {
      return JSON.parse(answer) as T;
    } catch {
      throw new Error(`the PyTorch twin answered '${answer}' to '${line.slice(0, 80)}' (not JSON)`);
    }
  }

  close(): void {
    this.proc.stdin.end();
  }
}
