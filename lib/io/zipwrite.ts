/**
 * Streaming zip writer for checkpoints and .npz files. Entries are written in order straight to a
 * file descriptor; stored entries get their data aligned (torch aligns storages to 64 bytes with a
 * padding extra field, which lets loaders mmap tensors), zip64 records appear when sizes require.
 */
import * as zlib from 'node:zlib';
import { writeAll } from './atomic';
import { crc32 } from './crc32';

export interface ZipWriterOptions {
  /** Align stored entries' data to this many bytes (default 64, like torch). 1 disables. */
  align?: number;
  /** Write zip64 structures even for small archives (tests exercise the zip64 path this way). */
  forceZip64?: boolean;
}

interface Written {
  name: Buffer;
  method: number;
  crc: number;
  csize: number;
  usize: number;
  offset: number;
}

const U32_MAX = 0xffffffff;
/** DOS date 1980-01-01, time 00:00: fixed so identical inputs give identical files. */
const DOS_DATE = 0x21;
const DOS_TIME = 0;
/** Private extra-field id used for alignment padding (the one torch's writer uses, 'FB'). */
const PAD_EXTRA_ID = 0x4246;

export class ZipWriter {
  private pos = 0;
  private readonly entries: Written[] = [];
  private readonly align: number;
  private readonly zip64: boolean;
  constructor(private readonly fd: number, opts: ZipWriterOptions = {}) {
    this.align = opts.align ?? 64;
    this.zip64 = opts.forceZip64 ?? false;
  }

  private out(b: Uint8Array): void {
    writeAll(this.fd, b);
    this.pos += b.length;
  }

  /**
   * Add one entry. `parts` are concatenated (so a tensor's bytes are written without a copy);
   * `deflate` compresses (only for small records: .npz members, never torch storages).
   */
  add(name: string, parts: Uint8Array | Uint8Array[], opts: { deflate?: boolean } = {}): void {
    let chunks = Array.isArray(parts) ? parts : [parts];
    let usize = 0;
    let crc = 0;
    for (const c of chunks) {
      crc = crc32(c, crc);
      usize += c.length;
    }
    let method = 0;
    let csize = usize;
    if (opts.deflate) {
      const d = zlib.deflateRawSync(chunks.length === 1 ? chunks[0] : Buffer.concat(chunks));
      chunks = [d];
      csize = d.length;
      method = 8;
    }
    const nameBuf = Buffer.from(name, 'utf8');
    const big = this.zip64 || usize >= U32_MAX || csize >= U32_MAX || this.pos >= U32_MAX;
    const z64Len = big ? 20 : 0; // id, size, usize, csize
    let padLen = 0;
    if (method === 0 && this.align > 1) {
      const dataStart = this.pos + 30 + nameBuf.length + z64Len + 4;
      padLen = 4 + ((this.align - (dataStart % this.align)) % this.align);
    }
    const h = Buffer.alloc(30 + nameBuf.length + z64Len + padLen);
    h.writeUInt32LE(0x04034b50, 0);
    h.writeUInt16LE(big ? 45 : 20, 4);
    h.writeUInt16LE(/[^\x00-\x7f]/.test(name) ? 0x800 : 0, 6);
    h.writeUInt16LE(method, 8);
    h.writeUInt16LE(DOS_TIME, 10);
    h.writeUInt16LE(DOS_DATE, 12);
    h.writeUInt32LE(crc, 14);
    h.writeUInt32LE(big ? U32_MAX : csize, 18);
    h.writeUInt32LE(big ? U32_MAX : usize, 22);
    h.writeUInt16LE(nameBuf.length, 26);
    h.writeUInt16LE(z64Len + padLen, 28);
    nameBuf.copy(h, 30);
    let p = 30 + nameBuf.length;
    if (big) {
      h.writeUInt16LE(1, p);
      h.writeUInt16LE(16, p + 2);
      h.writeBigUInt64LE(BigInt(usize), p + 4);
      h.writeBigUInt64LE(BigInt(csize), p + 12);
      p += 20;
    }
    if (padLen) {
      h.writeUInt16LE(PAD_EXTRA_ID, p);
      h.writeUInt16LE(padLen - 4, p + 2); // padding bytes stay zero
    }
    const offset = this.pos;
    this.out(h);
    for (const c of chunks) this.out(c);
    this.entries.push({ name: nameBuf, method, crc, csize, usize, offset });
  }

  /** Write the central directory and end records. */
  finish(): void {
    const cdStart = this.pos;
    for (const e of this.entries) {
      const fields: bigint[] = [];
      const sat = (v: number): number => {
        if (this.zip64 || v >= U32_MAX) {
          fields.push(BigInt(v));
          return U32_MAX;
        }
        return v;
      };
      const usize = sat(e.usize);
      const csize = sat(e.csize);
      const off = sat(e.offset);
      const z64Len = fields.length ? 4 + 8 * fields.length : 0;
      const c = Buffer.alloc(46 + e.name.length + z64Len);
      c.writeUInt32LE(0x02014b50, 0);
      c.writeUInt16LE(fields.length ? 45 : 20, 4); // made by
      c.writeUInt16LE(fields.length ? 45 : 20, 6); // needed
      c.writeUInt16LE(/[^\x00-\x7f]/.test(e.name.toString('utf8')) ? 0x800 : 0, 8);
      c.writeUInt16LE(e.method, 10);
      c.writeUInt16LE(DOS_TIME, 12);
      c.writeUInt16LE(DOS_DATE, 14);
      c.writeUInt32LE(e.crc, 16);
      c.writeUInt32LE(csize, 20);
      c.writeUInt32LE(usize, 24);
      c.writeUInt16LE(e.name.length, 28);
      c.writeUInt16LE(z64Len, 30);
      c.writeUInt32LE(off, 42);
      e.name.copy(c, 46);
      if (z64Len) {
        let p = 46 + e.name.length;
        c.writeUInt16LE(1, p);
        c.writeUInt16LE(8 * fields.length, p + 2);
        p += 4;
        for (const f of fields) {
          c.writeBigUInt64LE(f, p);
          p += 8;
        }
      }
      this.out(c);
    }
    const cdSize = this.pos - cdStart;
    const n = this.entries.length;
    const need64 = this.zip64 || n >= 0xffff || cdStart >= U32_MAX || cdSize >= U32_MAX;
    if (need64) {
      const eocd64At = this.pos;
      const r = Buffer.alloc(56 + 20);
      r.writeUInt32LE(0x06064b50, 0);
      r.writeBigUInt64LE(44n, 4); // size of the rest of this record
      r.writeUInt16LE(45, 12);
      r.writeUInt16LE(45, 14);
      r.writeBigUInt64LE(BigInt(n), 24);
      r.writeBigUInt64LE(BigInt(n), 32);
      r.writeBigUInt64LE(BigInt(cdSize), 40);
      r.writeBigUInt64LE(BigInt(cdStart), 48);
      r.writeUInt32LE(0x07064b50, 56);
      r.writeBigUInt64LE(BigInt(eocd64At), 64);
      r.writeUInt32LE(1, 72); // total disks
      this.out(r);
    }
    const e = Buffer.alloc(22);
    e.writeUInt32LE(0x06054b50, 0);
    e.writeUInt16LE(need64 ? 0xffff : n, 8);
    e.writeUInt16LE(need64 ? 0xffff : n, 10);
    e.writeUInt32LE(need64 ? U32_MAX : cdSize, 12);
    e.writeUInt32LE(need64 ? U32_MAX : cdStart, 16);
    this.out(e);
  }
}
