import { describe, expect, it } from 'vitest';
import * as path from 'node:path';
import { fixturePath } from '../helpers/fixtures';
import { loadManifest, sha256, torchDigests, readBinF32, TorchDigest } from './helpers';
import { readCheckpoint } from '../../lib/checkpoint/reader';
import { materialize } from '../../lib/checkpoint/materialize';
import { listTensors, summarize } from '../../lib/checkpoint/inspect';
import { PickleRecord, PyDict } from '../../lib/checkpoint/pyvalues';
import { TensorRef } from '../../lib/checkpoint/tensorref';
import { CheckpointError } from '../../lib/checkpoint/errors';
import { itWith } from '../helpers/requirements';

const manifest = loadManifest();

/** What torch.load sees in every fixture, computed once (one Python process). */
let truthCache: Map<string, Record<string, TorchDigest>> | undefined;
function truthFor(file: string): Record<string, TorchDigest> {
  if (!truthCache) {
    const cases = Object.values(manifest.cases).map((c) => [fixturePath(c.checkpoint.file), c.checkpoint.state_dict_key] as [string, string]);
    const res = torchDigests(cases);
    truthCache = new Map(cases.map(([f], i) => [f, res[i]]));
  }
  return truthCache.get(file)!;
}

function stateDict(file: string, key: string): PyDict {
  const ck = readCheckpoint(fixturePath(file));
  const sd = (ck.root as PyDict).get(key);
  expect(sd).toBeInstanceOf(PyDict);
  return sd as PyDict;
}

describe('readCheckpoint on the official fixtures', () => {
  for (const [name, c] of Object.entries(manifest.cases)) {
    it(`${name}: keys, shapes and dtypes match the manifest`, () => {
      const ck = readCheckpoint(fixturePath(c.checkpoint.file));
      expect(ck.format).toBe(c.checkpoint.format);
      if (c.checkpoint.format === 'zip') expect(ck.archiveName).toBe(path.basename(c.checkpoint.file, '.pth'));
      const sd = (ck.root as PyDict).get(c.checkpoint.state_dict_key) as PyDict;
      const got = [...sd].map(([k, v]) => {
        const t = v as TensorRef;
        return [k, t.shape, t.dtype];
      });
      expect(got).toEqual(c.checkpoint.state_dict);
    });

    itWith(['torch', 'numpy'])(`${name}: every tensor equals what torch.load sees (bit-exact, and fp32 upcast)`, () => {
      const sd = stateDict(c.checkpoint.file, c.checkpoint.state_dict_key);
      const truth = truthFor(fixturePath(c.checkpoint.file));
      expect(Object.keys(truth)).toEqual([...sd.keys()]);
      for (const [k, v] of sd) {
        const t = v as TensorRef;
        const d = truth[k as string];
        expect(t.dtype).toBe(d.dtype);
        expect(sha256(materialize(t, { raw16: true })), k as string).toBe(d.raw);
        if (d.f32) expect(sha256(materialize(t)), `${k} f32`).toBe(d.f32);
      }
    });
  }

  it('ft_meanpool: metadata, argparse.Namespace as an inert record, OrderedDict _metadata', () => {
    const ck = readCheckpoint(fixturePath('ft_meanpool.pth'));
    const root = ck.root as PyDict;
    expect(root.get('epoch')).toBe(7);
    const args = root.get('args');
    expect(args).toBeInstanceOf(PickleRecord);
    expect((args as PickleRecord).__class__).toBe('argparse.Namespace');
    const state = (args as PickleRecord).state as PyDict;
    expect(state.get('nb_classes')).toBe(10);
    expect(state.get('window_size')).toEqual([4, 4]);
    const model = root.get('model') as PyDict;
    expect(model.pyClass).toBe('collections.OrderedDict');
    expect(model.attributes).toBeInstanceOf(PyDict);
    expect((root.get('scaler') as PyDict).get('scale')).toBe(65536);
    const s = summarize(ck);
    expect(s.metadata['epoch']).toBe(7);
    expect(s.metadata['args.nb_classes']).toBe(10);
    expect(s.foreignClasses).toEqual(['argparse.Namespace']);
    expect(s.tensors[0]).toMatchObject({ path: 'model.cls_token', dtype: 'torch.float32', shape: [1, 1, 48] });
    expect(s.tensors.length).toBe(41);
  });

  it('strict mode refuses argparse.Namespace by name', () => {
    expect(() => readCheckpoint(fixturePath('ft_meanpool.pth'), { strict: true })).toThrow(/argparse\.Namespace/);
    expect(() => readCheckpoint(fixturePath('ft_meanpool.pth'), { strict: true })).toThrow(CheckpointError);
    // The others hold nothing foreign.
    expect(() => readCheckpoint(fixturePath('ft_meanpool_views.pth'), { strict: true })).not.toThrow();
    expect(() => readCheckpoint(fixturePath('ft_cls_abspos.pth'), { strict: true })).not.toThrow();
  });

  it('views: shared storages are one object, offsets/strides honoured, values equal ft_meanpool', () => {
    const views = stateDict('ft_meanpool_views.pth', 'model');
    const plain = stateDict('ft_meanpool.pth', 'model');
    const floats = [...views.values()].filter((t) => (t as TensorRef).dtype === 'float32') as TensorRef[];
    const storage = floats[0].storage;
    for (const t of floats) expect(t.storage).toBe(storage);
    const idx = [...views].filter(([k]) => (k as string).endsWith('relative_position_index')).map(([, t]) => (t as TensorRef).storage);
    expect(idx.length).toBe(2);
    expect(idx[0]).toBe(idx[1]);
    const qkv = views.get('blocks.0.attn.qkv.weight') as TensorRef;
    expect(qkv.stride).toEqual([1, 144]);
    expect(qkv.isContiguous).toBe(false);
    expect((views.get('cls_token') as TensorRef).storageOffset).toBe(7);
    for (const [k, v] of views) {
      expect(materialize(v as TensorRef), k as string).toEqual(materialize(plain.get(k) as TensorRef));
    }
  });

  it('legacy: storage keys are addresses; offsets resolved after the key list', () => {
    const ck = readCheckpoint(fixturePath('ft_cls_abspos.pth'));
    expect(ck.format).toBe('legacy');
    const keys = ck.storages.map((s) => s.key);
    expect(keys.every((k) => /^\d+$/.test(k))).toBe(true);
    expect(new Set(keys).size).toBe(keys.length);
    expect(listTensors(ck.root).map((e) => e.path)[0]).toBe('module.module.cls_token');
  });

  it('fp16 / bf16 upcast is exact (independent check against adapted-free values)', () => {
    const sd = stateDict('fp16_storage.pth', 'model');
    const t = sd.get('cls_token') as TensorRef;
    expect(t.dtype).toBe('float16');
    const f = materialize(t) as Float32Array;
    const bits = materialize(t, { raw16: true }) as Uint16Array;
    expect(f).toBeInstanceOf(Float32Array);
    // float16 -> float32 -> float16 round trip must be the identity.
    for (let i = 0; i < bits.length; i++) {
      const back = Math.fround(f[i]);
      expect(back).toBe(f[i]);
    }
    const b = stateDict('bf16_storage.pth', 'model').get('cls_token') as TensorRef;
    const bf = materialize(b) as Float32Array;
    const bb = materialize(b, { raw16: true }) as Uint16Array;
    const u = new Uint32Array(bf.buffer);
    for (let i = 0; i < bb.length; i++) expect(u[i]).toBe(bb[i] << 16 >>> 0);
  });

  it('the relpos_interp fixture tables differ from the source (sanity of fixture use)', () => {
    const a = readBinF32(fixturePath('relpos_interp.adapted.blocks.0.relative_position_bias_table.bin'));
    expect(a.length).toBe(124 * 4);
  });
});
