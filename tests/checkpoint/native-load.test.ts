/**
 * Native checkpoint loading (loadTensors) and saving (saveTensors): every fixture checkpoint loads to
 * exactly what the JS `materialize` reads, each storage is read once, fp16/bf16 upcast is exact (also
 * against torch's own `.float()`), and Tensors we save load in torch with identical values.
 */
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { fixturePath } from '../helpers/fixtures';
import { loadManifest, python, sha256 } from './helpers';
import { Tensor, tensorStats } from '../../lib/tensor';
import { readCheckpoint } from '../../lib/checkpoint/reader';
import { materialize } from '../../lib/checkpoint/materialize';
import { listTensors } from '../../lib/checkpoint/inspect';
import { adaptStateDict, TargetModel } from '../../lib/checkpoint/adapt';
import { PyDict } from '../../lib/checkpoint/pyvalues';
import { TensorRef } from '../../lib/checkpoint/tensorref';
import { isTensorData, pyFloat, saveCheckpoint, TensorData } from '../../lib/checkpoint/writer';
import { CheckpointError } from '../../lib/checkpoint/errors';
import { loadTensors, loadTensorSources } from '../../lib/checkpoint/load-tensors';
import { saveTensors } from '../../lib/checkpoint/save-tensors';
import { itWith, missing } from '../helpers/requirements';

const manifest = loadManifest();
// The torch comparison below is part of the test where Debian's torch is present (always in a set-up clone).
const withPython = !missing('torch', 'numpy');

/** Every .pth file the fixtures have (checkpoints and the reference's adapted state dicts). */
function fixtureFiles(): string[] {
  const files = new Set<string>();
  for (const c of Object.values(manifest.cases)) {
    files.add(c.checkpoint.file);
    if (c.adapted_state_dict) files.add(c.adapted_state_dict.file);
  }
  return [...files];
}

function bytesOf(a: ArrayBufferView): Buffer {
  return Buffer.from(a.buffer, a.byteOffset, a.byteLength);
}

let tmp: string;
beforeAll(() => {
  tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'mood-native-ckpt-'));
});
afterAll(() => {
  fs.rmSync(tmp, { recursive: true, force: true });
});

function disposeAll(m: Map<string, Tensor>): void {
  for (const t of m.values()) t.dispose();
}

describe('loadTensors on every fixture checkpoint', () => {
  for (const file of fixtureFiles()) {
    it(`${file}: equals materialize bit for bit, one read per storage`, async () => {
      const ck = readCheckpoint(fixturePath(file));
      const entries = listTensors(ck.root);
      expect(entries.length).toBeGreaterThan(0);
      const spy = vi.spyOn(Tensor, 'fromFile');
      const live0 = tensorStats().live;
      let loaded: Map<string, Tensor>;
      try {
        loaded = await loadTensors(ck);
        const storagesUsed = new Set(entries.filter((e) => e.ref.numel > 0).map((e) => e.ref.storage));
        expect(spy).toHaveBeenCalledTimes(storagesUsed.size);
        const offsets = spy.mock.calls.map((c) => `${c[0]}@${c[1].byteOffset}`);
        expect(new Set(offsets).size).toBe(offsets.length);
      } finally {
        spy.mockRestore();
      }
      expect([...loaded.keys()]).toEqual(entries.map((e) => e.path));
      for (const { path: key, ref } of entries) {
        const t = loaded.get(key) as Tensor;
        expect(t.dtype, key).toBe(ref.dtype);
        expect(t.shape, key).toEqual(ref.shape);
        const want = materialize(ref, { raw16: true });
        const got = await t.data();
        expect(got.constructor, key).toBe(want.constructor);
        expect(bytesOf(got).equals(bytesOf(want)), key).toBe(true);
      }
      expect(tensorStats().live).toBe(live0 + entries.length); // storage handles already released
      disposeAll(loaded);
      expect(tensorStats().live).toBe(live0);
    });
  }

  it('views of one shared storage (ft_meanpool_views): 2 reads for 41 tensors, transposed views exact', async () => {
    const ck = readCheckpoint(fixturePath('ft_meanpool_views.pth'));
    const entries = listTensors(ck.root);
    expect(new Set(entries.map((e) => e.ref.storage)).size).toBe(2);
    const spy = vi.spyOn(Tensor, 'fromFile');
    const m = await loadTensors(ck, { key: 'model' });
    expect(spy).toHaveBeenCalledTimes(2);
    spy.mockRestore();
    expect(m.size).toBe(entries.length);
    const nonContig = entries.filter((e) => !e.ref.isContiguous);
    expect(nonContig.length).toBeGreaterThan(0);
    for (const { path: p, ref } of nonContig) {
      const t = m.get(p.replace(/^model\./, '')) as Tensor;
      expect(bytesOf(await t.data()).equals(bytesOf(materialize(ref))), p).toBe(true);
    }
    disposeAll(m);
  });

  for (const name of ['fp16_storage', 'bf16_storage']) {
    it(`${name}: dtype float32 upcasts exactly (vs JS widening and vs torch .float())`, async () => {
      const c = manifest.cases[name];
      const ck = readCheckpoint(fixturePath(c.checkpoint.file));
      const m = await loadTensors(ck, { key: 'model', dtype: 'float32' });
      const sd = (ck.root as PyDict).get('model') as PyDict;
      const torchF32 = withPython ? torchFloatDigests(fixturePath(c.checkpoint.file), 'model') : undefined;
      let halves = 0;
      for (const [k, v] of sd) {
        const ref = v as TensorRef;
        const t = m.get(String(k)) as Tensor;
        if (ref.dtype === 'int64') {
          expect(t.dtype).toBe('int64');
          continue;
        }
        halves++;
        expect(ref.dtype).toBe(name === 'fp16_storage' ? 'float16' : 'bfloat16');
        expect(t.dtype, String(k)).toBe('float32');
        const got = (await t.data()) as Float32Array;
        expect(bytesOf(got).equals(bytesOf(materialize(ref))), String(k)).toBe(true);
        if (torchF32) expect(sha256(got), String(k)).toBe(torchF32[String(k)]);
      }
      expect(halves).toBeGreaterThan(10);
      disposeAll(m);
    });
  }

  it('every fp16/bf16 bit pattern upcasts exactly (all 65536, NaN payloads included)', async () => {
    const bits = new Uint16Array(65536).map((_, i) => i);
    for (const dtype of ['float16', 'bfloat16'] as const) {
      const file = path.join(tmp, `all-${dtype}.pth`);
      saveCheckpoint(file, { x: { dtype, shape: [256, 256], data: bits } });
      const m = await loadTensors(file, { dtype: 'float32' });
      const got = (await (m.get('x') as Tensor).data()) as Float32Array;
      const want = materialize(listTensors(readCheckpoint(file).root)[0].ref) as Float32Array;
      const gu = new Uint32Array(got.buffer, got.byteOffset, got.length);
      const wu = new Uint32Array(want.buffer, want.byteOffset, want.length);
      let mismatches = 0;
      for (let i = 0; i < 65536; i++) {
        if (dtype === 'bfloat16') {
          if (gu[i] !== ((i << 16) >>> 0)) mismatches++; // the exact upcast, NaN payloads included
        } else if (Number.isNaN(want[i])) {
          // JS NaN is canonical (materialize loses the sign); libtorch keeps it, as torch does.
          if (!Number.isNaN(got[i]) || gu[i] >>> 31 !== i >>> 15) mismatches++;
        } else if (gu[i] !== wu[i]) mismatches++;
      }
      expect(mismatches, dtype).toBe(0);
      disposeAll(m);
    }
  });

  it('an adapted state dict (TensorRefs + computed TensorData) loads; untouched tensors come from the file', async () => {
    const c = manifest.cases.pt_shared_relpos;
    const ck = readCheckpoint(fixturePath(c.checkpoint.file));
    const expected = c.adapted_state_dict?.state_dict ?? [];
    const g = c.model.img_size / c.model.patch_size;
    const target: TargetModel = {
      depth: c.model.depth,
      numClasses: c.model.num_classes,
      useMeanPooling: c.model.use_mean_pooling,
      useRelPosBias: c.model.use_rel_pos_bias,
      useAbsPosEmb: c.model.use_abs_pos_emb,
      windowSize: c.model.window_size,
      numPatches: g * g,
      expectedKeys: new Map(expected.map(([k, s]) => [k, s])),
    };
    const res = adaptStateDict(ck.root, target);
    const spy = vi.spyOn(Tensor, 'fromFile');
    const m = await loadTensors(res.stateDict);
    const refStorages = new Set([...res.stateDict.values()].filter((v): v is TensorRef => v instanceof TensorRef).map((v) => v.storage));
    expect(spy).toHaveBeenCalledTimes(refStorages.size);
    spy.mockRestore();
    expect([...m.keys()]).toEqual([...res.stateDict.keys()]);
    for (const [k, v] of res.stateDict) {
      const want = isTensorData(v) ? v.data : materialize(v as TensorRef);
      expect(bytesOf(await (m.get(k) as Tensor).data()).equals(bytesOf(want)), k).toBe(true);
    }
    // The expanded shared table: one TensorRef reused for every block, read once.
    expect(res.stateDict.get('blocks.0.attn.relative_position_bias_table')).toBe(res.stateDict.get('blocks.1.attn.relative_position_bias_table'));
    disposeAll(m);
  });

  it('filter loads a subset; a float16 TensorData given as float32 values rounds like the writer', async () => {
    const m = await loadTensors(fixturePath('ft_meanpool.pth'), { key: 'model', filter: (k) => k.endsWith('.bias') });
    expect(m.size).toBeGreaterThan(0);
    expect([...m.keys()].every((k) => k.endsWith('.bias'))).toBe(true);
    disposeAll(m);

    const vals = Float32Array.from([1 + 2 ** -11, 1 + 3 * 2 ** -11, 65520, -1e-8, 0.1]);
    const td: TensorData = { dtype: 'float16', shape: [5], data: vals };
    const file = path.join(tmp, 'td16.pth');
    saveCheckpoint(file, { x: td });
    const fromFile = materialize(listTensors(readCheckpoint(file).root)[0].ref, { raw16: true });
    const [t16] = await loadTensorSources([['x', td]]);
    expect(t16.dtype).toBe('float16');
    expect(Array.from((await t16.data()) as Uint16Array)).toEqual(Array.from(fromFile as Uint16Array));
    const [t32] = await loadTensorSources([['x', td]], { dtype: 'float32' });
    expect(Array.from((await t32.data()) as Float32Array)).toEqual(Array.from(materialize(listTensors(readCheckpoint(file).root)[0].ref) as Float32Array));
    t16.dispose();
    t32.dispose();
  });
});

describe('loadTensors from a path: reads start while the pickle is parsed', () => {
  it('every storage is queued as the pickle names it; key/filter release the rest; values as from a parsed Checkpoint', async () => {
    const file = fixturePath('ft_meanpool.pth');
    const ck = readCheckpoint(file);
    const want = await loadTensors(ck, { key: 'model', filter: (k) => k.endsWith('.bias') });
    const live0 = tensorStats().live;
    const spy = vi.spyOn(Tensor, 'fromFile');
    let got: Map<string, Tensor>;
    try {
      got = await loadTensors(file, { key: 'model', filter: (k) => k.endsWith('.bias') });
      // One read per storage of the whole file, each queued during the parse (before any plan).
      expect(spy).toHaveBeenCalledTimes(ck.storages.filter((st) => st.numel > 0).length);
    } finally {
      spy.mockRestore();
    }
    expect([...got.keys()]).toEqual([...want.keys()]);
    for (const [k, t] of want) expect(Array.from((await (got.get(k) as Tensor).data()) as Float32Array), k).toEqual(Array.from((await t.data()) as Float32Array));
    expect(tensorStats().live).toBe(live0 + got.size); // the reads of the other storages were released
    disposeAll(got);
    disposeAll(want);
  });

  it('a parse that fails after storages were queued releases them', async () => {
    // ft_meanpool holds an argparse.Namespace after the model's tensors: strict refuses it late.
    const live0 = tensorStats().live;
    const spy = vi.spyOn(Tensor, 'fromFile');
    const err = await loadTensors(fixturePath('ft_meanpool.pth'), { read: { strict: true } }).catch((e: unknown) => e);
    const queued = spy.mock.calls.length;
    spy.mockRestore();
    expect(err).toBeInstanceOf(CheckpointError);
    expect(String((err as Error).message)).toMatch(/argparse/);
    expect(queued).toBeGreaterThan(0);
    expect(tensorStats().live).toBe(live0);
  });
});

describe('loadTensors errors', () => {
  it('a file truncated after its structure was read: clean CheckpointError naming a tensor, nothing leaked', async () => {
    const copy = path.join(tmp, 'trunc.pth');
    fs.copyFileSync(fixturePath('ft_meanpool.pth'), copy);
    const ck = readCheckpoint(copy);
    fs.truncateSync(copy, Math.floor(fs.statSync(copy).size / 2));
    const live0 = tensorStats().live;
    const err = await loadTensors(ck).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(CheckpointError);
    expect(String((err as Error).message)).toMatch(/cannot load tensor '.+'.*(end of the file|end of file)/);
    expect(tensorStats().live).toBe(live0);
  });

  it('a view past its storage is refused before any read', async () => {
    const ck = readCheckpoint(fixturePath('ft_meanpool.pth'));
    const ref = listTensors(ck.root)[0].ref;
    const bad = new TensorRef({ dtype: ref.dtype, shape: [ref.storage.numel + 1], stride: [1], storageOffset: 0, storage: ref.storage });
    const spy = vi.spyOn(Tensor, 'fromFile');
    await expect(loadTensors(new Map([['bad', bad]]))).rejects.toThrow(/reaches element/);
    expect(spy).not.toHaveBeenCalled();
    spy.mockRestore();
  });

  it('bad options and missing keys', async () => {
    await expect(loadTensors(fixturePath('ft_meanpool.pth'), { dtype: 'int64' })).rejects.toThrow(/floating-point dtype/);
    await expect(loadTensors(fixturePath('ft_meanpool.pth'), { key: ['nope', 'neither'] })).rejects.toThrow(/none of the keys 'nope', 'neither'.*root keys: model/);
    await expect(loadTensors(path.join(tmp, 'missing.pth'))).rejects.toThrow(/cannot open/);
  });
});

/** sha256 of `t.float()` per key, from real torch. */
function torchFloatDigests(file: string, key: string): Record<string, string> {
  const out = python(
    `
import sys, json, hashlib, torch
sd = torch.load(sys.argv[1], map_location='cpu')[sys.argv[2]]
print(json.dumps({k: hashlib.sha256(v.contiguous().float().numpy().tobytes()).hexdigest() for k, v in sd.items() if v.is_floating_point()}))
`,
    [file, key],
  );
  return JSON.parse(out);
}

describe('saveTensors', () => {
  itWith(['torch', 'numpy'])('Map<string, Tensor> and a nested training checkpoint load in torch (weights_only) with identical values', async () => {
    const m = await loadTensors(fixturePath('ft_meanpool_views.pth'), { key: 'model' });
    const sdFile = path.join(tmp, 'sd.pth');
    await saveTensors(sdFile, m, { orderedDicts: true });
    const shared = Tensor.arange(6, undefined, 1, { dtype: 'float32' }).reshape([2, 3]);
    const ckFile = path.join(tmp, 'train.pth');
    await saveTensors(ckFile, {
      model: m,
      // No Python floats outside tensors: torch 1.13's weights_only unpickler has no float opcode.
      optimizer: { state: new Map([[0, { exp_avg: shared, step: 3 }]]), param_groups: [{ warmup_epochs: 5, params: [0] }] },
      tied: [shared, shared],
      epoch: 7,
      args: { model: 'beit_base_patch16_224', nb_classes: 10 },
    });
    const f16File = path.join(tmp, 'sd16.pth');
    await saveTensors(f16File, m, { dtype: 'float16' });
    for (const f of [sdFile, ckFile, f16File]) expect(fs.readdirSync(tmp).some((n) => n.startsWith(`.${path.basename(f)}.`))).toBe(false);

    // Our own reader: one storage for the tied tensor.
    const back = readCheckpoint(ckFile);
    const tied = (back.root as PyDict).get('tied') as TensorRef[];
    expect(tied[0].storage).toBe(tied[1].storage);

    const want: Record<string, string> = {};
    for (const [k, t] of m) want[k] = sha256(await t.data());
    const res = JSON.parse(
      python(
        `
import sys, json, hashlib, torch
def h(t):
    c = t.contiguous()
    if c.dtype == torch.bfloat16: c = c.view(torch.int16)
    return hashlib.sha256(c.numpy().tobytes()).hexdigest()
sd = torch.load(sys.argv[1], weights_only=True)
ck = torch.load(sys.argv[2], weights_only=True)
sd16 = torch.load(sys.argv[3], weights_only=True)
ref = torch.load(sys.argv[4], map_location='cpu')['model']
print(json.dumps({
  'type': type(sd).__name__,
  'sd': {k: h(v) for k, v in sd.items()},
  'ck_model': {k: h(v) for k, v in ck['model'].items()},
  'epoch': ck['epoch'], 'args': ck['args'], 'warmup': ck['optimizer']['param_groups'][0]['warmup_epochs'],
  'exp_avg': ck['optimizer']['state'][0]['exp_avg'].tolist(),
  'tied_shared': ck['tied'][0].data_ptr() == ck['tied'][1].data_ptr(),
  'f16_ok': all(torch.equal(sd16[k], v.half() if v.is_floating_point() else v) and sd16[k].dtype == (torch.float16 if v.is_floating_point() else v.dtype) for k, v in ref.items()),
}))
`,
        [sdFile, ckFile, f16File, fixturePath('ft_meanpool_views.pth')],
      ),
    );
    expect(res.type).toBe('OrderedDict');
    expect(res.sd).toEqual(want);
    expect(res.ck_model).toEqual(want);
    expect(res.epoch).toBe(7);
    expect(res.args).toEqual({ model: 'beit_base_patch16_224', nb_classes: 10 });
    expect(res.warmup).toBe(5);
    expect(res.exp_avg).toEqual([[0, 1, 2], [3, 4, 5]]);
    expect(res.tied_shared).toBe(true);
    expect(res.f16_ok).toBe(true);
    shared.dispose();
    disposeAll(m);
  });

  itWith(['torch', 'numpy'])('explicit Python floats next to tensors stay floats (not dicts) in torch.load', async () => {
    const t = Tensor.fromArray(new Float32Array([1, 2]), [2]);
    const f = path.join(tmp, 'floats.pth');
    await saveTensors(f, { w: t, param_groups: [{ lr: pyFloat(1), params: [0] }] });
    const out = python(
      `
import sys, json, torch
ck = torch.load(sys.argv[1])
g = ck['param_groups'][0]
print(json.dumps({'type': type(g['lr']).__name__, 'lr': g['lr'], 'w': ck['w'].tolist()}))
`,
      [f],
    );
    expect(JSON.parse(out)).toEqual({ type: 'float', lr: 1, w: [1, 2] });
    t.dispose();
  });

  it('refuses disposed tensors and cycles; a failed save leaves no file', async () => {
    const t = Tensor.zeros([2]);
    t.dispose();
    const f = path.join(tmp, 'never.pth');
    await expect(saveTensors(f, { t })).rejects.toThrow(/disposed/);
    const cyc: Record<string, unknown> = {};
    cyc.self = cyc;
    await expect(saveTensors(f, cyc)).rejects.toThrow(/cyclic/);
    expect(fs.existsSync(f)).toBe(false);
  });
});
