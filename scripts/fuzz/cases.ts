/**
 * Fuzz material shared by the in-suite fuzz test and the long-running script: seed checkpoints
 * (zip written by our writer, a hand-built legacy stream), mutators, hand-crafted hostile pickles,
 * and the property every input must satisfy: parse cleanly or fail with CheckpointError, quickly.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { CheckpointError } from '../../lib/checkpoint/errors';
import { readCheckpoint } from '../../lib/checkpoint/reader';
import { materialize } from '../../lib/checkpoint/materialize';
import { listTensors, summarize } from '../../lib/checkpoint/inspect';
import { saveCheckpoint } from '../../lib/checkpoint/writer';
import { PickleBuilder } from '../../lib/checkpoint/pickle-writer';
import { OPCODES, unpickle } from '../../lib/checkpoint/pickle';
import { SAFE_GLOBALS } from '../../lib/checkpoint/reader';
import { PyDict, PyValue, makeTuple } from '../../lib/checkpoint/pyvalues';
import { StorageRef } from '../../lib/checkpoint/tensorref';
import { decodeNpy } from '../../lib/npy/npy';
import { mulberry32 } from '../../lib/util/mulberry32';

/** Seeded PRNG for reproducible generated data (one shared implementation). */
export const rng = mulberry32;

/** A small zip checkpoint with the structures real ones have (views, shared storage, metadata). */
export function zipSeed(dir: string): Buffer {
  const file = path.join(dir, 'seed.pth');
  const w = { dtype: 'float32' as const, shape: [4, 3], data: Float32Array.from({ length: 12 }, (_, i) => i / 7) };
  const model = new PyDict('collections.OrderedDict', [
    ['a.weight', w],
    ['a.alias', w],
    ['b.half', { dtype: 'float16' as const, shape: [5], data: Uint16Array.from([0x3c00, 1, 2, 3, 0x7c00]) }],
    ['c.index', { dtype: 'int64' as const, shape: [2, 2], data: BigInt64Array.from([0n, 1n, 2n, 3n]) }],
  ] as never);
  model.attributes = new PyDict('builtins.dict', [['_metadata', new PyDict('collections.OrderedDict', [['', new PyDict('builtins.dict', [['version', 1]])]])]]);
  saveCheckpoint(file, { model, epoch: 3, args: { lr: 0.5, name: 'x', sizes: makeTuple([1, 2]) } } as never);
  return fs.readFileSync(file);
}

/** A legacy (non-zip) torch.save stream built by hand: magic, protocol, sys info, main pickle, keys, storages. */
export function legacySeed(): Buffer {
  const pk = (f: (p: PickleBuilder) => void): Buffer => {
    const p = new PickleBuilder().proto(2);
    f(p);
    return Buffer.from(p.stop().result());
  };
  const magic = pk((p) => p.int(0x1950a86a20f9469cfc6cn));
  const proto = pk((p) => p.int(1001));
  const sys = pk((p) => p.emptyDict().mark().str('protocol_version').int(1001).str('little_endian').bool(true).setitems());
  const tensor = (p: PickleBuilder, key: string, numel: number, shape: number[]) => {
    p.global('torch._utils', '_rebuild_tensor_v2').mark();
    p.mark().str('storage').global('torch', 'FloatStorage').str(key).str('cpu').int(numel).none().op(OPCODES.TUPLE).binpersid();
    p.int(0).tupleOf(shape.length, () => shape.forEach((s) => p.int(s)));
    const stride = shape.map((_, i) => shape.slice(i + 1).reduce((a, b) => a * b, 1));
    p.tupleOf(stride.length, () => stride.forEach((s) => p.int(s)));
    p.bool(false).global('collections', 'OrderedDict').op(OPCODES.EMPTY_TUPLE).reduce().op(OPCODES.TUPLE).reduce();
  };
  const main = pk((p) => {
    p.emptyDict().mark().str('module.w');
    tensor(p, '94001', 6, [2, 3]);
    p.str('module.b');
    tensor(p, '93817', 3, [3]);
    p.setitems();
  });
  const keys = pk((p) => p.emptyList().mark().str('93817').str('94001').appends());
  const st = (vals: number[]) => {
    const b = Buffer.alloc(8 + 4 * vals.length);
    b.writeBigInt64LE(BigInt(vals.length), 0);
    vals.forEach((v, i) => b.writeFloatLE(v, 8 + 4 * i));
    return b;
  };
  return Buffer.concat([magic, proto, sys, main, keys, st([7, 8, 9]), st([1, 2, 3, 4, 5, 6])]);
}

export type Mutation = (buf: Buffer, r: () => number) => Buffer;

const INTERESTING = [0, 1, 0x7f, 0x80, 0xff, 0xffff, 0x7fffffff, 0xffffffff];

export const MUTATIONS: Array<[string, Mutation]> = [
  ['truncate', (b, r) => b.subarray(0, Math.floor(r() * b.length))],
  [
    'bitflip',
    (b, r) => {
      const c = Buffer.from(b);
      const n = 1 + Math.floor(r() * 8);
      for (let i = 0; i < n; i++) {
        const at = Math.floor(r() * c.length);
        c[at] ^= 1 << Math.floor(r() * 8);
      }
      return c;
    },
  ],
  [
    'u32-field',
    (b, r) => {
      const c = Buffer.from(b);
      if (c.length < 4) return c;
      const at = Math.floor(r() * (c.length - 3));
      c.writeUInt32LE(INTERESTING[Math.floor(r() * INTERESTING.length)], at);
      return c;
    },
  ],
  [
    'byte-splice',
    (b, r) => {
      const c = Buffer.from(b);
      const at = Math.floor(r() * c.length);
      const len = Math.floor(r() * 64);
      const from = Math.floor(r() * Math.max(1, c.length - len));
      c.copy(c, at, from, Math.min(c.length, from + len));
      return c;
    },
  ],
];

/**
 * The property: the input parses (and every tensor materialises) or fails with CheckpointError.
 * Returns 'ok' | 'rejected'; throws anything else (a bug).
 */
export function checkFile(file: string): 'ok' | 'rejected' {
  try {
    for (const strict of [false, true]) {
      const ck = readCheckpoint(file, { strict, limits: { maxOps: 1 << 20 } });
      summarize(ck);
      for (const { ref } of listTensors(ck.root)) materialize(ref);
    }
    return 'ok';
  } catch (e) {
    if (e instanceof CheckpointError) return 'rejected';
    throw e;
  }
}

const stubStorage = new StorageRef({ key: '0', dtype: 'float32', numel: 16, file: '<stub>', byteOffset: 0, location: 'cpu' });

/** Same property for a bare pickle stream (faster: no file I/O). */
export function checkPickle(bytes: Uint8Array): 'ok' | 'rejected' {
  try {
    const { value } = unpickle(bytes, {
      file: '<fuzz>',
      globals: SAFE_GLOBALS,
      limits: { maxOps: 1 << 20 },
      persistentLoad: () => stubStorage,
    });
    summarize({ file: '<fuzz>', format: 'zip', root: value as PyValue, storages: [] });
    return 'ok';
  } catch (e) {
    if (e instanceof CheckpointError) return 'rejected';
    throw e;
  }
}

export function checkNpy(bytes: Uint8Array): 'ok' | 'rejected' {
  try {
    decodeNpy(bytes, '<fuzz>').toCOrder();
    return 'ok';
  } catch (e) {
    if (e instanceof CheckpointError) return 'rejected';
    throw e;
  }
}

/** Hand-made hostile pickles: name -> bytes. Each must be rejected or yield inert data. */
export function hostilePickles(): Array<[string, Buffer]> {
  const out: Array<[string, Buffer]> = [];
  const add = (name: string, f: (p: PickleBuilder) => void) => {
    const p = new PickleBuilder().proto(2);
    f(p);
    out.push([name, Buffer.from(p.result())]);
  };
  add('os.system REDUCE', (p) => p.global('os', 'system').tupleOf(1, () => p.str('touch /tmp/mood-fuzz-pwned')).reduce().stop());
  add('builtins.eval REDUCE', (p) => p.global('builtins', 'eval').tupleOf(1, () => p.str('1+1')).reduce().stop());
  add('subprocess via NEWOBJ', (p) => p.global('subprocess', 'Popen').tupleOf(1, () => p.str('ls')).op(OPCODES.NEWOBJ).stop());
  add('BUILD on a global', (p) => p.global('os', 'system').emptyDict().build().stop());
  add('huge BINUNICODE', (p) => p.op(OPCODES.BINUNICODE).raw(Uint8Array.from([0xff, 0xff, 0xff, 0xff])).stop());
  add('huge BINBYTES8', (p) => p.op(OPCODES.BINBYTES8).raw(Uint8Array.from([0, 0, 0, 0, 0, 0, 0, 0x40])).stop());
  add('huge LONG4', (p) => p.op(OPCODES.LONG4).raw(Uint8Array.from([0xff, 0xff, 0xff, 0x7f])).stop());
  add('negative LONG4', (p) => p.op(OPCODES.LONG4).raw(Uint8Array.from([0xff, 0xff, 0xff, 0xff])).stop());
  add('FRAME past end', (p) => p.op(OPCODES.FRAME).raw(Uint8Array.from([0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x7f])).none().stop());
  add('self-referencing list', (p) => p.emptyList().op(OPCODES.BINPUT).op(0).op(OPCODES.BINGET).op(0).op(OPCODES.APPEND).stop());
  add('self-referencing dict', (p) => p.emptyDict().op(OPCODES.BINPUT).op(0).str('me').op(OPCODES.BINGET).op(0).op(OPCODES.SETITEM).stop());
  add('exponential DAG', (p) => {
    p.emptyList().op(OPCODES.BINPUT).op(0);
    for (let i = 0; i < 60; i++) p.op(OPCODES.BINGET).op(0).op(OPCODES.DUP).op(OPCODES.TUPLE2).op(OPCODES.BINPUT).op(0).op(OPCODES.POP);
    p.op(OPCODES.BINGET).op(0).stop();
  });
  add('deep nesting', (p) => {
    p.emptyList();
    for (let i = 0; i < 100_000; i++) p.op(OPCODES.TUPLE1);
    p.stop();
  });
  add('MARK bomb', (p) => {
    for (let i = 0; i < 200_000; i++) p.mark();
    p.stop();
  });
  add('stack bomb', (p) => {
    p.none();
    for (let i = 0; i < 300_000; i++) p.op(OPCODES.DUP);
    p.stop();
  });
  add('GET of unknown memo', (p) => p.op(OPCODES.LONG_BINGET).raw(Uint8Array.from([1, 2, 3, 4])).stop());
  add('STOP on empty stack', (p) => p.stop());
  add('unknown opcode', (p) => p.op(0xfe).stop());
  add('tensor with huge size', (p) => {
    p.global('torch._utils', '_rebuild_tensor_v2').mark();
    p.mark().str('storage').global('torch', 'FloatStorage').str('0').str('cpu').int(16).op(OPCODES.TUPLE).binpersid();
    p.int(0).tupleOf(2, () => p.int(2 ** 40).int(2 ** 40)).tupleOf(2, () => p.int(2 ** 40).int(1));
    p.bool(false).none().op(OPCODES.TUPLE).reduce().stop();
  });
  add('tensor offset past storage', (p) => {
    p.global('torch._utils', '_rebuild_tensor_v2').mark();
    p.mark().str('storage').global('torch', 'FloatStorage').str('0').str('cpu').int(16).op(OPCODES.TUPLE).binpersid();
    p.int(15).tupleOf(1, () => p.int(4)).tupleOf(1, () => p.int(1));
    p.bool(false).none().op(OPCODES.TUPLE).reduce().stop();
  });
  add('tensor negative stride', (p) => {
    p.global('torch._utils', '_rebuild_tensor_v2').mark();
    p.mark().str('storage').global('torch', 'FloatStorage').str('0').str('cpu').int(16).op(OPCODES.TUPLE).binpersid();
    p.int(0).tupleOf(1, () => p.int(4)).tupleOf(1, () => p.int(-1));
    p.bool(false).none().op(OPCODES.TUPLE).reduce().stop();
  });
  add('rebuild with non-storage', (p) => p.global('torch._utils', '_rebuild_tensor_v2').tupleOf(3, () => p.none().int(0).none()).reduce().stop());
  add('numpy object array', (p) => {
    p.global('numpy.core.multiarray', '_reconstruct').tupleOf(3, () => p.global('numpy', 'ndarray').tupleOf(1, () => p.int(0)).bytes(Uint8Array.from([98])));
    p.reduce();
    p.tupleOf(5, () => {
      p.int(1).tupleOf(1, () => p.int(2));
      p.global('numpy', 'dtype').tupleOf(3, () => p.str('O8').bool(false).bool(true)).reduce();
      p.tupleOf(3, () => p.int(3).str('|').none());
      p.build();
      p.bool(false);
      p.emptyList();
    });
    p.build().stop();
  });
  return out;
}
