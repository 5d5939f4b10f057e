/**
 * CRC-32 (IEEE 802.3, reflected polynomial 0xEDB88320) as zip and PNG require, and CRC-32C
 * (Castagnoli, reflected 0x82F63B78) as TFRecord / TensorBoard event files require. Our own
 * table-driven version: `zlib.crc32` only exists from Node 20.15 / 22.2 (and has no CRC-32C), and
 * we support every Node 20. Slicing-by-8 tables: checkpoints are hundreds of MB, and
 * byte-at-a-time is ~4x slower.
 */
function slicingTables(reflectedPoly: number): Uint32Array[] {
  const t0 = new Uint32Array(256);
  for (let n = 0; n < 256; n++) {
    let c = n;
    for (let k = 0; k < 8; k++) c = c & 1 ? reflectedPoly ^ (c >>> 1) : c >>> 1;
    t0[n] = c >>> 0;
  }
  const tables = [t0];
  for (let s = 1; s < 8; s++) {
    const prev = tables[s - 1];
    const t = new Uint32Array(256);
    for (let n = 0; n < 256; n++) t[n] = (t0[prev[n] & 0xff] ^ (prev[n] >>> 8)) >>> 0;
    tables.push(t);
  }
  return tables;
}

const IEEE = slicingTables(0xedb88320);
const CASTAGNOLI = slicingTables(0x82f63b78);

function update(tables: Uint32Array[], data: Uint8Array, crc: number): number {
  const [t0, t1, t2, t3, t4, t5, t6, t7] = tables;
  let c = ~crc >>> 0;
  let i = 0;
  const n = data.length;
  for (; i + 8 <= n; i += 8) {
    const a = (c ^ (data[i] | (data[i + 1] << 8) | (data[i + 2] << 16) | (data[i + 3] << 24))) >>> 0;
    c =
      t7[a & 0xff] ^ t6[(a >>> 8) & 0xff] ^ t5[(a >>> 16) & 0xff] ^ t4[a >>> 24] ^
      t3[data[i + 4]] ^ t2[data[i + 5]] ^ t1[data[i + 6]] ^ t0[data[i + 7]];
  }
  for (; i < n; i++) c = t0[(c ^ data[i]) & 0xff] ^ (c >>> 8);
  return ~c >>> 0;
}

/** CRC-32 (zip, PNG). Continue a CRC over `data` by passing the previous result as `crc`. */
export function crc32(data: Uint8Array, crc = 0): number {
  return update(IEEE, data, crc);
}

/** CRC-32C (Castagnoli: TFRecord, iSCSI). Continue a CRC over `data` by passing the previous result as `crc`. */
export function crc32c(data: Uint8Array, crc = 0): number {
  return update(CASTAGNOLI, data, crc);
}

/** View any typed array's bytes without copying. */
export function bytesOf(a: ArrayBufferView): Uint8Array {
  return new Uint8Array(a.buffer, a.byteOffset, a.byteLength);
}
