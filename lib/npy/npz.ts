/**
 * .npz = a zip of .npy members (np.savez stores them, np.savez_compressed deflates them). Reading
 * uses the checkpoint zip reader (central directory + positional reads); writing is atomic.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { CheckpointError } from '../io/errors';
import { readZipDirectory, readEntryBytes, ZIP_STORED } from '../io/zip';
import { atomicWriteFile } from '../io/atomic';
import { ZipWriter } from '../io/zipwrite';
import { NdArray } from './ndarray';
import { decodeNpy, encodeNpy, readNpyAt } from './npy';

/** Read every member; keys are member names without the '.npy' suffix, in archive order. */
export function readNpz(file: string): Map<string, NdArray> {
  const abs = path.resolve(file);
  const fd = fs.openSync(abs, 'r');
  try {
    const dir = readZipDirectory(fd, abs);
    const out = new Map<string, NdArray>();
    for (const e of dir.entries) {
      if (e.name.endsWith('/')) continue;
      const key = e.name.replace(/\.npy$/, '');
      if (e.method === ZIP_STORED) out.set(key, readNpyAt(fd, e.dataOffset, e.uncompressedSize, `${abs} (${e.name})`));
      else out.set(key, decodeNpy(readEntryBytes(fd, dir, e), `${abs} (${e.name})`));
    }
    return out;
  } finally {
    fs.closeSync(fd);
  }
}

export interface WriteNpzOptions {
  /** Deflate members like np.savez_compressed (default false, like np.savez). */
  compress?: boolean;
}

export function writeNpz(file: string, arrays: Map<string, NdArray> | Record<string, NdArray>, opts: WriteNpzOptions = {}): void {
  const entries = arrays instanceof Map ? [...arrays] : Object.entries(arrays);
  for (const [k] of entries) if (!k || k.includes('\0')) throw new CheckpointError(file, `bad npz member name ${JSON.stringify(k)}`);
  atomicWriteFile(file, (fd) => {
    const z = new ZipWriter(fd, { align: 1 });
    for (const [k, a] of entries) z.add(`${k}.npy`, encodeNpy(a), { deflate: opts.compress === true });
    z.finish();
  });
}
