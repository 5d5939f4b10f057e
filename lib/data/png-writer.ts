/** A minimal PNG encoder (8-bit RGB, filter 0, zlib) for contact sheets; written atomically. */
import * as zlib from 'node:zlib';
import { atomicWriteFile, writeAll } from '../checkpoint/atomic';
import { crc32 } from '../checkpoint/crc32';

function chunk(type: string, data: Uint8Array): Buffer {
  const head = Buffer.alloc(8);
  head.writeUInt32BE(data.length, 0);
  head.write(type, 4, 'latin1');
  const crc = Buffer.alloc(4);
  crc.writeUInt32BE(crc32(Buffer.concat([head.subarray(4), data])) >>> 0, 0);
  return Buffer.concat([head, data, crc]);
}

/** Encodes interleaved RGB rows (height x width x 3). */
export function encodePngRgb(rgb: Uint8Array, width: number, height: number): Buffer {
  if (rgb.length !== width * height * 3) throw new RangeError(`PNG: ${rgb.length} bytes for ${width}x${height} RGB`);
  const raw = Buffer.alloc((width * 3 + 1) * height);
  for (let y = 0; y < height; y++) {
    raw[y * (width * 3 + 1)] = 0;
    raw.set(rgb.subarray(y * width * 3, (y + 1) * width * 3), y * (width * 3 + 1) + 1);
  }
  const ihdr = Buffer.alloc(13);
  ihdr.writeUInt32BE(width, 0);
  ihdr.writeUInt32BE(height, 4);
  ihdr[8] = 8; // bit depth
  ihdr[9] = 2; // RGB
  return Buffer.concat([
    Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]),
    chunk('IHDR', ihdr),
    chunk('IDAT', zlib.deflateSync(raw)),
    chunk('IEND', new Uint8Array(0)),
  ]);
}

export function writePngRgb(file: string, rgb: Uint8Array, width: number, height: number): void {
  const png = encodePngRgb(rgb, width, height);
  atomicWriteFile(file, (fd) => writeAll(fd, png));
}

/**
 * A grid of normalised float32 NCHW images, denormalised with mean/std back to 0..255, 2 px gaps.
 */
export function contactSheet(x: Float32Array, n: number, size: number, mean: readonly number[], std: readonly number[]): { rgb: Uint8Array; width: number; height: number } {
  const cols = Math.max(1, Math.ceil(Math.sqrt(n)));
  const rows = Math.max(1, Math.ceil(n / cols));
  const gap = 2;
  const width = cols * size + (cols + 1) * gap;
  const height = rows * size + (rows + 1) * gap;
  const rgb = new Uint8Array(width * height * 3).fill(255);
  const plane = size * size;
  for (let i = 0; i < n; i++) {
    const ox = gap + (i % cols) * (size + gap);
    const oy = gap + Math.floor(i / cols) * (size + gap);
    for (let c = 0; c < 3; c++)
      for (let y = 0; y < size; y++)
        for (let xx = 0; xx < size; xx++) {
          const v = (x[(i * 3 + c) * plane + y * size + xx] * std[c] + mean[c]) * 255;
          rgb[((oy + y) * width + ox + xx) * 3 + c] = Math.max(0, Math.min(255, Math.round(v)));
        }
  }
  return { rgb, width, height };
}
