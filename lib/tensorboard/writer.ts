/**
 * TensorBoard event files: `events.out.tfevents.<unix time>.<host>.<pid>.<n>` in `logDir`, read by
 * TensorBoard (`tensorboard --logdir DIR`) and anything that reads TFRecord `Event` protobufs
 * (tensorboardX, torch.utils.tensorboard, tbparse).
 *
 * Records are TFRecord-framed `Event` protobufs (./record.ts). The first is
 * `Event{wall_time, file_version: "brain.Event:2"}`, as TensorFlow, tensorboardX and
 * torch.utils.tensorboard write it; then one event per scalar (tensorboardX's add_scalar).
 *
 * Durability: records are buffered and written in whole records by one write per flush, so a reader
 * sees only complete records as long as the process lives; if a write fails part way (disk full),
 * the file is cut back to the last complete record. Flushes happen every `maxQueue` records, every
 * `flushSecs` seconds (a timer that does not keep the process alive), on flush() / close(), and on
 * process exit for writers not closed. A SIGKILL loses at most the records since the last flush.
 */
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { encodeEvent, tfRecord } from './record';

export interface TensorBoardWriterOptions {
  /** Flush after this many pending records (default 10, tensorboardX's max_queue). */
  maxQueue?: number;
  /** Flush pending records at least this often, in seconds (default 120, tensorboardX's flush_secs). */
  flushSecs?: number;
  /** Appended to the file name (tensorboardX's filename_suffix). */
  filenameSuffix?: string;
}

const openWriters = new Set<TensorBoardWriter>();
let exitHookInstalled = false;

function flushAllOnExit(): void {
  for (const w of openWriters) {
    try {
      w.close();
    } catch {
      /* exiting: nothing left to report to */
    }
  }
}

let fileCounter = 0;

/** Writes scalar summaries to a new event file in `logDir` (created if missing); one file per writer. */
export class TensorBoardWriter {
  /** The event file this writer appends to. */
  readonly file: string;
  private fd: number | null;
  private pending: Buffer[] = [];
  /** Bytes in the file that are complete records. */
  private committed = 0;
  private readonly maxQueue: number;
  private readonly timer: NodeJS.Timeout | undefined;
  /** A timed flush that failed: reported by the next call rather than thrown from a timer. */
  private failure: Error | undefined;

  constructor(readonly logDir: string, opts: TensorBoardWriterOptions = {}) {
    this.maxQueue = opts.maxQueue ?? 10;
    const flushSecs = opts.flushSecs ?? 120;
    if (!Number.isInteger(this.maxQueue) || this.maxQueue < 1) throw new RangeError(`TensorBoardWriter: maxQueue must be a positive integer, got ${opts.maxQueue}`);
    if (!(flushSecs > 0)) throw new RangeError(`TensorBoardWriter: flushSecs must be > 0, got ${opts.flushSecs}`);
    const suffix = opts.filenameSuffix ?? '';
    if (/[/\\]/.test(suffix)) throw new RangeError(`TensorBoardWriter: filenameSuffix must not contain a path separator, got '${suffix}'`);
    try {
      fs.mkdirSync(logDir, { recursive: true });
    } catch (e) {
      throw new Error(`TensorBoard log dir ${logDir}: ${(e as Error).message}`);
    }
    const now = Date.now() / 1000;
    // Like torch.utils.tensorboard: host, pid and a counter keep two writers from sharing a file.
    const base = `events.out.tfevents.${String(Math.floor(now)).padStart(10, '0')}.${os.hostname()}.${process.pid}.${fileCounter++}${suffix}`;
    this.file = path.join(logDir, base);
    try {
      this.fd = fs.openSync(this.file, 'wx', 0o644); // never append to or replace someone's file
    } catch (e) {
      throw new Error(`TensorBoard event file ${this.file}: ${(e as Error).message}`);
    }
    this.pending.push(tfRecord(encodeEvent({ wallTime: now, fileVersion: 'brain.Event:2' })));
    this.flush();
    this.timer = setInterval(() => {
      try {
        this.writePending();
      } catch (e) {
        this.failure ??= e as Error;
      }
    }, flushSecs * 1000);
    this.timer.unref();
    openWriters.add(this);
    if (!exitHookInstalled) {
      process.on('exit', flushAllOnExit);
      exitHookInstalled = true;
    }
  }

  /** Adds scalar `tag` = `value` at `step` (wallTime: seconds since the epoch, default now). */
  addScalar(tag: string, value: number, step: number, wallTime?: number): void {
    this.addScalars([{ tag, value }], step, wallTime);
  }

  /** Several scalars at one step: one event each, as tensorboardX writes them. */
  addScalars(scalars: ReadonlyArray<{ tag: string; value: number }>, step: number, wallTime = Date.now() / 1000): void {
    if (this.fd === null) throw new Error(`TensorBoardWriter: ${this.file} is closed`);
    this.rethrowFailure();
    if (!Number.isSafeInteger(step)) throw new RangeError(`TensorBoardWriter: step must be an integer, got ${step}`);
    if (typeof wallTime !== 'number' || !Number.isFinite(wallTime)) throw new RangeError(`TensorBoardWriter: wallTime must be a finite number of seconds, got ${wallTime}`);
    for (const { tag, value } of scalars) {
      if (typeof tag !== 'string' || tag === '') throw new TypeError(`TensorBoardWriter: tag must be a non-empty string, got ${JSON.stringify(tag)}`);
      if (typeof value !== 'number') throw new TypeError(`TensorBoardWriter: '${tag}' must be a number, got ${typeof value}`);
    }
    for (const s of scalars) this.pending.push(tfRecord(encodeEvent({ wallTime, step, scalars: [s] })));
    if (this.pending.length >= this.maxQueue) this.writePending();
  }

  /** Writes every pending record and asks the OS to persist the file (fsync). */
  flush(): void {
    if (this.fd === null) return;
    this.rethrowFailure();
    this.writePending();
    fs.fsyncSync(this.fd);
  }

  /** Flushes and closes the file; later addScalar calls throw. Closing twice is harmless. */
  close(): void {
    if (this.fd === null) return;
    clearInterval(this.timer);
    try {
      this.flush();
    } finally {
      fs.closeSync(this.fd);
      this.fd = null;
      openWriters.delete(this);
    }
  }

  private rethrowFailure(): void {
    const f = this.failure;
    this.failure = undefined;
    if (f) throw f;
  }

  private writePending(): void {
    if (this.fd === null || this.pending.length === 0) return;
    const buf = Buffer.concat(this.pending);
    this.pending = [];
    let off = 0;
    try {
      while (off < buf.length) off += fs.writeSync(this.fd, buf, off, buf.length - off, this.committed + off);
    } catch (e) {
      // Cut a partial record away so readers keep seeing a well-formed file; the lost records are named.
      try {
        fs.ftruncateSync(this.fd, this.committed);
      } catch {
        /* the write error below is the one to report */
      }
      throw new Error(`TensorBoard event file ${this.file}: ${(e as Error).message} (${buf.length} bytes of records not written)`);
    }
    this.committed += buf.length;
  }
}
