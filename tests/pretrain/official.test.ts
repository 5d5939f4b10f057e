/**
 * Official layouts (fixtures made by the official BEiT/MOOD code, tests/fixtures/official): our MIM model has
 * exactly the state-dict entries of modeling_pretrain.beit_{base,large}_patch16_224_8k_vocab as
 * run_beit_pretraining.py builds them (the layout of beit_*_pt22k.pth), and a pre-training checkpoint
 * written by the official code loads strictly, tensor for tensor.
 */
import * as fs from 'node:fs';
import { describe, expect, it } from 'vitest';
import { MimModel, mimConfig } from '../../lib/pretrain/model';
import { loadTensors } from '../../lib/checkpoint';
import { fixturePath } from '../helpers/fixtures';

type Entry = [string, number[], string, 'parameter' | 'buffer'];

describe('official pre-training layouts', () => {
  for (const size of ['base', 'large'] as const) {
    it(`beit_${size}_patch16_224_8k_vocab: names, shapes, dtypes, kinds, order`, () => {
      const file = fixturePath(`official_keys_beit_${size}_patch16_224.json`);
      const v = JSON.parse(fs.readFileSync(file, 'utf8')).variants.pretrain_pt22k as { kwargs: Record<string, unknown>; keys: Entry[]; num_parameters: number };
      const m = new MimModel({ ...mimConfig(`beit_${size}_patch16_224_8k_vocab`), use_shared_rel_pos_bias: true, use_abs_pos_emb: false, init_values: 0.1, device: 'meta' });
      const spec = m.stateSpec();
      expect(spec).toEqual(v.keys);
      const params = spec.filter((e) => e[3] === 'parameter').reduce((n, e) => n + e[1].reduce((a, b) => a * b, 1), 0);
      expect(params).toBe(v.num_parameters);
      m.dispose();
    });
  }

  it('a pre-training checkpoint of the official code loads strictly', async () => {
    const sd = await loadTensors(fixturePath('pt_shared_relpos_pt22k.pth'), { key: 'model' });
    const m = new MimModel({ img_size: 32, patch_size: 8, embed_dim: 48, depth: 2, num_heads: 4, vocab_size: 48, target: 'tokens', use_shared_rel_pos_bias: true, use_abs_pos_emb: false, init_values: 0.1 });
    const r = await m.loadStateDict(sd, { strict: true });
    expect(r.missingKeys).toEqual([]);
    expect(r.unexpectedKeys).toEqual([]);
    const now = m.stateDict();
    expect([...now.keys()]).toEqual([...sd.keys()]);
    for (const [k, t] of sd) {
      const a = await t.data(), b = await now.get(k)!.data();
      expect(Array.from(b as ArrayLike<number | bigint>), k).toEqual(Array.from(a as ArrayLike<number | bigint>));
    }
    for (const t of [...sd.values(), ...now.values()]) t.dispose();
    m.dispose();
  });
});
