/**
 * One pre-training step vs plain PyTorch (scripts/parity/pretrain_step.py, Debian torch 1.13):
 * same weights, batch, mask and targets -> loss, every parameter's gradient, and the parameters after
 * one AdamW step over the reference's parameter groups. Also: official state-dict key names and order,
 * the relative position index buffers, and input errors.
 */
import { execFileSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { MimModel, MimOptions, mimConfig, mimConfigNames } from '../../lib/pretrain/model';
import { MaskingGenerator, batchMasks } from '../../lib/pretrain/masking';
import { saveTensors, loadTensors, readCheckpoint, PyDict } from '../../lib/checkpoint';
import { ndarray, writeNpy } from '../../lib/npy';
import { Tensor } from '../../lib/tensor';
import { REPO_ROOT, SYSTEM_PYTHON } from '../helpers/fixtures';

const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'mood-mim-'));
afterAll(() => fs.rmSync(tmp, { recursive: true, force: true }));

function lcg(seed: number): () => number {
  let s = seed >>> 0;
  return () => {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
    return s / 4294967296;
  };
}

async function maxAbsDiff(a: Tensor, b: Tensor): Promise<{ diff: number; scale: number }> {
  const x = (await a.data()) as Float32Array, y = (await b.data()) as Float32Array;
  expect(x.length).toBe(y.length);
  let diff = 0, scale = 0;
  for (let i = 0; i < x.length; i++) {
    diff = Math.max(diff, Math.abs(x[i] - y[i]));
    scale = Math.max(scale, Math.abs(y[i]));
  }
  return { diff, scale };
}

const optim = { lr: 1e-3, weight_decay: 0.05, betas: [0.9, 0.98], eps: 1e-8 };

async function runCase(name: string, opts: MimOptions, B: number) {
  const dir = path.join(tmp, name);
  fs.mkdirSync(dir);
  const model = new MimModel({ ...opts, seed: 3, attention: 'exact' });
  const o = model.options;
  const N = model.numPatches, S = o.img_size;
  const rnd = lcg(11);
  const xs = new Float32Array(B * 3 * S * S).map(() => rnd() * 4 - 2);
  const gen = new MaskingGenerator({ height: model.grid, width: model.grid, numMaskingPatches: Math.round(N * 0.4), minNumPatches: 2 });
  const mask = batchMasks(gen, 5, 0, Array.from({ length: B }, (_, i) => i));
  const targets = BigInt64Array.from({ length: B * N }, () => BigInt(Math.floor(rnd() * o.vocab_size)));
  // Non-trivial values for parameters initialised to constants (biases, tables, gammas), so their
  // gradients and updates are exercised with generic values.
  {
    const sd = model.stateDict();
    const perturbed = new Map<string, Tensor>();
    for (const [k, t] of sd) {
      if (k.endsWith('relative_position_index')) continue;
      const v = (await t.data()) as Float32Array;
      perturbed.set(k, Tensor.fromArray(v.map((e) => e + (rnd() - 0.5) * 0.1), t.shape));
    }
    await model.loadStateDict(perturbed, { strict: false });
    for (const t of [...sd.values(), ...perturbed.values()]) t.dispose();
  }
  const sd = model.stateDict();
  await saveTensors(path.join(dir, 'state.pth'), sd);
  writeNpy(path.join(dir, 'x.npy'), ndarray('float32', [B, 3, S, S], xs));
  writeNpy(path.join(dir, 'mask.npy'), ndarray('bool', [B, N], mask));
  writeNpy(path.join(dir, 'target.npy'), ndarray('int64', [B, N], targets));
  fs.writeFileSync(path.join(dir, 'config.json'), JSON.stringify({ model: o, optim }));
  execFileSync(SYSTEM_PYTHON, [path.join(REPO_ROOT, 'scripts/parity/pretrain_step.py'), dir], { env: { ...process.env, OMP_NUM_THREADS: '1' } });

  const ref = readCheckpoint(path.join(dir, 'out.pth')).root as PyDict;
  const refKeys = ref.get('keys') as string[];
  expect([...sd.keys()]).toEqual(refKeys);  // names and state_dict order
  const indices = await loadTensors(path.join(dir, 'out.pth'), { key: 'indices' });
  for (const [k, t] of indices) {
    expect(Array.from((await sd.get(k)!.data()) as BigInt64Array)).toEqual(Array.from((await t.data()) as BigInt64Array));
  }

  const x = Tensor.fromArray(xs, [B, 3, S, S]);
  const m = model.maskTensor(mask, B);
  const tgt = Tensor.fromArray(targets, [B, N]);
  model.train();
  const got = await model.lossBackward(x, m, o.target === 'tokens' ? tgt : undefined);
  expect(got.masked).toBe(mask.reduce((a, b) => a + b, 0));
  const refLoss = ref.get('loss') as number;
  // The loss: a float32 mean of cross-entropies over the masked patches, each from a softmax over the
  // vocabulary after the same forward: the gradient bound below (1e-5 relative) covers it.
  expect(Math.abs(got.loss - refLoss)).toBeLessThanOrEqual(1e-5 * Math.max(1, Math.abs(refLoss)));
  if (o.target === 'tokens') expect(got.accuracy).toBeCloseTo(ref.get('accuracy') as number, 6);
  else expect(Number.isNaN(got.accuracy)).toBe(true);

  const refGrads = await loadTensors(path.join(dir, 'out.pth'), { key: 'grads' });
  const grads = model.grads();
  expect([...grads.keys()].sort()).toEqual([...refGrads.keys()].sort());
  // Gradients: 1e-5 relative to max(1, |largest element|), the float32 bound n * 2^-24 on the longest
  // reduction in them (the weight gradients of the 4C = 192-wide MLP summed over B * (N + 1) <= 51
  // tokens: n ~ 170 terms, 1.0e-5) — not a measured margin.
  let worstGrad = 0;
  for (const [k, g] of grads) {
    const { diff, scale } = await maxAbsDiff(g, refGrads.get(k)!);
    worstGrad = Math.max(worstGrad, diff / Math.max(1, scale));
  }
  expect(worstGrad).toBeLessThanOrEqual(1e-5);

  // One AdamW step from the same point: parameters after the update. At step 1 AdamW moves each element
  // by lr * u(g) with u(g) = g / (|g| + eps) (m_hat = g, sqrt(v_hat) = |g|), plus decoupled weight decay.
  // Where |g| is near eps or near its own rounding error, u(g) is decided by rounding: a gradient that
  // differs from PyTorch's by 1e-10 can move the update by ~lr (seen: 7.5e-6 on an AVX-512 CPU with
  // OPENBLAS_CORETYPE=Haswell). So each element is held to what its two gradients allow:
  //   |p_ours - p_ref| <= lr * |u(g_ours) - u(g_ref)| + 2 ulp(p) + lr * 2^-21,
  // g_ours = this step's gradient (the gradients above are held to 1e-5), 2 ulp(p) the float32 rounding
  // of the two in-place updates on each side, lr * 2^-21 a few float32 ulps of the step quotient (|u| <= 1).
  // Wherever |g| >> eps, u(g_ours) = u(g_ref) to ~1e-11, so a wrong weight-decay group (lr * wd * |p|
  // ~ 1e-6 on the 0.02-scale weights, vs 2 ulp(0.02) = 3.7e-9) still fails.
  await model.loadStateDict(new Map([...sd].filter(([k]) => !k.endsWith('relative_position_index'))), { strict: false });
  const stats = await model.step(x, m, o.target === 'tokens' ? tgt : undefined, { lr: optim.lr, weightDecay: optim.weight_decay, betas: [0.9, 0.98], eps: 1e-8 });
  expect(Math.abs(stats.loss - refLoss)).toBeLessThanOrEqual(1e-5 * Math.max(1, Math.abs(refLoss)));
  expect(stats.gradNorm).toBeGreaterThan(0);
  const after = await loadTensors(path.join(dir, 'out.pth'), { key: 'after' });
  const now = model.stateDict();
  const stepGrads = model.grads();
  const u = (g: number) => g / (Math.abs(g) + optim.eps);
  const ulp32 = (v: number) => (v === 0 ? 2 ** -149 : 2 ** (Math.floor(Math.log2(Math.abs(v))) - 23));
  let worstParam = 0, worstRatio = 0, rounded = 0;
  for (const [k, t] of after) {
    const pr = (await t.data()) as Float32Array, po = (await now.get(k)!.data()) as Float32Array;
    const p0 = (await sd.get(k)!.data()) as Float32Array;
    const gr = (await refGrads.get(k)!.data()) as Float32Array, go = (await stepGrads.get(k)!.data()) as Float32Array;
    for (let i = 0; i < pr.length; i++) {
      const diff = Math.abs(po[i] - pr[i]);
      const fromGrad = optim.lr * Math.abs(u(go[i]) - u(gr[i]));
      const bound = fromGrad + 2 * ulp32(Math.max(Math.abs(pr[i]), Math.abs(p0[i]))) + optim.lr * 2 ** -21;
      worstParam = Math.max(worstParam, diff);
      worstRatio = Math.max(worstRatio, diff / bound);
      if (fromGrad > 1e-9) rounded++;
    }
  }
  expect(worstRatio).toBeLessThanOrEqual(1);
  const mo = model.moments();
  expect(mo.steps).toBe(1);
  expect(mo.moments.size).toBe(after.size);
  for (const [a, b] of mo.moments.values()) { a.dispose(); b.dispose(); }
  for (const t of [x, m, tgt, ...sd.values(), ...now.values(), ...grads.values(), ...stepGrads.values(), ...refGrads.values(), ...after.values(), ...indices.values()]) t.dispose();
  model.dispose();
  if (process.env.MOOD_VERBOSE) console.log(`[${name}] loss ours ${got.loss} ref ${refLoss} acc ${got.accuracy}; worst grad rel diff ${worstGrad.toExponential(2)} over ${grads.size} grads; worst param diff after AdamW ${worstParam.toExponential(2)} (${(worstRatio * 100).toFixed(1)} % of its bound; ${rounded} elements whose update is decided by gradient rounding); gradNorm ${stats.gradNorm}`);
  return { loss: got.loss, worstGrad, worstParam };
}

const tiny = { img_size: 32, patch_size: 8, embed_dim: 48, depth: 2, num_heads: 4 };

describe('pre-training step vs PyTorch', () => {
  it('token targets, shared relative position bias, layer scale (run_beit_pretraining defaults)', async () => {
    const r = await runCase('tokens', { ...tiny, vocab_size: 64, target: 'tokens', use_abs_pos_emb: false, use_shared_rel_pos_bias: true, init_values: 0.1 }, 3);
    expect(r.loss).toBeGreaterThan(1);
  });
  it('pixel targets, absolute position embedding, per-block relative bias, no layer scale', async () => {
    await runCase('pixels', { ...tiny, target: 'pixels', use_abs_pos_emb: true, use_rel_pos_bias: true, init_values: 0 }, 2);
  });
});

describe('model construction and state', () => {
  it('official pre-training configs and names', () => {
    expect(mimConfigNames()).toContain('beit_base_patch16_224_8k_vocab');
    const base = new MimModel({ ...mimConfig('beit_base_patch16_224_8k_vocab'), use_abs_pos_emb: false, use_shared_rel_pos_bias: true, init_values: 0.1, device: 'meta' });
    const spec = base.stateSpec();
    const names = spec.map((e) => e[0]);
    expect(names.slice(0, 4)).toEqual(['cls_token', 'mask_token', 'patch_embed.proj.weight', 'patch_embed.proj.bias']);
    expect(names).toContain('rel_pos_bias.relative_position_bias_table');
    expect(names.slice(-4)).toEqual(['norm.weight', 'norm.bias', 'lm_head.weight', 'lm_head.bias']);
    expect(spec.find((e) => e[0] === 'lm_head.weight')![1]).toEqual([8192, 768]);
    expect(spec.find((e) => e[0] === 'blocks.11.gamma_1')![1]).toEqual([768]);
    base.dispose();
    const px = new MimModel({ ...mimConfig('beit_test_tiny_8k_vocab'), target: 'pixels', device: 'meta' });
    expect(px.stateSpec().find((e) => e[0] === 'lm_head.weight')![1]).toEqual([8 * 8 * 3, 48]);
    px.dispose();
  });
  it('bad input: clear errors', async () => {
    const model = new MimModel({ ...tiny, target: 'tokens', vocab_size: 16 });
    const x = Tensor.zeros([2, 3, 32, 32]);
    const goodMask = model.maskTensor(new Uint8Array(32).fill(1), 2);
    const noMask = model.maskTensor(new Uint8Array(32), 2);
    const wrongMask = Tensor.zeros([2, 15]);
    const tgt = Tensor.fromArray(new BigInt64Array(32).fill(20n), [2, 16]);
    await expect(model.lossBackward(x, goodMask, tgt)).rejects.toThrow(/ids must be in \[0, 16\), got 20..20/);
    await expect(model.lossBackward(x, noMask, Tensor.fromArray(new BigInt64Array(32), [2, 16]))).rejects.toThrow(/mask selects no patch/);
    await expect(model.lossBackward(x, wrongMask, tgt)).rejects.toThrow(/MIM mask: expected bool\[2, 16\]/);
    await expect(model.lossBackward(x, goodMask)).rejects.toThrow(/MIM token targets: expected int64\[2, 16\]/);
    expect(() => model.maskTensor(new Uint8Array(5), 2)).toThrow(/expected 2 x 16 entries/);
    expect(() => new MimModel({ target: 'words' as 'tokens' })).toThrow(/target must be 'tokens' or 'pixels'/);
    expect(() => new MimModel({ ...tiny, head: 3 } as MimOptions)).toThrow(/unknown MIM option 'head'/);
    expect(() => mimConfig('beit_huge_8k_vocab')).toThrow(/unknown MIM model 'beit_huge_8k_vocab'/);
    // A checkpoint with the other target kind's lm_head.
    const px = new MimModel({ ...tiny, target: 'pixels' });
    const sd = px.stateDict();
    await expect(model.loadStateDict(sd)).rejects.toThrow(/size mismatch for lm_head.weight.*lm_head width/s);
    for (const t of [x, goodMask, noMask, wrongMask, tgt, ...sd.values()]) t.dispose();
    px.dispose();
    model.dispose();
  });
});
