/**
 * Positional reads that either return exactly what was asked for or throw a CheckpointError:
 * checkpoints can be many GB, so nothing here ever reads a whole file.
 */
import * as fs from 'node:fs';
import { CheckpointError } from './errors';

/** Read exactly `length` bytes at absolute `position`; a short read means the file is truncated. */
export function preadExact(fd: number, length: number, position: number, file: string, what: string): Buffer {
  if (!Number.isSafeInteger(length) || length < 0 || !Number.isSafeInteger(position) || position < 0) {
    throw new CheckpointError(file, `invalid read of ${length} bytes`, { offset: position, where: what });
  }
  const buf = Buffer.allocUnsafe(length);
  let done = 0;
  while (done < length) {
    const n = fs.readSync(fd, buf, done, length - done, position + done);
    if (n === 0) {
      throw new CheckpointError(file, `unexpected end of file: wanted ${length} bytes, got ${done}`, {
        offset: position,
        where: what,
      });
    }
    done += n;
  }
  return buf;
}

/** Read `length` bytes into an existing view (used to fill typed arrays without an extra copy). */
export function preadInto(fd: number, target: Uint8Array, position: number, file: string, what: string): void {
  let done = 0;
  while (done < target.length) {
    const n = fs.readSync(fd, target, done, target.length - done, position + done);
    if (n === 0) {
      throw new CheckpointError(file, `unexpected end of file: wanted ${target.length} bytes, got ${done}`, {
        offset: position,
        where: what,
      });
    }
    done += n;
  }
}
