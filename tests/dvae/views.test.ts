/**
 * BEiT pre-training's two views (DataAugmentationForBEiT) and Pillow's resampling filters.
 * Independent truth: Debian's Pillow / torchvision run the reference's transform steps (ColorJitter ops
 * in the plan's order, hflip, resized_crop at both sizes with BICUBIC / LANCZOS, ToTensor, Normalize,
 * map_pixels) on the same images with the same draws; the crop box is re-derived in Python from the
 * plan's uniforms with timm's get_params formula.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { Tensor } from '../../lib/tensor';
import { readNpy, writeNpy, ndarray } from '../../lib/npy';
import { BEIT_PLAN, beitAttrs, beitBatchPlan, beitViewsSpec, drawBeitPlan } from '../../lib/data/beit-views';
import { PLAN } from '../../lib/data/plan';
import { InMemoryDataset } from '../../lib/data/memory';
import { createLoader } from '../../lib/data/loader';
import { ImageFileDataset } from '../../lib/data/files';
import { writePng } from '../../lib/io/png';
import { py, PY_PHOTO } from '../data/helpers';
import { describeWith } from '../helpers/requirements';
import { tmpDir } from './helpers';

const work = tmpDir('views');
afterAll(() => fs.rmSync(work, { recursive: true, force: true }));

/** Photo-like uint8 images [N, 3, H, W] written by Python (shared by both sides). */
function photos(file: string, n: number, h: number, w: number, seed: number): Uint8Array {
  py(`
import numpy as np, sys
from PIL import Image
rs = np.random.RandomState(${seed})
${PY_PHOTO}
x = np.stack([np.asarray(photo(${w}, ${h})).transpose(2, 0, 1) for _ in range(${n})])
np.save(sys.argv[1], x)
`, file);
  return readNpy(file).typed() as Uint8Array;
}

describeWith(['python', 'numpy', 'pil'])('Pillow resampling filters, bit for bit', () => {
  it('lanczos (BEiT second view), bilinear, hamming, bicubic: down- and up-scaling, RGB and grey', async () => {
    const file = path.join(work, 'resize-in.npy');
    const px = photos(file, 1, 45, 61, 3);
    const cases: Array<[string, number, number, number]> = [
      // [filter, channels, out h, out w]
      ['lanczos', 3, 17, 30],
      ['lanczos', 3, 112, 112],
      ['lanczos', 1, 20, 9],
      ['lanczos', 3, 45, 23],
      ['bilinear', 3, 13, 88],
      ['hamming', 3, 31, 19],
      ['bicubic', 3, 100, 7],
    ];
    const out = py(`
import numpy as np, sys, json
from PIL import Image
x = np.load(sys.argv[1])[0]
res = []
for f, c, h, w in json.loads(sys.argv[2]):
    img = Image.fromarray(np.ascontiguousarray(x.transpose(1, 2, 0)), 'RGB')
    if c == 1: img = img.convert('L')
    r = np.asarray(img.resize((w, h), getattr(Image, f.upper())))
    res.append((r if c == 1 else r.transpose(2, 0, 1)).reshape(-1).tolist())
print(json.dumps(res))
`, file, JSON.stringify(cases));
    const want = JSON.parse(out) as number[][];
    const failures: string[] = [];
    for (let k = 0; k < cases.length; k++) {
      const [filter, c, h, w] = cases[k];
      let src: Uint8Array = px;
      if (c === 1) {
        // PIL convert('L') (ITU-R 601-2 luma, 16-bit fixed point), computed here from the RGB planes.
        const n = 45 * 61;
        src = new Uint8Array(n);
        for (let i = 0; i < n; i++) src[i] = (px[i] * 19595 + px[n + i] * 38470 + px[2 * n + i] * 7471 + 0x8000) >> 16;
      }
      const t = Tensor.fromArray(src, [c, 45, 61]);
      const r = Tensor.runOp('image_resize', [t], { size: [h, w], filter })[0];
      const got = Array.from((await r.data()) as Uint8Array);
      let diff = 0;
      for (let i = 0; i < got.length; i++) if (got[i] !== want[k][i]) diff++;
      if (diff || got.length !== want[k].length) failures.push(`${filter} ${c}x45x61 -> ${h}x${w}: ${diff} of ${want[k].length} values differ`);
      t.dispose();
      r.dispose();
    }
    expect(failures).toEqual([]);
  });
});

describe('BEiT view plans', () => {
  const spec = beitViewsSpec(224, { secondSize: 112 }, [0.5, 0.5, 0.5], [0.5, 0.5, 0.5]);

  it('the reference defaults: bicubic / lanczos, ColorJitter 0.4, RRC (0.08, 1) x (3/4, 4/3), flip 0.5', () => {
    expect(spec).toMatchObject({ size: 224, secondSize: 112, interpolation: 'bicubic', secondInterpolation: 'lanczos', colorJitter: 0.4, scale: [0.08, 1], hflip: 0.5 });
    expect(() => beitViewsSpec(224, { secondSize: 112, secondInterpolation: 'nearest' as never }, [0.5, 0.5, 0.5], [0.5, 0.5, 0.5])).toThrow(/secondInterpolation must be one of bicubic, bilinear, lanczos, hamming/);
  });

  it('draws: jitter factors in [0.6, 1.4], orders are permutations (all 24 seen), flips near half, keyed by (seed, epoch, index)', () => {
    const row = new Float64Array(BEIT_PLAN.cols);
    const orders = new Set<string>();
    let flips = 0;
    const n = 2000;
    for (let i = 0; i < n; i++) {
      drawBeitPlan(spec, 7, 1, i, row);
      for (let k = 0; k < 3; k++) {
        expect(row[BEIT_PLAN.jitter + k]).toBeGreaterThanOrEqual(0.6);
        expect(row[BEIT_PLAN.jitter + k]).toBeLessThanOrEqual(1.4);
      }
      const order = Array.from(row.subarray(BEIT_PLAN.order, BEIT_PLAN.order + 4));
      expect([...order].sort()).toEqual([0, 1, 2, 3]);
      orders.add(order.join());
      flips += row[PLAN.flip];
    }
    expect(orders.size).toBe(24);
    // Binomial(2000, 0.5): 5 standard deviations are +-112.
    expect(Math.abs(flips - n / 2)).toBeLessThan(112);
    const a = new Float64Array(BEIT_PLAN.cols);
    const b = new Float64Array(BEIT_PLAN.cols);
    drawBeitPlan(spec, 7, 1, 5, a);
    drawBeitPlan(spec, 7, 1, 5, b);
    expect(Array.from(a)).toEqual(Array.from(b));
    drawBeitPlan(spec, 7, 2, 5, b);
    expect(Array.from(a)).not.toEqual(Array.from(b));
    // --color_jitter 0: every factor is off (< 0).
    drawBeitPlan(beitViewsSpec(224, { secondSize: 112, colorJitter: 0 }, [0.5, 0.5, 0.5], [0.5, 0.5, 0.5]), 7, 1, 5, a);
    expect(Array.from(a.subarray(BEIT_PLAN.jitter, BEIT_PLAN.jitter + 3))).toEqual([-1, -1, -1]);
  });
});

describeWith(['python', 'numpy', 'pil', 'torch', 'torchvision'])('BEiT two views vs Pillow + torchvision (the reference transform steps)', () => {
  it('patch view (bicubic / random) and tokenizer view (lanczos + map_pixels) equal the reference, RGB and grey sources', async () => {
    const N = 6;
    const H = 57;
    const W = 83;
    const file = path.join(work, 'views-in.npy');
    const px = photos(file, N, H, W, 11);
    const mean = [0.485, 0.456, 0.406];
    const std = [0.229, 0.224, 0.225];
    const configs: Array<{ interpolation: 'bicubic' | 'random'; size: number; second: number; grey: boolean }> = [
      { interpolation: 'bicubic', size: 48, second: 24, grey: false },
      { interpolation: 'random', size: 40, second: 16, grey: false },
      { interpolation: 'bicubic', size: 32, second: 16, grey: true },
    ];
    const got: Array<[Float32Array, Float32Array]> = [];
    const jobs: unknown[] = [];
    for (const [k, cfg] of configs.entries()) {
      let pixels = px;
      let C = 3;
      if (cfg.grey) {
        // One grey plane (the first channel) like Fashion-MNIST: replicated to RGB by the views.
        pixels = new Uint8Array(N * H * W);
        for (let i = 0; i < N; i++) pixels.set(px.subarray(i * 3 * H * W, i * 3 * H * W + H * W), i * H * W);
        C = 1;
      }
      const spec = beitViewsSpec(cfg.size, { secondSize: cfg.second, interpolation: cfg.interpolation }, mean, std);
      const indices = Int32Array.from([5, 0, 3, 1, 4, 2]);
      const plan = beitBatchPlan(spec, 3 + k, 0, indices);
      const pxT = Tensor.fromArray(pixels, [N, C, H, W]);
      const idx = Tensor.fromArray(indices);
      const planT = Tensor.fromArray(plan, [N, BEIT_PLAN.cols]);
      const [p, t] = Tensor.runOp('data_beit_batch', [pxT, idx, planT], beitAttrs(spec, 2));
      got.push([(await p.data()) as Float32Array, (await t.data()) as Float32Array]);
      expect(p.shape).toEqual([N, 3, cfg.size, cfg.size]);
      expect(t.shape).toEqual([N, 3, cfg.second, cfg.second]);
      for (const x of [pxT, idx, planT, p, t]) x.dispose();
      writeNpy(path.join(work, `plan${k}.npy`), ndarray('float64', [N, BEIT_PLAN.cols], plan));
      writeNpy(path.join(work, `px${k}.npy`), ndarray('uint8', [N, C, H, W], pixels));
      jobs.push({ k, indices: Array.from(indices), size: cfg.size, second: cfg.second, interp: cfg.interpolation });
    }
    py(`
import numpy as np, sys, json, math, torch
from PIL import Image
import torchvision.transforms.functional as F
from torchvision.transforms import InterpolationMode as IM
d, cfg = sys.argv[1], json.loads(sys.argv[2])
C = cfg['cols']
mean, std = torch.tensor(cfg['mean']), torch.tensor(cfg['std'])
for job in cfg['jobs']:
    x, plans = np.load(d + '/px%d.npy' % job['k']), np.load(d + '/plan%d.npy' % job['k'])
    v1, v2 = [], []
    for i, row in zip(job['indices'], plans):
        a = x[i]
        img = (Image.fromarray(a[0], 'L') if a.shape[0] == 1 else Image.fromarray(np.ascontiguousarray(a.transpose(1, 2, 0)), 'RGB')).convert('RGB')
        for fid in row[C['order']:C['order'] + 4].astype(int):
            f = float(row[C['jitter'] + fid]) if fid < 3 else -1
            if f < 0: continue
            img = [F.adjust_brightness, F.adjust_contrast, F.adjust_saturation][fid](img, f)
        if row[C['flip']]: img = F.hflip(img)
        W, H = img.size
        area, (s0, s1), (r0, r1) = H * W, row[C['scale']:C['scale'] + 2], row[C['ratio']:C['ratio'] + 2]
        box = None
        for k in range(10):
            u = row[C['u'] + 4 * k: C['u'] + 4 * k + 4]
            target = (s0 + (s1 - s0) * u[0]) * area
            ar = math.exp(math.log(r0) + (math.log(r1) - math.log(r0)) * u[1])
            w, h = int(round(math.sqrt(target * ar))), int(round(math.sqrt(target / ar)))
            if 0 < w <= W and 0 < h <= H:
                box = (min(H - h, int(math.floor(u[2] * (H - h + 1)))), min(W - w, int(math.floor(u[3] * (W - w + 1)))), h, w)
                break
        if box is None:
            inr = W / H
            w, h = (W, int(round(W / r0))) if inr < r0 else ((int(round(H * r1)), H) if inr > r1 else (W, H))
            box = ((H - h) // 2, (W - w) // 2, h, w)
        first = IM.BICUBIC if job['interp'] == 'bicubic' else (IM.BICUBIC if row[C['interp']] else IM.BILINEAR)
        a1 = F.resized_crop(img, *box, [job['size'], job['size']], first)
        a2 = F.resized_crop(img, *box, [job['second'], job['second']], IM.LANCZOS)
        v1.append(F.normalize(F.to_tensor(a1), mean, std))
        v2.append((1 - 2 * 0.1) * F.to_tensor(a2) + 0.1)
    np.save(d + '/v1_%d.npy' % job['k'], torch.stack(v1).numpy())
    np.save(d + '/v2_%d.npy' % job['k'], torch.stack(v2).numpy())
`, work, JSON.stringify({
      cols: { order: BEIT_PLAN.order, jitter: BEIT_PLAN.jitter, flip: PLAN.flip, scale: PLAN.rrcScaleMin, ratio: PLAN.rrcRatioMin, u: PLAN.rrcUniforms, interp: BEIT_PLAN.interp },
      mean, std, jobs,
    }));
    for (const [k, cfg] of configs.entries()) {
      const want1 = readNpy(path.join(work, `v1_${k}.npy`)).typed() as Float32Array;
      const want2 = readNpy(path.join(work, `v2_${k}.npy`)).typed() as Float32Array;
      // Same uint8 pixels and the same float32 operations: equal, not merely close.
      let d1 = 0;
      let d2 = 0;
      for (let i = 0; i < want1.length; i++) d1 = Math.max(d1, Math.abs(want1[i] - got[k][0][i]));
      for (let i = 0; i < want2.length; i++) d2 = Math.max(d2, Math.abs(want2[i] - got[k][1][i]));
      expect([JSON.stringify(cfg), d1, d2]).toEqual([JSON.stringify(cfg), 0, 0]);
    }
  });
});

describe('BEiT views through the loader', () => {
  it('patch and tokenizer views of the same crop; identical for 1 and 3 workers; other datasets and options refused', async () => {
    const N = 12;
    const g = new Uint8Array(N * 28 * 28);
    for (let i = 0; i < g.length; i++) g[i] = (i * 37 + (i >> 5) * 11) % 256;
    const ds = new InMemoryDataset({ name: 'toy', root: '-', split: 'train', classes: ['a'], targets: new Int32Array(N), pixels: Tensor.fromArray(g, [N, 1, 28, 28]) });
    const run = async (workers: number): Promise<Array<[number[], number[], number[]]>> => {
      const loader = createLoader(ds, { batchSize: 4, train: true, inputSize: 28, seed: 5, dropLast: true, workers, beitViews: { secondSize: 16 } });
      loader.setEpoch(1);
      const out: Array<[number[], number[], number[]]> = [];
      for await (const b of loader) {
        expect(b.images.shape).toEqual([4, 3, 28, 28]);
        expect(b.secondImages!.shape).toEqual([4, 3, 16, 16]);
        const s = Array.from((await b.secondImages!.data()) as Float32Array);
        // map_pixels output lies in [0.1, 0.9]: (1 - 2 * 0.1) x + 0.1 in float32 rounds by <= 1 ulp of 0.9
        // (6e-8) at each end, inside the 1e-7 slack.
        expect(Math.min(...s)).toBeGreaterThanOrEqual(0.1 - 1e-7);
        expect(Math.max(...s)).toBeLessThanOrEqual(0.9 + 1e-7);
        out.push([Array.from(b.indices), Array.from((await b.images.data()) as Float32Array), s]);
        b.images.dispose();
        b.secondImages!.dispose();
      }
      return out;
    };
    const one = await run(1);
    const three = await run(3);
    expect(one.length).toBe(3);
    expect(three).toEqual(one);
    expect(() => createLoader(ds, { batchSize: 4, train: false, inputSize: 28, beitViews: { secondSize: 16 } })).toThrow(/beitViews are a training transform/);
    expect(() => createLoader(ds, { batchSize: 4, train: true, inputSize: 28, beitViews: { secondSize: 16 }, mixup: { mixup: 0.8 } })).toThrow(/cannot be combined with mixup/);
    ds.dispose();
  });
});

describe('BEiT views of image files', () => {
  it('PNG files give the same views as the same pixels in memory; an unreadable file is skipped from both views', async () => {
    const N = 5;
    const H = 30;
    const W = 41;
    const px = new Uint8Array(N * 3 * H * W);
    for (let i = 0; i < px.length; i++) px[i] = (i * 53 + (i >> 7) * 29) % 256;
    const dir = path.join(work, 'pngs');
    fs.mkdirSync(dir);
    const files: string[] = [];
    for (let n = 0; n < N; n++) {
      const rgb = new Uint8Array(H * W * 3);
      for (let y = 0; y < H; y++) for (let x = 0; x < W; x++) for (let c = 0; c < 3; c++) rgb[(y * W + x) * 3 + c] = px[((n * 3 + c) * H + y) * W + x];
      files.push(path.join(dir, `${n}.png`));
      writePng(files[n], W, H, rgb);
    }
    const opts = { batchSize: N, train: true, inputSize: 24, seed: 9, shuffle: false, workers: 2, beitViews: { secondSize: 16 } };
    const mem = new InMemoryDataset({ name: 'mem', root: '-', split: 'train', classes: ['a'], targets: new Int32Array(N), pixels: Tensor.fromArray(px, [N, 3, H, W]) });
    const onDisk = new ImageFileDataset({ name: 'files', root: dir, split: 'train', classes: ['a'], files, targets: new Int32Array(N) });
    const first = async (ds: InMemoryDataset | ImageFileDataset): Promise<[number[], number[], number[]]> => {
      for await (const b of createLoader(ds, opts)) {
        const r: [number[], number[], number[]] = [Array.from(b.indices), Array.from((await b.images.data()) as Float32Array), Array.from((await b.secondImages!.data()) as Float32Array)];
        b.images.dispose();
        b.secondImages!.dispose();
        return r;
      }
      throw new Error('no batch');
    };
    const a = await first(mem);
    const b = await first(onDisk);
    expect(b).toEqual(a);
    fs.writeFileSync(files[2], 'not an image');
    const c = await first(onDisk);
    expect(c[0]).toEqual([0, 1, 3, 4]);
    const per1 = 3 * 24 * 24;
    const per2 = 3 * 16 * 16;
    const keep = (v: number[], per: number): number[] => [...v.slice(0, 2 * per), ...v.slice(3 * per)];
    expect(c[1]).toEqual(keep(a[1], per1));
    expect(c[2]).toEqual(keep(a[2], per2));
    expect(onDisk.skipped.get(files[2])).toMatch(/unsupported format|corrupt/);
    mem.dispose();
  });
});
