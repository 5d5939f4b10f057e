import { describe, expect, it } from 'vitest';
import { expectWithin } from '../helpers/bounds';
import { fixturePath } from '../helpers/fixtures';
import { loadManifest, readBinF32, ManifestCase, python } from './helpers';
import { readCheckpoint } from '../../lib/checkpoint/reader';
import { materialize } from '../../lib/checkpoint/materialize';
import { adaptStateDict, relPosOffsets, TargetModel, AdaptTensor, interpolatePosEmbed } from '../../lib/checkpoint/adapt';
import { bicubicResize } from '../../lib/checkpoint/resize';
import { cubicSplineWeights } from '../../lib/checkpoint/spline';
import { PyDict } from '../../lib/checkpoint/pyvalues';
import { TensorRef } from '../../lib/checkpoint/tensorref';
import { isTensorData } from '../../lib/checkpoint/writer';
import { describeWith } from '../helpers/requirements';

const manifest = loadManifest();

function values(t: AdaptTensor): Float32Array {
  if (isTensorData(t)) return t.data as Float32Array;
  return materialize(t as TensorRef) as Float32Array;
}

// Relative position tables: the official scipy spline and ours both run in float64 and are rounded to
// float32 once, so they are at most 1 ulp apart: every table value is below 4 in magnitude (max 3.50),
// and 1 ulp of [2, 4) is 2^-22 = 2.4e-7 (measured: equal bits; one entry moved by 5e-7 fails: checked).
const TABLE_TOL = 2 ** -22;
// pos_embed: the official F.interpolate(bicubic) runs in float32 (ours in float64, equal to torch's
// float64 bit for bit, below). Each output is two passes of 4 taps whose weights (A = -0.75) have
// sum |w| <= 1.375 (at t = 1/2), each pass ~10 float32 roundings (4 products, 3 sums, the cubic
// coefficients): within 20 * 2^-24 * 1.375^2 * max|v| of exact (3.8e-6 at max|v| = 1.70; measured 7e-7).
const posEmbedTol = (ref: ArrayLike<number>) => 20 * 2 ** -24 * 1.375 ** 2 * Math.max(...Array.from(ref, Math.abs));

function maxAbsDiff(a: ArrayLike<number>, b: ArrayLike<number>): number {
  expect(a.length).toBe(b.length);
  let m = 0;
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i] - b[i]));
  return m;
}

function targetOf(c: ManifestCase, expected: Array<[string, number[], string]>): TargetModel {
  const m = c.model;
  const g = m.img_size / m.patch_size;
  return {
    depth: m.depth,
    numClasses: m.num_classes,
    useMeanPooling: m.use_mean_pooling,
    useRelPosBias: m.use_rel_pos_bias,
    useAbsPosEmb: m.use_abs_pos_emb,
    windowSize: m.window_size,
    numPatches: g * g,
    expectedKeys: new Map(expected.map(([k, s]) => [k.replace(/^module\./, ''), s])),
  };
}

describe('BEiT adaptation vs the official code', () => {
  for (const [name, c] of Object.entries(manifest.cases)) {
    it(`${name} (${c.adaptation.path})`, () => {
      const ck = readCheckpoint(fixturePath(c.checkpoint.file));
      const expected = c.adapted_state_dict?.state_dict ?? c.checkpoint.state_dict;
      const res = adaptStateDict(ck.root, targetOf(c, expected));
      expect(res.sourceKey).toBe(c.checkpoint.state_dict_key);
      expect(res.mismatchedKeys).toEqual([]);
      const indexKeys = expected.map(([k]) => k.replace(/^module\./, '')).filter((k) => k.includes('relative_position_index'));
      expect(res.ignoredMissingKeys).toEqual(indexKeys);

      if (!c.adapted_state_dict) {
        // direct / prefix strip / upcast: every weight passes through untouched.
        expect(res.missingKeys).toEqual([]);
        expect(res.unexpectedKeys).toEqual([]);
        const sd = (ck.root as PyDict).get(c.checkpoint.state_dict_key) as PyDict;
        for (const [k, v] of res.stateDict) expect(v).toBe(sd.get(`${c.checkpoint.key_prefix}${k}`));
        return;
      }
      const adapted = readCheckpoint(fixturePath(c.adapted_state_dict.file)).root as PyDict;
      const fresh = ['fc_norm.weight', 'fc_norm.bias', 'head.weight', 'head.bias'].filter((k) => adapted.has(k) && !res.stateDict.has(k));
      expect(res.missingKeys).toEqual(fresh);
      if (name === 'pt_shared_relpos') {
        expect([...res.unexpectedKeys].sort()).toEqual(['lm_head.bias', 'lm_head.weight', 'mask_token', 'norm.bias', 'norm.weight']);
        expect(res.missingKeys).toEqual(['fc_norm.weight', 'fc_norm.bias', 'head.weight', 'head.bias']);
        // The shared table is one object reused by every block.
        expect(res.stateDict.get('blocks.0.attn.relative_position_bias_table')).toBe(res.stateDict.get('blocks.1.attn.relative_position_bias_table'));
      }
      if (name === 'abspos_interp_headreinit') expect(res.missingKeys).toEqual(['head.weight', 'head.bias']);

      for (const [k, v] of res.stateDict) {
        const ref = adapted.get(k) as TensorRef;
        expect(ref, k).toBeInstanceOf(TensorRef);
        expect(v.shape, k).toEqual(ref.shape);
        const want = materialize(ref) as Float32Array;
        const d = maxAbsDiff(values(v), want);
        // Computed here (interpolated tables, pos_embed): their own bound; passed through: equal bits.
        if (isTensorData(v)) expectWithin(d, k === 'pos_embed' ? posEmbedTol(want) : TABLE_TOL, `${name} ${k}`);
        else expect(d, k).toBe(0);
      }
      const tables = (c.adaptation as { adapted_tables?: Record<string, { file: string }> }).adapted_tables;
      for (const [k, f] of Object.entries(tables ?? {})) {
        expectWithin(maxAbsDiff(values(res.stateDict.get(k)!), readBinF32(fixturePath(f.file))), TABLE_TOL, `${name} ${k} (table file)`);
      }
      if (name === 'abspos_interp_headreinit') {
        const want = readBinF32(fixturePath('abspos_interp_headreinit.adapted.pos_embed.bin'));
        expectWithin(maxAbsDiff(values(res.stateDict.get('pos_embed')!), want), posEmbedTol(want), `${name} pos_embed (file)`);
      }
    });
  }

  it('bisection q and offsets match the official log', () => {
    for (const name of ['relpos_interp', 'relpos_interp_w5']) {
      const a = manifest.cases[name].adaptation as { bisection_q: number; source_offsets: number[]; target_offsets: number[]; src_table_side: number; dst_table_side: number };
      const r = relPosOffsets(a.src_table_side, a.dst_table_side);
      expect(r.q).toBe(a.bisection_q);
      // float64 sums of q^i on both sides (|x| <= 5): a few ulps (1e-15), inside 14 digits.
      r.source.forEach((x, i) => expect(x).toBeCloseTo(a.source_offsets[i], 14));
      expect(r.target).toEqual(a.target_offsets);
    }
  });
});

describeWith(['torch', 'numpy'])('pos_embed resize vs torch', () => {
  it('equals F.interpolate(bicubic, align_corners=False) in float64 bit for bit', () => {
    const ck = readCheckpoint(fixturePath('abspos_interp_headreinit.pth'));
    const pe = ((ck.root as PyDict).get('model') as PyDict).get('pos_embed') as TensorRef;
    const src = materialize(pe) as Float32Array;
    const ours = interpolatePosEmbed(src, 17, 48, 1, 6);
    const hex = python(`
import sys, torch, torch.nn.functional as F
pe = torch.load(sys.argv[1])['model']['pos_embed']
g = pe[:, 1:].reshape(-1, 4, 4, 48).permute(0, 3, 1, 2).double()
r = F.interpolate(g, size=(6, 6), mode='bicubic', align_corners=False)
sys.stdout.write(r.float().permute(0, 2, 3, 1).flatten(1, 2).contiguous().numpy().tobytes().hex())
`, [fixturePath('abspos_interp_headreinit.pth')]);
    const b = Buffer.from(hex, 'hex');
    const torch64 = new Float32Array(b.buffer, b.byteOffset, b.length / 4);
    expect(maxAbsDiff(ours.subarray(48), torch64)).toBe(0);
  });
});

describe('interpolation primitives', () => {
  it('not-a-knot spline reproduces cubics exactly and interpolates the samples', () => {
    const x = [-4.75, -2.5, -1, 0, 1, 2.5, 4.75];
    const f = (t: number) => 0.3 * t ** 3 - t ** 2 + 2 * t - 5;
    const t = [-5, -3.3, 0, 0.5, 4.75, 6];
    const W = cubicSplineWeights(x, t);
    t.forEach((tv, i) => {
      let s = 0;
      x.forEach((xv, j) => (s += W[i * x.length + j] * f(xv)));
      // float64 weights from a 7 x 7 solve (well conditioned) on |f| < 50: ~1e-13, inside 10 digits.
      expect(s).toBeCloseTo(f(Math.min(Math.max(tv, x[0]), x[x.length - 1])), 10);
    });
  });
  it('bicubic resize to the same size is the identity, and constant stays constant', () => {
    const src = Float32Array.from({ length: 2 * 4 * 4 }, (_, i) => Math.cos(i));
    // Same size: weights (0, 1, 0, 0), so only the float32 rounding of |v| <= 1 (2^-24) can differ.
    expect(maxAbsDiff(bicubicResize(src, 2, 4, 4, 4, 4), src)).toBeLessThanOrEqual(2 ** -24);
    const c = new Float32Array(16).fill(2.5);
    for (const v of bicubicResize(c, 1, 4, 4, 7, 5)) expect(v).toBeCloseTo(2.5, 6);
  });
  it('strips module. as a prefix by default, anywhere on request', () => {
    const t = { dtype: 'float32' as const, shape: [1], data: new Float32Array(1) };
    const root = new PyDict('builtins.dict', [['module', new PyDict('builtins.dict', [['module.a.submodule.w', t]])]]);
    const target: TargetModel = { depth: 0, numClasses: 1, useMeanPooling: false, useRelPosBias: false, useAbsPosEmb: false, windowSize: [1, 1], numPatches: 1 };
    expect([...adaptStateDict(root, target).stateDict.keys()]).toEqual(['a.submodule.w']);
    expect([...adaptStateDict(root, target, { stripModule: 'anywhere' }).stateDict.keys()]).toEqual(['a.subw']);
  });
});

describe('official full-size key layouts', () => {
  for (const size of ['base', 'large']) {
    it(`beit_${size}: pt22k checkpoint layout -> MOOD fine-tuning model`, async () => {
      const { readFileSync } = await import('node:fs');
      const { StorageRef } = await import('../../lib/checkpoint/tensorref');
      const j = JSON.parse(readFileSync(fixturePath(`official_keys_beit_${size}_patch16_224.json`), 'utf8'));
      const pt: Array<[string, number[], string, string]> = j.variants.pretrain_pt22k.keys;
      const ft: Array<[string, number[], string, string]> = j.variants.mood_finetune.keys;
      // Shapes only: adaptation at the same resolution never reads tensor bytes.
      const storage = new StorageRef({ key: '0', dtype: 'float32', numel: 1 << 30, file: '<none>', byteOffset: 0, location: 'cpu' });
      const sd = new PyDict('collections.OrderedDict', pt.map(([k, shape]) => [k, new TensorRef({ dtype: 'float32', shape, stride: shape.map(() => 1), storageOffset: 0, storage })]));
      const depth = ft.filter(([k]) => /^blocks\.\d+\.norm1\.weight$/.test(k)).length;
      const res = adaptStateDict(new PyDict('builtins.dict', [['model', sd]]), {
        depth, numClasses: 1000, useMeanPooling: true, useRelPosBias: true, useAbsPosEmb: false, windowSize: [14, 14], numPatches: 196,
        expectedKeys: new Map(ft.map(([k, s]) => [k, s])),
      });
      expect(res.mismatchedKeys).toEqual([]);
      expect(res.missingKeys).toEqual(['fc_norm.weight', 'fc_norm.bias', 'head.weight', 'head.bias']);
      expect([...res.unexpectedKeys].sort()).toEqual(['lm_head.bias', 'lm_head.weight', 'mask_token', 'norm.bias', 'norm.weight']);
      expect(res.ignoredMissingKeys.length).toBe(depth);
      expect(res.stateDict.size + res.missingKeys.length + res.ignoredMissingKeys.length).toBe(ft.length);
    });
  }
});
