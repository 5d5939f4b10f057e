/**
 * Resumable stages: each finished stage leaves a marker (`<output_dir>/stages/<name>.json`, written
 * atomically, holding what later stages need), so a re-run skips it. Ctrl-C asks the running stage
 * to stop at its next safe point (between batches, epochs or classes); a second Ctrl-C exits at
 * once, which is also safe because nothing is ever half-written. "No space left" becomes one clear
 * error naming the file and the free space.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { writeFileAtomic } from '../io/atomic';
import { DemoError } from './options';

export class InterruptedError extends Error {
  constructor(where: string) {
    super(`interrupted during ${where}`);
    this.name = 'InterruptedError';
  }
}

export class StageStore {
  readonly dir: string;
  constructor(readonly outputDir: string) {
    this.dir = path.join(outputDir, 'stages');
  }
  private file(name: string): string {
    return path.join(this.dir, `${name.replace(/[^A-Za-z0-9_.-]+/g, '_')}.json`);
  }
  /** The marker's payload when stage `name` finished earlier with the same `key`, else undefined. */
  get<T>(name: string, key: string): T | undefined {
    let text: string;
    try {
      text = fs.readFileSync(this.file(name), 'utf8');
    } catch {
      return undefined;
    }
    try {
      const m = JSON.parse(text) as { key?: string; value?: T };
      return m.key === key ? m.value : undefined;
    } catch {
      return undefined; // a damaged marker means "not done"
    }
  }
  set<T>(name: string, key: string, value: T): void {
    fs.mkdirSync(this.dir, { recursive: true });
    writeJson(this.file(name), { key, finished: new Date().toISOString(), value });
  }
  /** Forget every marker (--fresh). */
  clear(): void {
    fs.rmSync(this.dir, { recursive: true, force: true });
  }
}

/** Free bytes on the file system holding `dir` (null where statfs is unavailable). */
export function freeBytes(dir: string): number | null {
  try {
    const s = fs.statfsSync(dir);
    return Number(s.bavail) * Number(s.bsize);
  } catch {
    return null;
  }
}

function mb(n: number): string {
  return `${(n / 2 ** 20).toFixed(0)} MiB`;
}

/** Rewrites ENOSPC/EDQUOT from anywhere into one message naming the file and what is free. */
export function explainNoSpace(e: unknown, file: string): never {
  const code = (e as NodeJS.ErrnoException)?.code;
  if (code === 'ENOSPC' || code === 'EDQUOT') {
    const free = freeBytes(path.dirname(file));
    throw new DemoError(`no space left on the device writing ${file}${free === null ? '' : ` (${mb(free)} free)`}: free some space or choose another --output_dir; finished stages are kept and the next run resumes`);
  }
  throw e;
}

export function writeFileChecked(file: string, data: string | Uint8Array): void {
  try {
    writeFileAtomic(file, data);
  } catch (e) {
    explainNoSpace(e, file);
  }
}

export function writeJson(file: string, v: unknown): void {
  writeFileChecked(file, JSON.stringify(v, null, 1) + '\n');
}

/** Refuses to start when the output folder cannot be created/written or has less than `needBytes` free. */
export function checkOutputDir(dir: string, needBytes: number): void {
  try {
    fs.mkdirSync(dir, { recursive: true });
    fs.accessSync(dir, fs.constants.W_OK);
  } catch (e) {
    throw new DemoError(`--output_dir ${dir} cannot be created or written (${(e as Error).message})`);
  }
  const free = freeBytes(dir);
  if (free !== null && free < needBytes) {
    throw new DemoError(`no space left for the demo in ${dir}: ${mb(free)} free, about ${mb(needBytes)} needed (checkpoints, feature caches, report); free some space or choose another --output_dir`);
  }
}

/** SIGINT handling for the demo's lifetime: first Ctrl-C requests a stop, second exits now. */
export class Interrupt {
  private requested = false;
  private readonly handler = () => {
    if (this.requested) {
      process.stderr.write('\nmood demo: second Ctrl-C, exiting now (finished stages are saved)\n');
      process.exit(130);
    }
    this.requested = true;
    process.stderr.write('\nmood demo: stopping at the next safe point and saving partial results (Ctrl-C again to quit now)\n');
  };
  constructor(private readonly install = true) {
    if (install) process.on('SIGINT', this.handler);
  }
  /** Request a stop programmatically (tests, time limits). */
  request(): void {
    this.requested = true;
  }
  get stopRequested(): boolean {
    return this.requested;
  }
  /** Throws InterruptedError when a stop was requested. */
  check(where: string): void {
    if (this.requested) throw new InterruptedError(where);
  }
  dispose(): void {
    if (this.install) process.off('SIGINT', this.handler);
  }
}
