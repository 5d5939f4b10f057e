import * as fs from 'node:fs';
import * as path from 'node:path';
import { expect, it, beforeAll, afterAll } from 'vitest';
import { buildDataset, createLoader, DataError, InMemoryDataset, FASHION_MNIST_DEFAULT_PATH } from '../../lib/data';
import { makeCifar, py, pyJson, readF32, sha256, tmpDir, maxAbsDiff } from './helpers';
import { describeWith } from '../helpers/requirements';


describeWith(['torch', 'torchvision', 'pil', 'numpy', 'fashion-mnist'])('fashion_mnist (Debian dataset-fashion-mnist) vs numpy + gzip', () => {
  it('test split: labels and every pixel equal numpy reading the idx files', async () => {
    const ds = (await buildDataset({ dataSet: 'fashion_mnist', train: false })) as InMemoryDataset;
    expect(ds.length).toBe(10000);
    expect(ds.classes[9]).toBe('Ankle boot');
    const ref = pyJson<{ img: string; lbl: string; n: number; first: number[] }>(
      `
import gzip, numpy as np, hashlib, json, sys
r = sys.argv[1]
img = np.frombuffer(gzip.open(r + '/t10k-images-idx3-ubyte.gz').read(), np.uint8, offset=16).reshape(-1, 28, 28)
lbl = np.frombuffer(gzip.open(r + '/t10k-labels-idx1-ubyte.gz').read(), np.uint8, offset=8).astype(np.int32)
print(json.dumps({'img': hashlib.sha256(img.tobytes()).hexdigest(), 'lbl': hashlib.sha256(lbl.tobytes()).hexdigest(), 'n': len(lbl), 'first': lbl[:10].tolist()}))
`,
      FASHION_MNIST_DEFAULT_PATH,
    );
    expect(ds.length).toBe(ref.n);
    expect(sha256(ds.targets)).toBe(ref.lbl);
    expect(sha256(await ds.pixels.data())).toBe(ref.img);
  });

  it('evaluation batch = (x / 255 - 0.5) / 0.5 replicated to 3 channels, in dataset order', async () => {
    const ds = await buildDataset({ dataSet: 'fashion_mnist', train: false });
    const loader = createLoader(ds, { batchSize: 8, inputSize: 28 });
    const it = loader[Symbol.asyncIterator]();
    const { value: b } = await it.next();
    await it.return?.();
    expect(Array.from(b.indices)).toEqual([0, 1, 2, 3, 4, 5, 6, 7]);
    expect(b.images.shape).toEqual([8, 3, 28, 28]);
    const dir = tmpDir('fm');
    py(
      `
import gzip, numpy as np, sys
from PIL import Image
import torchvision.transforms as T
img = np.frombuffer(gzip.open(sys.argv[1] + '/t10k-images-idx3-ubyte.gz').read(), np.uint8, offset=16).reshape(-1, 28, 28)
tf = T.Compose([T.ToTensor(), T.Normalize([0.5] * 3, [0.5] * 3)])
out = np.stack([tf(Image.fromarray(img[i], mode='L').convert('RGB')).numpy() for i in range(8)])
out.astype(np.float32).tofile(sys.argv[2])
`,
      FASHION_MNIST_DEFAULT_PATH,
      path.join(dir, 'x.bin'),
    );
    // Same pixels, mean = std = 0.5: each side <= 2.4e-7 from exact (see PIXEL_TOL), so 1e-6 holds.
    expect(maxAbsDiff(await b.images.data(), readF32(path.join(dir, 'x.bin')))).toBeLessThanOrEqual(1e-6);
    b.images.dispose();
    fs.rmSync(dir, { recursive: true });
  });

  it('missing folder names the path and the expected files', async () => {
    await expect(buildDataset({ dataSet: 'fashion_mnist', dataPath: '/nonexistent/fm', train: true })).rejects.toThrow(/\/nonexistent\/fm.*train-images-idx3-ubyte/);
  });
});

describeWith(['torch', 'torchvision', 'pil', 'numpy'])('cifar10 / cifar100 python pickles vs pickle.load', () => {
  let dir = '';
  beforeAll(() => {
    dir = tmpDir('cifar');
    makeCifar(path.join(dir, 'c10'), 'cifar10', 50, 20);
    makeCifar(path.join(dir, 'c100'), 'cifar100', 60, 30, true);
  });
  afterAll(() => fs.rmSync(dir, { recursive: true, force: true }));

  const refDigest = (root: string, files: string[], labelKey: string): { img: string; lbl: string } =>
    pyJson(
      `
import pickle, numpy as np, hashlib, json, sys
root, files, key = sys.argv[1], sys.argv[2].split(','), sys.argv[3]
data, labels = [], []
for f in files:
    with open(root + '/' + f, 'rb') as fh: d = pickle.load(fh, encoding='bytes')
    d = {(k.decode() if isinstance(k, bytes) else k): v for k, v in d.items()}
    data.append(d['data']); labels += d[key]
x = np.concatenate(data).reshape(-1, 3, 32, 32)
print(json.dumps({'img': hashlib.sha256(x.tobytes()).hexdigest(), 'lbl': hashlib.sha256(np.array(labels, np.int32).tobytes()).hexdigest()}))
`,
      root,
      files.join(','),
      labelKey,
    );

  it('cifar10 folder, parent folder and .tar.gz all give pickle.load arrays', async () => {
    const sub = path.join(dir, 'c10', 'cifar-10-batches-py');
    const ref = refDigest(sub, ['data_batch_1', 'data_batch_2', 'data_batch_3', 'data_batch_4', 'data_batch_5'], 'labels');
    for (const p of [path.join(dir, 'c10'), sub, path.join(dir, 'c10', 'cifar-10-python.tar.gz')]) {
      const ds = (await buildDataset({ dataSet: 'cifar10', dataPath: p, train: true })) as InMemoryDataset;
      expect(ds.length).toBe(50);
      expect(ds.classes[0]).toBe('airplane');
      expect(sha256(ds.targets)).toBe(ref.lbl);
      expect(sha256(await ds.pixels.data())).toBe(ref.img);
      ds.dispose();
    }
  });

  it('cifar100 (bytes keys) fine labels; classIdx -> superclass subsets', async () => {
    const sub = path.join(dir, 'c100', 'cifar-100-python');
    const ref = refDigest(sub, ['test'], 'fine_labels');
    const ds = (await buildDataset({ dataSet: 'cifar100', dataPath: path.join(dir, 'c100'), train: false })) as InMemoryDataset;
    expect(ds.classes.length).toBe(100);
    expect(sha256(ds.targets)).toBe(ref.lbl);
    expect(sha256(await ds.pixels.data())).toBe(ref.img);
    const coarse = JSON.parse(py(`import pickle,json,sys; d=pickle.load(open(sys.argv[1]+'/train','rb'),encoding='bytes'); print(json.dumps(d[b'coarse_labels']))`, sub)) as number[];
    const oc = await buildDataset({ dataSet: 'cifar100', dataPath: path.join(dir, 'c100'), train: true, classIdx: 3 });
    expect(oc.classes.length).toBe(20);
    expect(oc.classIdx).toBe(3);
    expect(oc.length).toBe(coarse.filter((c) => c === 3).length);
    expect(Array.from(oc.targets).every((t) => t === 3)).toBe(true);
    const test = await buildDataset({ dataSet: 'cifar100', dataPath: path.join(dir, 'c100'), train: false, classIdx: 3 });
    expect(test.length).toBe(30);
    expect(Math.max(...test.targets)).toBeLessThan(20);
    ds.dispose();
  });

  it('one-class cifar10 subset batches hold the right images (eval, 32 px, exact)', async () => {
    const oc = (await buildDataset({ dataSet: 'cifar10', dataPath: path.join(dir, 'c10'), train: true, classIdx: 2 })) as InMemoryDataset;
    const full = (await buildDataset({ dataSet: 'cifar10', dataPath: path.join(dir, 'c10'), train: true })) as InMemoryDataset;
    const rows = Array.from(full.targets.keys()).filter((i) => full.targets[i] === 2);
    expect(oc.length).toBe(rows.length);
    const px = await full.pixels.data();
    const loader = createLoader(oc, { batchSize: 100, inputSize: 32 });
    for await (const b of loader) {
      const x = await b.images.data();
      for (let i = 0; i < b.indices.length; i++) {
        const r = rows[b.indices[i]];
        // float32 (v/255 - 0.5)/0.5 vs exact: <= 2.4e-7 (see PIXEL_TOL), inside 6 digits (5e-7).
        for (let k = 0; k < 3072; k += 97) expect(x[i * 3072 + k]).toBeCloseTo((px[r * 3072 + k] / 255 - 0.5) / 0.5, 6);
      }
      b.images.dispose();
    }
    full.dispose();
  });

  it('bad input: unknown set, missing layout, class index out of range', async () => {
    await expect(buildDataset({ dataSet: 'cifar11', train: true })).rejects.toThrow(/unknown data set 'cifar11'.*cifar10/);
    await expect(buildDataset({ dataSet: 'cifar10', dataPath: dir, train: true })).rejects.toThrow(DataError);
    await expect(buildDataset({ dataSet: 'cifar10', dataPath: dir, train: true })).rejects.toThrow(/cifar-10-batches-py/);
    await expect(buildDataset({ dataSet: 'cifar10', dataPath: path.join(dir, 'c10'), train: true, classIdx: 10 })).rejects.toThrow(/classIdx 10 out of range.*0\.\.9/);
    await expect(buildDataset({ dataSet: 'cifar100', dataPath: path.join(dir, 'c100'), train: true, classIdx: 20 })).rejects.toThrow(/0\.\.19.*superclasses/);
    const bad = path.join(dir, 'bad.tar.gz');
    fs.writeFileSync(bad, 'not a tarball');
    await expect(buildDataset({ dataSet: 'cifar10', dataPath: bad, train: true })).rejects.toThrow(/bad\.tar\.gz/);
  });
});

describeWith(['torch', 'torchvision', 'pil', 'numpy'])('svhn .mat (MATLAB v5) vs scipy.io.loadmat + torchvision SVHN conventions', () => {
  it('compressed and plain .mat files give torchvision SVHN arrays and labels', async () => {
    const dir = tmpDir('svhn');
    py(
      `
import numpy as np, scipy.io, sys
rs = np.random.RandomState(3)
X = rs.randint(0, 256, (32, 32, 3, 37)).astype(np.uint8)
y = rs.randint(1, 11, (37, 1)).astype(np.uint8)
scipy.io.savemat(sys.argv[1] + '/train_32x32.mat', {'X': X, 'y': y}, do_compression=True)
scipy.io.savemat(sys.argv[1] + '/test_32x32.mat', {'X': X[..., :5], 'y': y[:5].astype(np.float64)}, do_compression=False)
`,
      dir,
    );
    for (const [train, n] of [[true, 37], [false, 5]] as const) {
      const ds = (await buildDataset({ dataSet: 'svhn', dataPath: dir, train })) as InMemoryDataset;
      const ref = pyJson<{ img: string; lbl: string }>(
        `
import numpy as np, scipy.io, sys, json, hashlib
m = scipy.io.loadmat(sys.argv[1])
data = np.ascontiguousarray(np.transpose(m['X'], (3, 2, 0, 1)))
labels = m['y'].astype(np.int64).squeeze(); np.place(labels, labels == 10, 0)
print(json.dumps({'img': hashlib.sha256(data.tobytes()).hexdigest(), 'lbl': hashlib.sha256(labels.astype(np.int32).tobytes()).hexdigest()}))
`,
        path.join(dir, train ? 'train_32x32.mat' : 'test_32x32.mat'),
      );
      expect(ds.length).toBe(n);
      expect(sha256(ds.targets)).toBe(ref.lbl);
      expect(sha256(await ds.pixels.data())).toBe(ref.img);
      ds.dispose();
    }
    fs.writeFileSync(path.join(dir, 'bad.mat'), 'MATLAB 7.3 MAT-file, HDF5 would be here'.padEnd(200, ' '));
    await expect(buildDataset({ dataSet: 'svhn', dataPath: path.join(dir, 'bad.mat'), train: true })).rejects.toThrow(/bad\.mat: not a little-endian MATLAB v5/);
    await expect(buildDataset({ dataSet: 'svhn', dataPath: path.join(dir, 'nope'), train: true })).rejects.toThrow(/nope\/train_32x32\.mat not found/);
    fs.rmSync(dir, { recursive: true });
  });
});
