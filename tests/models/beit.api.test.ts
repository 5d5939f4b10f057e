/**
 * The Beit API: official key layouts (full-size models on the meta device), option inference from
 * checkpoints and its contradictions, input and load errors, train/eval, the benchmark train step.
 */
import * as fs from 'node:fs';
import { describe, expect, it } from 'vitest';
import { Beit, beitConfig, beitConfigNames, createModel } from '../../lib/models/beit';
import { Tensor } from '../../lib/tensor';
import { fixturePath } from '../helpers/fixtures';

type KeyEntry = [string, number[], string, 'parameter' | 'buffer'];
interface Variant {
  kwargs: Record<string, unknown>;
  keys: KeyEntry[];
  num_parameters: number;
}

function officialKeys(model: string): Record<string, Variant> {
  return JSON.parse(fs.readFileSync(fixturePath(`official_keys_${model}.json`), 'utf8')).variants;
}

describe('official key layouts', () => {
  for (const name of ['beit_base_patch16_224', 'beit_large_patch16_224']) {
    for (const variant of ['mood_finetune', 'mood_finetune_cls', 'factory_default']) {
      it(`${name} ${variant}: names, shapes, dtypes, kinds, order`, () => {
        const v = officialKeys(name)[variant];
        const m = createModel(name, { ...(v.kwargs as object), device: 'meta' });
        const spec = m.stateSpec();
        expect(spec).toEqual(v.keys);
        expect(spec.filter((e) => e[3] === 'parameter').reduce((a, e) => a + e[1].reduce((x, y) => x * y, 1), 0)).toBe(v.num_parameters);
        m.dispose();
      });
    }
    it(`${name} pretrain_pt22k: the shared-table encoder layout (without mask_token / lm_head)`, () => {
      const v = officialKeys(name).pretrain_pt22k;
      const m = createModel(name, {
        use_shared_rel_pos_bias: true,
        use_abs_pos_emb: false,
        init_values: 0.1,
        use_mean_pooling: false,
        num_classes: 0,
        device: 'meta',
      });
      expect(m.stateSpec()).toEqual(v.keys.filter(([k]) => k !== 'mask_token' && !k.startsWith('lm_head.')));
      m.dispose();
    });
  }
});

describe('configs and options', () => {
  it('lists the named configs', () => {
    expect(beitConfigNames()).toEqual(expect.arrayContaining(['beit_base_patch16_224', 'beit_base_patch16_384', 'beit_large_patch16_224', 'beit_large_patch16_384', 'beit_large_patch16_512']));
    expect(beitConfig('beit_large_patch16_512')).toMatchObject({ img_size: 512, embed_dim: 1024, depth: 24, num_heads: 16, layer_norm_eps: 1e-6, qkv_bias: true });
  });
  it('overrides win over the named config; unknown names and options are errors', () => {
    const m = createModel('beit_test_tiny', { num_classes: 5, use_rel_pos_bias: true, init_values: null });
    expect(m.options).toMatchObject({ img_size: 32, embed_dim: 48, num_classes: 5, use_rel_pos_bias: true, init_values: 0 });
    expect(m.stateSpec().some(([k]) => k.includes('gamma'))).toBe(false);
    m.dispose();
    expect(() => createModel('beit_huge')).toThrow(/unknown BEiT config 'beit_huge'/);
    expect(() => createModel({ img_szie: 32 } as never)).toThrow(/unknown BEiT option 'img_szie'/);
    expect(() => createModel('beit_test_tiny', { img_size: 30 })).toThrow(/not a multiple of patch_size/);
  });
});

describe('forward, state dict, modes', () => {
  it('forward variants agree and input errors name expected vs got', async () => {
    const m = createModel('beit_test_micro', { seed: 3, use_rel_pos_bias: true, init_values: 0.1 });
    const x = Tensor.randn([2, 3, 16, 16], { seed: 1 });
    const both = m.forwardBoth(x);
    const logits = await m.forward(x).toNumbers();
    expect(logits).toEqual(await both.logits.toNumbers());
    expect(await m.forwardFeatures(x).toNumbers()).toEqual(await both.features.toNumbers());
    expect(m.forwardTokens(x).shape).toEqual([2, 5, 16]);
    const blocks = m.intermediateLayers(x);
    expect(blocks.length).toBe(2);
    expect(await blocks[1].toNumbers()).toEqual(await m.forwardTokens(x).toNumbers());
    await expect(m.forward(Tensor.randn([2, 3, 32, 32])).data()).rejects.toThrow(/expected float32\[B, 3, 16, 16\] on cpu, got float32\[2, 3, 32, 32\]/);
    await expect(m.forward(Tensor.randn([2, 1, 16, 16])).data()).rejects.toThrow(/wrong channel count/);
    await expect(m.forward(Tensor.randn([2, 3, 16, 16], { dtype: 'float64' })).data()).rejects.toThrow(/got float64/);
    m.dispose();
    expect(() => m.forward(x)).toThrow(/after dispose/);
  });

  it('stateDict / namedParameters / loadStateDict round trip, with clear errors', async () => {
    const a = createModel('beit_test_micro', { seed: 1, use_rel_pos_bias: true });
    const b = createModel('beit_test_micro', { seed: 2, use_rel_pos_bias: true });
    const sd = a.stateDict();
    expect(sd.get('blocks.0.attn.relative_position_index')!.dtype).toBe('int64');
    expect(a.namedParameters().has('blocks.0.attn.relative_position_index')).toBe(false);
    expect([...sd.keys()]).toEqual(a.stateSpec().map((e) => e[0]));
    const x = Tensor.randn([1, 3, 16, 16], { seed: 5 });
    expect(await b.forward(x).toNumbers()).not.toEqual(await a.forward(x).toNumbers());
    const r = await b.loadStateDict(sd);
    expect(r).toEqual({ missingKeys: [], unexpectedKeys: [] });
    expect(await b.forward(x).toNumbers()).toEqual(await a.forward(x).toNumbers());

    const partial = new Map(sd);
    partial.delete('head.bias');
    partial.set('mask_token', Tensor.zeros([1, 1, 16]));
    await expect(b.loadStateDict(partial)).rejects.toThrow(/Missing key\(s\): head.bias[\s\S]*Unexpected key\(s\): mask_token/);
    expect(await b.loadStateDict(partial, { strict: false })).toEqual({ missingKeys: ['head.bias'], unexpectedKeys: ['mask_token'] });
    await expect(b.loadStateDict({ 'head.weight': Tensor.zeros([4, 16]) }, { strict: false })).rejects.toThrow(
      /size mismatch for head.weight: copying a param with shape \[4, 16\] from checkpoint, the shape in current model is \[3, 16\]/,
    );
    a.dispose();
    b.dispose();
  });

  it('train() turns drop path on, eval() off; trainStep gives a finite loss', async () => {
    const m = createModel('beit_test_tiny', { seed: 4, drop_path_rate: 0.5, use_rel_pos_bias: true, init_values: 0.1 });
    const x = Tensor.randn([4, 3, 32, 32], { seed: 2 });
    expect(m.training).toBe(false);
    const e1 = await m.forwardFeatures(x).toNumbers();
    expect(await m.forwardFeatures(x).toNumbers()).toEqual(e1);
    m.train();
    expect(m.training).toBe(true);
    expect(await m.forwardFeatures(x).toNumbers()).not.toEqual(e1);
    m.eval();
    expect(await m.forwardFeatures(x).toNumbers()).toEqual(e1);
    const loss = await m.trainStep(x, Tensor.of([0, 1, 2, 3], { dtype: 'int64' })).item();
    // head init_scale 0.001: logits ~1e-4, and |CE - ln 10| <= 2 max|z|: far inside 0.05.
    expect(Math.abs(loss - Math.log(10))).toBeLessThan(0.05);
    expect(m.training).toBe(false);
    m.dispose();
  });
});

describe('fromCheckpoint option inference', () => {
  it('infers everything the checkpoint implies', async () => {
    const m = await Beit.fromCheckpoint(fixturePath('ft_meanpool.pth'));
    expect(m.options).toMatchObject({ img_size: 32, patch_size: 8, embed_dim: 48, depth: 2, num_heads: 4, mlp_ratio: 4, num_classes: 10, qkv_bias: true, use_mean_pooling: true, use_rel_pos_bias: true, use_abs_pos_emb: false });
    expect(m.options.init_values).toBeGreaterThan(0);
    expect(m.loadReport!.inferred).toMatchObject({ embed_dim: 48, depth: 2, num_heads: 4 });
    expect(m.loadReport!.missingKeys).toEqual([]);
    m.dispose();
    const p = await Beit.fromCheckpoint(fixturePath('pt_shared_relpos_pt22k.pth'), { num_classes: 10 });
    expect(p.options).toMatchObject({ use_rel_pos_bias: true, use_shared_rel_pos_bias: false, use_mean_pooling: true, num_heads: 4 });
    expect(p.loadReport!.unexpectedKeys).toEqual(expect.arrayContaining(['mask_token', 'norm.weight']));
    p.dispose();
  });

  it('contradictions are errors naming the evidence', async () => {
    await expect(Beit.fromCheckpoint(fixturePath('ft_meanpool.pth'), { embed_dim: 64 })).rejects.toThrow(/embed_dim: given 64, the checkpoint implies 48 \(patch_embed.proj.weight \[48, 3, 8, 8\]\)/);
    await expect(Beit.fromCheckpoint(fixturePath('ft_meanpool.pth'), { use_mean_pooling: false })).rejects.toThrow(/use_mean_pooling: given false.*fc_norm present/);
    await expect(Beit.fromCheckpoint(fixturePath('ft_cls_abspos.pth'), { use_rel_pos_bias: true })).rejects.toThrow(/use_rel_pos_bias/);
    await expect(Beit.fromCheckpoint(fixturePath('ft_cls_abspos.pth'))).rejects.toThrow(/num_heads cannot be inferred/);
    const m = await Beit.fromCheckpoint(fixturePath('ft_cls_abspos.pth'), { num_heads: 4 });
    expect(m.options).toMatchObject({ use_mean_pooling: false, use_abs_pos_emb: true, num_classes: 5, init_values: 0 });
    m.dispose();
  });
});
