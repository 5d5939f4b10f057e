import * as fs from 'node:fs';
import * as path from 'node:path';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { buildDataset, createLoader, DataError, ImageFileDataset } from '../../lib/data';
import { PIXEL_TOL, py, pyJson, PY_PHOTO, readF32, tmpDir } from './helpers';
import { describeWith } from '../helpers/requirements';


/** Generated odd images (JPEG/PNG, grey, palette, CMYK, alpha, progressive, tiny, large, truncated). */
const GEN = `
import numpy as np, os, sys
from PIL import Image
root = sys.argv[1]
rs = np.random.RandomState(0)
${PY_PHOTO}
def d(c):
    p = os.path.join(root, 'train', c); os.makedirs(p, exist_ok=True); return p
a, b, c = d('alpha'), d('beta'), d('gamma')
photo(500, 375).save(a + '/photo.jpg', quality=90)
photo(375, 500).save(a + '/portrait.JPEG', quality=75)
photo(640, 480).save(a + '/progressive.jpg', quality=90, progressive=True)
photo(300, 200).convert('L').save(a + '/grey.jpg', quality=90)
photo(320, 240).convert('CMYK').save(a + '/cmyk.jpg', quality=95)
photo(2000, 1500).save(a + '/large.jpg', quality=85)
photo(7, 5).save(a + '/tiny.png')
photo(400, 300).save(b + '/rgb.png')
photo(256, 256).convert('L').save(b + '/grey.png')
photo(300, 300).convert('P', palette=Image.ADAPTIVE, colors=64).save(b + '/palette.png', transparency=3)
rgba = photo(330, 250).convert('RGBA'); rgba.putalpha(Image.fromarray(rs.randint(0, 256, (250, 330)).astype(np.uint8))); rgba.save(b + '/rgba.png')
photo(250, 260).convert('LA').save(b + '/la.png')
photo(1, 1).save(b + '/one.png')
photo(123, 77).save(b + '/rgb24.bmp')
photo(64, 50).convert('P', palette=Image.ADAPTIVE, colors=200).save(b + '/pal8.bmp')
photo(40, 33).convert('1').save(b + '/mono.bmp')
Image.fromarray((np.asarray(photo(90, 70).convert('L')).astype(np.uint16) * 3)).save(b + '/grey16.png')  # PIL clips mode I to 255
buf = open(a + '/photo.jpg', 'rb').read(); open(c + '/truncated.jpg', 'wb').write(buf[: int(len(buf) * 0.6)])
photo(400, 300).save(c + '/full.png'); buf = open(c + '/full.png', 'rb').read(); open(c + '/truncated.png', 'wb').write(buf[: int(len(buf) * 0.55)])
`;

/** torchvision eval pipeline (the reference build_transform) over a list of files. */
const REF = `
import numpy as np, sys, json
from PIL import Image, ImageFile
ImageFile.LOAD_TRUNCATED_IMAGES = True
import torchvision.transforms as T
from torchvision.datasets import ImageFolder
root, S, out = sys.argv[1], int(sys.argv[2]), sys.argv[3]
tf = T.Compose([T.Resize(int(S / (224 / 256)), interpolation=T.InterpolationMode.BICUBIC), T.CenterCrop(S), T.ToTensor(), T.Normalize([0.5] * 3, [0.5] * 3)])
ds = ImageFolder(root, transform=tf)
np.stack([ds[i][0].numpy() for i in range(len(ds))]).astype(np.float32).tofile(out)
print(json.dumps({'classes': ds.classes, 'samples': [[p, t] for p, t in ds.samples]}))
`;

describeWith(['torch', 'torchvision', 'pil', 'numpy'])('image files: native decode + eval transform vs torchvision ImageFolder + PIL', () => {
  let dir = '';
  beforeAll(() => {
    dir = tmpDir('img');
    py(GEN, dir);
  });
  afterAll(() => fs.rmSync(dir, { recursive: true, force: true }));

  it('ImageFolder order/classes equal torchvision; pixels equal PIL\'s (float32 rounding only)', async () => {
    const S = 64;
    const refFile = path.join(dir, 'ref.bin');
    const ref = JSON.parse(py(REF, path.join(dir, 'train'), String(S), refFile)) as { classes: string[]; samples: [string, number][] };
    const ds = (await buildDataset({ dataSet: 'imagenet30', dataPath: dir, train: true })) as ImageFileDataset;
    expect(ds.classes).toEqual(ref.classes);
    expect(ds.files).toEqual(ref.samples.map((s) => s[0]));
    expect(Array.from(ds.targets)).toEqual(ref.samples.map((s) => s[1]));
    const want = readF32(refFile);
    const n = 3 * S * S;
    const report: string[] = [];
    for await (const b of createLoader(ds, { batchSize: 5, inputSize: S, workers: 2 })) {
      const x = (await b.images.data()) as Float32Array;
      for (let k = 0; k < b.indices.length; k++) {
        const i = b.indices[k];
        let sum = 0;
        let max = 0;
        for (let j = 0; j < n; j++) {
          const d = Math.abs(x[k * n + j] - want[i * n + j]) * 0.5; // denormalised (std 0.5)
          sum += d;
          max = Math.max(max, d);
        }
        report.push(`${path.basename(ds.files[i])} mean ${(sum / n * 255).toFixed(3)}/255 max ${(max * 255).toFixed(2)}/255`);
        // Decoding and resizing are PIL's bit for bit (docs/data.md), so only the float conversion rounds:
        // PIXEL_TOL in normalised units, half of it here (std 0.5). One uint8 level is 1/255.
        expect(sum / n, report.at(-1)).toBeLessThanOrEqual(PIXEL_TOL * 0.5);
        expect(max, report.at(-1)).toBeLessThanOrEqual(PIXEL_TOL * 0.5);
      }
      b.images.dispose();
    }
    if (process.env.MOOD_TEST_VERBOSE) console.log(report.join('\n'));
    expect(report.length).toBe(ds.length);
    expect(ds.truncated.size).toBe(2);
  });

  it('fastDecode (opt-in reduced-DCT JPEG decode) stays close to the exact result but is not identical', async () => {
    const one = path.join(dir, 'fast', 'x');
    fs.mkdirSync(one, { recursive: true });
    fs.copyFileSync(path.join(dir, 'train', 'alpha', 'large.jpg'), path.join(one, 'large.jpg'));
    const ds = await buildDataset({ dataSet: 'image_folder', dataPath: path.dirname(one), train: false });
    const get = async (fastDecode: boolean): Promise<Float32Array> => {
      for await (const b of createLoader(ds, { batchSize: 1, inputSize: 64, fastDecode })) {
        const x = (await b.images.data()) as Float32Array;
        b.images.dispose();
        return x;
      }
      throw new Error('no batch');
    };
    const exact = await get(false);
    const fast = await get(true);
    let sum = 0;
    let differ = 0;
    for (let i = 0; i < exact.length; i++) {
      const d = Math.abs(exact[i] - fast[i]) * 0.5;
      sum += d;
      if (d > 0) differ++;
    }
    expect(differ).toBeGreaterThan(0);
    // A closeness claim, not a rounding bound: libjpeg-turbo's scaled (reduced) IDCT is integer
    // arithmetic, the same on every CPU, and on this image its mean error is 2.5/255.
    expect(sum / exact.length).toBeLessThan(3 / 255);
  });

  it('corrupt and non-image files are skipped and counted, or fail with strict naming the file', async () => {
    const bad = path.join(dir, 'bad');
    fs.mkdirSync(path.join(bad, 'x'), { recursive: true });
    fs.copyFileSync(path.join(dir, 'train', 'alpha', 'photo.jpg'), path.join(bad, 'x', 'a.jpg'));
    fs.writeFileSync(path.join(bad, 'x', 'b.jpg'), Buffer.from([0xff, 0xd8, 0xff, 0xe0, 1, 2, 3]));
    fs.writeFileSync(path.join(bad, 'x', 'c.png'), 'this is text');
    fs.copyFileSync(path.join(dir, 'train', 'beta', 'rgb.png'), path.join(bad, 'x', 'd.png'));
    const ds = (await buildDataset({ dataSet: 'image_folder', dataPath: bad, train: false })) as ImageFileDataset;
    expect(ds.length).toBe(4);
    const got: number[] = [];
    for await (const b of createLoader(ds, { batchSize: 4, inputSize: 32 })) {
      got.push(...b.indices);
      expect(b.images.shape).toEqual([b.indices.length, 3, 32, 32]);
      expect(b.targets.length).toBe(b.indices.length);
      b.images.dispose();
    }
    expect(got).toEqual([0, 3]);
    expect([...ds.skipped.keys()].map((p) => path.basename(p))).toEqual(['b.jpg', 'c.png']);
    expect(ds.skipped.get(path.join(bad, 'x', 'c.png'))).toMatch(/unsupported format/);
    const strict = await buildDataset({ dataSet: 'image_folder', dataPath: bad, train: false, strict: true });
    const run = async (): Promise<void> => {
      for await (const b of createLoader(strict, { batchSize: 4, inputSize: 32 })) b.images.dispose();
    };
    await expect(run()).rejects.toThrow(/cannot decode .*b\.jpg/);
  });

  it('OOD folder: every image under images/ (nested) gets label 0; missing layouts explain themselves', async () => {
    const ood = path.join(dir, 'ood');
    fs.mkdirSync(path.join(ood, 'images', 'sub'), { recursive: true });
    fs.copyFileSync(path.join(dir, 'train', 'beta', 'rgb.png'), path.join(ood, 'images', 'sub', 'z.png'));
    fs.copyFileSync(path.join(dir, 'train', 'alpha', 'grey.jpg'), path.join(ood, 'images', 'a.jpg'));
    const ds = (await buildDataset({ dataSet: 'ood_folder', dataPath: ood, train: false })) as ImageFileDataset;
    expect(ds.files.map((f) => path.relative(ood, f))).toEqual(['images/a.jpg', 'images/sub/z.png']);
    expect(Array.from(ds.targets)).toEqual([0, 0]);
    await expect(buildDataset({ dataSet: 'imagenet30', dataPath: ood, train: false })).rejects.toThrow(/ood\/test does not exist.*\{train,test\}/);
    fs.mkdirSync(path.join(dir, 'emptycls', 'a'), { recursive: true });
    fs.mkdirSync(path.join(dir, 'emptycls', 'b'), { recursive: true });
    fs.copyFileSync(path.join(dir, 'train', 'beta', 'rgb.png'), path.join(dir, 'emptycls', 'a', 'x.png'));
    await expect(buildDataset({ dataSet: 'image_folder', dataPath: path.join(dir, 'emptycls'), train: true })).rejects.toThrow(DataError);
    await expect(buildDataset({ dataSet: 'image_folder', dataPath: path.join(dir, 'emptycls'), train: true })).rejects.toThrow(/no images .*emptycls\/b/);
  });
});

export { pyJson };
