/**
 * TensorBoard's on-disk encoding: TFRecord framing around `Event` protobufs (TensorFlow's
 * record_writer.cc, event.proto and summary.proto).
 *
 * - each record: uint64 LE length, uint32 LE masked CRC-32C of those 8 bytes, the data, uint32 LE
 *   masked CRC-32C of the data; mask(c) = ((c >>> 15) | (c << 17)) + 0xa282ead8 (mod 2^32);
 * - the data is one `Event`: wall_time (1, double), step (2, int64), file_version (3, string) or
 *   summary (5, Summary { repeated Value value = 1 }, Value { tag = 1, simple_value = 2 (float) }).
 *
 * The few protobuf fields are encoded here (~40 lines) rather than with protobufjs: the messages are
 * fixed, and a general protobuf runtime plus schema files would be the larger thing to keep. CRC-32C
 * shares the slicing-by-8 code of our zip/PNG CRC-32 (lib/io/crc32.ts): records are ~50
 * bytes, so a native CRC package (@node-rs/crc32, sse4_crc32) would buy nothing worth a binary download.
 */
import { crc32c } from '../io/crc32';

const MASK_DELTA = 0xa282ead8;

/** TFRecord's masked CRC: a CRC stored next to data that itself holds CRCs must not look like one. */
export function maskedCrc32c(data: Uint8Array): number {
  const c = crc32c(data);
  return (((c >>> 15) | (c << 17)) + MASK_DELTA) >>> 0;
}

/** One TFRecord: length, masked CRC of the length, data, masked CRC of the data. */
export function tfRecord(data: Uint8Array): Buffer {
  const out = Buffer.alloc(data.length + 16);
  out.writeBigUInt64LE(BigInt(data.length), 0);
  out.writeUInt32LE(maskedCrc32c(out.subarray(0, 8)), 8);
  out.set(data, 12);
  out.writeUInt32LE(maskedCrc32c(data), 12 + data.length);
  return out;
}

// --- protobuf wire format: varint (0), 64-bit (1), length-delimited (2), 32-bit (5) ---------------

function varint(v: bigint): number[] {
  // int64 fields encode negatives as their two's complement in 10 bytes.
  let x = v < 0n ? v + (1n << 64n) : v;
  const out: number[] = [];
  while (x >= 0x80n) {
    out.push(Number(x & 0x7fn) | 0x80);
    x >>= 7n;
  }
  out.push(Number(x));
  return out;
}

const key = (field: number, wire: number): number[] => varint(BigInt((field << 3) | wire));

function lengthDelimited(field: number, bytes: Uint8Array): Buffer {
  return Buffer.concat([Buffer.from([...key(field, 2), ...varint(BigInt(bytes.length))]), bytes]);
}

function scalarValue(tag: string, value: number): Buffer {
  const f = Buffer.alloc(4);
  f.writeFloatLE(value); // simple_value is a float: TensorBoard keeps scalars in float32
  return Buffer.concat([lengthDelimited(1, Buffer.from(tag, 'utf8')), Buffer.from(key(2, 5)), f]);
}

/** An `Event` protobuf: wall_time, step and either file_version or a summary of scalars. */
export function encodeEvent(e: { wallTime: number; step?: number; fileVersion?: string; scalars?: ReadonlyArray<{ tag: string; value: number }> }): Buffer {
  const wt = Buffer.alloc(8);
  wt.writeDoubleLE(e.wallTime);
  const parts: Buffer[] = [Buffer.from(key(1, 1)), wt];
  if (e.step) parts.push(Buffer.from([...key(2, 0), ...varint(BigInt(e.step))]));
  if (e.fileVersion !== undefined) parts.push(lengthDelimited(3, Buffer.from(e.fileVersion, 'utf8')));
  if (e.scalars) parts.push(lengthDelimited(5, Buffer.concat(e.scalars.map((s) => lengthDelimited(1, scalarValue(s.tag, s.value))))));
  return Buffer.concat(parts);
}
