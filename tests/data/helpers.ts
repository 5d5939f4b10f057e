import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import * as crypto from 'node:crypto';
import { execFileSync } from 'node:child_process';
import { SYSTEM_PYTHON } from '../helpers/fixtures';

/** Runs a script in Debian's python3 (torch, torchvision, PIL, numpy); returns stdout. */
export function py(script: string, ...args: string[]): string {
  return execFileSync(SYSTEM_PYTHON, ['-c', script, ...args], { encoding: 'utf8', maxBuffer: 1 << 28, env: { ...process.env, OMP_NUM_THREADS: '1' } });
}

export function pyJson<T>(script: string, ...args: string[]): T {
  return JSON.parse(py(script, ...args)) as T;
}

export function havePython(): boolean {
  try {
    execFileSync(SYSTEM_PYTHON, ['-c', 'import torch, torchvision, PIL, numpy'], { stdio: 'ignore' });
    return true;
  } catch {
    return false;
  }
}

/**
 * Python snippet defining photo(w, h, noise=12): photo-like RGB test content (smooth shading, noise
 * from the script's global RandomState `rs`, a sharp-edged red box). Paste after `rs = ...`.
 */
export const PY_PHOTO = `
def photo(w, h, noise=12):
    y, x = np.mgrid[0:h, 0:w].astype(np.float32)
    img = np.stack([128 + 100 * np.sin(x / 23.0 + c) * np.cos(y / 31.0 - c) for c in range(3)], -1)
    img += rs.normal(0, noise, img.shape)
    img[h // 3: h // 2, w // 4: w // 2] = [250, 20, 40]  # sharp edges
    return Image.fromarray(np.clip(img, 0, 255).astype(np.uint8), 'RGB')
`;

export function tmpDir(tag: string): string {
  return fs.mkdtempSync(path.join(os.tmpdir(), `mood-data-${tag}-`));
}

export function sha256(a: ArrayBufferView): string {
  return crypto.createHash('sha256').update(new Uint8Array(a.buffer, a.byteOffset, a.byteLength)).digest('hex');
}

export function readF32(file: string): Float32Array {
  const b = fs.readFileSync(file);
  return new Float32Array(b.buffer.slice(b.byteOffset, b.byteOffset + b.byteLength));
}

/**
 * Bound for float tensors made from the same uint8 pixels by two float32 pipelines, (v/255 - mean)/std
 * (torchvision's ToTensor + Normalize vs ours): each side rounds about 5 times (v/255, the float32 mean
 * and std, the subtraction, the division) on |y| <= 2.64 (ImageNet mean/std; 1 with 0.5/0.5), so it is
 * within 8e-7 of exact and the two within 1.6e-6. One uint8 level is 1/(255 std) >= 7.8e-3 / 0.5 in y:
 * the pixels themselves must be equal (one normalised value moved by 4e-6, 1/2000 of a level, fails the
 * transforms test: checked).
 */
export const PIXEL_TOL = 2e-6;

export function maxAbsDiff(a: ArrayLike<number>, b: ArrayLike<number>): number {
  if (a.length !== b.length) throw new Error(`length ${a.length} vs ${b.length}`);
  let m = 0;
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i] - b[i]));
  return m;
}

/** A small CIFAR python-format tree written by python3's pickle (protocol 2, like the real files). */
export function makeCifar(dir: string, which: 'cifar10' | 'cifar100', nTrain: number, nTest: number, bytesKeys = false): void {
  py(
    `
import numpy as np, pickle, os, sys, tarfile
root, which, ntr, nte, bk = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4]), sys.argv[5] == '1'
K = (lambda s: s.encode()) if bk else (lambda s: s)
rs = np.random.RandomState(7)
sub = 'cifar-10-batches-py' if which == 'cifar10' else 'cifar-100-python'
d = os.path.join(root, sub); os.makedirs(d)
def dump(name, obj):
    with open(os.path.join(d, name), 'wb') as f: pickle.dump(obj, f, protocol=2)
if which == 'cifar10':
    dump('batches.meta', {K('label_names'): ['airplane','automobile','bird','cat','deer','dog','frog','horse','ship','truck'], K('num_vis'): 3072})
    per = ntr // 5
    for b in range(5):
        dump('data_batch_%d' % (b + 1), {K('data'): rs.randint(0, 256, (per, 3072)).astype(np.uint8), K('labels'): [int(x) for x in rs.randint(0, 10, per)], K('batch_label'): 'b'})
    dump('test_batch', {K('data'): rs.randint(0, 256, (nte, 3072)).astype(np.uint8), K('labels'): [int(x) for x in rs.randint(0, 10, nte)]})
else:
    dump('meta', {K('fine_label_names'): ['f%d' % i for i in range(100)], K('coarse_label_names'): ['c%d' % i for i in range(20)]})
    for name, n in (('train', ntr), ('test', nte)):
        fine = rs.randint(0, 100, n)
        dump(name, {K('data'): rs.randint(0, 256, (n, 3072)).astype(np.uint8), K('fine_labels'): [int(x) for x in fine], K('coarse_labels'): [int(x) // 5 for x in fine]})
with tarfile.open(os.path.join(root, ('cifar-10-python' if which == 'cifar10' else 'cifar-100-python') + '.tar.gz'), 'w:gz') as t:
    t.add(d, arcname=sub)
`,
    dir,
    which,
    String(nTrain),
    String(nTest),
    bytesKeys ? '1' : '0',
  );
}
