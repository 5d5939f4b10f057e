/**
 * Zip reader for checkpoint archives: parses the central directory (zip64 included) with positional
 * reads and resolves every entry's absolute data offset through its local header, so tensor storages
 * can later be read (or mmapped natively) straight from the file. Nothing reads the whole archive.
 */
import * as fs from 'node:fs';
import * as zlib from 'node:zlib';
import { CheckpointError } from './errors';
import { preadExact } from './fileio';
import { crc32 } from './crc32';

export const ZIP_STORED = 0;
export const ZIP_DEFLATED = 8;

export interface ZipEntry {
  name: string;
  /** 0 = stored, 8 = deflate; anything else cannot be read. */
  method: number;
  compressedSize: number;
  uncompressedSize: number;
  crc32: number;
  localHeaderOffset: number;
  /** Absolute file offset of the entry's (possibly compressed) data. */
  dataOffset: number;
}

export interface ZipDirectory {
  file: string;
  fileSize: number;
  entries: ZipEntry[];
  byName: Map<string, ZipEntry>;
}

const SIG_EOCD = 0x06054b50;
const SIG_EOCD64 = 0x06064b50;
const SIG_EOCD64_LOCATOR = 0x07064b50;
const SIG_CENTRAL = 0x02014b50;
const SIG_LOCAL = 0x04034b50;
const EOCD_MIN = 22;
const MAX_COMMENT = 0xffff;
/** Default cap for entries we inflate or read whole into memory (data.pkl, version, ...). */
export const DEFAULT_MAX_SMALL_ENTRY = 1 << 30;

/** True when the file starts like a zip (local header) — torch's own format test. */
export function looksLikeZip(fd: number): boolean {
  const b = Buffer.alloc(4);
  const n = fs.readSync(fd, b, 0, 4, 0);
  return n === 4 && b.readUInt32LE(0) === SIG_LOCAL;
}

function u64(buf: Buffer, off: number, file: string, what: string): number {
  const v = buf.readBigUInt64LE(off);
  if (v > BigInt(Number.MAX_SAFE_INTEGER)) throw new CheckpointError(file, `64-bit field too large (${v})`, { where: what });
  return Number(v);
}

/** Parse the central directory of the zip open on `fd`. */
export function readZipDirectory(fd: number, file: string): ZipDirectory {
  const fileSize = fs.fstatSync(fd).size;
  if (fileSize < EOCD_MIN) throw new CheckpointError(file, `file too small for a zip archive (${fileSize} bytes)`);

  // The EOCD record sits in the last 22 + comment bytes; scan backwards for its signature.
  const tailLen = Math.min(fileSize, EOCD_MIN + MAX_COMMENT + 20);
  const tailPos = fileSize - tailLen;
  const tail = preadExact(fd, tailLen, tailPos, file, 'zip end of central directory');
  let eocd = -1;
  for (let i = tailLen - EOCD_MIN; i >= 0; i--) {
    if (tail.readUInt32LE(i) === SIG_EOCD && i + EOCD_MIN + tail.readUInt16LE(i + 20) <= tailLen) {
      eocd = i;
      break;
    }
  }
  if (eocd < 0) throw new CheckpointError(file, 'no zip end-of-central-directory record (not a zip, or truncated)');

  let count = tail.readUInt16LE(eocd + 10);
  let cdSize = tail.readUInt32LE(eocd + 12);
  let cdOffset = tail.readUInt32LE(eocd + 16);

  // zip64: a locator 20 bytes before the EOCD points at the zip64 EOCD record.
  const locPos = eocd - 20;
  if (locPos >= 0 && tail.readUInt32LE(locPos) === SIG_EOCD64_LOCATOR) {
    const eocd64Off = u64(tail, locPos + 8, file, 'zip64 locator');
    if (eocd64Off + 56 > fileSize) throw new CheckpointError(file, `zip64 end record offset ${eocd64Off} past end of file`, { where: 'zip64 locator' });
    const rec = preadExact(fd, 56, eocd64Off, file, 'zip64 end of central directory');
    if (rec.readUInt32LE(0) !== SIG_EOCD64) throw new CheckpointError(file, 'bad zip64 end-of-central-directory signature', { offset: eocd64Off });
    count = u64(rec, 32, file, 'zip64 entry count');
    cdSize = u64(rec, 40, file, 'zip64 central directory size');
    cdOffset = u64(rec, 48, file, 'zip64 central directory offset');
  } else if (count === 0xffff || cdSize === 0xffffffff || cdOffset === 0xffffffff) {
    throw new CheckpointError(file, 'zip64 sizes announced but no zip64 locator found');
  }

  if (cdOffset + cdSize > fileSize) {
    throw new CheckpointError(file, `central directory (${cdOffset}+${cdSize}) extends past end of file (${fileSize})`);
  }
  // Each central record is at least 46 bytes: a larger count is a lie we must not allocate for.
  if (count * 46 > cdSize) throw new CheckpointError(file, `central directory claims ${count} entries in ${cdSize} bytes`);

  const cd = preadExact(fd, cdSize, cdOffset, file, 'zip central directory');
  const entries: ZipEntry[] = [];
  const byName = new Map<string, ZipEntry>();
  let p = 0;
  for (let i = 0; i < count; i++) {
    if (p + 46 > cdSize || cd.readUInt32LE(p) !== SIG_CENTRAL) {
      throw new CheckpointError(file, `bad central directory record ${i}`, { offset: cdOffset + p });
    }
    const flags = cd.readUInt16LE(p + 8);
    const method = cd.readUInt16LE(p + 10);
    const crc = cd.readUInt32LE(p + 16);
    let compressedSize = cd.readUInt32LE(p + 20);
    let uncompressedSize = cd.readUInt32LE(p + 24);
    const nameLen = cd.readUInt16LE(p + 28);
    const extraLen = cd.readUInt16LE(p + 30);
    const commentLen = cd.readUInt16LE(p + 32);
    let localHeaderOffset = cd.readUInt32LE(p + 42);
    const end = p + 46 + nameLen + extraLen + commentLen;
    if (end > cdSize) throw new CheckpointError(file, `central directory record ${i} overruns the directory`, { offset: cdOffset + p });
    const nameBytes = cd.subarray(p + 46, p + 46 + nameLen);
    // Bit 11 = UTF-8 names; otherwise CP437, which for the ASCII names torch writes is the same as latin1.
    const name = nameBytes.toString(flags & 0x800 ? 'utf8' : 'latin1');

    // zip64 extended information (header id 1): only the fields saturated above are present, in order.
    let q = p + 46 + nameLen;
    const extraEnd = q + extraLen;
    while (q + 4 <= extraEnd) {
      const id = cd.readUInt16LE(q);
      const size = cd.readUInt16LE(q + 2);
      if (q + 4 + size > extraEnd) break;
      if (id === 0x0001) {
        let r = q + 4;
        const take = (what: string): number => {
          if (r + 8 > q + 4 + size) throw new CheckpointError(file, `zip64 extra field of ${name} too short for ${what}`);
          const v = u64(cd, r, file, `zip64 ${what}`);
          r += 8;
          return v;
        };
        if (uncompressedSize === 0xffffffff) uncompressedSize = take('uncompressed size');
        if (compressedSize === 0xffffffff) compressedSize = take('compressed size');
        if (localHeaderOffset === 0xffffffff) localHeaderOffset = take('local header offset');
      }
      q += 4 + size;
    }
    p = end;

    if (localHeaderOffset + 30 > cdOffset) {
      throw new CheckpointError(file, `entry ${name}: local header offset ${localHeaderOffset} outside the data area`);
    }
    const lh = preadExact(fd, 30, localHeaderOffset, file, `local header of ${name}`);
    if (lh.readUInt32LE(0) !== SIG_LOCAL) throw new CheckpointError(file, `entry ${name}: bad local header signature`, { offset: localHeaderOffset });
    // The local header's own name/extra lengths decide where data starts (torch pads the extra field).
    const dataOffset = localHeaderOffset + 30 + lh.readUInt16LE(26) + lh.readUInt16LE(28);
    if (dataOffset + compressedSize > cdOffset) {
      throw new CheckpointError(file, `entry ${name}: data (${dataOffset}+${compressedSize}) overlaps the central directory or runs past end of file`);
    }
    if (method === ZIP_STORED && compressedSize !== uncompressedSize) {
      throw new CheckpointError(file, `entry ${name}: stored entry with compressed size ${compressedSize} != size ${uncompressedSize}`);
    }
    const entry: ZipEntry = { name, method, compressedSize, uncompressedSize, crc32: crc, localHeaderOffset, dataOffset };
    entries.push(entry);
    byName.set(name, entry);
  }
  return { file, fileSize, entries, byName };
}

/**
 * Read a whole (small) entry into memory, inflating it if needed and checking its CRC. Used for
 * data.pkl and the tiny text records; tensor storages go through dataOffset instead.
 */
export function readEntryBytes(fd: number, dir: ZipDirectory, entry: ZipEntry, maxBytes = DEFAULT_MAX_SMALL_ENTRY): Buffer {
  const { file } = dir;
  if (entry.uncompressedSize > maxBytes) {
    throw new CheckpointError(file, `entry ${entry.name} is ${entry.uncompressedSize} bytes, over the ${maxBytes}-byte limit for in-memory records`);
  }
  const raw = preadExact(fd, entry.compressedSize, entry.dataOffset, file, `data of ${entry.name}`);
  let data: Buffer;
  if (entry.method === ZIP_STORED) {
    data = raw;
  } else if (entry.method === ZIP_DEFLATED) {
    try {
      data = zlib.inflateRawSync(raw, { maxOutputLength: Math.max(1, entry.uncompressedSize) });
    } catch (e) {
      throw new CheckpointError(file, `entry ${entry.name}: deflate data is corrupt (${(e as Error).message})`, { cause: e });
    }
    if (data.length !== entry.uncompressedSize) {
      throw new CheckpointError(file, `entry ${entry.name}: inflated to ${data.length} bytes, directory says ${entry.uncompressedSize}`);
    }
  } else {
    throw new CheckpointError(file, `entry ${entry.name}: unsupported compression method ${entry.method}`);
  }
  const c = crc32(data);
  if (c !== entry.crc32) {
    throw new CheckpointError(file, `entry ${entry.name}: CRC mismatch (computed ${c.toString(16)}, stored ${entry.crc32.toString(16)})`);
  }
  return data;
}
