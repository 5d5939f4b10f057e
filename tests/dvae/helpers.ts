import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { readEntryBytes, readZipDirectory } from '../../lib/io/zip';
import { ZipWriter } from '../../lib/io/zipwrite';
import { fixturePath } from '../helpers/fixtures';

/** The official-code fixture: a small DALL-E encoder pickled whole (see tests/fixtures/official/README.md, dvae/). */
export const DVAE_DIR = fixturePath('dvae');
export const ENCODER_PKL = path.join(DVAE_DIR, 'encoder.pkl');

export interface DvaeManifest {
  encoder: { n_hid: number; n_blk_per_group: number; vocab_size: number; group_count: number };
  ids_shape: number[];
  state_dict: Array<[string, number[], string]>;
  full_size_keys: Array<[string, number[]]>;
}

export function dvaeManifest(): DvaeManifest {
  return JSON.parse(fs.readFileSync(path.join(DVAE_DIR, 'manifest.json'), 'utf8')) as DvaeManifest;
}

export function tmpDir(tag: string): string {
  return fs.mkdtempSync(path.join(os.tmpdir(), `mood-dvae-${tag}-`));
}

/** The fixture's pickle program (encoder/data.pkl) as bytes. */
export function fixturePickle(): Buffer {
  const fd = fs.openSync(ENCODER_PKL, 'r');
  try {
    const dir = readZipDirectory(fd, ENCODER_PKL);
    return readEntryBytes(fd, dir, dir.byName.get('encoder/data.pkl')!);
  } finally {
    fs.closeSync(fd);
  }
}

/** A copy of the fixture's archive with data.pkl replaced (every storage record kept). */
export function rewritePickle(out: string, edit: (pkl: Buffer) => Buffer): string {
  const fd = fs.openSync(ENCODER_PKL, 'r');
  const outFd = fs.openSync(out, 'w');
  try {
    const dir = readZipDirectory(fd, ENCODER_PKL);
    const w = new ZipWriter(outFd);
    for (const e of dir.entries) {
      const bytes = readEntryBytes(fd, dir, e);
      w.add(e.name, e.name === 'encoder/data.pkl' ? edit(bytes) : bytes);
    }
    w.finish();
  } finally {
    fs.closeSync(fd);
    fs.closeSync(outFd);
  }
  return out;
}

/** Replaces exactly one occurrence of `from` (a pickle opcode sequence) by `to`; throws when the count differs. */
export function replaceOnce(pkl: Buffer, from: Buffer | string, to: Buffer | string): Buffer {
  const f = typeof from === 'string' ? Buffer.from(from, 'latin1') : from;
  const t = typeof to === 'string' ? Buffer.from(to, 'latin1') : to;
  const at = pkl.indexOf(f);
  if (at < 0 || pkl.indexOf(f, at + 1) >= 0) throw new Error(`expected exactly one ${JSON.stringify(f.toString('latin1'))} in the pickle`);
  return Buffer.concat([pkl.subarray(0, at), t, pkl.subarray(at + f.length)]);
}

/** Protocol-2 BINUNICODE opcode for a short string. */
export function binunicode(s: string): Buffer {
  const b = Buffer.from(s, 'utf8');
  const len = Buffer.alloc(4);
  len.writeUInt32LE(b.length);
  return Buffer.concat([Buffer.from([0x58]), len, b]);
}
