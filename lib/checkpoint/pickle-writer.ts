/**
 * Low-level pickle emitter (protocol 2 opcodes, which every torch.load reads, including the
 * weights_only unpickler of torch 1.13: it knows no FRAME, SHORT_BINUNICODE or BINFLOAT... so we
 * restrict ourselves to what it handles wherever a value allows).
 */
export class PickleBuilder {
  private buf: Buffer = Buffer.alloc(1 << 16);
  private len = 0;

  private ensure(n: number): void {
    if (this.len + n <= this.buf.length) return;
    let size = this.buf.length * 2;
    while (size < this.len + n) size *= 2;
    const nb = Buffer.alloc(size);
    this.buf.copy(nb, 0, 0, this.len);
    this.buf = nb;
  }
  op(code: number): this {
    this.ensure(1);
    this.buf[this.len++] = code;
    return this;
  }
  raw(b: Uint8Array): this {
    this.ensure(b.length);
    this.buf.set(b, this.len);
    this.len += b.length;
    return this;
  }
  proto(p: number): this {
    return this.op(0x80).op(p);
  }
  none(): this {
    return this.op(0x4e);
  }
  bool(v: boolean): this {
    return this.op(v ? 0x88 : 0x89);
  }
  int(v: number | bigint): this {
    if (typeof v === 'number' && v >= 0 && v <= 0xff) return this.op(0x4b).op(v);
    if (typeof v === 'number' && v >= 0 && v <= 0xffff) {
      this.op(0x4d).ensure(2);
      this.buf.writeUInt16LE(v, this.len);
      this.len += 2;
      return this;
    }
    if (typeof v === 'number' && v >= -0x80000000 && v <= 0x7fffffff) {
      this.op(0x4a).ensure(4);
      this.buf.writeInt32LE(v, this.len);
      this.len += 4;
      return this;
    }
    // LONG1: little-endian two's complement, minimal length.
    let b = BigInt(v);
    const bytes: number[] = [];
    for (;;) {
      const byte = Number(b & 0xffn);
      bytes.push(byte);
      b >>= 8n;
      if ((b === 0n && !(byte & 0x80)) || (b === -1n && byte & 0x80)) break;
    }
    if (bytes.length > 255) throw new RangeError('integer too large for LONG1');
    return this.op(0x8a).op(bytes.length).raw(Uint8Array.from(bytes));
  }
  float(v: number): this {
    this.op(0x47).ensure(8);
    this.buf.writeDoubleBE(v, this.len);
    this.len += 8;
    return this;
  }
  str(s: string): this {
    const b = Buffer.from(s, 'utf8');
    this.op(0x58).ensure(4);
    this.buf.writeUInt32LE(b.length, this.len);
    this.len += 4;
    return this.raw(b);
  }
  /** BINBYTES (protocol 3 opcode; every Python 3 unpickler accepts it whatever the PROTO header says). */
  bytes(b: Uint8Array): this {
    this.op(0x42).ensure(4);
    this.buf.writeUInt32LE(b.length, this.len);
    this.len += 4;
    return this.raw(b);
  }
  global(module: string, name: string): this {
    return this.op(0x63).raw(Buffer.from(`${module}\n${name}\n`, 'utf8'));
  }
  mark(): this {
    return this.op(0x28);
  }
  /** Close a tuple of `n` items pushed after a MARK (n > 3) or directly (n <= 3). */
  tupleOf(n: number, items: () => void): this {
    if (n === 0) return this.op(0x29);
    if (n > 3) this.mark();
    items();
    return n > 3 ? this.op(0x74) : this.op(0x84 + n); // TUPLE1..3 = 0x85..0x87
  }
  emptyList(): this {
    return this.op(0x5d);
  }
  emptyDict(): this {
    return this.op(0x7d);
  }
  appends(): this {
    return this.op(0x65);
  }
  setitems(): this {
    return this.op(0x75);
  }
  reduce(): this {
    return this.op(0x52);
  }
  build(): this {
    return this.op(0x62);
  }
  binpersid(): this {
    return this.op(0x51);
  }
  stop(): this {
    return this.op(0x2e);
  }
  result(): Buffer {
    return this.buf.subarray(0, this.len);
  }
}
