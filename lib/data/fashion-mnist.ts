/**
 * Fashion-MNIST from the original idx-ubyte files (gzipped or not), e.g. Debian's dataset-fashion-mnist
 * in /usr/share/datasets/fashion-mnist, or torchvision's FashionMNIST/raw folder. 28x28 grey images
 * stay one channel natively and are replicated to RGB in the batch (PIL convert('RGB')).
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { promisify } from 'node:util';
import * as zlib from 'node:zlib';
import { Tensor } from '../tensor';
import { DataError } from './errors';
import { InMemoryDataset } from './memory';

export const FASHION_MNIST_DEFAULT_PATH = '/usr/share/datasets/fashion-mnist';
export const FASHION_MNIST_CLASSES = ['T-shirt/top', 'Trouser', 'Pullover', 'Dress', 'Coat', 'Sandal', 'Shirt', 'Sneaker', 'Bag', 'Ankle boot'] as const;

const gunzip = promisify(zlib.gunzip);

/** Finds `<stem>` or `<stem>.gz` in root, root/raw or root/FashionMNIST/raw. */
function locate(root: string, stem: string): string {
  const tried: string[] = [];
  for (const dir of [root, path.join(root, 'raw'), path.join(root, 'FashionMNIST', 'raw')]) {
    for (const f of [stem + '.gz', stem]) {
      const p = path.join(dir, f);
      tried.push(p);
      if (fs.existsSync(p)) return p;
    }
  }
  throw new DataError(`fashion_mnist: ${stem}[.gz] not found; expected the idx-ubyte files in ${root} (tried ${tried.join(', ')})`);
}

async function readIdx(file: string): Promise<Buffer> {
  let buf: Buffer = await fs.promises.readFile(file);
  if (buf.length >= 2 && buf[0] === 0x1f && buf[1] === 0x8b) {
    try {
      buf = await gunzip(buf);
    } catch (e) {
      throw new DataError(`fashion_mnist: ${file} is not a valid gzip file (${(e as Error).message})`);
    }
  }
  return buf;
}

/** Parses an idx header: magic 0x0000 08 <ndim>, then ndim big-endian sizes; checks the byte count. */
export function parseIdx(buf: Buffer, file: string, ndim: number): { dims: number[]; offset: number } {
  if (buf.length < 4 + 4 * ndim || buf.readUInt16BE(0) !== 0 || buf[2] !== 0x08 || buf[3] !== ndim)
    throw new DataError(`fashion_mnist: ${file} is not an idx file of ${ndim}-D uint8 data (bad magic)`);
  const dims: number[] = [];
  for (let i = 0; i < ndim; i++) dims.push(buf.readUInt32BE(4 + 4 * i));
  const offset = 4 + 4 * ndim;
  const need = dims.reduce((a, b) => a * b, 1);
  if (buf.length - offset !== need)
    throw new DataError(`fashion_mnist: ${file} holds ${buf.length - offset} data bytes, header [${dims}] needs ${need} (truncated?)`);
  return { dims, offset };
}

export async function loadFashionMnist(root: string, train: boolean): Promise<InMemoryDataset> {
  if (!fs.existsSync(root)) throw new DataError(`fashion_mnist: data path ${root} does not exist (expected a folder with train-images-idx3-ubyte.gz, t10k-... files; Debian package dataset-fashion-mnist installs them in ${FASHION_MNIST_DEFAULT_PATH})`);
  const prefix = train ? 'train' : 't10k';
  const imgFile = locate(root, `${prefix}-images-idx3-ubyte`);
  const lblFile = locate(root, `${prefix}-labels-idx1-ubyte`);
  const [imgBuf, lblBuf] = await Promise.all([readIdx(imgFile), readIdx(lblFile)]);
  const im = parseIdx(imgBuf, imgFile, 3);
  const lb = parseIdx(lblBuf, lblFile, 1);
  const [n, h, w] = im.dims;
  if (lb.dims[0] !== n) throw new DataError(`fashion_mnist: ${lblFile} has ${lb.dims[0]} labels for ${n} images in ${imgFile}`);
  const targets = new Int32Array(n);
  for (let i = 0; i < n; i++) {
    const t = lblBuf[lb.offset + i];
    if (t >= FASHION_MNIST_CLASSES.length) throw new DataError(`fashion_mnist: ${lblFile} label ${t} at ${i} is not a class 0..9`);
    targets[i] = t;
  }
  const pixels = Tensor.fromArray(new Uint8Array(imgBuf.buffer, imgBuf.byteOffset + im.offset, n * h * w), [n, 1, h, w]);
  return new InMemoryDataset({ name: 'fashion_mnist', root, split: train ? 'train' : 'test', classes: FASHION_MNIST_CLASSES, targets, pixels });
}
