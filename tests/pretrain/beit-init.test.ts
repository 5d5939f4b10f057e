/**
 * pretrain({model: Beit, loader, ...}): the demo's MIM-init entry point pre-trains a BEiT in place —
 * backbone tensors change to what the MIM twin learned, the head and pooling norm are untouched,
 * the MIM loss falls.
 */
import { describe, expect, it } from 'vitest';
import { pretrain, defaultMasking } from '../../lib/pretrain';
import { createModel } from '../../lib/models/beit';
import { buildDataset, createLoader } from '../../lib/data';
import { describeWith } from '../helpers/requirements';

const FMNIST = '/usr/share/datasets/fashion-mnist';

describe('defaultMasking', () => {
  it('is the reference setting at 14 x 14 and ~38% elsewhere', () => {
    expect(defaultMasking(14)).toEqual({ numMaskPatches: 75, minMaskPatchesPerBlock: 16 });
    expect(defaultMasking(7)).toEqual({ numMaskPatches: 19, minMaskPatchesPerBlock: 4 });
    expect(defaultMasking(2)).toEqual({ numMaskPatches: 2, minMaskPatchesPerBlock: 1 });
  });
});

describeWith(['fashion-mnist'])('pretrain a BEiT in place', () => {
  it('changes the backbone, keeps the head, lowers the loss', async () => {
    const model = createModel({ img_size: 28, patch_size: 4, embed_dim: 32, depth: 2, num_heads: 2, num_classes: 3, use_rel_pos_bias: true, use_abs_pos_emb: false, init_values: 0.1, seed: 1 } as never);
    const before = model.stateDict();
    const snap = new Map<string, Float32Array>();
    for (const [k, t] of before) if (!k.endsWith('relative_position_index')) snap.set(k, Float32Array.from((await t.data()) as Float32Array));
    for (const t of before.values()) t.dispose();
    const full = await buildDataset({ dataSet: 'fashion_mnist', dataPath: FMNIST, train: true, classIdx: 7 });
    const ds = (full as unknown as { subset(i: Int32Array): typeof full }).subset(Int32Array.from({ length: 1024 }, (_, i) => i));
    const loader = createLoader(ds, { batchSize: 128, inputSize: 28, shuffle: true, seed: 0, dropLast: true });
    const losses: number[] = [];
    await pretrain({ model, loader, epochs: 3, lr: 2e-3, quiet: true, onEpoch: (_e, l) => losses.push(l) });
    expect(losses).toHaveLength(3);
    expect(losses[2]).toBeLessThan(losses[0]);
    const after = model.stateDict();
    const changed = (k: string) => (async () => {
      const a = (await after.get(k)!.data()) as Float32Array, b = snap.get(k)!;
      return a.some((v, i) => v !== b[i]);
    })();
    expect(await changed('blocks.0.attn.qkv.weight')).toBe(true);
    expect(await changed('patch_embed.proj.weight')).toBe(true);
    expect(await changed('blocks.1.attn.relative_position_bias_table')).toBe(true);
    expect(await changed('head.weight')).toBe(false);
    expect(await changed('fc_norm.weight')).toBe(false);
    for (const t of after.values()) t.dispose();
    model.dispose();
  });
});
