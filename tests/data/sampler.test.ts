import { expect, it } from 'vitest';
import { epochIndices, shardSize } from '../../lib/data';
import { pyJson } from './helpers';
import { describeWith } from '../helpers/requirements';

describeWith(['torch', 'torchvision', 'pil', 'numpy'])('samplers vs torch.utils.data.DistributedSampler', () => {
  it('shuffle/seed/epoch/padding/drop_last/rank stride all match', async () => {
    const cases: Array<[number, number, boolean, boolean, number, number]> = [];
    for (const [n, world] of [[10, 3], [17, 4], [5, 8], [100, 1], [64, 2]] as const)
      for (const shuffle of [true, false]) for (const dropLast of [false, true]) for (const epoch of [0, 3]) cases.push([n, world, shuffle, dropLast, 42, epoch]);
    const ref = pyJson<number[][][]>(
      `
import json, sys, torch
from torch.utils.data import DistributedSampler
out = []
for n, world, shuffle, drop_last, seed, epoch in json.loads(sys.argv[1]):
    per = []
    for r in range(world):
        s = DistributedSampler(list(range(n)), num_replicas=world, rank=r, shuffle=shuffle, seed=seed, drop_last=drop_last)
        s.set_epoch(epoch)
        per.append(list(iter(s)))
    out.append(per)
print(json.dumps(out))
`,
      JSON.stringify(cases),
    );
    for (let c = 0; c < cases.length; c++) {
      const [n, world, shuffle, dropLast, seed, epoch] = cases[c];
      for (let r = 0; r < world; r++) {
        const ours = await epochIndices(n, epoch, { shuffle, seed, rank: r, worldSize: world, dropLast });
        expect(Array.from(ours), `case ${JSON.stringify(cases[c])} rank ${r}`).toEqual(ref[c][r]);
        expect(ours.length).toBe(shardSize(n, { worldSize: world, dropLast }));
      }
    }
  });

  it('rejects a rank outside the world', async () => {
    await expect(epochIndices(10, 0, { shuffle: true, seed: 0, rank: 2, worldSize: 2, dropLast: false })).rejects.toThrow(/rank must be an integer in \[0, 1\]/);
  });
});
