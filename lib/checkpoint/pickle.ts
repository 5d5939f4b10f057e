/**
 * A restricted pickle virtual machine (protocols 0-5). It never imports or calls Python code:
 * GLOBAL names are looked up in an allow-list of *handlers* written in TypeScript (torch tensor
 * rebuilders, numpy arrays, safe builtins); anything else becomes an inert PickleRecord, or an error
 * in strict mode. Every resource a hostile stream could inflate (stack, memo, marks, string lengths)
 * is bounded, and every failure is a CheckpointError naming the file, opcode and offset.
 */
import { CheckpointError, PickleTruncatedError } from './errors';
import { PickleRecord, PyComplex, PyDict, PyGlobal, PyValue, makeTuple, isTuple } from './pyvalues';

/** What a handler gets to report errors in context. */
export interface HandlerContext {
  fail(message: string): never;
  strict: boolean;
}

/** TypeScript implementation of one allow-listed Python global. */
export interface GlobalHandler {
  /** REDUCE / NEWOBJ: build a value from the positional arguments. */
  call?(args: readonly PyValue[], ctx: HandlerContext, kwargs?: PyValue): PyValue;
  /** If absent, the global may only appear as a value (e.g. `torch.FloatStorage` inside a persistent id). */
}

/** Objects that know how to apply BUILD state to themselves (numpy placeholders, ...). */
export interface Buildable {
  pickleBuild(state: PyValue, ctx: HandlerContext): PyValue | void;
}

export interface UnpickleLimits {
  /** Max memo entries (PUT/MEMOIZE). */
  maxMemo: number;
  /** Max values on the stack, all marks together. */
  maxStack: number;
  /** Max open MARKs (nesting of MARK-delimited constructs). */
  maxMarks: number;
  /** Max length of any one string/bytes value. */
  maxStringBytes: number;
  /** Max length of a text-mode line (protocol 0 opcodes). */
  maxLine: number;
  /** Max number of opcodes executed (a cheap guard against pathological streams). */
  maxOps: number;
}

export const DEFAULT_LIMITS: UnpickleLimits = {
  maxMemo: 1 << 22,
  maxStack: 1 << 22,
  maxMarks: 1 << 16,
  maxStringBytes: 1 << 30,
  maxLine: 1 << 16,
  maxOps: 1 << 28,
};

export interface UnpickleOptions {
  /** File name for error messages. */
  file?: string;
  /** Allow-listed globals, keyed 'module.name'. */
  globals?: ReadonlyMap<string, GlobalHandler>;
  /** Throw on any global outside the allow-list instead of recording it. */
  strict?: boolean;
  /** What the allow-list admits, for the strict-mode error (default: tensor/numpy/builtin types). */
  allowListName?: string;
  /** Resolves BINPERSID/PERSID ids (torch storages). Without it, persistent ids are an error. */
  persistentLoad?: (pid: PyValue, ctx: HandlerContext) => PyValue;
  /** How protocol-0/1/2 8-bit strings (Python 2 `str`) decode: 'latin1' (default, lossless), 'ascii', 'bytes'. */
  encoding?: 'latin1' | 'ascii' | 'utf8' | 'bytes';
  limits?: Partial<UnpickleLimits>;
  /** Offset added to positions in error messages (where the pickle starts inside a larger file). */
  baseOffset?: number;
}

export interface UnpickleResult {
  value: PyValue;
  /** Bytes consumed, STOP included (legacy checkpoints hold several pickles back to back). */
  bytesRead: number;
}

// Opcode bytes (names as in CPython's pickle.py).
const OP: Record<string, number> = {
  MARK: 0x28, STOP: 0x2e, POP: 0x30, POP_MARK: 0x31, DUP: 0x32, FLOAT: 0x46, INT: 0x49, BININT: 0x4a,
  BININT1: 0x4b, LONG: 0x4c, BININT2: 0x4d, NONE: 0x4e, PERSID: 0x50, BINPERSID: 0x51, REDUCE: 0x52,
  STRING: 0x53, BINSTRING: 0x54, SHORT_BINSTRING: 0x55, UNICODE: 0x56, BINUNICODE: 0x58, APPEND: 0x61,
  BUILD: 0x62, GLOBAL: 0x63, DICT: 0x64, EMPTY_DICT: 0x7d, APPENDS: 0x65, GET: 0x67, BINGET: 0x68,
  INST: 0x69, LONG_BINGET: 0x6a, LIST: 0x6c, EMPTY_LIST: 0x5d, OBJ: 0x6f, PUT: 0x70, BINPUT: 0x71,
  LONG_BINPUT: 0x72, SETITEM: 0x73, TUPLE: 0x74, EMPTY_TUPLE: 0x29, SETITEMS: 0x75, BINFLOAT: 0x47,
  PROTO: 0x80, NEWOBJ: 0x81, EXT1: 0x82, EXT2: 0x83, EXT4: 0x84, TUPLE1: 0x85, TUPLE2: 0x86, TUPLE3: 0x87,
  NEWTRUE: 0x88, NEWFALSE: 0x89, LONG1: 0x8a, LONG4: 0x8b, BINBYTES: 0x42, SHORT_BINBYTES: 0x43,
  SHORT_BINUNICODE: 0x8c, BINUNICODE8: 0x8d, BINBYTES8: 0x8e, EMPTY_SET: 0x8f, ADDITEMS: 0x90,
  FROZENSET: 0x91, NEWOBJ_EX: 0x92, STACK_GLOBAL: 0x93, MEMOIZE: 0x94, FRAME: 0x95, BYTEARRAY8: 0x96,
  NEXT_BUFFER: 0x97, READONLY_BUFFER: 0x98,
};
const OP_NAME: string[] = [];
for (const [k, v] of Object.entries(OP)) OP_NAME[v] = k;

/** Python 2 module names that protocol-0..2 pickles use (what CPython's fix_imports maps). */
const MODULE_ALIASES: Record<string, string> = { __builtin__: 'builtins', copy_reg: 'copyreg' };

const MAX_SAFE_BIG = BigInt(Number.MAX_SAFE_INTEGER);

/** Python int -> number when it fits exactly, bigint otherwise. */
export function pyInt(v: bigint): number | bigint {
  return v <= MAX_SAFE_BIG && v >= -MAX_SAFE_BIG ? Number(v) : v;
}

function decodeLong(bytes: Uint8Array): number | bigint {
  if (bytes.length === 0) return 0;
  let v = 0n;
  for (let i = bytes.length - 1; i >= 0; i--) v = (v << 8n) | BigInt(bytes[i]);
  if (bytes[bytes.length - 1] & 0x80) v -= 1n << BigInt(8 * bytes.length);
  return pyInt(v);
}

class Mark {}

/** Run one pickle from `data[start..]` and return the value STOP leaves on the stack. */
export function unpickle(data: Uint8Array, options: UnpickleOptions = {}, start = 0): UnpickleResult {
  return new Unpickler(data, options).run(start);
}

class Unpickler {
  private readonly data: Uint8Array;
  private readonly view: DataView;
  private readonly file: string;
  private readonly globals: ReadonlyMap<string, GlobalHandler>;
  private readonly strict: boolean;
  private readonly limits: UnpickleLimits;
  private readonly opts: UnpickleOptions;
  private readonly base: number;
  private stack: PyValue[] = [];
  /** Stack heights at each open MARK (CPython keeps a metastack of lists; heights are equivalent). */
  private marks: number[] = [];
  private memo = new Map<number, PyValue>();
  private pos = 0;
  private opPos = 0;
  private opName = '';
  private readonly ctx: HandlerContext;

  constructor(data: Uint8Array, opts: UnpickleOptions) {
    this.data = data;
    this.view = new DataView(data.buffer, data.byteOffset, data.byteLength);
    this.file = opts.file ?? '<pickle>';
    this.globals = opts.globals ?? new Map();
    this.strict = opts.strict ?? false;
    this.limits = { ...DEFAULT_LIMITS, ...opts.limits };
    this.opts = opts;
    this.base = opts.baseOffset ?? 0;
    this.ctx = { fail: (m: string) => this.fail(m), strict: this.strict };
  }

  private fail(message: string): never {
    throw new CheckpointError(this.file, message, { offset: this.base + this.opPos, where: `pickle opcode ${this.opName}` });
  }

  // ---- input ----
  private need(n: number, what: string): void {
    if (n < 0 || this.pos + n > this.data.length) {
      throw new PickleTruncatedError(this.file, `expected ${what} of ${n} bytes, only ${this.data.length - this.pos} remain`, {
        offset: this.base + this.opPos,
        where: `pickle opcode ${this.opName}`,
      });
    }
  }
  private u8(): number {
    this.need(1, 'a byte');
    return this.data[this.pos++];
  }
  private u16(): number {
    this.need(2, 'a 2-byte integer');
    const v = this.view.getUint16(this.pos, true);
    this.pos += 2;
    return v;
  }
  private u32(): number {
    this.need(4, 'a 4-byte integer');
    const v = this.view.getUint32(this.pos, true);
    this.pos += 4;
    return v;
  }
  private i32(): number {
    this.need(4, 'a 4-byte integer');
    const v = this.view.getInt32(this.pos, true);
    this.pos += 4;
    return v;
  }
  private u64(): number {
    this.need(8, 'an 8-byte length');
    const v = this.view.getBigUint64(this.pos, true);
    this.pos += 8;
    if (v > BigInt(this.data.length)) {
      throw new PickleTruncatedError(this.file, `length ${v} exceeds the ${this.data.length - this.pos} bytes remaining`, { offset: this.base + this.opPos, where: `pickle opcode ${this.opName}` });
    }
    return Number(v);
  }
  /** A length-prefixed payload; the length is checked against the bytes actually left before anything is allocated. */
  private bytes(n: number, what: string): Uint8Array {
    if (n > this.limits.maxStringBytes) this.fail(`${what} of ${n} bytes exceeds the limit of ${this.limits.maxStringBytes}`);
    this.need(n, what);
    const b = this.data.subarray(this.pos, this.pos + n);
    this.pos += n;
    return b;
  }
  private line(what: string): string {
    const end = this.data.indexOf(0x0a, this.pos);
    if (end < 0 && this.data.length - this.pos <= this.limits.maxLine) {
      throw new PickleTruncatedError(this.file, `expected a newline-terminated ${what}`, { offset: this.base + this.opPos, where: `pickle opcode ${this.opName}` });
    }
    if (end < 0 || end - this.pos > this.limits.maxLine) this.fail(`expected a newline-terminated ${what} of at most ${this.limits.maxLine} bytes`);
    const s = Buffer.from(this.data.buffer, this.data.byteOffset + this.pos, end - this.pos).toString('latin1');
    this.pos = end + 1;
    return s;
  }
  private utf8(b: Uint8Array): string {
    try {
      return new TextDecoder('utf-8', { fatal: true }).decode(b);
    } catch {
      this.fail('invalid UTF-8 in a unicode string');
    }
  }
  private str8(b: Uint8Array): PyValue {
    switch (this.opts.encoding ?? 'latin1') {
      case 'bytes': return new Uint8Array(b);
      case 'utf8': return this.utf8(b);
      case 'ascii':
        for (const c of b) if (c > 0x7f) this.fail('non-ASCII byte in a Python 2 string (use encoding latin1 or bytes)');
        return Buffer.from(b).toString('latin1');
      default: return Buffer.from(b).toString('latin1');
    }
  }

  // ---- stack ----
  private push(v: PyValue): void {
    if (this.stack.length >= this.limits.maxStack) this.fail(`stack exceeds ${this.limits.maxStack} entries`);
    this.stack.push(v);
  }
  private floor(): number {
    return this.marks.length ? this.marks[this.marks.length - 1] : 0;
  }
  private pop(): PyValue {
    if (this.stack.length <= this.floor()) this.fail('stack underflow: expected a value');
    return this.stack.pop() as PyValue;
  }
  private top(): PyValue {
    if (this.stack.length <= this.floor()) this.fail('stack underflow: expected a value');
    return this.stack[this.stack.length - 1];
  }
  private popMark(): PyValue[] {
    if (!this.marks.length) this.fail('no MARK on the stack');
    const h = this.marks.pop() as number;
    return this.stack.splice(h);
  }
  private memoPut(i: number, v: PyValue): void {
    if (!this.memo.has(i) && this.memo.size >= this.limits.maxMemo) this.fail(`memo exceeds ${this.limits.maxMemo} entries`);
    this.memo.set(i, v);
  }
  private memoGet(i: number): PyValue {
    if (!this.memo.has(i)) this.fail(`memo key ${i} was never stored`);
    return this.memo.get(i) as PyValue;
  }

  // ---- objects ----
  private resolveGlobal(module: string, name: string): PyGlobal {
    module = MODULE_ALIASES[module] ?? module;
    const g = new PyGlobal(module, name);
    if (this.strict && !this.globals.has(g.fullName)) {
      this.fail(`global ${g.fullName} is not allowed (strict mode); only ${this.opts.allowListName ?? 'allow-listed tensor/numpy/builtin types'} may appear`);
    }
    return g;
  }
  private callGlobal(fn: PyValue, args: PyValue, kwargs?: PyValue): PyValue {
    if (!(fn instanceof PyGlobal)) this.fail(`expected a class or function to call, got ${describe(fn)}`);
    if (!Array.isArray(args)) this.fail(`expected an argument tuple, got ${describe(args)}`);
    const h = this.globals.get(fn.fullName);
    if (h?.call) return h.call(args, this.ctx, kwargs);
    if (h) this.fail(`${fn.fullName} cannot be called`);
    // Not on the allow-list: record what would have been constructed, never run it.
    const rec = new PickleRecord(fn, args);
    if (kwargs !== undefined) rec.kwargs = kwargs;
    return rec;
  }
  private setItems(target: PyValue, items: PyValue[]): void {
    if (items.length % 2) this.fail('odd number of items for SETITEMS');
    if (target instanceof PyDict) {
      for (let i = 0; i < items.length; i += 2) target.set(items[i], items[i + 1]);
    } else if (target instanceof PickleRecord) {
      target.dictItems ??= [];
      for (let i = 0; i < items.length; i += 2) target.dictItems.push([items[i], items[i + 1]]);
    } else {
      this.fail(`expected a dict to set items on, got ${describe(target)}`);
    }
  }
  private appendItems(target: PyValue, items: PyValue[]): void {
    if (Array.isArray(target) && !isTuple(target)) {
      // Growth is bounded by the stream: every appended value costs at least one opcode byte.
      for (const it of items) (target as PyValue[]).push(it);
    } else if (target instanceof PickleRecord) {
      target.listItems ??= [];
      for (const it of items) target.listItems.push(it);
    } else {
      this.fail(`expected a list to append to, got ${describe(target)}`);
    }
  }
  private build(inst: PyValue, state: PyValue): PyValue {
    if (inst !== null && typeof inst === 'object' && 'pickleBuild' in inst && typeof (inst as unknown as Buildable).pickleBuild === 'function') {
      const r = (inst as unknown as Buildable).pickleBuild(state, this.ctx);
      return r === undefined ? inst : r;
    }
    if (inst instanceof PickleRecord) {
      inst.state = state;
      return inst;
    }
    if (inst instanceof PyDict) {
      // OrderedDict carries `_metadata` this way; it is attribute state, not dict items.
      inst.attributes = state;
      return inst;
    }
    this.fail(`BUILD is only allowed on records, dicts and allow-listed objects, got ${describe(inst)}`);
  }

  run(start: number): UnpickleResult {
    this.pos = start;
    const L = this.limits;
    let ops = 0;
    for (;;) {
      if (++ops > L.maxOps) this.fail(`more than ${L.maxOps} opcodes`);
      this.opPos = this.pos;
      if (this.pos >= this.data.length) {
        throw new PickleTruncatedError(this.file, 'pickle ended without STOP', { offset: this.base + this.pos, where: 'pickle' });
      }
      const op = this.data[this.pos++];
      this.opName = OP_NAME[op] ?? `0x${op.toString(16).padStart(2, '0')}`;
      switch (op) {
        case OP.PROTO: {
          const p = this.u8();
          if (p > 5) this.fail(`unsupported pickle protocol ${p}`);
          break;
        }
        case OP.FRAME:
          this.u64(); // framing is only a read-ahead hint; data is contiguous here
          break;
        case OP.STOP: {
          if (this.marks.length) this.fail('STOP with an open MARK');
          if (this.stack.length !== 1) this.fail(`STOP with ${this.stack.length} values on the stack, expected 1`);
          return { value: this.stack[0], bytesRead: this.pos - start };
        }
        case OP.MARK:
          if (this.marks.length >= L.maxMarks) this.fail(`more than ${L.maxMarks} nested MARKs`);
          this.marks.push(this.stack.length);
          break;
        case OP.POP:
          if (this.stack.length > this.floor()) this.stack.pop();
          else this.popMark(); // CPython: POP on an empty frame discards the mark
          break;
        case OP.POP_MARK:
          this.popMark();
          break;
        case OP.DUP:
          this.push(this.top());
          break;

        // ---- numbers ----
        case OP.NONE: this.push(null); break;
        case OP.NEWTRUE: this.push(true); break;
        case OP.NEWFALSE: this.push(false); break;
        case OP.BININT: this.push(this.i32()); break;
        case OP.BININT1: this.push(this.u8()); break;
        case OP.BININT2: this.push(this.u16()); break;
        case OP.LONG1: this.push(decodeLong(this.bytes(this.u8(), 'LONG1 payload'))); break;
        case OP.LONG4: {
          const n = this.i32();
          if (n < 0) this.fail('negative LONG4 length');
          this.push(decodeLong(this.bytes(n, 'LONG4 payload')));
          break;
        }
        case OP.BINFLOAT: {
          this.need(8, 'a big-endian double');
          this.push(this.view.getFloat64(this.pos, false));
          this.pos += 8;
          break;
        }
        case OP.INT: {
          const s = this.line('INT');
          if (s === '00') this.push(false);
          else if (s === '01') this.push(true);
          else this.push(this.parseIntText(s));
          break;
        }
        case OP.LONG: this.push(this.parseIntText(this.line('LONG').replace(/L$/, ''))); break;
        case OP.FLOAT: {
          const s = this.line('FLOAT');
          const v = Number(s.trim());
          if (s.trim() === '' || (Number.isNaN(v) && !/^[-+]?nan$/i.test(s.trim()))) this.fail(`bad float literal ${JSON.stringify(s)}`);
          this.push(v);
          break;
        }

        // ---- strings / bytes ----
        case OP.BINUNICODE: this.push(this.utf8(this.bytes(this.u32(), 'BINUNICODE string'))); break;
        case OP.SHORT_BINUNICODE: this.push(this.utf8(this.bytes(this.u8(), 'SHORT_BINUNICODE string'))); break;
        case OP.BINUNICODE8: this.push(this.utf8(this.bytes(this.u64(), 'BINUNICODE8 string'))); break;
        case OP.UNICODE: this.push(rawUnicodeEscape(this.line('UNICODE'), this.ctx)); break;
        case OP.BINSTRING: {
          const n = this.i32();
          if (n < 0) this.fail('negative BINSTRING length');
          this.push(this.str8(this.bytes(n, 'BINSTRING')));
          break;
        }
        case OP.SHORT_BINSTRING: this.push(this.str8(this.bytes(this.u8(), 'SHORT_BINSTRING'))); break;
        case OP.STRING: this.push(this.str8(pyStringLiteral(this.line('STRING'), this.ctx))); break;
        case OP.BINBYTES: this.push(new Uint8Array(this.bytes(this.u32(), 'BINBYTES'))); break;
        case OP.SHORT_BINBYTES: this.push(new Uint8Array(this.bytes(this.u8(), 'SHORT_BINBYTES'))); break;
        case OP.BINBYTES8: this.push(new Uint8Array(this.bytes(this.u64(), 'BINBYTES8'))); break;
        case OP.BYTEARRAY8: this.push(new Uint8Array(this.bytes(this.u64(), 'BYTEARRAY8'))); break;
        case OP.NEXT_BUFFER: this.fail('out-of-band pickle buffers are not supported');
        // falls through (fail never returns)
        case OP.READONLY_BUFFER: this.top(); break;

        // ---- containers ----
        case OP.EMPTY_TUPLE: this.push(makeTuple([])); break;
        case OP.TUPLE: this.push(makeTuple(this.popMark())); break;
        case OP.TUPLE1: { const a = this.pop(); this.push(makeTuple([a])); break; }
        case OP.TUPLE2: { const b = this.pop(); const a = this.pop(); this.push(makeTuple([a, b])); break; }
        case OP.TUPLE3: { const c = this.pop(); const b = this.pop(); const a = this.pop(); this.push(makeTuple([a, b, c])); break; }
        case OP.EMPTY_LIST: this.push([]); break;
        case OP.LIST: this.push(this.popMark()); break;
        case OP.APPEND: { const v = this.pop(); this.appendItems(this.top(), [v]); break; }
        case OP.APPENDS: { const items = this.popMark(); this.appendItems(this.top(), items); break; }
        case OP.EMPTY_DICT: this.push(new PyDict()); break;
        case OP.DICT: {
          const items = this.popMark();
          const d = new PyDict();
          this.push(d);
          this.setItems(d, items);
          break;
        }
        case OP.SETITEM: { const v = this.pop(); const k = this.pop(); this.setItems(this.top(), [k, v]); break; }
        case OP.SETITEMS: { const items = this.popMark(); this.setItems(this.top(), items); break; }
        case OP.EMPTY_SET: this.push(new Set<PyValue>()); break;
        case OP.ADDITEMS: {
          const items = this.popMark();
          const s = this.top();
          if (!(s instanceof Set)) this.fail(`expected a set to add items to, got ${describe(s)}`);
          for (const it of items) s.add(it);
          break;
        }
        case OP.FROZENSET: this.push(new Set<PyValue>(this.popMark())); break;

        // ---- memo ----
        case OP.PUT: this.memoPut(this.parseIndex(this.line('PUT index')), this.top()); break;
        case OP.BINPUT: this.memoPut(this.u8(), this.top()); break;
        case OP.LONG_BINPUT: this.memoPut(this.u32(), this.top()); break;
        case OP.MEMOIZE: this.memoPut(this.memo.size, this.top()); break;
        case OP.GET: this.push(this.memoGet(this.parseIndex(this.line('GET index')))); break;
        case OP.BINGET: this.push(this.memoGet(this.u8())); break;
        case OP.LONG_BINGET: this.push(this.memoGet(this.u32())); break;

        // ---- globals and object construction ----
        case OP.GLOBAL: {
          const module = this.line('GLOBAL module');
          const name = this.line('GLOBAL name');
          this.push(this.resolveGlobal(module, name));
          break;
        }
        case OP.STACK_GLOBAL: {
          const name = this.pop();
          const module = this.pop();
          if (typeof module !== 'string' || typeof name !== 'string') this.fail('STACK_GLOBAL expects two strings');
          this.push(this.resolveGlobal(module, name));
          break;
        }
        case OP.REDUCE: {
          const args = this.pop();
          const fn = this.pop();
          this.push(this.callGlobal(fn, args));
          break;
        }
        case OP.NEWOBJ: {
          const args = this.pop();
          const cls = this.pop();
          this.push(this.callGlobal(cls, args));
          break;
        }
        case OP.NEWOBJ_EX: {
          const kwargs = this.pop();
          const args = this.pop();
          const cls = this.pop();
          this.push(this.callGlobal(cls, args, kwargs));
          break;
        }
        case OP.INST: {
          const g = this.resolveGlobal(this.line('INST module'), this.line('INST name'));
          this.push(this.callGlobal(g, makeTuple(this.popMark())));
          break;
        }
        case OP.OBJ: {
          const items = this.popMark();
          if (!items.length) this.fail('OBJ without a class');
          this.push(this.callGlobal(items[0], makeTuple(items.slice(1))));
          break;
        }
        case OP.BUILD: {
          const state = this.pop();
          const inst = this.pop();
          this.push(this.build(inst, state));
          break;
        }
        case OP.EXT1:
        case OP.EXT2:
        case OP.EXT4:
          this.fail('copyreg extension codes are not supported');
        // falls through (fail never returns)
        case OP.BINPERSID:
        case OP.PERSID: {
          const pid = op === OP.PERSID ? this.line('PERSID id') : this.pop();
          if (!this.opts.persistentLoad) this.fail('persistent id in a pickle that cannot reference external storage');
          this.push(this.opts.persistentLoad(pid, this.ctx));
          break;
        }
        default:
          this.fail(`unknown opcode 0x${op.toString(16).padStart(2, '0')}`);
      }
    }
  }

  private parseIntText(s: string): number | bigint {
    const t = s.trim();
    if (!/^[-+]?\d+$/.test(t) || t.length > 4300) this.fail(`bad integer literal ${JSON.stringify(s.slice(0, 40))}`);
    return pyInt(BigInt(t));
  }
  private parseIndex(s: string): number {
    if (!/^\d{1,10}$/.test(s.trim())) this.fail(`bad memo index ${JSON.stringify(s.slice(0, 40))}`);
    return Number(s.trim());
  }
}

/** Short type description for error messages. */
export function describe(v: unknown): string {
  if (v === null) return 'None';
  if (Array.isArray(v)) return isTuple(v) ? 'tuple' : 'list';
  if (v instanceof PyGlobal) return `global ${v.fullName}`;
  if (v instanceof PickleRecord) return `record of ${v.__class__}`;
  if (v instanceof PyDict) return v.pyClass;
  if (v instanceof Uint8Array) return 'bytes';
  if (v instanceof Set) return 'set';
  if (v instanceof PyComplex) return 'complex';
  if (typeof v === 'object') return (v as object).constructor?.name ?? 'object';
  return typeof v;
}

/** Protocol-0 STRING argument: a Python repr of a byte string, quotes included. */
function pyStringLiteral(line: string, ctx: HandlerContext): Uint8Array {
  const q = line[0];
  if (line.length < 2 || (q !== "'" && q !== '"') || line[line.length - 1] !== q) ctx.fail('STRING argument is not a quoted literal');
  const body = line.slice(1, -1);
  const out: number[] = [];
  const simple: Record<string, number> = { n: 10, t: 9, r: 13, '\\': 92, "'": 39, '"': 34, a: 7, b: 8, f: 12, v: 11, '0': 0 };
  for (let i = 0; i < body.length; i++) {
    const c = body[i];
    if (c !== '\\') {
      out.push(body.charCodeAt(i) & 0xff);
      continue;
    }
    const n = body[++i];
    if (n === 'x') {
      const h = body.slice(i + 1, i + 3);
      if (!/^[0-9a-fA-F]{2}$/.test(h)) ctx.fail('bad \\x escape in STRING');
      out.push(parseInt(h, 16));
      i += 2;
    } else if (n !== undefined && /[0-7]/.test(n)) {
      let j = i;
      while (j < i + 3 && j < body.length && /[0-7]/.test(body[j])) j++;
      out.push(parseInt(body.slice(i, j), 8) & 0xff);
      i = j - 1;
    } else if (n !== undefined && n in simple) {
      out.push(simple[n]);
    } else {
      out.push(92);
      if (n !== undefined) out.push(n.charCodeAt(0) & 0xff);
    }
  }
  return Uint8Array.from(out);
}

/** Protocol-0 UNICODE argument: raw-unicode-escape (only \uXXXX and \UXXXXXXXX are escapes). */
function rawUnicodeEscape(line: string, ctx: HandlerContext): string {
  return line.replace(/\\u([0-9a-fA-F]{4})|\\U([0-9a-fA-F]{8})/g, (_m, a: string | undefined, b: string | undefined) => {
    const cp = parseInt((a ?? b) as string, 16);
    if (cp > 0x10ffff) ctx.fail('code point out of range in UNICODE');
    return String.fromCodePoint(cp);
  });
}

/** Exposed for tests and the fuzzer. */
export const OPCODES: Readonly<Record<string, number>> = OP;
