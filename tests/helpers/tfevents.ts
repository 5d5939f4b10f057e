/**
 * An event-file reader for tests, written apart from lib/tensorboard (TensorBoard itself is not in
 * Debian and PyPI is out of reach here): TFRecord framing with both masked CRC-32Cs checked, and the
 * Event / Summary / Summary.Value protobuf fields decoded by hand from the wire format. It reads the
 * way TensorBoard's reader does: complete records in order; a record cut short at the end of the file
 * is "not there yet" (reported as `truncatedTail`), a checksum mismatch is an error.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';

/** CRC-32C bit by bit (Castagnoli, reflected 0x82F63B78): deliberately not the library's table code. */
export function crc32cBitwise(data: Uint8Array): number {
  let c = 0xffffffff;
  for (const b of data) {
    c ^= b;
    for (let k = 0; k < 8; k++) c = c & 1 ? (c >>> 1) ^ 0x82f63b78 : c >>> 1;
  }
  return (c ^ 0xffffffff) >>> 0;
}

/** TensorFlow's crc32c::Mask: rotate right by 15 bits, add 0xa282ead8. */
export function maskCrc(c: number): number {
  const rot = ((c >>> 15) | (c << 17)) >>> 0;
  return (rot + 0xa282ead8) % 0x100000000;
}

export interface ReadEvent {
  wallTime: number;
  step: number;
  fileVersion?: string;
  values: Array<{ tag: string; simpleValue?: number }>;
}

export interface EventFile {
  events: ReadEvent[];
  /** Bytes at the end that do not form a complete record (a write in progress or cut short). */
  truncatedTail: number;
}

type Field = { no: number; wire: number; varint?: bigint; bytes?: Uint8Array; fixed?: DataView };

function fields(buf: Uint8Array): Field[] {
  const out: Field[] = [];
  let i = 0;
  const readVarint = (): bigint => {
    let v = 0n;
    for (let shift = 0n; ; shift += 7n) {
      if (i >= buf.length) throw new Error('protobuf: varint runs past the end');
      const b = buf[i++];
      v |= BigInt(b & 0x7f) << shift;
      if (!(b & 0x80)) return v;
    }
  };
  while (i < buf.length) {
    const key = Number(readVarint());
    const no = key >>> 3;
    const wire = key & 7;
    if (wire === 0) out.push({ no, wire, varint: readVarint() });
    else if (wire === 1 || wire === 5) {
      const n = wire === 1 ? 8 : 4;
      if (i + n > buf.length) throw new Error('protobuf: fixed field runs past the end');
      out.push({ no, wire, fixed: new DataView(buf.buffer, buf.byteOffset + i, n) });
      i += n;
    } else if (wire === 2) {
      const n = Number(readVarint());
      if (i + n > buf.length) throw new Error('protobuf: length-delimited field runs past the end');
      out.push({ no, wire, bytes: buf.subarray(i, i + n) });
      i += n;
    } else throw new Error(`protobuf: unexpected wire type ${wire} for field ${no}`);
  }
  return out;
}

const text = (b: Uint8Array): string => Buffer.from(b).toString('utf8');

function decodeEvent(data: Uint8Array): ReadEvent {
  const e: ReadEvent = { wallTime: NaN, step: 0, values: [] };
  for (const f of fields(data)) {
    if (f.no === 1 && f.wire === 1) e.wallTime = f.fixed!.getFloat64(0, true);
    else if (f.no === 2 && f.wire === 0) e.step = Number(BigInt.asIntN(64, f.varint!));
    else if (f.no === 3 && f.wire === 2) e.fileVersion = text(f.bytes!);
    else if (f.no === 5 && f.wire === 2) {
      for (const v of fields(f.bytes!)) {
        if (v.no !== 1 || v.wire !== 2) continue;
        const value: { tag: string; simpleValue?: number } = { tag: '' };
        for (const g of fields(v.bytes!)) {
          if (g.no === 1 && g.wire === 2) value.tag = text(g.bytes!);
          else if (g.no === 2 && g.wire === 5) value.simpleValue = g.fixed!.getFloat32(0, true);
        }
        e.values.push(value);
      }
    } else throw new Error(`Event: unexpected field ${f.no} (wire type ${f.wire})`);
  }
  return e;
}

export function readEventBytes(buf: Uint8Array): EventFile {
  const view = new DataView(buf.buffer, buf.byteOffset, buf.byteLength);
  const events: ReadEvent[] = [];
  let off = 0;
  while (off < buf.length) {
    if (off + 12 > buf.length) break;
    const len = view.getBigUint64(off, true);
    if (maskCrc(crc32cBitwise(buf.subarray(off, off + 8))) !== view.getUint32(off + 8, true)) throw new Error(`record at byte ${off}: length checksum mismatch`);
    const n = Number(len);
    if (off + 12 + n + 4 > buf.length) break;
    const data = buf.subarray(off + 12, off + 12 + n);
    if (maskCrc(crc32cBitwise(data)) !== view.getUint32(off + 12 + n, true)) throw new Error(`record at byte ${off}: data checksum mismatch`);
    events.push(decodeEvent(data));
    off += 12 + n + 4;
  }
  return { events, truncatedTail: buf.length - off };
}

export function readEventFile(file: string): EventFile {
  return readEventBytes(fs.readFileSync(file));
}

/** The event files in a folder, as TensorBoard finds them (name contains "tfevents"), sorted. */
export function eventFiles(dir: string): string[] {
  return fs.readdirSync(dir).filter((f) => f.includes('tfevents')).sort().map((f) => path.join(dir, f));
}

/** Every scalar of a file as (tag, step, value), in file order. */
export function scalars(file: EventFile): Array<{ tag: string; step: number; value: number; wallTime: number }> {
  return file.events.flatMap((e) => e.values.filter((v) => v.simpleValue !== undefined).map((v) => ({ tag: v.tag, step: e.step, value: v.simpleValue!, wallTime: e.wallTime })));
}
