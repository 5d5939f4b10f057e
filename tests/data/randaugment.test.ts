import * as fs from 'node:fs';
import * as path from 'node:path';
import { describe, expect, it } from 'vitest';
import { Tensor } from '../../lib/tensor';
import { py, tmpDir } from './helpers';
import { describeWith } from '../helpers/requirements';

// Op ids and PIL calls of timm 0.3's increasing RandAugment ops (fill 128, bicubic), one magnitude each.
const OPS: Array<[number, string, number, string]> = [
  [0, 'AutoContrast', 0, 'ImageOps.autocontrast(img)'],
  [1, 'Equalize', 0, 'ImageOps.equalize(img)'],
  [2, 'Invert', 0, 'ImageOps.invert(img)'],
  [3, 'Rotate', 27, 'img.rotate(A, resample=Image.BICUBIC, fillcolor=F)'],
  [3, 'Rotate-neg', -13.5, 'img.rotate(A, resample=Image.BICUBIC, fillcolor=F)'],
  [4, 'PosterizeIncreasing', 1, 'ImageOps.posterize(img, int(A))'],
  [5, 'SolarizeIncreasing', 26, 'ImageOps.solarize(img, int(A))'],
  [6, 'SolarizeAdd', 99, 'img.point([min(255, i + int(A)) if i < 128 else i for i in range(256)] * 3)'],
  [7, 'ColorIncreasing', 1.81, 'ImageEnhance.Color(img).enhance(A)'],
  [7, 'ColorIncreasing-low', 0.19, 'ImageEnhance.Color(img).enhance(A)'],
  [8, 'ContrastIncreasing', 1.81, 'ImageEnhance.Contrast(img).enhance(A)'],
  [8, 'ContrastIncreasing-low', 0.19, 'ImageEnhance.Contrast(img).enhance(A)'],
  [9, 'BrightnessIncreasing', 1.81, 'ImageEnhance.Brightness(img).enhance(A)'],
  [9, 'BrightnessIncreasing-low', 0.19, 'ImageEnhance.Brightness(img).enhance(A)'],
  [10, 'SharpnessIncreasing', 1.81, 'ImageEnhance.Sharpness(img).enhance(A)'],
  [10, 'SharpnessIncreasing-low', 0.19, 'ImageEnhance.Sharpness(img).enhance(A)'],
  [11, 'ShearX', 0.27, 'img.transform(img.size, Image.AFFINE, (1, A, 0, 0, 1, 0), resample=Image.BICUBIC, fillcolor=F)'],
  [12, 'ShearY', -0.27, 'img.transform(img.size, Image.AFFINE, (1, 0, 0, A, 1, 0), resample=Image.BICUBIC, fillcolor=F)'],
  [13, 'TranslateXRel', 0.405, 'img.transform(img.size, Image.AFFINE, (1, 0, A * img.size[0], 0, 1, 0), resample=Image.BICUBIC, fillcolor=F)'],
  [14, 'TranslateYRel', -0.405, 'img.transform(img.size, Image.AFFINE, (1, 0, 0, 0, 1, A * img.size[1]), resample=Image.BICUBIC, fillcolor=F)'],
];

describeWith(['torch', 'torchvision', 'pil', 'numpy'])('RandAugment ops (timm 0.3 increasing set) vs PIL at fixed magnitudes', () => {
  it('every op equals its PIL ImageOps/ImageEnhance/transform result', async () => {
    const dir = tmpDir('ra');
    const H = 45;
    const W = 61;
    const px = new Uint8Array(3 * H * W);
    for (let c = 0; c < 3; c++)
      for (let y = 0; y < H; y++)
        for (let x = 0; x < W; x++) px[(c * H + y) * W + x] = Math.max(0, Math.min(255, Math.round(40 + 3 * x + 2 * y + 30 * Math.sin((x * (c + 1)) / 5) + ((x * 7 + y * 13 + c) % 17))));
    fs.writeFileSync(path.join(dir, 'in.bin'), px);
    const script = `
import numpy as np, sys, json
from PIL import Image, ImageOps, ImageEnhance
d, H, W = sys.argv[1], ${H}, ${W}
x = np.fromfile(d + '/in.bin', np.uint8).reshape(3, H, W)
F = (128, 128, 128)
ops = json.loads(sys.argv[2])
for k, (expr, A) in enumerate(ops):
    img = Image.fromarray(np.ascontiguousarray(x.transpose(1, 2, 0)), 'RGB')
    out = np.asarray(eval(expr)).transpose(2, 0, 1)
    np.ascontiguousarray(out).tofile(d + '/out%d.bin' % k)
`;
    py(script, dir, JSON.stringify(OPS.map((o) => [o[3], o[2]])));
    const t = Tensor.fromArray(px, [3, H, W]);
    const failures: string[] = [];
    for (let k = 0; k < OPS.length; k++) {
      const [op, name, arg] = OPS[k];
      const r = Tensor.runOp('data_ra_op', [t], { op, arg })[0];
      const ours = (await r.data()) as Uint8Array;
      r.dispose();
      const ref = fs.readFileSync(path.join(dir, `out${k}.bin`));
      let max = 0;
      let diff = 0;
      for (let i = 0; i < ref.length; i++) {
        const d = Math.abs(ref[i] - ours[i]);
        max = Math.max(max, d);
        if (d) diff++;
      }
      if (max > 0) failures.push(`${name}: ${diff} of ${ref.length} values differ, max ${max}`);
    }
    t.dispose();
    fs.rmSync(dir, { recursive: true });
    expect(failures).toEqual([]);
  });
});

describe('RandAugment plans in the training pipeline', () => {
  it('parses timm config strings; rejects others', async () => {
    const { parseRandAugment } = await import('../../lib/data/randaugment');
    expect(parseRandAugment('rand-m9-mstd0.5-inc1')).toMatchObject({ magnitude: 9, magnitudeStd: 0.5, increasing: true, numLayers: 2 });
    expect(parseRandAugment('rand-n3-m5')).toMatchObject({ magnitude: 5, numLayers: 3, increasing: false });
    expect(() => parseRandAugment('original-mstd0.5')).toThrow(/only RandAugment/);
    expect(() => parseRandAugment('rand-x3')).toThrow(/unknown key 'x'/);
  });

  it('a batch equals crop + flip + the planned ops (applied one by one) + normalise; ops/magnitudes are spread', async () => {
    const { InMemoryDataset, createLoader, transformSpec } = await import('../../lib/data');
    const { drawSamplePlan, PLAN } = await import('../../lib/data/plan');
    const N = 24;
    const S = 16;
    const px = new Uint8Array(N * 3 * S * S);
    for (let i = 0; i < px.length; i++) px[i] = (i * 29 + (i >> 6) * 5) % 256;
    const ds = new InMemoryDataset({ name: 'm', root: 'm', split: 'train', classes: ['a'], targets: new Int32Array(N), pixels: Tensor.fromArray(px, [N, 3, S, S]) });
    const opts = { batchSize: N, inputSize: S, train: true, seed: 2, shuffle: false, reprob: 0, autoAugment: 'rand-m9-mstd0.5-inc1' };
    const spec = transformSpec(opts);
    let x: Float32Array | undefined;
    for await (const b of createLoader(ds, opts)) {
      x = (await b.images.data()) as Float32Array;
      b.images.dispose();
    }
    const row = new Float64Array(PLAN.cols);
    const seen = new Set<number>();
    let applied = 0;
    for (let i = 0; i < N; i++) {
      drawSamplePlan(spec, 2, 0, i, row);
      expect(row[PLAN.opCount]).toBe(2);
      // Crop + flip by hand, then the ops through the single-op kernel.
      const img = new Uint8Array(3 * S * S);
      for (let c = 0; c < 3; c++)
        for (let y = 0; y < S; y++)
          for (let xx = 0; xx < S; xx++) {
            const sx0 = row[PLAN.flip] ? S - 1 - xx : xx;
            const sy = y + row[PLAN.cropY] - 4;
            const sx = sx0 + row[PLAN.cropX] - 4;
            img[(c * S + y) * S + xx] = sy >= 0 && sy < S && sx >= 0 && sx < S ? px[((i * 3 + c) * S + sy) * S + sx] : 0;
          }
      let t = Tensor.fromArray(img, [3, S, S]);
      for (let k = 0; k < 2; k++) {
        const op = row[PLAN.ops + PLAN.opStride * k];
        if (op < 0) continue;
        applied++;
        seen.add(op);
        const n = Tensor.runOp('data_ra_op', [t], { op, arg: row[PLAN.ops + PLAN.opStride * k + 1], resample: row[PLAN.ops + PLAN.opStride * k + 2] })[0];
        t.dispose();
        t = n;
      }
      const want = (await t.data()) as Uint8Array;
      t.dispose();
      // float32 (v/255 - 0.5)/0.5 vs exact: <= 2.4e-7 (see tests/data/helpers PIXEL_TOL), inside 6 digits.
      for (let j = 0; j < want.length; j++) expect(x![i * want.length + j]).toBeCloseTo((want[j] / 255 - 0.5) / 0.5, 6);
    }
    expect(applied).toBeGreaterThan(N * 0.6);
    expect(applied).toBeLessThan(N * 1.4);
    expect(seen.size).toBeGreaterThan(6);
    ds.dispose();
  });
});
