/**
 * Progress for long work: a redrawn bar with rate and ETA on a TTY, plain timestamped lines
 * (at most one per `logEveryMs`) when stderr is a log file or pipe. Shared by extraction,
 * training, data preview and the demo so every long step looks and logs the same.
 */

export interface ProgressOptions {
  /** What is being done, e.g. 'features cifar10/test'. */
  label: string;
  /** Total units (images, steps); 0 or undefined when unknown. */
  total?: number;
  /** Unit name for the rate, e.g. 'img' -> 'img/s'. */
  unit?: string;
  /** Stream (default process.stderr). */
  stream?: NodeJS.WriteStream;
  /** Force the TTY bar on/off (default: stream.isTTY). */
  tty?: boolean;
  /** Minimum interval between plain log lines (default 10 s). */
  logEveryMs?: number;
  /** Suppress all output (e.g. --quiet, non-zero ranks). */
  silent?: boolean;
}

export function formatDuration(seconds: number): string {
  if (!Number.isFinite(seconds) || seconds < 0) return '--:--';
  const s = Math.round(seconds);
  const h = Math.floor(s / 3600);
  const m = Math.floor((s % 3600) / 60);
  const ss = String(s % 60).padStart(2, '0');
  return h > 0 ? `${h}:${String(m).padStart(2, '0')}:${ss}` : `${m}:${ss}`;
}

export class Progress {
  private done = 0;
  private readonly start = Date.now();
  private lastDraw = 0;
  private lastLog = 0;
  private extra = '';
  private finished = false;
  private readonly stream: NodeJS.WriteStream;
  private readonly tty: boolean;

  constructor(private readonly opts: ProgressOptions) {
    this.stream = opts.stream ?? process.stderr;
    this.tty = opts.tty ?? Boolean(this.stream.isTTY);
  }

  /** Units done so far. */
  get count(): number {
    return this.done;
  }

  /** Units per second since the start. */
  rate(): number {
    const dt = (Date.now() - this.start) / 1000;
    return dt > 0 ? this.done / dt : 0;
  }

  /** Adds `n` units; `status` is shown after the bar (e.g. 'loss 0.413'). */
  tick(n = 1, status?: string): void {
    this.done += n;
    if (status !== undefined) this.extra = status;
    this.render(false);
  }

  /** Sets the absolute count. */
  update(done: number, status?: string): void {
    this.done = done;
    if (status !== undefined) this.extra = status;
    this.render(false);
  }

  /** Final line (always printed unless silent). */
  finish(status?: string): void {
    if (this.finished) return;
    if (status !== undefined) this.extra = status;
    this.render(true);
    this.finished = true;
  }

  private line(): string {
    const total = this.opts.total ?? 0;
    const unit = this.opts.unit ?? 'it';
    const rate = this.rate();
    const elapsed = (Date.now() - this.start) / 1000;
    const parts = [this.opts.label];
    if (total > 0) {
      const frac = Math.min(1, this.done / total);
      if (this.tty) {
        const width = 24;
        const fill = Math.round(frac * width);
        parts.push(`[${'#'.repeat(fill)}${'.'.repeat(width - fill)}]`);
      }
      parts.push(`${this.done}/${total} (${(frac * 100).toFixed(1)}%)`);
    } else {
      parts.push(`${this.done}`);
    }
    parts.push(`${rate.toFixed(rate >= 100 ? 0 : 1)} ${unit}/s`);
    parts.push(`elapsed ${formatDuration(elapsed)}`);
    if (total > 0 && rate > 0 && this.done < total) parts.push(`eta ${formatDuration((total - this.done) / rate)}`);
    if (this.extra) parts.push(this.extra);
    return parts.join('  ');
  }

  private render(final: boolean): void {
    if (this.opts.silent || this.finished) return;
    const now = Date.now();
    if (this.tty) {
      if (!final && now - this.lastDraw < 100) return;
      this.lastDraw = now;
      this.stream.write(`\r\x1b[2K${this.line()}${final ? '\n' : ''}`);
      return;
    }
    const every = this.opts.logEveryMs ?? 10_000;
    if (!final && now - this.lastLog < every && this.lastLog !== 0) return;
    if (!final && this.lastLog === 0 && this.done > 0 && now - this.start < Math.min(every, 2000)) return;
    this.lastLog = now;
    this.stream.write(`${new Date(now).toISOString()} ${this.line()}\n`);
  }
}
