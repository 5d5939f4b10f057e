/**
 * The native DALL-E encoder against the official code's outputs (tests/fixtures/official/dvae: logits
 * and ids of dall_e.encoder.Encoder on map_pixels of three 112 px photo crops), the full-size
 * encoder's key listing, and its input / option errors.
 */
import * as path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { DalleEncoder } from '../../lib/dvae/encoder';
import { readNpy } from '../../lib/npy';
import { Tensor } from '../../lib/tensor';
import { cuda } from '../../lib/runtime';
import { DVAE_DIR, dvaeManifest } from './helpers';

/**
 * Logit tolerance, from float32 accumulation order. The logits reach |78| (the fixture scales the
 * output conv by 40 so that ids vary); each of the 40 convolutions sums up to 2304 float32 products, and
 * our libtorch's conv algorithm / thread split orders those sums differently from the reference run:
 * measured here max |diff| 4.2e-5 (1 thread) and 6.1e-5 (2 threads), i.e. a few ulps of 64 (7.6e-6).
 * 1e-3 is the bound: 16x above that, and 10x below the smallest gap between the top two
 * logits of any position (0.0106), so a wrong id cannot hide inside it.
 */
const LOGIT_TOL = 1e-3;

function fixture(name: string): Tensor {
  const a = readNpy(path.join(DVAE_DIR, name));
  return Tensor.fromArray(a.typed() as Float32Array | BigInt64Array, a.shape);
}

describe('DALL-E encoder vs the official code (fixture)', () => {
  let enc: DalleEncoder;
  beforeAll(async () => {
    enc = await DalleEncoder.fromFile(DVAE_DIR);
  });
  afterAll(() => enc?.dispose());

  it('structure from the file; logits within 1e-3 and ids exactly equal', async () => {
    expect(enc.options).toMatchObject({ n_hid: 64, n_blk_per_group: 2, group_count: 4, vocab_size: 512, n_layers: 8, post_gain: 1 / 64, device: 'cpu', precision: 'auto' });
    const x = fixture('x.npy');
    const { logits, ids } = enc.forward(x, { mapPixels: true, logits: true, ids: true });
    const want = readNpy(path.join(DVAE_DIR, 'logits.npy'));
    expect(logits!.shape).toEqual(want.shape);
    const got = (await logits!.data()) as Float32Array;
    const ref = want.typed() as Float32Array;
    let max = 0;
    for (let i = 0; i < ref.length; i++) max = Math.max(max, Math.abs(got[i] - ref[i]));
    expect(max).toBeLessThanOrEqual(LOGIT_TOL);
    const wantIds = readNpy(path.join(DVAE_DIR, 'ids.npy'));
    expect(ids!.shape).toEqual(wantIds.shape);
    expect(ids!.dtype).toBe('int64');
    expect(Array.from((await ids!.data()) as BigInt64Array)).toEqual(Array.from(wantIds.typed() as BigInt64Array));
    // The ids vary (a constant argmax would hide a wrong network): 6 distinct tokens over 588 positions.
    expect(new Set(Array.from(wantIds.typed() as BigInt64Array)).size).toBeGreaterThanOrEqual(5);
    for (const t of [x, logits!, ids!]) t.dispose();
  });

  it('map_pixels is (1 - 2*0.1) * x + 0.1 in float32, applied before the encoder', async () => {
    const x = fixture('x.npy');
    const xs = (await x.data()) as Float32Array;
    const mapped = Float32Array.from(xs, (v) => Math.fround(Math.fround(v * Math.fround(0.8)) + Math.fround(0.1)));
    const xm = Tensor.fromArray(mapped, x.shape);
    const a = enc.forward(x, { mapPixels: true }).logits!;
    const b = enc.forward(xm, { mapPixels: false }).logits!;
    expect(Array.from((await a.data()) as Float32Array)).toEqual(Array.from((await b.data()) as Float32Array));
    // ...and it matters: without it the logits move.
    const c = enc.forward(x).logits!;
    const da = (await a.data()) as Float32Array;
    const dc = (await c.data()) as Float32Array;
    let moved = 0;
    for (let i = 0; i < da.length; i++) moved = Math.max(moved, Math.abs(da[i] - dc[i]));
    expect(moved).toBeGreaterThan(0.1);
    for (const t of [x, xm, a, b, c]) t.dispose();
  });

  it('bad inputs and options are named', async () => {
    const bad = (shape: number[], dtype: 'float32' | 'float64' = 'float32') => Tensor.zeros(shape, { dtype });
    const cases: Array<[Tensor, RegExp]> = [
      [bad([3, 8, 8]), /input shape \[3, 8, 8\] is not 4-D/],
      [bad([1, 1, 16, 16]), /input has 1 channels but the encoder was built for 3/],
      [bad([1, 3, 16, 16], 'float64'), /input must be float32/],
      [bad([1, 3, 4, 4]), /input \[1, 3, 4, 4\] is too small for 3 poolings/],
    ];
    for (const [t, re] of cases) {
      const r = enc.forward(t, { ids: true, logits: false }).ids!;
      await expect(r.data()).rejects.toThrow(re);
      r.dispose();
      t.dispose();
    }
    expect(() => new DalleEncoder({ precision: 'float16' })).toThrow(/precision float16 needs a CUDA device/);
    expect(() => new DalleEncoder({ float16_convs: ['blocks.nope'] })).toThrow(/float16_convs names 'blocks\.nope', which is not a conv/);
    expect(() => new DalleEncoder({ n_hid: 0 })).toThrow(/n_hid must be >= 1/);
    expect(enc.tokenGrid(112)).toBe(14);
  });
});

describe('full-size DALL-E encoder (OpenAI: n_hid 256, vocab 8192)', () => {
  it("key listing: names, order and shapes of a random full-size encoder equal OpenAI's; a state dict of that listing loads strictly", async () => {
    const m = dvaeManifest();
    const enc = new DalleEncoder({ seed: 0 });
    try {
      expect(enc.options).toMatchObject({ n_hid: 256, vocab_size: 8192, n_blk_per_group: 2, group_count: 4 });
      expect(enc.stateSpec().map(([k, s]) => [k, s])).toEqual(m.full_size_keys);
      // Random tensors shaped as the listing (a stand-in for encoder.pkl's weights) load key for key.
      const sd = new Map(m.full_size_keys.map(([k, s]) => [k, Tensor.randn(s)] as [string, Tensor]));
      const r = await enc.loadStateDict(sd, { strict: true });
      expect(r).toEqual({ missingKeys: [], unexpectedKeys: [] });
      const w = enc.stateDict().get('blocks.group_4.block_2.res_path.conv_4.w')!;
      expect(Array.from((await w.data()) as Float32Array).slice(0, 8)).toEqual(Array.from((await sd.get('blocks.group_4.block_2.res_path.conv_4.w')!.data()) as Float32Array).slice(0, 8));
      // A wrong shape or a missing key is refused, naming it.
      const wrong = new Map(sd);
      wrong.set('blocks.output.conv.w', Tensor.zeros([512, 2048, 1, 1]));
      await expect(enc.loadStateDict(wrong)).rejects.toThrow(/size mismatch for blocks\.output\.conv\.w: copying a param with shape \[512, 2048, 1, 1\]/);
      const missing = new Map(sd);
      missing.delete('blocks.input.b');
      await expect(async () => enc.loadStateDict(missing)).rejects.toThrow(/Missing key\(s\): blocks\.input\.b/);
      const x = Tensor.rand([1, 3, 16, 16]);
      const ids = enc.tokens(x, true);
      expect(ids.shape).toEqual([1, 2, 2]);
      const v = Array.from((await ids.data()) as BigInt64Array);
      expect(v.every((i) => i >= 0n && i < 8192n)).toBe(true);
      for (const t of [...sd.values(), x, ids, w, wrong.get('blocks.output.conv.w')!]) t.dispose();
    } finally {
      enc.dispose();
    }
  });
});

const CUDA = cuda.isAvailable();
describe.skipIf(!CUDA)(`DALL-E encoder on CUDA (reference mixed precision)${CUDA ? '' : ' (skipped: needs a CUDA device)'}`, () => {
  it('auto = float16 convs (all but the output conv): ids of the fixture mostly equal, logits close', async () => {
    const enc = await DalleEncoder.fromFile(DVAE_DIR, { device: 'cuda' });
    const ref = await DalleEncoder.fromFile(DVAE_DIR, { device: 'cuda', precision: 'float32' });
    const x = fixture('x.npy');
    const a = enc.forward(x, { mapPixels: true, ids: true });
    const b = ref.forward(x, { mapPixels: true, ids: true });
    const ia = (await a.ids!.data()) as BigInt64Array;
    const ib = (await b.ids!.data()) as BigInt64Array;
    let same = 0;
    for (let i = 0; i < ia.length; i++) if (ia[i] === ib[i]) same++;
    expect(same / ia.length).toBeGreaterThan(0.9);
    enc.dispose();
    ref.dispose();
  });
});
