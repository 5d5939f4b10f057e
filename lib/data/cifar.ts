/**
 * CIFAR-10 / CIFAR-100, python version (`cifar-10-batches-py`, `cifar-100-python`), read from the
 * folder or straight from the downloaded .tar.gz. Batches are pickles (numpy arrays inside) read with
 * the checkpoint module's safe unpickler; pixels are stored CHW already, as the batch tensor wants.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { Tensor } from '../tensor';
import { unpickle } from '../checkpoint/pickle';
import { BUILTIN_GLOBALS } from '../checkpoint/globals-builtin';
import { NUMPY_GLOBALS } from '../checkpoint/globals-numpy';
import type { GlobalHandler } from '../checkpoint/pickle';
import { PyDict, PyValue } from '../checkpoint/pyvalues';
import { NdArray } from '../npy/ndarray';
import { DataError } from './errors';
import { InMemoryDataset } from './memory';

interface Layout {
  name: 'cifar10' | 'cifar100';
  dir: string;
  tarball: string;
  train: string[];
  test: string[];
  meta: string;
}

const LAYOUTS: Record<'cifar10' | 'cifar100', Layout> = {
  cifar10: {
    name: 'cifar10',
    dir: 'cifar-10-batches-py',
    tarball: 'cifar-10-python.tar.gz',
    train: ['data_batch_1', 'data_batch_2', 'data_batch_3', 'data_batch_4', 'data_batch_5'],
    test: ['test_batch'],
    meta: 'batches.meta',
  },
  cifar100: { name: 'cifar100', dir: 'cifar-100-python', tarball: 'cifar-100-python.tar.gz', train: ['train'], test: ['test'], meta: 'meta' },
};

const GLOBALS: ReadonlyMap<string, GlobalHandler> = new Map([...BUILTIN_GLOBALS, ...NUMPY_GLOBALS]);

/** Reads named members of the dataset from a folder or a tarball. */
type Reader = (names: string[]) => Promise<Map<string, Uint8Array>>;

function folderReader(dir: string): Reader {
  return async (names) => {
    const out = new Map<string, Uint8Array>();
    for (const n of names) {
      const p = path.join(dir, n);
      if (!fs.existsSync(p)) throw new DataError(`missing ${p}`);
      out.set(n, await fs.promises.readFile(p));
    }
    return out;
  };
}

function tarReader(file: string, dir: string): Reader {
  return async (names) => {
    const tar = await import('tar');
    const want = new Set(names);
    const chunks = new Map<string, Buffer[]>();
    await tar.t({
      file,
      onReadEntry: (entry) => {
        const p = entry.path.replace(/^\.\//, '');
        const base = p.split('/').pop() ?? '';
        if (p === `${dir}/${base}` && want.has(base)) {
          const list: Buffer[] = [];
          chunks.set(base, list);
          entry.on('data', (c: Buffer) => list.push(c));
        } else {
          entry.resume();
        }
      },
    }).catch((e: Error) => {
      throw new DataError(`cannot read ${file} as a .tar.gz archive: ${e.message}`);
    });
    const out = new Map<string, Uint8Array>();
    for (const n of names) {
      const c = chunks.get(n);
      if (!c) throw new DataError(`${file} has no member ${dir}/${n}`);
      out.set(n, Buffer.concat(c));
    }
    return out;
  };
}

/** Where the batches are: the folder itself, <root>/<dir>, a tarball, or <root>/<tarball>. */
function resolve(root: string, L: Layout): { reader: Reader; where: string } {
  const expected = `expected ${root}/${L.dir}/ (python version), a folder holding ${L.test[0]}, or ${L.tarball}`;
  if (!fs.existsSync(root)) throw new DataError(`${L.name}: data path ${root} does not exist; ${expected}`);
  const st = fs.statSync(root);
  if (st.isFile()) {
    if (/\.(tar\.gz|tgz|tar)$/.test(root)) return { reader: tarReader(root, L.dir), where: root };
    throw new DataError(`${L.name}: ${root} is a file but not a .tar.gz archive; ${expected}`);
  }
  if (fs.existsSync(path.join(root, L.test[0]))) return { reader: folderReader(root), where: root };
  const sub = path.join(root, L.dir);
  if (fs.existsSync(path.join(sub, L.test[0]))) return { reader: folderReader(sub), where: sub };
  const tgz = path.join(root, L.tarball);
  if (fs.existsSync(tgz)) return { reader: tarReader(tgz, L.dir), where: tgz };
  throw new DataError(`${L.name}: no CIFAR batches under ${root}; ${expected}`);
}

function key(d: PyDict, name: string, file: string): PyValue {
  if (d.has(name)) return d.get(name)!;
  for (const [k, v] of d) if (k instanceof Uint8Array && Buffer.from(k).toString('latin1') === name) return v;
  throw new DataError(`${file}: pickle has no '${name}' entry`);
}

function loadPickle(bytes: Uint8Array, file: string): PyDict {
  const v = unpickle(bytes, { file, globals: GLOBALS, encoding: 'latin1' }).value;
  if (!(v instanceof PyDict)) throw new DataError(`${file}: expected a pickled dict`);
  return v;
}

function labels(v: PyValue, n: number, max: number, file: string, what: string): Int32Array {
  let arr: ArrayLike<number | bigint>;
  if (Array.isArray(v)) arr = v as number[];
  else if (v instanceof NdArray) arr = v.typed() as ArrayLike<number>;
  else throw new DataError(`${file}: '${what}' must be a list of ints`);
  if (arr.length !== n) throw new DataError(`${file}: ${arr.length} '${what}' for ${n} images`);
  const out = new Int32Array(n);
  for (let i = 0; i < n; i++) {
    const x = Number(arr[i]);
    if (!Number.isInteger(x) || x < 0 || x >= max) throw new DataError(`${file}: '${what}'[${i}] = ${String(arr[i])} is not a class 0..${max - 1}`);
    out[i] = x;
  }
  return out;
}

function names(v: PyValue, file: string, what: string): string[] {
  if (!Array.isArray(v)) throw new DataError(`${file}: '${what}' must be a list of names`);
  return (v as PyValue[]).map((x) => (x instanceof Uint8Array ? Buffer.from(x).toString('latin1') : String(x)));
}

export interface CifarData {
  dataset: InMemoryDataset;
  /** CIFAR-100 only: superclass (coarse label) of every sample and the 20 superclass names. */
  coarse?: { targets: Int32Array; classes: string[] };
}

export async function loadCifar(which: 'cifar10' | 'cifar100', root: string, train: boolean): Promise<CifarData> {
  const L = LAYOUTS[which];
  const { reader, where } = resolve(root, L);
  const files = train ? L.train : L.test;
  let members: Map<string, Uint8Array>;
  try {
    members = await reader([L.meta, ...files]);
  } catch (e) {
    if (e instanceof DataError) throw new DataError(`${which}: ${e.message} (reading ${where})`);
    throw e;
  }
  const meta = loadPickle(members.get(L.meta)!, `${where}/${L.meta}`);
  const classes = names(key(meta, which === 'cifar10' ? 'label_names' : 'fine_label_names', L.meta), L.meta, 'label_names');
  const coarseNames = which === 'cifar100' ? names(key(meta, 'coarse_label_names', L.meta), L.meta, 'coarse_label_names') : undefined;
  const parts: { data: Uint8Array; fine: Int32Array; coarse?: Int32Array }[] = [];
  let total = 0;
  for (const f of files) {
    const file = `${where}/${f}`;
    const d = loadPickle(members.get(f)!, file);
    const data = key(d, 'data', file);
    if (!(data instanceof NdArray) || data.dtype !== 'uint8' || data.shape.length !== 2 || data.shape[1] !== 3072 || data.fortranOrder)
      throw new DataError(`${file}: 'data' must be a uint8 [N, 3072] array`);
    const n = data.shape[0];
    const fine = labels(key(d, which === 'cifar10' ? 'labels' : 'fine_labels', file), n, classes.length, file, 'labels');
    const coarse = coarseNames ? labels(key(d, 'coarse_labels', file), n, coarseNames.length, file, 'coarse_labels') : undefined;
    parts.push({ data: data.bytes, fine, coarse });
    total += n;
  }
  const px = new Uint8Array(total * 3072);
  const targets = new Int32Array(total);
  const coarse = coarseNames ? new Int32Array(total) : undefined;
  let at = 0;
  for (const p of parts) {
    px.set(p.data, at * 3072);
    targets.set(p.fine, at);
    if (coarse && p.coarse) coarse.set(p.coarse, at);
    at += p.fine.length;
  }
  const pixels = Tensor.fromArray(px, [total, 3, 32, 32]);
  const dataset = new InMemoryDataset({ name: which, root: where, split: train ? 'train' : 'test', classes, targets, pixels });
  return { dataset, coarse: coarse && coarseNames ? { targets: coarse, classes: coarseNames } : undefined };
}
