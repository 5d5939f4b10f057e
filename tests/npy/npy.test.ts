import { describe, expect, it } from 'vitest';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import * as crypto from 'node:crypto';
import { execFileSync } from 'node:child_process';
import { SYSTEM_PYTHON } from '../helpers/fixtures';
import { ndarray, readNpy, writeNpy, readNpz, writeNpz, NdArray, decodeNpy, encodeNpy } from '../../lib/npy';
import { CheckpointError } from '../../lib/checkpoint/errors';
import { unpickle } from '../../lib/checkpoint/pickle';
import { SAFE_GLOBALS } from '../../lib/checkpoint/reader';
import { PyDict } from '../../lib/checkpoint/pyvalues';
import { describeWith } from '../helpers/requirements';

const run = (script: string, ...args: string[]) => execFileSync(SYSTEM_PYTHON, ['-c', script, ...args], { encoding: 'utf8', maxBuffer: 1 << 26 });
const tmp = () => fs.mkdtempSync(path.join(os.tmpdir(), 'mood-npy-'));
const sha = (a: NdArray) => crypto.createHash('sha256').update(a.toCOrder().bytes).digest('hex');

function samples(): Record<string, NdArray> {
  return {
    f32: ndarray('float32', [2, 3], Float32Array.from([1, 2.5, -3, 1e-30, 0, 7])),
    f64: ndarray('float64', [3], Float64Array.from([Math.PI, -0, 1e300])),
    f16: ndarray('float16', [2], Uint16Array.from([0x3c00, 0xc000])),
    i32: ndarray('int32', [2, 2], Int32Array.from([1, -2, 3, -4])),
    i64: ndarray('int64', [2], BigInt64Array.from([-(2n ** 60n), 5n])),
    u8: ndarray('uint8', [4], Uint8Array.from([0, 1, 254, 255])),
    b: ndarray('bool', [3], Uint8Array.from([1, 0, 1])),
    fortran: ndarray('float32', [2, 3], Float32Array.from([1, 2, 3, 4, 5, 6]), { fortranOrder: true }),
    scalar: ndarray('float64', [], Float64Array.from([4.5])),
    empty: ndarray('int64', [0, 2], new BigInt64Array(0)),
  };
}

const HASH_PY = `
import sys, json, hashlib, numpy as np
def h(a): return hashlib.sha256(np.ascontiguousarray(a).astype(a.dtype.newbyteorder('<')).tobytes()).hexdigest()
p = sys.argv[1]
if p.endswith('.npz'):
    z = np.load(p)
    print(json.dumps({k: [h(z[k]), list(z[k].shape), z[k].dtype.str] for k in z.files}))
else:
    a = np.load(p)
    print(json.dumps([h(a), list(a.shape), a.dtype.str, bool(np.isfortran(a))]))
`;

describeWith(['numpy'])('npy / npz round trips with numpy', () => {
  it('every dtype and Fortran order: TS writes, numpy reads identical values', () => {
    const dir = tmp();
    for (const [k, a] of Object.entries(samples())) {
      const f = path.join(dir, `${k}.npy`);
      writeNpy(f, a);
      const [hash, shape, , fortran] = JSON.parse(run(HASH_PY, f));
      expect(hash, k).toBe(sha(a));
      expect(shape).toEqual(a.shape);
      if (a.shape.length > 1 && a.size > 1) expect(fortran).toBe(a.fortranOrder);
      const back = readNpy(f);
      expect(back.dtype).toBe(a.dtype);
      expect(sha(back)).toBe(sha(a));
    }
    fs.rmSync(dir, { recursive: true });
  });

  it('numpy writes (big-endian, Fortran, v2 header, npz stored and compressed); TS reads identical values', () => {
    const dir = tmp();
    const out = run(`
import sys, json, hashlib, numpy as np
d = sys.argv[1]
rng = np.random.default_rng(0)
arrs = {'be': rng.standard_normal((3, 4)).astype('>f8'), 'fo': np.asfortranarray(rng.standard_normal((4, 5)).astype('<f4')),
        'h': rng.standard_normal(7).astype(np.float16), 'i': np.arange(-5, 5, dtype=np.int64).reshape(2, 5), 'u': np.arange(256, dtype=np.uint8), 'b': np.array([True, False])}
for k, a in arrs.items(): np.save(f'{d}/{k}.npy', a)
np.lib.format.write_array(open(f'{d}/v2.npy', 'wb'), arrs['i'], version=(2, 0))
np.savez(f'{d}/s.npz', **arrs)
np.savez_compressed(f'{d}/c.npz', **arrs)
def h(a): return hashlib.sha256(np.ascontiguousarray(a).astype(a.dtype.newbyteorder('<')).tobytes()).hexdigest()
print(json.dumps({k: h(a) for k, a in arrs.items()}))
`, dir);
    const want: Record<string, string> = JSON.parse(out);
    for (const k of Object.keys(want)) expect(sha(readNpy(path.join(dir, `${k}.npy`))), k).toBe(want[k]);
    expect(sha(readNpy(path.join(dir, 'v2.npy')))).toBe(want.i);
    expect(readNpy(path.join(dir, 'fo.npy')).fortranOrder).toBe(true);
    for (const z of ['s.npz', 'c.npz']) {
      const m = readNpz(path.join(dir, z));
      expect([...m.keys()].sort()).toEqual(Object.keys(want).sort());
      for (const [k, a] of m) expect(sha(a), `${z}:${k}`).toBe(want[k]);
    }
    fs.rmSync(dir, { recursive: true });
  });

  it('TS npz (stored and deflated) loads in numpy', () => {
    const dir = tmp();
    for (const compress of [false, true]) {
      const f = path.join(dir, `t${compress}.npz`);
      writeNpz(f, samples(), { compress });
      const got = JSON.parse(run(HASH_PY, f));
      for (const [k, a] of Object.entries(samples())) expect(got[k][0], k).toBe(sha(a));
      const back = readNpz(f);
      for (const [k, a] of Object.entries(samples())) expect(sha(back.get(k)!)).toBe(sha(a));
    }
    fs.rmSync(dir, { recursive: true });
  });

  it('numpy arrays inside pickles (protocols 2 and 5, as CIFAR batches hold them)', () => {
    for (const proto of [2, 4, 5]) {
      const hex = run(`
import pickle, numpy as np, sys
d = {'data': np.arange(12, dtype=np.uint8).reshape(3, 4), 'labels': [1, 2, 3], 'f': np.float64(2.5), 'm': np.asfortranarray(np.arange(6.0).reshape(2, 3))}
sys.stdout.write(pickle.dumps(d, protocol=int(sys.argv[1])).hex())
`, String(proto));
      const { value } = unpickle(Buffer.from(hex, 'hex'), { globals: SAFE_GLOBALS, strict: true });
      const d = value as PyDict;
      const data = d.get('data') as NdArray;
      expect(data.shape).toEqual([3, 4]);
      expect([...(data.typed() as Uint8Array)]).toEqual([...Array(12).keys()]);
      expect(d.get('labels')).toEqual([1, 2, 3]);
      expect(d.get('f')).toBe(2.5);
      expect([...(((d.get('m') as NdArray).toCOrder()).typed() as Float64Array)]).toEqual([0, 1, 2, 3, 4, 5]);
    }
  });
});

describe('npy validation', () => {
  it('rejects bad magic, oversized shapes and unsupported dtypes with CheckpointError', () => {
    expect(() => decodeNpy(Buffer.from('not numpy at all'))).toThrow(CheckpointError);
    const h = Buffer.concat(encodeNpy(ndarray('float32', [2], new Float32Array(2))));
    const bad = Buffer.from(h.toString('latin1').replace("'shape': (2,)", "'shape': (9,)"), 'latin1');
    expect(() => decodeNpy(bad)).toThrow(/exceeds/);
    const obj = Buffer.from(h.toString('latin1').replace("'<f4'", "'|O8'"), 'latin1');
    expect(() => decodeNpy(obj)).toThrow(/unsupported .npy dtype/);
    expect(() => decodeNpy(h.subarray(0, 20))).toThrow(CheckpointError);
  });
});
