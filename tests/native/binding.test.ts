// lib/binding.ts declares the addon's surface once; these tests hold the real addon to it, so a native
// export (function, class, static or instance method) without a declaration fails, and so does a
// declaration the addon does not provide.
import { describe, expect, it } from 'vitest';
import { NATIVE_SURFACE, SurfaceEntry, checkedBinding, surfaceGaps } from '../../lib/binding';
import { loadNative } from '../../lib/native';

type Described =
  | { kind: 'function' }
  | { kind: 'namespace'; functions: string[] }
  | { kind: 'class'; statics: string[]; methods: string[] };

// Own properties every JS function has; anything else on a constructor is a static method.
const FUNCTION_OWN = new Set(['length', 'name', 'prototype', 'arguments', 'caller']);

/** What a value exported by the addon is, read from the value itself. */
function describeExport(v: unknown): Described {
  if (typeof v === 'function') {
    const statics = Object.getOwnPropertyNames(v).filter((n) => !FUNCTION_OWN.has(n)).sort();
    const proto = (v as { prototype?: object }).prototype;
    const methods = proto ? Object.getOwnPropertyNames(proto).filter((n) => n !== 'constructor').sort() : [];
    return statics.length || methods.length ? { kind: 'class', statics, methods } : { kind: 'function' };
  }
  if (v !== null && typeof v === 'object') return { kind: 'namespace', functions: Object.keys(v).sort() };
  throw new Error(`the addon exports a ${typeof v}`);
}

function describeDeclared(e: SurfaceEntry): Described {
  if (e.kind === 'function') return { kind: 'function' };
  if (e.kind === 'namespace') return { kind: 'namespace', functions: Object.keys(e.functions).sort() };
  return { kind: 'class', statics: Object.keys(e.statics).sort(), methods: Object.keys(e.methods).sort() };
}

describe('lib/binding.ts: the declared native surface', () => {
  const addon = loadNative() as unknown as Record<string, unknown>;

  it('names exactly what the addon exports, with the same kinds and members', () => {
    const actual = Object.fromEntries(Object.keys(addon).sort().map((k) => [k, describeExport(addon[k])]));
    const declared = Object.fromEntries(Object.keys(NATIVE_SURFACE).sort().map((k) => [k, describeDeclared(NATIVE_SURFACE[k as keyof typeof NATIVE_SURFACE])]));
    expect(actual).toEqual(declared);
    // Every member of a namespace is a function (the description above only names them).
    for (const [k, d] of Object.entries(actual)) {
      if (d.kind !== 'namespace') continue;
      for (const f of d.functions) expect(typeof (addon[k] as Record<string, unknown>)[f], `${k}.${f}`).toBe('function');
    }
  });

  it('finds nothing missing in the real addon', () => {
    expect(surfaceGaps(addon)).toEqual([]);
  });

  it('names each declared member a stale build lacks, and the loader refuses it', () => {
    const tensor = addon.NativeTensor as Record<string, unknown>;
    const mim = addon.NativeMim as { prototype: object; configNames: unknown; config: unknown };
    // A class whose prototype lacks one method and that lacks one static.
    const protoWithout = Object.create(null) as Record<string, unknown>;
    for (const n of Object.getOwnPropertyNames(mim.prototype)) if (n !== 'lossBackward') protoWithout[n] = (mim.prototype as Record<string, unknown>)[n];
    function StaleMim(): void {}
    StaleMim.prototype = protoWithout;
    (StaleMim as unknown as Record<string, unknown>).configNames = mim.configNames;
    const stale: Record<string, unknown> = {
      ...addon,
      opNames: undefined,
      NativeTensor: { ...tensor, read: 3 },
      NativeMim: StaleMim,
    };
    delete stale.NativeTrainer;
    const gaps = surfaceGaps(stale);
    expect(gaps.sort()).toEqual(
      ['NativeMim.config: missing', 'NativeMim.prototype.lossBackward: missing', 'NativeTensor.read: not a function', 'NativeTrainer: missing', 'opNames: missing'].sort(),
    );
    expect(() => checkedBinding(stale, 'build/Release/old.node')).toThrow(
      /native addon build\/Release\/old\.node does not provide .*NativeTrainer: missing.*rebuild it \(npm run build:native\)/,
    );
    expect(surfaceGaps({ ...addon, NativeTensor: () => 0 })).toEqual(['NativeTensor: not an object']);
    expect(surfaceGaps(undefined)).toHaveLength(Object.keys(NATIVE_SURFACE).length);
  });
});
