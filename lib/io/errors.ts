/**
 * One error type for everything that can go wrong while reading or writing a file of the PyTorch /
 * numpy serialization family (zip container, pickle, .pth, .npy, .npz), so callers (and the fuzz
 * tests) can tell "this file is bad" apart from a bug in our own code. It lives in the bottom layer
 * because the zip and positional-read helpers here throw it; lib/checkpoint re-exports it.
 */
export class CheckpointError extends Error {
  /** File the problem was found in (may be '<buffer>' for in-memory pickles). */
  readonly file: string;
  /** Byte offset inside the file or pickle stream where it was noticed, when known. */
  readonly offset?: number;
  /** Pickle opcode name or zip structure being decoded, when known. */
  readonly where?: string;

  constructor(file: string, message: string, opts: { offset?: number; where?: string; cause?: unknown } = {}) {
    const at = [opts.where, opts.offset !== undefined ? `offset ${opts.offset}` : undefined].filter(Boolean).join(' at ');
    super(`${file}: ${at ? at + ': ' : ''}${message}`, opts.cause !== undefined ? { cause: opts.cause } : undefined);
    this.name = 'CheckpointError';
    this.file = file;
    this.offset = opts.offset;
    this.where = opts.where;
  }
}
