/**
 * Eval (resize + center crop) and train (RandomResizedCrop) on JPEG files decode only the rows and
 * columns the crop keeps, and resize only the kept outputs. That must not change a single byte: every
 * sample is compared with PIL decoding the whole file, cropping and resizing, over the JPEG layouts
 * that change libjpeg's upsampling context (4:2:0, 4:2:2, 4:4:4, progressive, grey, odd sizes).
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { Tensor } from '../../lib/tensor';
import { buildDataset, createLoader, ImageFileDataset, transformSpec } from '../../lib/data';
import { drawSamplePlan, PLAN } from '../../lib/data/plan';
import { maxAbsDiff, PIXEL_TOL, py, pyJson, PY_PHOTO, readF32, tmpDir } from './helpers';
import { describeWith } from '../helpers/requirements';


const GEN = `
import numpy as np, os, sys, json
from PIL import Image
root = sys.argv[1]
rs = np.random.RandomState(3)
${PY_PHOTO}
d = os.path.join(root, 'a'); os.makedirs(d)
# strong per-pixel noise (30): chroma upsampling errors at the decoded region's edges would show
photo(500, 375, 30).save(d + '/s420.jpg', quality=90)
photo(333, 251, 30).save(d + '/s420_odd.jpg', quality=80)
photo(401, 299, 30).save(d + '/s422.jpg', quality=95, subsampling=1)
photo(333, 251, 30).save(d + '/s444.jpg', quality=95, subsampling=0)
photo(640, 480, 30).save(d + '/progressive.jpg', quality=90, progressive=True)
photo(231, 700, 30).save(d + '/tall_prog444.jpg', quality=85, progressive=True, subsampling=0)
photo(300, 200, 30).convert('L').save(d + '/grey.jpg', quality=90)
photo(1200, 900, 30).save(d + '/large.jpg', quality=85)
photo(23, 17, 30).save(d + '/tiny.jpg', quality=90)
photo(400, 256, 30).save(d + '/short256.jpg', quality=90)  # eval: shorter side already 256, Pillow skips that pass
print(json.dumps(sorted(os.listdir(d))))
`;

describeWith(['torch', 'torchvision', 'pil', 'numpy'])('partial JPEG decode (only the cropped region) equals PIL on the whole file', () => {
  let dir = '';
  let ds: ImageFileDataset;
  let sizes: [number, number][] = []; // [h, w] per file, dataset order
  beforeAll(async () => {
    dir = tmpDir('partial');
    py(GEN, dir);
    ds = (await buildDataset({ dataSet: 'image_folder', dataPath: dir, train: true })) as ImageFileDataset;
    sizes = pyJson<[number, number][]>(
      `
import sys, json
from PIL import Image
print(json.dumps([[Image.open(f).size[1], Image.open(f).size[0]] for f in sys.argv[1:]]))
`,
      ...ds.files,
    );
  });
  afterAll(() => fs.rmSync(dir, { recursive: true, force: true }));

  it('eval: Resize(int(S / crop_pct)) + CenterCrop(S) at S = 224 and 96, max diff <= 2e-6', async () => {
    for (const S of [224, 96]) {
      const ref = path.join(dir, `eval${S}.bin`);
      py(
        `
import sys, numpy as np
from PIL import Image
import torchvision.transforms as T
S, out = int(sys.argv[1]), sys.argv[2]
tf = T.Compose([T.Resize(int(S / (224 / 256)), interpolation=T.InterpolationMode.BICUBIC), T.CenterCrop(S), T.ToTensor(), T.Normalize([0.5] * 3, [0.5] * 3)])
np.stack([tf(Image.open(f).convert('RGB')).numpy() for f in sys.argv[3:]]).astype(np.float32).tofile(out)
`,
        String(S),
        ref,
        ...ds.files,
      );
      const want = readF32(ref);
      const n = 3 * S * S;
      let seen = 0;
      for await (const b of createLoader(ds, { batchSize: 4, inputSize: S, workers: 2 })) {
        const x = (await b.images.data()) as Float32Array;
        b.indices.forEach((i, k) => {
          const d = maxAbsDiff(x.subarray(k * n, (k + 1) * n), want.subarray(i * n, (i + 1) * n));
          expect(d, `${path.basename(ds.files[i])} at ${S}`).toBeLessThanOrEqual(PIXEL_TOL);
          seen++;
        });
        b.images.dispose();
      }
      expect(seen).toBe(ds.length);
    }
  });

  it('train: RandomResizedCrop boxes (3 epochs, up- and downscaling) + flip equal PIL crop + resize, max diff <= 2e-6', async () => {
    const S = 80;
    const seed = 5;
    const opts = { batchSize: 5, inputSize: S, train: true, seed, reprob: 0, workers: 2 };
    const spec = transformSpec(opts);
    const loader = createLoader(ds, opts);
    const got: Float32Array[] = [];
    const jobs: { file: string; box: number[]; flip: boolean }[] = [];
    const n = 3 * S * S;
    for (let epoch = 0; epoch < 3; epoch++) {
      loader.setEpoch(epoch);
      for await (const b of loader) {
        const x = (await b.images.data()) as Float32Array;
        for (let k = 0; k < b.indices.length; k++) {
          const i = b.indices[k];
          const plan = new Float64Array(PLAN.cols);
          drawSamplePlan(spec, seed, epoch, i, plan);
          const t = Tensor.fromArray(plan);
          const bt = Tensor.runOp('data_rrc_box', [t], { height: sizes[i][0], width: sizes[i][1] })[0];
          jobs.push({ file: ds.files[i], box: Array.from((await bt.data()) as BigInt64Array, Number), flip: plan[PLAN.flip] !== 0 });
          t.dispose();
          bt.dispose();
          got.push(x.slice(k * n, (k + 1) * n));
        }
        b.images.dispose();
      }
    }
    fs.writeFileSync(path.join(dir, 'jobs.json'), JSON.stringify(jobs));
    const ref = path.join(dir, 'train.bin');
    py(
      `
import sys, json, numpy as np
from PIL import Image
import torchvision.transforms as T
jobs, S, out = json.load(open(sys.argv[1])), int(sys.argv[2]), sys.argv[3]
tf = T.Compose([T.ToTensor(), T.Normalize([0.5] * 3, [0.5] * 3)])
res = []
for j in jobs:
    i, l, h, w = j['box']
    im = Image.open(j['file']).convert('RGB').crop((l, i, l + w, i + h)).resize((S, S), Image.BICUBIC)
    if j['flip']: im = im.transpose(Image.FLIP_LEFT_RIGHT)
    res.append(tf(im).numpy())
np.stack(res).astype(np.float32).tofile(out)
`,
      path.join(dir, 'jobs.json'),
      String(S),
      ref,
    );
    const want = readF32(ref);
    expect(jobs.length).toBe(3 * ds.length);
    // The boxes cover small crops (upscaling) and large ones (downscaling) of every file.
    const areas = jobs.map((j) => {
      const [h, w] = sizes[ds.files.indexOf(j.file)];
      return (j.box[2] * j.box[3]) / (h * w);
    });
    expect(Math.min(...areas)).toBeLessThan(0.3);
    expect(Math.max(...areas)).toBeGreaterThan(0.6);
    got.forEach((x, k) => {
      expect(maxAbsDiff(x, want.subarray(k * n, (k + 1) * n)), `${path.basename(jobs[k].file)} box ${jobs[k].box}`).toBeLessThanOrEqual(PIXEL_TOL);
    });
  });

  it('train batches (with erasing and RandAugment) are identical with 1 and 3 worker threads', async () => {
    const run = async (workers: number): Promise<Float32Array[]> => {
      const out: Float32Array[] = [];
      const loader = createLoader(ds, { batchSize: 4, inputSize: 64, train: true, seed: 9, reprob: 0.5, autoAugment: 'rand-m9-mstd0.5-inc1', workers });
      loader.setEpoch(1);
      for await (const b of loader) {
        out.push((await b.images.data()) as Float32Array);
        b.images.dispose();
      }
      return out;
    };
    const one = await run(1);
    const three = await run(3);
    expect(three.length).toBe(one.length);
    one.forEach((x, k) => expect(Buffer.compare(Buffer.from(x.buffer, x.byteOffset, x.byteLength), Buffer.from(three[k].buffer, three[k].byteOffset, three[k].byteLength))).toBe(0));
  });
});
