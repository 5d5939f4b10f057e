import * as fs from 'node:fs';
import * as path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Tensor } from '../../lib/tensor';
import { buildDataset, createLoader, InMemoryDataset, transformSpec } from '../../lib/data';
import { drawSamplePlan, PLAN } from '../../lib/data/plan';
import { makeCifar, py, readF32, tmpDir, maxAbsDiff, PIXEL_TOL } from './helpers';
import { describeWith } from '../helpers/requirements';


/** A dataset over explicit pixels (uint8 [N, C, H, W]). */
function memDataset(px: Uint8Array, shape: [number, number, number, number]): InMemoryDataset {
  return new InMemoryDataset({ name: 'mem', root: 'mem', split: 'train', classes: ['a', 'b'], targets: new Int32Array(shape[0]), pixels: Tensor.fromArray(px, shape) });
}

async function allBatches(ds: InMemoryDataset, opts: Parameters<typeof createLoader>[1]): Promise<{ x: Float32Array[]; idx: number[] }> {
  const x: Float32Array[] = [];
  const idx: number[] = [];
  for await (const b of createLoader(ds, opts)) {
    x.push((await b.images.data()) as Float32Array);
    idx.push(...b.indices);
    b.images.dispose();
  }
  return { x, idx };
}

describeWith(['torch', 'torchvision', 'pil', 'numpy'])('Pillow-compatible bicubic resize', () => {
  it('equals PIL Image.resize(BICUBIC) bit for bit (up, down, mixed, 1 channel and 3)', async () => {
    const dir = tmpDir('resize');
    const cases: Array<[number, number, number, number, number]> = [
      [3, 32, 32, 256, 256],
      [3, 37, 53, 20, 11],
      [1, 28, 28, 32, 32],
      [3, 375, 500, 256, 341],
      [3, 64, 48, 64, 17],
      [3, 9, 300, 40, 7],
    ];
    let seed = 1;
    for (const [c, h, w, oh, ow] of cases) {
      const px = new Uint8Array(c * h * w);
      for (let i = 0; i < px.length; i++) px[i] = (seed = (seed * 1103515245 + 12345) >>> 0) >>> 24;
      // Smooth areas and sharp edges both matter: half the image gets a gradient.
      for (let i = 0; i < px.length / 2; i++) px[i] = (i * 7) % 256;
      fs.writeFileSync(path.join(dir, 'in.bin'), px);
      const t = Tensor.fromArray(px, [c, h, w]);
      const r = Tensor.runOp('image_resize', [t], { size: [oh, ow] })[0];
      const ours = (await r.data()) as Uint8Array;
      py(
        `
import numpy as np, sys
from PIL import Image
c, h, w, oh, ow = map(int, sys.argv[2:7])
x = np.fromfile(sys.argv[1] + '/in.bin', np.uint8).reshape(c, h, w)
img = Image.fromarray(x[0], 'L') if c == 1 else Image.fromarray(np.ascontiguousarray(x.transpose(1, 2, 0)), 'RGB')
y = np.asarray(img.resize((ow, oh), Image.BICUBIC))
y = y[None] if c == 1 else y.transpose(2, 0, 1)
np.ascontiguousarray(y).tofile(sys.argv[1] + '/out.bin')
`,
        dir,
        String(c),
        String(h),
        String(w),
        String(oh),
        String(ow),
      );
      const ref = fs.readFileSync(path.join(dir, 'out.bin'));
      let diff = 0;
      for (let i = 0; i < ref.length; i++) diff = Math.max(diff, Math.abs(ref[i] - ours[i]));
      expect(diff, `case ${[c, h, w, oh, ow]}`).toBe(0);
      t.dispose();
      r.dispose();
    }
    fs.rmSync(dir, { recursive: true });
  });
});

describeWith(['torch', 'torchvision', 'pil', 'numpy'])('evaluation transform vs torchvision (the reference build_transform)', () => {
  let dir = '';
  beforeAll(() => {
    dir = tmpDir('evaltf');
    makeCifar(dir, 'cifar10', 10, 6);
  });
  afterAll(() => fs.rmSync(dir, { recursive: true, force: true }));

  for (const [size, resize] of [
    [224, 256],
    [384, 384],
    [32, 0],
    [20, -1],
  ] as const) {
    it(`cifar input ${size}: ${resize > 0 ? `Resize(${resize}, bicubic) + CenterCrop(${size})` : resize === 0 ? 'no resize' : 'resize to 20x20'} + ToTensor + Normalize`, async () => {
      const ds = await buildDataset({ dataSet: 'cifar10', dataPath: dir, train: false });
      const { x } = await allBatches(ds as InMemoryDataset, { batchSize: 6, inputSize: size, imagenetDefaultMeanAndStd: size === 384 });
      py(
        `
import pickle, numpy as np, sys
from PIL import Image
import torchvision.transforms as T
d = pickle.load(open(sys.argv[1] + '/cifar-10-batches-py/test_batch', 'rb'), encoding='bytes')
d = {(k.decode() if isinstance(k, bytes) else k): v for k, v in d.items()}
imgs = d['data'].reshape(-1, 3, 32, 32).transpose(0, 2, 3, 1)
S, R = int(sys.argv[2]), int(sys.argv[3])
mean, std = ((0.485, 0.456, 0.406), (0.229, 0.224, 0.225)) if S == 384 else ((0.5,) * 3, (0.5,) * 3)
t = [T.Resize(R, interpolation=T.InterpolationMode.BICUBIC), T.CenterCrop(S)] if R > 0 else ([T.Resize((S, S), interpolation=T.InterpolationMode.BICUBIC)] if R < 0 else [])
tf = T.Compose(t + [T.ToTensor(), T.Normalize(mean, std)])
np.stack([tf(Image.fromarray(i)).numpy() for i in imgs]).astype(np.float32).tofile(sys.argv[1] + '/ref.bin')
`,
        dir,
        String(size),
        String(resize),
      );
      expect(maxAbsDiff(x[0], readF32(path.join(dir, 'ref.bin')))).toBeLessThanOrEqual(PIXEL_TOL);
      (ds as InMemoryDataset).dispose();
    });
  }
});

describe('training plans: RandomCrop(padding 4), flip, random erasing', () => {
  const N = 40;
  const S = 12;
  const px = new Uint8Array(N * 3 * S * S);
  for (let i = 0; i < px.length; i++) px[i] = (i * 31 + (i >> 5)) % 251;

  it('crop + flip outputs equal the plan applied by hand; offsets and flips cover their ranges', async () => {
    const ds = memDataset(px, [N, 3, S, S]);
    const opts = { batchSize: 16, inputSize: S, train: true, seed: 5, reprob: 0 };
    const spec = transformSpec(opts);
    const { x, idx } = await allBatches(ds, opts);
    const flat = new Float32Array(x.reduce((a, b) => a + b.length, 0));
    x.reduce((o, b) => (flat.set(b, o), o + b.length), 0);
    const row = new Float64Array(PLAN.cols);
    const seenY = new Set<number>();
    let flips = 0;
    for (let k = 0; k < idx.length; k++) {
      drawSamplePlan(spec, 5, 0, idx[k], row);
      const cy = row[PLAN.cropY], cx = row[PLAN.cropX], fl = row[PLAN.flip];
      seenY.add(cy);
      flips += fl;
      for (let c = 0; c < 3; c++)
        for (let y = 0; y < S; y++)
          for (let xx = 0; xx < S; xx++) {
            const sx0 = fl ? S - 1 - xx : xx; // flip after the crop
            const sy = y + cy - 4, sx = sx0 + cx - 4;
            const v = sy >= 0 && sy < S && sx >= 0 && sx < S ? px[((idx[k] * 3 + c) * S + sy) * S + sx] : 0;
            // float32 (v/255 - 0.5)/0.5 vs exact: <= 2.4e-7 (see PIXEL_TOL), inside 6 digits (5e-7); a level is 7.8e-3.
            expect(flat[((k * 3 + c) * S + y) * S + xx]).toBeCloseTo((v / 255 - 0.5) / 0.5, 6);
          }
    }
    expect(new Set(idx).size).toBe(N);
    expect(seenY.size).toBeGreaterThan(5);
    expect(flips).toBeGreaterThan(8);
    expect(flips).toBeLessThan(32);
    ds.dispose();
  });

  it('erasing replaces exactly the planned box (inside the image) with N(0, 1) noise', async () => {
    const ds = memDataset(px, [N, 3, S, S]);
    const base = { batchSize: N, inputSize: S, train: true, seed: 9, shuffle: false };
    const a = (await allBatches(ds, { ...base, reprob: 0 })).x[0];
    const b = (await allBatches(ds, { ...base, reprob: 1 })).x[0];
    const spec = transformSpec({ ...base, reprob: 1 });
    const row = new Float64Array(PLAN.cols);
    const noise: number[] = [];
    let erased = 0;
    for (let i = 0; i < N; i++) {
      drawSamplePlan(spec, 9, 0, i, row);
      expect(row[PLAN.eraseCount]).toBeLessThanOrEqual(1);
      const at = PLAN.erase;
      const [t, l, h, w] = row[PLAN.eraseCount] ? [row[at], row[at + 1], row[at + 2], row[at + 3]] : [0, 0, 0, 0];
      if (h > 0) erased++;
      expect(t + h).toBeLessThanOrEqual(S);
      expect(l + w).toBeLessThanOrEqual(S);
      for (let c = 0; c < 3; c++)
        for (let y = 0; y < S; y++)
          for (let xx = 0; xx < S; xx++) {
            const k = ((i * 3 + c) * S + y) * S + xx;
            const inside = h > 0 && y >= t && y < t + h && xx >= l && xx < l + w;
            if (inside) noise.push(b[k]);
            else expect(b[k]).toBe(a[k]);
          }
    }
    expect(erased).toBeGreaterThan(N * 0.8);
    const mean = noise.reduce((s, v) => s + v, 0) / noise.length;
    const sd = Math.sqrt(noise.reduce((s, v) => s + (v - mean) ** 2, 0) / noise.length);
    expect(noise.length).toBeGreaterThan(500);
    expect(Math.abs(mean)).toBeLessThan(0.1);
    expect(Math.abs(sd - 1)).toBeLessThan(0.1);
    ds.dispose();
  });

  it('same seed => identical batches whatever the worker count and prefetch; epochs differ', async () => {
    const ds = memDataset(px, [N, 3, S, S]);
    const base = { batchSize: 7, inputSize: 24, train: true, seed: 3 };
    const r1 = await allBatches(ds, { ...base, workers: 1, prefetch: 0 });
    const r2 = await allBatches(ds, { ...base, workers: 3, prefetch: 4 });
    expect(r2.idx).toEqual(r1.idx);
    r1.x.forEach((b, i) => expect(maxAbsDiff(b, r2.x[i])).toBe(0));
    const loader = createLoader(ds, base);
    loader.setEpoch(1);
    const it = loader[Symbol.asyncIterator]();
    const { value: e1 } = await it.next();
    await it.return?.();
    expect(Array.from(e1.indices)).not.toEqual(r1.idx.slice(0, 7));
    e1.images.dispose();
    ds.dispose();
  });
});

describeWith(['torch', 'torchvision', 'pil', 'numpy'])('RandomResizedCrop (timm 0.3 get_params, bicubic)', () => {
  it('box from the plan uniforms equals timm get_params fed the same numbers; pixels equal PIL crop+resize', async () => {
    const dir = tmpDir('rrc');
    const N = 12;
    const H = 40;
    const W = 56;
    const px = new Uint8Array(N * 3 * H * W);
    for (let i = 0; i < px.length; i++) px[i] = (i * 13 + (i >> 7) * 3) % 256;
    fs.writeFileSync(path.join(dir, 'px.bin'), px);
    const ds = memDataset(px, [N, 3, H, W]);
    const opts = { batchSize: N, inputSize: 48, train: true, seed: 11, reprob: 0, shuffle: false };
    const spec = transformSpec(opts);
    const plans = new Float64Array(N * PLAN.cols);
    for (let i = 0; i < N; i++) drawSamplePlan(spec, 11, 0, i, plans.subarray(i * PLAN.cols, (i + 1) * PLAN.cols));
    // Extreme scale ranges exercise the fallback branch too.
    const boxes: number[][] = [];
    for (let i = 0; i < N; i++) {
      const t = Tensor.fromArray(plans.slice(i * PLAN.cols, (i + 1) * PLAN.cols));
      const b = Tensor.runOp('data_rrc_box', [t], { height: H, width: W })[0];
      boxes.push(Array.from((await b.data()) as BigInt64Array, Number));
      t.dispose();
      b.dispose();
    }
    fs.writeFileSync(path.join(dir, 'plans.bin'), plans);
    const x = (await allBatches(ds, opts)).x[0];
    const out = py(
      `
import numpy as np, sys, math, json
from PIL import Image
import torchvision.transforms as T
d, N, H, W, C0 = sys.argv[1], 12, 40, 56, ${PLAN.rrcUniforms}
S0, R0, FL = ${PLAN.rrcScaleMin}, ${PLAN.rrcRatioMin}, ${PLAN.flip}
plans = np.fromfile(d + '/plans.bin', np.float64).reshape(N, -1)
px = np.fromfile(d + '/px.bin', np.uint8).reshape(N, 3, H, W)
def get_params(img, scale, ratio, u):
    # timm 0.3 RandomResizedCropAndInterpolation.get_params with random.* replaced by the plan's uniforms
    area = img.size[0] * img.size[1]
    for attempt in range(10):
        a, r, ui, uj = u[4 * attempt: 4 * attempt + 4]
        target_area = (scale[0] + (scale[1] - scale[0]) * a) * area
        log_ratio = (math.log(ratio[0]), math.log(ratio[1]))
        aspect_ratio = math.exp(log_ratio[0] + (log_ratio[1] - log_ratio[0]) * r)
        w = int(round(math.sqrt(target_area * aspect_ratio)))
        h = int(round(math.sqrt(target_area / aspect_ratio)))
        if w <= img.size[0] and h <= img.size[1]:
            i = int(math.floor(ui * (img.size[1] - h + 1)))
            j = int(math.floor(uj * (img.size[0] - w + 1)))
            return i, j, h, w
    in_ratio = img.size[0] / img.size[1]
    if in_ratio < min(ratio):
        w = img.size[0]; h = int(round(w / min(ratio)))
    elif in_ratio > max(ratio):
        h = img.size[1]; w = int(round(h * max(ratio)))
    else:
        w = img.size[0]; h = img.size[1]
    return (img.size[1] - h) // 2, (img.size[0] - w) // 2, h, w
tf = T.Compose([T.ToTensor(), T.Normalize([0.5] * 3, [0.5] * 3)])
boxes, outs = [], []
for k in range(N):
    img = Image.fromarray(np.ascontiguousarray(px[k].transpose(1, 2, 0)))
    p = plans[k]
    i, j, h, w = get_params(img, (p[S0], p[S0 + 1]), (p[R0], p[R0 + 1]), p[C0:C0 + 40])
    boxes.append([i, j, h, w])
    im = img.crop((j, i, j + w, i + h)).resize((48, 48), Image.BICUBIC)
    if p[FL]: im = im.transpose(Image.FLIP_LEFT_RIGHT)
    outs.append(tf(im).numpy())
np.stack(outs).astype(np.float32).tofile(d + '/ref.bin')
print(json.dumps(boxes))
`,
      dir,
    );
    expect(boxes).toEqual(JSON.parse(out));
    expect(maxAbsDiff(x, readF32(path.join(dir, 'ref.bin')))).toBeLessThanOrEqual(PIXEL_TOL);
    ds.dispose();
    fs.rmSync(dir, { recursive: true });
  });
});

describe('loader lifecycle', () => {
  it('breaking out early disposes the prefetched batches (no live tensors left behind)', async () => {
    const { tensorStats } = await import('../../lib/tensor');
    const px = new Uint8Array(64 * 3 * 8 * 8).fill(7);
    const ds = memDataset(px, [64, 3, 8, 8]);
    const before = tensorStats().live;
    const loader = createLoader(ds, { batchSize: 4, inputSize: 8, prefetch: 5 });
    expect(loader.numBatches).toBe(16);
    for await (const b of loader) {
      b.images.dispose();
      break;
    }
    expect(tensorStats().live).toBe(before);
    ds.dispose();
  });
});
