import { describe, expect, it } from 'vitest';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { fixturePath } from '../helpers/fixtures';
import { python, sha256, torchDigest, torchDigests } from './helpers';
import { readCheckpoint } from '../../lib/checkpoint/reader';
import { materialize } from '../../lib/checkpoint/materialize';
import { saveCheckpoint, pyFloat, TensorData } from '../../lib/checkpoint/writer';
import { PyDict } from '../../lib/checkpoint/pyvalues';
import { TensorRef } from '../../lib/checkpoint/tensorref';
import { CheckpointError } from '../../lib/checkpoint/errors';
import { readZipDirectory } from '../../lib/io/zip';
import { makeTuple } from '../../lib/checkpoint/pyvalues';
import { describeWith } from '../helpers/requirements';

const tmp = () => fs.mkdtempSync(path.join(os.tmpdir(), 'mood-ckpt-'));

function sample(): Map<string, TensorData> {
  const sd = new Map<string, TensorData>();
  const f = new Float32Array(24).map((_, i) => Math.sin(i) * 3);
  sd.set('w32', { dtype: 'float32', shape: [2, 3, 4], data: f });
  sd.set('w64', { dtype: 'float64', shape: [5], data: Float64Array.from([1e-300, -2.5, Math.PI, 0, -0]) });
  sd.set('h16', { dtype: 'float16', shape: [4], data: Float32Array.from([1, 0.1, -65504, 1e-7]) });
  sd.set('b16', { dtype: 'bfloat16', shape: [2, 2], data: Uint16Array.from([0x3f80, 0xbf80, 0x4049, 0x0001]) });
  sd.set('i64', { dtype: 'int64', shape: [3], data: BigInt64Array.from([-(2n ** 62n), 0n, 2n ** 40n]) });
  sd.set('i32', { dtype: 'int32', shape: [2], data: Int32Array.from([-7, 2 ** 31 - 1]) });
  sd.set('u8', { dtype: 'uint8', shape: [3], data: Uint8Array.from([0, 128, 255]) });
  sd.set('flag', { dtype: 'bool', shape: [2], data: Uint8Array.from([1, 0]) });
  sd.set('scalar', { dtype: 'float32', shape: [], data: Float32Array.from([42]) });
  sd.set('empty', { dtype: 'float32', shape: [0, 3], data: new Float32Array(0) });
  return sd;
}

describeWith(['torch', 'numpy'])('saveCheckpoint -> torch.load', () => {
  it('state dict of every dtype loads with weights_only=True, values identical', () => {
    const dir = tmp();
    const file = path.join(dir, 'sd.pth');
    const sd = sample();
    const shared = sd.get('w32')!;
    const root = new Map<string, unknown>([
      ['model', new PyDict('collections.OrderedDict', [...sd, ['alias', shared]])],
      ['epoch', 12],
      ['big', 2n ** 70n],
      ['neg', -123456789012],
      ['name', 'beit ü'],
      ['flags', [true, false, null]],
      ['size', makeTuple([224, 224])],
    ]);
    saveCheckpoint(file, root as never);
    const out = python(`
import sys, json, torch, zipfile
assert zipfile.ZipFile(sys.argv[1]).testzip() is None
ck = torch.load(sys.argv[1], weights_only=True)
m = ck['model']
assert type(m).__name__ == 'OrderedDict'
assert m['alias'].data_ptr() == m['w32'].data_ptr(), 'shared storage'
print(json.dumps({'epoch': ck['epoch'], 'big': str(ck['big']), 'neg': ck['neg'], 'name': ck['name'], 'flags': ck['flags'], 'size': list(ck['size']), 'size_is_tuple': isinstance(ck['size'], tuple),
  'h16': m['h16'].float().tolist(), 'b16': m['b16'].reshape(-1).view(torch.int16).tolist(), 'i64': [str(x) for x in m['i64'].tolist()], 'scalar_shape': list(m['scalar'].shape), 'empty': list(m['empty'].shape), 'u8': m['u8'].tolist(), 'flag': m['flag'].tolist(), 'flag_dtype': str(m['flag'].dtype)}))
`, [file]);
    const r = JSON.parse(out);
    expect(r).toMatchObject({ epoch: 12, big: (2n ** 70n).toString(), neg: -123456789012, name: 'beit ü', flags: [true, false, null], size: [224, 224], size_is_tuple: true });
    expect(r.h16).toEqual([1, Math.fround(0.0999755859375), -65504, 1.1920928955078125e-7]);
    expect(r.b16).toEqual([0x3f80, -0x4080, 0x4049, 1]);
    expect(r.i64).toEqual([(-(2n ** 62n)).toString(), '0', (2n ** 40n).toString()]);
    expect(r).toMatchObject({ scalar_shape: [], empty: [0, 3], u8: [0, 128, 255], flag: [true, false], flag_dtype: 'torch.bool' });
    const digest = torchDigest(file, 'model', true);
    expect(sha256(sd.get('w32')!.data)).toBe(digest.w32.raw);
    expect(sha256(sd.get('w64')!.data)).toBe(digest.w64.raw);
    // And our own reader sees the same, with 64-byte aligned storages.
    const ck = readCheckpoint(file);
    const m = (ck.root as PyDict).get('model') as PyDict;
    expect(materialize(m.get('w32') as TensorRef)).toEqual(sd.get('w32')!.data);
    expect((m.get('alias') as TensorRef).storage).toBe((m.get('w32') as TensorRef).storage);
    for (const s of ck.storages) expect(s.byteOffset % 64).toBe(0);
    expect(ck.archiveName).toBe('sd');
    fs.rmSync(dir, { recursive: true });
  });

  it('floats and foreign records (weights_only=False)', () => {
    const dir = tmp();
    const file = path.join(dir, 'meta.ckpt.pth');
    saveCheckpoint(file, { lr: 0.001, scale: pyFloat(65536), nan: NaN, args: readCheckpoint(fixturePath('ft_meanpool.pth')).root instanceof PyDict ? ((readCheckpoint(fixturePath('ft_meanpool.pth')).root as PyDict).get('args') as never) : null });
    const out = python(`
import sys, json, math, torch
ck = torch.load(sys.argv[1])
print(json.dumps({'lr': ck['lr'], 'scale_type': type(ck['scale']).__name__, 'nan': math.isnan(ck['nan']), 'nb_classes': ck['args']['nb_classes'], 'window': list(ck['args']['window_size'])}))
`, [file]);
    expect(JSON.parse(out)).toEqual({ lr: 0.001, scale_type: 'float', nan: true, nb_classes: 10, window: [4, 4] });
    expect(readCheckpoint(file).archiveName).toBe('meta.ckpt');
    fs.rmSync(dir, { recursive: true });
  });

  it('read -> write round trip keeps views, shared storages, fp16/bf16 and _metadata', () => {
    const dir = tmp();
    const names = ['ft_meanpool_views', 'fp16_storage', 'bf16_storage', 'ft_cls_abspos'];
    const jobs = names.map((name) => {
      const src = fixturePath(`${name}.pth`);
      const out = path.join(dir, `${name}.pth`);
      saveCheckpoint(out, readCheckpoint(src).root as never);
      return { src, out, key: name === 'ft_cls_abspos' ? 'module' : 'model' };
    });
    // Three Python processes in all: torch's import dominates the cost.
    const written = torchDigests(jobs.map((j) => [j.out, j.key]), true);
    const original = torchDigests(jobs.map((j) => [j.src, j.key]));
    expect(written).toEqual(original);
    const meta = JSON.parse(python(`
import sys, json, torch
res = []
for out, src, key in json.loads(sys.argv[1]):
  a = torch.load(out, weights_only=True)[key]
  b = torch.load(src)[key]
  w = a.get('blocks.0.attn.qkv.weight')
  res.append([getattr(a, '_metadata', None) == getattr(b, '_metadata', None), list(w.stride()) if w is not None else None])
print(json.dumps(res))
`, [JSON.stringify(jobs.map((j) => [j.out, j.src, j.key]))]));
    expect(meta.map((m: [boolean, unknown]) => m[0])).toEqual([true, true, true, true]);
    expect(meta[0][1]).toEqual([1, 144]);
    fs.rmSync(dir, { recursive: true });
  });

  it('zip64 structures (forced) are read by torch and by us', () => {
    const dir = tmp();
    const file = path.join(dir, 'z64.pth');
    const sd = sample();
    saveCheckpoint(file, new PyDict('collections.OrderedDict', sd), { zip: { forceZip64: true } });
    const d = torchDigest(file, '', true);
    expect(d.w32.raw).toBe(sha256(sd.get('w32')!.data));
    const fd = fs.openSync(file, 'r');
    const zd = readZipDirectory(fd, file);
    fs.closeSync(fd);
    expect(zd.entries.map((e) => e.name)[0]).toBe('z64/data.pkl');
    const ck = readCheckpoint(file);
    expect(materialize((ck.root as PyDict).get('i64') as TensorRef)).toEqual(sd.get('i64')!.data);
    fs.rmSync(dir, { recursive: true });
  });
});

describe('saveCheckpoint atomicity and validation', () => {
  it('a failing save leaves the old file and no temp files', () => {
    const dir = tmp();
    const file = path.join(dir, 'keep.pth');
    fs.writeFileSync(file, 'old');
    const cyclic: unknown[] = [];
    cyclic.push(cyclic);
    expect(() => saveCheckpoint(file, { x: cyclic as never })).toThrow(CheckpointError);
    expect(() => saveCheckpoint(file, { t: { dtype: 'float32', shape: [3], data: new Float32Array(2) } })).toThrow(/needs 3/);
    expect(() => saveCheckpoint(file, { t: { dtype: 'int64', shape: [2], data: new Float32Array(2) } })).toThrow(/BigInt64Array/);
    expect(fs.readFileSync(file, 'utf8')).toBe('old');
    expect(fs.readdirSync(dir)).toEqual(['keep.pth']);
    saveCheckpoint(file, { ok: 1 });
    expect(fs.readdirSync(dir)).toEqual(['keep.pth']);
    expect((readCheckpoint(file).root as PyDict).get('ok')).toBe(1);
    fs.rmSync(dir, { recursive: true });
  });

  it('writing into a missing directory throws and creates nothing', () => {
    expect(() => saveCheckpoint('/nonexistent-dir-xyz/a.pth', {})).toThrow();
  });
});
