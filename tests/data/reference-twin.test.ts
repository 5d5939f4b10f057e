/**
 * The training augmentation of `--train-features train-augment` against the reference twin
 * (scripts/reference/timm_transforms.py: timm 0.3.2's RandAugment / RandomErasing and MOOD's
 * build_transform written independently over PIL and torchvision, run by Debian's python3):
 * - every RandAugment op of both lists at fixed magnitudes and signs, both filters: the same level
 *   argument and the same pixels as the twin's PIL call;
 * - whole training images for fixed plans (crop, flip, ops incl. colour jitter via torchvision's
 *   functional ops, const erasing) replayed by the twin: equal to the last bit;
 * - the random choices themselves (op choice with and without replacement, skip probability,
 *   magnitude noise, signs, 'random' filters, erasing counts) against the twin's own draws.
 * So the twin used for the AUROC check (eval_with_features_twin.py) and our pipeline cannot drift apart.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { expect, it } from 'vitest';
import { Tensor } from '../../lib/tensor';
import { createLoader, InMemoryDataset, transformSpec } from '../../lib/data';
import { drawSamplePlan, PLAN } from '../../lib/data/plan';
import { levelArgument, pixelOpId, RAND_INCREASING_TRANSFORMS, RAND_TRANSFORMS, type LevelOp } from '../../lib/data/randaugment';
import type { LoaderOptions } from '../../lib/data/types';
import { py, readF32, tmpDir } from './helpers';
import { describeWith } from '../helpers/requirements';

const TWIN = path.resolve(__dirname, '../../scripts/reference');
const PRELUDE = `import sys, json, numpy as np\nsys.path.insert(0, ${JSON.stringify(TWIN)})\nimport timm_transforms as tt\nfrom PIL import Image\n`;

/** Photo-like RGB content (smooth shading, edges, saturated and grey areas). */
function rgbImage(H: number, W: number): Uint8Array {
  const px = new Uint8Array(3 * H * W);
  for (let c = 0; c < 3; c++)
    for (let y = 0; y < H; y++)
      for (let x = 0; x < W; x++) {
        let v = 40 + 3 * x + 2 * y + 30 * Math.sin((x * (c + 1)) / 5) + ((x * 7 + y * 13 + c) % 17);
        if (y > H / 3 && y < H / 2 && x > W / 4 && x < W / 2) v = [250, 20, 40][c];
        px[(c * H + y) * W + x] = Math.max(0, Math.min(255, Math.round(v)));
      }
  return px;
}

const SIGNED = new Set<string>(['Rotate', 'ShearX', 'ShearY', 'TranslateXRel', 'TranslateYRel', 'ColorIncreasing', 'ContrastIncreasing', 'BrightnessIncreasing', 'SharpnessIncreasing']);
const GEOMETRIC = new Set<string>(['Rotate', 'ShearX', 'ShearY', 'TranslateXRel', 'TranslateYRel']);

describeWith(['torch', 'torchvision', 'pil', 'numpy'])('train-augment vs the reference twin (timm 0.3.2 semantics over PIL/torchvision)', () => {
  it('each RandAugment op at fixed magnitudes: same level argument and same pixels as the twin, both filters', async () => {
    const dir = tmpDir('twin-ops');
    const names = [...new Set<LevelOp>([...RAND_TRANSFORMS, ...RAND_INCREASING_TRANSFORMS])];
    // [name, magnitude, negative, PIL filter]: 9 (the policy's m), 6.37 (a noisy one), 10 (the clip).
    const cases: Array<[LevelOp, number, boolean, number]> = [];
    for (const n of names)
      for (const m of [9, 6.37, 10])
        for (const neg of SIGNED.has(n) ? [false, true] : [false])
          for (const f of GEOMETRIC.has(n) ? [3, 2] : [3]) cases.push([n, m, neg, f]);
    const sizes: Array<[number, number]> = [[32, 32], [45, 61]];
    const failures: string[] = [];
    for (const [H, W] of sizes) {
      const px = rgbImage(H, W);
      fs.writeFileSync(path.join(dir, 'in.bin'), px);
      const out = py(
        PRELUDE +
          `
d, H, W = sys.argv[1], ${H}, ${W}
x = np.fromfile(d + '/in.bin', np.uint8).reshape(3, H, W)
args = []
for k, (name, m, neg, f) in enumerate(json.loads(sys.argv[2])):
    inc = name.endswith('Increasing')
    base = name[:-len('Increasing')] if inc else name
    a = tt.level_arg(base, inc, m, neg)
    args.append(a)
    img = Image.fromarray(np.ascontiguousarray(x.transpose(1, 2, 0)), 'RGB')
    o = tt.apply_op(img, base, a, (128, 128, 128), f)
    np.ascontiguousarray(np.asarray(o).transpose(2, 0, 1)).tofile(d + '/out%d.bin' % k)
print(json.dumps(args))
`,
        dir,
        JSON.stringify(cases),
      );
      const twinArgs = JSON.parse(out) as Array<number | null>;
      const t = Tensor.fromArray(px, [3, H, W]);
      for (let k = 0; k < cases.length; k++) {
        const [name, m, neg, resample] = cases[k];
        const arg = levelArgument(name, m, neg);
        const label = `${name} m=${m}${neg ? ' neg' : ''} filter ${resample} ${H}x${W}`;
        if (twinArgs[k] !== null && arg !== twinArgs[k]) failures.push(`${label}: argument ${arg} vs twin ${twinArgs[k]}`);
        const r = Tensor.runOp('data_ra_op', [t], { op: pixelOpId(name), arg, resample })[0];
        const ours = (await r.data()) as Uint8Array;
        r.dispose();
        const ref = fs.readFileSync(path.join(dir, `out${k}.bin`));
        let diff = 0;
        for (let i = 0; i < ref.length; i++) if (ref[i] !== ours[i]) diff++;
        if (diff) failures.push(`${label}: ${diff} of ${ref.length} values differ`);
      }
      t.dispose();
    }
    fs.rmSync(dir, { recursive: true });
    expect(failures).toEqual([]);
  });

  // 28x28 grey images (Fashion-MNIST's format) through the whole 32-px training chain.
  const N = 16;
  const grey = new Uint8Array(N * 28 * 28);
  for (let i = 0; i < grey.length; i++) {
    const x = i % 28;
    const y = Math.floor(i / 28) % 28;
    const n = Math.floor(i / 784);
    grey[i] = Math.max(0, Math.min(255, Math.round(128 + 90 * Math.sin((x + 2 * n) / 4) * Math.cos((y - n) / 5) + ((x * 11 + y * 7 + n * 5) % 23) - 11)));
  }

  /** Our batch and the twin's replay of the same plans; returns the largest difference. */
  async function replay(opts: Partial<LoaderOptions>, jitter = false): Promise<{ diff: number; opsApplied: number; erased: number }> {
    const dir = tmpDir('twin-replay');
    const ds = new InMemoryDataset({ name: 'grey', root: 'mem', split: 'train', classes: ['a'], targets: new Int32Array(N), pixels: Tensor.fromArray(grey, [N, 1, 28, 28]) });
    const lo: LoaderOptions = { batchSize: N, inputSize: 32, train: true, seed: 4, shuffle: false, ...opts };
    let x: Float32Array | undefined;
    for await (const b of createLoader(ds, lo)) {
      x = (await b.images.data()) as Float32Array;
      b.images.dispose();
    }
    ds.dispose();
    const spec = transformSpec({ ...lo, train: true });
    const row = new Float64Array(PLAN.cols);
    let opsApplied = 0;
    let erased = 0;
    const decisions = Array.from({ length: N }, (_, i) => {
      drawSamplePlan(spec, 4, 0, i, row);
      const ops: number[][] = [];
      for (let k = 0; k < row[PLAN.opCount]; k++) {
        const at = PLAN.ops + PLAN.opStride * k;
        if (row[at] >= 0) ops.push([row[at], row[at + 1], row[at + 2]]);
      }
      opsApplied += ops.length;
      const erase: number[][] = [];
      for (let b = 0; b < row[PLAN.eraseCount]; b++) {
        const at = PLAN.erase + PLAN.eraseStride * b;
        erase.push([row[at], row[at + 1], row[at + 2], row[at + 3]]);
      }
      erased += erase.length;
      return { crop: [row[PLAN.cropY], row[PLAN.cropX]], flip: row[PLAN.flip], ops, erase };
    });
    fs.writeFileSync(path.join(dir, 'grey.bin'), grey);
    fs.writeFileSync(path.join(dir, 'plan.json'), JSON.stringify(decisions));
    py(
      PRELUDE +
        `
d = sys.argv[1]
g = np.fromfile(d + '/grey.bin', np.uint8).reshape(-1, 28, 28)
plans = json.load(open(d + '/plan.json'))
out = []
for k, p in enumerate(plans):
    img = Image.fromarray(g[k], 'L').resize((32, 32), Image.BICUBIC).convert('RGB')
    out.append(tt.replay(img, p, erase_mode='${opts.remode ?? 'pixel'}', jitter=${jitter ? 'True' : 'False'}).numpy())
np.stack(out).astype(np.float32).tofile(d + '/ref.bin')
`,
      dir,
    );
    const ref = readF32(path.join(dir, 'ref.bin'));
    fs.rmSync(dir, { recursive: true });
    let diff = 0;
    for (let i = 0; i < ref.length; i++) diff = Math.max(diff, Math.abs(ref[i] - x![i]));
    return { diff, opsApplied, erased };
  }

  // Same uint8 pixels and the same float32 operations (v / 255, then (v - mean) / std) as ToTensor +
  // Normalize: the images must be identical, not close.
  it('rand-m9-mstd0.5-inc1 (bicubic) images for fixed plans equal the twin replay exactly', async () => {
    const r = await replay({ autoAugment: 'rand-m9-mstd0.5-inc1', reprob: 0 });
    expect(r.opsApplied).toBeGreaterThan(N * 0.5);
    expect(r.diff).toBe(0);
  });

  it("'random' filters, n3, 'const' erasing of up to 3 boxes: equal to the twin replay", async () => {
    const r = await replay({ autoAugment: 'rand-n3-m7-mstd0.5-inc1', trainInterpolation: 'random', reprob: 1, remode: 'const', recount: 3 });
    expect(r.erased).toBeGreaterThan(N);
    expect(r.diff).toBe(0);
  });

  it("colour jitter (--aa '', --color_jitter 0.4) equals torchvision's adjust_brightness/contrast/saturation", async () => {
    const r = await replay({ colorJitter: 0.4, reprob: 0 }, true);
    expect(r.opsApplied).toBe(3 * N);
    expect(r.diff).toBe(0);
  });

  it("'rand' erasing fills each box with one value per channel; the rest of the image is untouched", async () => {
    const ds = new InMemoryDataset({ name: 'grey', root: 'mem', split: 'train', classes: ['a'], targets: new Int32Array(N), pixels: Tensor.fromArray(grey, [N, 1, 28, 28]) });
    const base: LoaderOptions = { batchSize: N, inputSize: 32, train: true, seed: 8, shuffle: false, autoAugment: 'rand-m9-mstd0.5-inc1' };
    const get = async (o: Partial<LoaderOptions>): Promise<Float32Array> => {
      let x: Float32Array | undefined;
      for await (const b of createLoader(ds, { ...base, ...o })) {
        x = (await b.images.data()) as Float32Array;
        b.images.dispose();
      }
      return x!;
    };
    const clean = await get({ reprob: 0 });
    const erased = await get({ reprob: 1, remode: 'rand', recount: 2 });
    ds.dispose();
    const spec = transformSpec({ ...base, reprob: 1, remode: 'rand', recount: 2 });
    const row = new Float64Array(PLAN.cols);
    const S = 32;
    const colours: number[] = [];
    for (let i = 0; i < N; i++) {
      drawSamplePlan(spec, 8, 0, i, row);
      // Later boxes paint over earlier ones: owner[p] = the last box covering pixel p.
      const owner = new Int32Array(S * S).fill(-1);
      const boxes = Array.from({ length: row[PLAN.eraseCount] }, (_, b) => Array.from(row.subarray(PLAN.erase + PLAN.eraseStride * b, PLAN.erase + PLAN.eraseStride * b + 4)));
      boxes.forEach(([t, l, h, w], b) => {
        for (let y = t; y < t + h; y++) for (let x = l; x < l + w; x++) owner[y * S + x] = b;
      });
      boxes.forEach((_, b) => {
        for (let c = 0; c < 3; c++) {
          const vals = new Set<number>();
          for (let p = 0; p < S * S; p++) if (owner[p] === b) vals.add(erased[(i * 3 + c) * S * S + p]);
          if (vals.size === 0) continue;
          expect(vals.size).toBe(1);
          colours.push(...vals);
        }
      });
      const inBox = owner.map((o) => (o >= 0 ? 1 : 0));
      for (let c = 0; c < 3; c++) for (let p = 0; p < S * S; p++) if (!inBox[p]) expect(erased[(i * 3 + c) * S * S + p]).toBe(clean[(i * 3 + c) * S * S + p]);
    }
    expect(new Set(colours).size).toBeGreaterThan(colours.length / 2);
  });

  it("the random choices match the twin's: op frequencies, skips, magnitudes, signs, filters, erasing counts", () => {
    // The twin's RandAugment and RandomErasing with the pixel work stubbed out, recording what they draw.
    const T = 20000;
    const twin = JSON.parse(
      py(
        PRELUDE +
          `
import random, torch
random.seed(0); np.random.seed(0); torch.manual_seed(0)
seen = []
tt.apply_op = lambda img, name, arg, fill, resample: seen.append((name, arg, resample)) or img
def stats(config, interp, n):
    seen.clear()
    ra = tt.rand_augment_transform(config, (128, 128, 128), tt.INTERPOLATION[interp])
    for _ in range(n): ra(None)
    return [[a, b, c] for a, b, c in seen]
er = tt.RandomErasing(1.0, mode='const', max_count=3)
boxes = []
for _ in range(${T}):
    x = torch.ones(3, 32, 32); er(x); boxes.append(int((x == 0).any(0).sum()))
print(json.dumps(dict(inc=stats('rand-m9-mstd0.5-inc1', 'random', ${T}), w0=stats('rand-n2-m9-w0', 'bicubic', ${T}), boxes=float(np.mean(boxes)))))
`,
      ),
    ) as { inc: Array<[string, number, number]>; w0: Array<[string, number, number]>; boxes: number };
    const ours = (aa: string, interpolation: 'random' | 'bicubic'): Array<[string, number, number]> => {
      const spec = transformSpec({ inputSize: 32, train: true, reprob: 0, autoAugment: aa, trainInterpolation: interpolation });
      const row = new Float64Array(PLAN.cols);
      const out: Array<[string, number, number]> = [];
      for (let i = 0; i < T; i++) {
        drawSamplePlan(spec, 0, 0, i, row);
        for (let k = 0; k < row[PLAN.opCount]; k++) {
          const at = PLAN.ops + PLAN.opStride * k;
          if (row[at] >= 0) out.push([RAND_TRANSFORMS[row[at]], row[at + 1], row[at + 2]]);
        }
      }
      return out;
    };
    // Per op: the arguments and filters drawn.
    const byOp = (rows: Array<[string, number, number]>) => {
      const m = new Map<string, { args: number[]; bil: number }>();
      for (const [name, arg, f] of rows) {
        const e = m.get(name) ?? { args: [], bil: 0 };
        e.args.push(arg);
        if (f === 2) e.bil++;
        m.set(name, e);
      }
      return m;
    };
    const meanOf = (v: number[]) => v.reduce((s, x) => s + x, 0) / v.length;
    const varOf = (v: number[]) => {
      const m = meanOf(v);
      return v.reduce((s, x) => s + (x - m) ** 2, 0) / v.length;
    };
    const failures: string[] = [];
    // Two-sample z-test of E[z(x)], failing beyond 5 standard errors of the difference.
    const zTest = (label: string, a: number[], b: number[]) => {
      const d = Math.abs(meanOf(a) - meanOf(b));
      const se = Math.sqrt(varOf(a) / a.length + varOf(b) / b.length);
      if (d > 5 * se + 1e-9) failures.push(`${label}: ${meanOf(a)} vs twin ${meanOf(b)} (5 SE = ${5 * se})`);
    };
    const check = (label: string, oursRows: Array<[string, number, number]>, theirs: Array<[string, number, number]>, geometric: boolean) => {
      const a = byOp(oursRows);
      const b = byOp(theirs);
      for (const name of new Set([...a.keys(), ...b.keys()])) {
        const x = a.get(name) ?? { args: [], bil: 0 };
        const y = b.get(name) ?? { args: [], bil: 0 };
        // How often the op ran (choice x skip probability): binomial counts over T images.
        const p = (x.args.length + y.args.length) / (2 * T);
        if (Math.abs(x.args.length - y.args.length) > 5 * Math.sqrt(2 * T * p * (1 - p)) + 1) failures.push(`${label} ${name}: applied ${x.args.length} vs twin ${y.args.length}`);
        if (x.args.length < 30 || y.args.length < 30) continue;
        // Mean, sign and spread of the argument (the spread is the magnitude noise: mstd).
        zTest(`${label} ${name} mean argument`, x.args, y.args);
        zTest(`${label} ${name} negative share`, x.args.map((v) => +(v < 0)), y.args.map((v) => +(v < 0)));
        const mu = meanOf([...x.args, ...y.args].map(Math.abs));
        zTest(`${label} ${name} spread of |argument|`, x.args.map((v) => (Math.abs(v) - mu) ** 2), y.args.map((v) => (Math.abs(v) - mu) ** 2));
        if (geometric && GEOMETRIC.has(name)) zTest(`${label} ${name} bilinear share`, x.args.map((_, i) => +(i < x.bil)), y.args.map((_, i) => +(i < y.bil)));
      }
    };
    check('inc1/random', ours('rand-m9-mstd0.5-inc1', 'random'), twin.inc, true);
    check('w0', ours('rand-n2-m9-w0', 'bicubic'), twin.w0, false);
    // w0 draws without replacement: never the same op twice in an image, never Posterize or Invert.
    const spec = transformSpec({ inputSize: 32, train: true, reprob: 0, autoAugment: 'rand-n2-m9-w0' });
    const row = new Float64Array(PLAN.cols);
    for (let i = 0; i < 2000; i++) {
      drawSamplePlan(spec, 1, 0, i, row);
      const [a, b] = [row[PLAN.ops], row[PLAN.ops + PLAN.opStride]];
      if (a >= 0 && b >= 0) expect(a).not.toBe(b);
    }
    expect(twin.w0.some(([n]) => n === 'Posterize' || n === 'Invert')).toBe(false);
    // Erasing with recount 3: the erased area per image (count 1..3, each box area / count).
    const er = transformSpec({ inputSize: 32, train: true, reprob: 1, remode: 'const', recount: 3 });
    let area = 0;
    let areaSq = 0;
    for (let i = 0; i < T; i++) {
      drawSamplePlan(er, 2, 0, i, row);
      const mask = new Uint8Array(32 * 32);
      for (let b = 0; b < row[PLAN.eraseCount]; b++) {
        const [t, l, h, w] = Array.from(row.subarray(PLAN.erase + PLAN.eraseStride * b, PLAN.erase + PLAN.eraseStride * b + 4));
        for (let y = t; y < t + h; y++) for (let x = l; x < l + w; x++) mask[y * 32 + x] = 1;
      }
      const a = mask.reduce((s, v) => s + v, 0);
      area += a;
      areaSq += a * a;
    }
    const mean = area / T;
    const sd = Math.sqrt(areaSq / T - mean * mean);
    expect(Math.abs(mean - twin.boxes)).toBeLessThanOrEqual(5 * sd * Math.sqrt(2 / T));
    expect(failures).toEqual([]);
  });
});
