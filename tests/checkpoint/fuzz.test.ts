import { describe, expect, it } from 'vitest';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { MUTATIONS, checkFile, checkNpy, checkPickle, hostilePickles, legacySeed, rng, zipSeed } from '../../scripts/fuzz/cases';
import { unpickle } from '../../lib/checkpoint/pickle';
import { SAFE_GLOBALS, readCheckpoint } from '../../lib/checkpoint/reader';
import { CheckpointError } from '../../lib/checkpoint/errors';
import { PickleRecord, PyDict } from '../../lib/checkpoint/pyvalues';
import { listTensors } from '../../lib/checkpoint/inspect';
import { materialize } from '../../lib/checkpoint/materialize';
import { encodeNpy, ndarray } from '../../lib/npy/npy';
import { readZipDirectory } from '../../lib/io/zip';

const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'mood-fuzz-'));

describe('hostile inputs', () => {
  it('seeds are valid', () => {
    expect(checkFile(writeTmp('zip.pth', zipSeed(dir)))).toBe('ok');
    const legacy = writeTmp('legacy.pth', legacySeed());
    expect(checkFile(legacy)).toBe('ok');
    const ck = readCheckpoint(legacy);
    expect(ck.format).toBe('legacy');
    expect([...materialize((ck.root as PyDict).get('module.w') as never)]).toEqual([1, 2, 3, 4, 5, 6]);
    expect([...materialize((ck.root as PyDict).get('module.b') as never)]).toEqual([7, 8, 9]);
  });

  it('os.system is recorded, never run; strict mode names it', () => {
    const [, bytes] = hostilePickles().find(([n]) => n === 'os.system REDUCE')!;
    const { value } = unpickle(bytes, { globals: SAFE_GLOBALS });
    expect(value).toBeInstanceOf(PickleRecord);
    expect((value as PickleRecord).__class__).toBe('os.system');
    expect(fs.existsSync('/tmp/mood-fuzz-pwned')).toBe(false);
    expect(() => unpickle(bytes, { globals: SAFE_GLOBALS, strict: true, file: 'evil.pkl' })).toThrow(/evil\.pkl.*GLOBAL.*os\.system/);
  });

  for (const [name, bytes] of hostilePickles()) {
    it(`hand-crafted: ${name}`, () => {
      const t0 = Date.now();
      const r = checkPickle(bytes);
      expect(Date.now() - t0).toBeLessThan(5000);
      if (/huge|past|negative|unknown|empty stack|bomb|deep|non-storage|object array|GET of|BUILD on/.test(name)) expect(r).toBe('rejected');
    });
  }

  it('cyclic structures are walked once', () => {
    const [, bytes] = hostilePickles().find(([n]) => n === 'self-referencing list')!;
    const { value } = unpickle(bytes, { globals: SAFE_GLOBALS });
    expect((value as unknown[])[0]).toBe(value);
    expect(listTensors(value as never)).toEqual([]);
  });

  it('zip: storage past EOF, compressed storage, lying central directory', () => {
    const seed = zipSeed(dir);
    const fd = fs.openSync(writeTmp('z.pth', seed), 'r');
    const zd = readZipDirectory(fd, 'z.pth');
    fs.closeSync(fd);
    const storage = zd.entries.find((e) => e.name.endsWith('/data/0'))!;
    // Entry compressed (method 8) although torch never compresses storages.
    const c = Buffer.from(seed);
    const cdOff = c.indexOf(Buffer.from('seed/data/0'), storage.dataOffset + storage.compressedSize) - 46;
    c.writeUInt16LE(8, cdOff + 10);
    expect(() => readCheckpoint(writeTmp('c.pth', c))).toThrow(/compressed/);
    // Size larger than the file.
    const s = Buffer.from(seed);
    s.writeUInt32LE(0x7fffffff, cdOff + 20);
    s.writeUInt32LE(0x7fffffff, cdOff + 24);
    expect(() => readCheckpoint(writeTmp('s.pth', s))).toThrow(CheckpointError);
    // Entry count far beyond what the directory can hold.
    const n = Buffer.from(seed);
    const eocd = n.length - 22;
    n.writeUInt16LE(0xfffe, eocd + 10);
    expect(() => readCheckpoint(writeTmp('n.pth', n))).toThrow(/claims/);
  });

  it(`random mutations of zip and legacy checkpoints, pickles and npy (budget ~12 s)`, () => {
    const seeds: Array<[string, Buffer]> = [['zip', zipSeed(dir)], ['legacy', legacySeed()]];
    const pkls = hostilePickles().map(([, b]) => b);
    const pkl = unpickleSource(seeds[0][1]);
    const npy = Buffer.concat(encodeNpy(ndarray('float32', [3, 2], new Float32Array(6))));
    const r = rng(12345);
    const counts = { ok: 0, rejected: 0 };
    const deadline = Date.now() + 12_000;
    let i = 0;
    for (; i < 4000 && Date.now() < deadline; i++) {
      const [mname, mutate] = MUTATIONS[i % MUTATIONS.length];
      const kind = i % 4;
      const t0 = Date.now();
      let res: 'ok' | 'rejected';
      try {
        if (kind < 2) res = checkFile(writeTmp('m.pth', mutate(seeds[kind][1], r)));
        else if (kind === 2) res = checkPickle(mutate(r() < 0.5 ? pkl : pkls[Math.floor(r() * pkls.length)], r));
        else res = checkNpy(mutate(npy, r));
      } catch (e) {
        throw new Error(`case ${i} (${mname}, kind ${kind}) escaped as ${(e as Error).name}: ${(e as Error).message}`);
      }
      expect(Date.now() - t0, `case ${i}`).toBeLessThan(3000);
      counts[res]++;
    }
    expect(i).toBeGreaterThan(1000);
    expect(counts.rejected).toBeGreaterThan(0);
  }, 60_000);
});

function writeTmp(name: string, data: Buffer): string {
  const f = path.join(dir, name);
  fs.writeFileSync(f, data);
  return f;
}

/** The data.pkl bytes of a stored zip checkpoint (first entry). */
function unpickleSource(zipBytes: Buffer): Buffer {
  const f = writeTmp('src.pth', zipBytes);
  const fd = fs.openSync(f, 'r');
  try {
    const zd = readZipDirectory(fd, f);
    const e = zd.entries[0];
    return zipBytes.subarray(e.dataOffset, e.dataOffset + e.compressedSize);
  } finally {
    fs.closeSync(fd);
  }
}

