/**
 * Allow-listed Python builtins that are plain data (no side effects), the same spirit as
 * torch.load(weights_only=True): containers, bytes, complex numbers.
 */
import type { GlobalHandler, HandlerContext } from './pickle';
import { PickleRecord, PyComplex, PyDict, PyGlobal, PyValue, makeTuple } from './pyvalues';

function pairsInto(d: PyDict, src: PyValue | undefined, ctx: HandlerContext): PyDict {
  if (src === undefined || src === null) return d;
  if (src instanceof PyDict) {
    for (const [k, v] of src) d.set(k, v);
    return d;
  }
  if (!Array.isArray(src)) ctx.fail(`expected an iterable of pairs, got ${typeof src}`);
  for (const p of src as PyValue[]) {
    if (!Array.isArray(p) || p.length !== 2) ctx.fail('expected (key, value) pairs');
    d.set((p as PyValue[])[0], (p as PyValue[])[1]);
  }
  return d;
}

function toBytes(args: readonly PyValue[], ctx: HandlerContext): Uint8Array {
  const [src, encoding] = args;
  if (src === undefined) return new Uint8Array(0);
  if (src instanceof Uint8Array) return new Uint8Array(src);
  if (typeof src === 'string') {
    const enc = typeof encoding === 'string' ? encoding.toLowerCase().replace(/[-_]/g, '') : 'latin1';
    if (enc === 'latin1' || enc === 'iso88591') return Uint8Array.from(Buffer.from(src, 'latin1'));
    if (enc === 'utf8') return Uint8Array.from(Buffer.from(src, 'utf8'));
    if (enc === 'ascii') return Uint8Array.from(Buffer.from(src, 'latin1'));
    ctx.fail(`unsupported string encoding ${String(encoding)}`);
  }
  if (Array.isArray(src)) {
    const out = new Uint8Array(src.length);
    src.forEach((v, i) => {
      if (typeof v !== 'number' || !Number.isInteger(v) || v < 0 || v > 255) ctx.fail('bytes() items must be ints in 0..255');
      out[i] = v as number;
    });
    return out;
  }
  if (typeof src === 'number' && Number.isSafeInteger(src) && src >= 0 && src <= 1 << 30) return new Uint8Array(src);
  ctx.fail('unsupported bytes() argument');
}

function makeSet(args: readonly PyValue[], ctx: HandlerContext): Set<PyValue> {
  const src = args[0];
  if (src === undefined) return new Set();
  if (Array.isArray(src)) return new Set(src as PyValue[]);
  if (src instanceof Set) return new Set(src);
  ctx.fail('set() expects a list or tuple');
}

const dictHandler = (cls: string): GlobalHandler => ({
  call: (args, ctx) => pairsInto(new PyDict(cls), args[0], ctx),
});

export const BUILTIN_GLOBALS: ReadonlyMap<string, GlobalHandler> = new Map<string, GlobalHandler>([
  ['collections.OrderedDict', dictHandler('collections.OrderedDict')],
  ['builtins.dict', dictHandler('builtins.dict')],
  ['builtins.list', { call: (args) => (Array.isArray(args[0]) ? [...(args[0] as PyValue[])] : []) }],
  ['builtins.tuple', { call: (args) => makeTuple(Array.isArray(args[0]) ? [...(args[0] as PyValue[])] : []) }],
  ['builtins.set', { call: (args, ctx) => makeSet(args, ctx) }],
  ['builtins.frozenset', { call: (args, ctx) => makeSet(args, ctx) }],
  ['builtins.bytearray', { call: (args, ctx) => toBytes(args, ctx) }],
  ['builtins.bytes', { call: (args, ctx) => toBytes(args, ctx) }],
  // Python 3 pickles bytes at protocol < 3 as _codecs.encode(latin1_text, 'latin1').
  ['_codecs.encode', { call: (args, ctx) => toBytes(args, ctx) }],
  [
    'builtins.complex',
    {
      call: (args, ctx) => {
        const re = args[0] ?? 0;
        const im = args[1] ?? 0;
        if (typeof re !== 'number' || typeof im !== 'number') ctx.fail('complex() expects numbers');
        return new PyComplex(re as number, im as number);
      },
    },
  ],
  [
    // Protocol 0/1 instances of new-style classes: copyreg._reconstructor(cls, base, state). The class
    // itself already passed (or was refused by) the allow-list at GLOBAL time; we only record it.
    'copyreg._reconstructor',
    {
      call: (args, ctx) => {
        const cls = args[0];
        if (!(cls instanceof PyGlobal)) ctx.fail('_reconstructor expects a class');
        const rec = new PickleRecord(cls as PyGlobal, makeTuple([]));
        if (args[2] !== undefined && args[2] !== null) rec.state = args[2];
        return rec;
      },
    },
  ],
]);
