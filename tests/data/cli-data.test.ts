import * as fs from 'node:fs';
import * as path from 'node:path';
import { describe, expect, it } from 'vitest';
import { buildProgram } from '../../lib/cli/main';
import { normalizeFlags } from '../../lib/cli/argv';
import { readNpy } from '../../lib/npy';
import { buildDataset, createLoader } from '../../lib/data';
import { IMAGENET30_WNIDS } from '../../lib/data/imagenet30';
import { makeCifar, tmpDir, maxAbsDiff } from './helpers';
import { describeWith } from '../helpers/requirements';

async function mood(...args: string[]): Promise<string> {
  const out: string[] = [];
  const write = process.stdout.write;
  process.stdout.write = ((s: string) => (out.push(String(s)), true)) as typeof process.stdout.write;
  try {
    await buildProgram().parseAsync(normalizeFlags(args), { from: 'user' });
  } finally {
    process.stdout.write = write;
  }
  return out.join('');
}

describeWith(['torch', 'torchvision', 'pil', 'numpy'])('mood data preview', () => {
  it('saves exactly the evaluation batch (first --count samples) as .npy + a PNG, snake_case flags work', async () => {
    const dir = tmpDir('cli');
    makeCifar(dir, 'cifar10', 10, 12);
    const out = path.join(dir, 'p.npy');
    const json = JSON.parse(await mood('data', 'preview', '--data_set', 'cifar10', '--data_path', dir, '--input_size', '48', '--count', '5', '--out', out, '--json'));
    expect(json.count).toBe(5);
    expect(json.indices).toEqual([0, 1, 2, 3, 4]);
    expect(json.samples).toBe(12);
    const arr = readNpy(out);
    expect(arr.shape).toEqual([5, 3, 48, 48]);
    const ds = await buildDataset({ dataSet: 'cifar10', dataPath: dir, train: false });
    for await (const b of createLoader(ds, { batchSize: 5, inputSize: 48 })) {
      expect(maxAbsDiff(arr.typed() as Float32Array, (await b.images.data()) as Float32Array)).toBe(0);
      b.images.dispose();
      break;
    }
    const png = fs.readFileSync(path.join(dir, 'p.png'));
    expect(png.subarray(1, 4).toString()).toBe('PNG');
    await expect(mood('data', 'preview', '--data-set', 'cifar10', '--data-path', path.join(dir, 'nope'))).rejects.toThrow(/nope does not exist/);
    fs.rmSync(dir, { recursive: true });
  });
});

describe('mood data make-imagenet30', () => {
  it('links the 30 classes into train/ and val/, is idempotent, and names missing folders', async () => {
    const dir = tmpDir('in30');
    const src = path.join(dir, 'in1k');
    const wnids = Object.values(IMAGENET30_WNIDS);
    expect(wnids.length).toBe(30);
    for (const s of ['train', 'val']) for (const w of wnids) fs.mkdirSync(path.join(src, s, w), { recursive: true });
    const out = path.join(dir, 'in30');
    expect(JSON.parse(await mood('data', 'make-imagenet30', '--imagenet1k', src, '--out', out, '--json'))).toMatchObject({ created: 60, existing: 0 });
    expect(fs.realpathSync(path.join(out, 'test', 'rotary_dial_telephone'))).toBe(fs.realpathSync(path.join(src, 'val', 'n03187595')));
    expect(fs.realpathSync(path.join(out, 'train', 'acorn'))).toBe(fs.realpathSync(path.join(src, 'train', 'n12267677')));
    expect(JSON.parse(await mood('data', 'make-imagenet30', '--imagenet1k', src, '--out', out, '--json'))).toMatchObject({ created: 0, existing: 60 });
    fs.rmSync(path.join(src, 'val', 'n09472597'), { recursive: true });
    await expect(mood('data', 'make-imagenet30', '--imagenet1k', src, '--out', path.join(dir, 'x'))).rejects.toThrow(/1 class folder\(s\) missing.*val\/n09472597/);
    fs.rmSync(dir, { recursive: true });
  });
});
