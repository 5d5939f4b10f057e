import { describe, expect, it } from 'vitest';
import { Tensor } from '../../lib';

// float64 (unless a test says otherwise) against Math.* / closed forms on O(1) values: a few ulps
// (2.2e-16 each; libm vs Sleef exp/log/tanh differ by <= 1 ulp), so 1e-12; logsumexp of values ~1000:
// ulps of 1002 are 1.1e-13, hence 1e-9.
const close = (a: number[], b: number[], tol = 1e-6): void => {
  expect(a.length).toBe(b.length);
  a.forEach((v, i) => expect(Math.abs(v - b[i])).toBeLessThanOrEqual(tol));
};

describe('elementwise arithmetic', () => {
  it('broadcasts like PyTorch and computes hand-checked values', async () => {
    const a = Tensor.of([[1], [2], [3]]);
    const b = Tensor.of([10, 20]);
    expect(await a.add(b).array()).toEqual([[11, 21], [12, 22], [13, 23]]);
    expect(await a.sub(b).array()).toEqual([[-9, -19], [-8, -18], [-7, -17]]);
    expect(await a.mul(b).array()).toEqual([[10, 20], [20, 40], [30, 60]]);
    expect(await b.div(a).array()).toEqual([[10, 20], [5, 10], [10 / 3, 20 / 3].map(Math.fround)]);
    expect(await a.pow(2).toNumbers()).toEqual([1, 4, 9]);
    expect(await Tensor.of([1, 5]).maximum(Tensor.of([3, 2])).toNumbers()).toEqual([3, 5]);
    expect(await Tensor.of([1, 5]).minimum(3).toNumbers()).toEqual([1, 3]);
  });

  it('keeps integer dtypes with integer scalars', async () => {
    const t = Tensor.arange(4).mul(3);
    expect(t.dtype).toBe('int64');
    expect(await t.toNumbers()).toEqual([0, 3, 6, 9]);
  });

  it('unary math matches Math.*', async () => {
    const x = [0.5, 1, 2.5];
    const t = Tensor.fromArray(Float64Array.from(x));
    close(await t.exp().toNumbers(), x.map(Math.exp), 1e-12);
    close(await t.log().toNumbers(), x.map(Math.log), 1e-12);
    close(await t.sqrt().toNumbers(), x.map(Math.sqrt), 1e-12);
    close(await t.neg().abs().toNumbers(), x, 0);
    close(await t.rsqrt().toNumbers(), x.map((v) => 1 / Math.sqrt(v)), 1e-12);
    close(await t.tanh().toNumbers(), x.map(Math.tanh), 1e-12);
    close(await t.sigmoid().toNumbers(), x.map((v) => 1 / (1 + Math.exp(-v))), 1e-12);
    close(await t.clamp(0.7, 2).toNumbers(), [0.7, 1, 2], 0);
  });

  it('comparisons and where', async () => {
    const a = Tensor.of([1, 2, 3]);
    const m = a.gt(1.5);
    expect(m.dtype).toBe('bool');
    expect(Array.from(await m.data())).toEqual([0, 1, 1]);
    expect(await a.where(m, Tensor.zeros([3])).toNumbers()).toEqual([0, 2, 3]);
    expect(Array.from(await a.eq(Tensor.of([1, 0, 3])).data())).toEqual([1, 0, 1]);
    expect(Array.from(await Tensor.of([NaN, 1]).isnan().data())).toEqual([1, 0]);
    expect(Array.from(await Tensor.of([Infinity, 1]).isfinite().data())).toEqual([0, 1]);
  });
});

describe('reductions', () => {
  const m = (): Tensor => Tensor.fromArray(Float64Array.from([1, 5, 3, 4, 2, 6]), [2, 3]);
  it('sum/mean/max/min/argmax over dims', async () => {
    expect(await m().sum().item()).toBe(21);
    expect(await m().sum(0).toNumbers()).toEqual([5, 7, 9]);
    expect(await m().sum(1, true).array()).toEqual([[9], [12]]);
    expect(await m().mean(1).toNumbers()).toEqual([3, 4]);
    expect(await m().max(1).toNumbers()).toEqual([5, 6]);
    expect(await m().min().item()).toBe(1);
    expect(await m().argmax(1).toNumbers()).toEqual([1, 2]);
    expect(await m().argmin().item()).toBe(0);
    const { values, indices } = m().maxDim(0);
    expect(await values.toNumbers()).toEqual([4, 5, 6]);
    expect(await indices.toNumbers()).toEqual([1, 0, 1]);
    expect(await m().prod().item()).toBe(720);
  });

  it('var/std with both corrections', async () => {
    const x = [1, 5, 3, 4, 2, 6];
    const mu = 3.5;
    const ss = x.reduce((s, v) => s + (v - mu) ** 2, 0);
    close([await m().var().item()], [ss / 5], 1e-12);
    close([await m().var(undefined, { correction: 0 }).item()], [ss / 6], 1e-12);
    close([await m().std(undefined, { correction: 0 }).item()], [Math.sqrt(ss / 6)], 1e-12);
  });

  it('norms: L1, L2, L-infinity', async () => {
    const t = Tensor.fromArray(Float64Array.from([3, -4, 0, 1, 1, 1]), [2, 3]);
    expect(await t.norm(2, 1).toNumbers()).toEqual([5, Math.sqrt(3)]);
    expect(await t.norm(1, 1).toNumbers()).toEqual([7, 3]);
    expect(await t.norm(Infinity, 1).toNumbers()).toEqual([4, 1]);
  });

  it('softmax, log_softmax, logsumexp are consistent and stable for large logits', async () => {
    const l = Tensor.fromArray(Float64Array.from([1000, 1001, 1002, 0, 0, 0]), [2, 3]);
    const lse = await l.logsumexp(1).toNumbers();
    close(lse, [1002 + Math.log(1 + Math.exp(-1) + Math.exp(-2)), Math.log(3)], 1e-9);
    const sm = await l.softmax(1).toNumbers();
    close(sm.slice(3), [1 / 3, 1 / 3, 1 / 3], 1e-12);
    close(await l.logSoftmax(1).exp().toNumbers(), sm, 1e-12);
  });
});

describe('ordering, shape and indexing', () => {
  it('topk and sort give values and indices', async () => {
    const t = Tensor.of([5, 1, 4, 2, 3]);
    const { values, indices } = t.topk(2);
    expect(await values.toNumbers()).toEqual([5, 4]);
    expect(await indices.toNumbers()).toEqual([0, 2]);
    const small = t.topk(2, { largest: false });
    expect(await small.values.toNumbers()).toEqual([1, 2]);
    const s = t.sort({ descending: true });
    expect(await s.values.toNumbers()).toEqual([5, 4, 3, 2, 1]);
    expect(await s.indices.toNumbers()).toEqual([0, 2, 4, 3, 1]);
  });

  it('cat/stack/reshape/transpose/permute/slice/index_select/gather', async () => {
    const a = Tensor.of([[1, 2], [3, 4]]);
    const b = Tensor.of([[5, 6]]);
    expect(await Tensor.cat([a, b]).array()).toEqual([[1, 2], [3, 4], [5, 6]]);
    expect(Tensor.stack([a, a], 1).shape).toEqual([2, 2, 2]);
    expect(await a.reshape([4]).toNumbers()).toEqual([1, 2, 3, 4]);
    expect(await a.T.array()).toEqual([[1, 3], [2, 4]]);
    const c = Tensor.arange(24).reshape([2, 3, 4]);
    expect(c.permute([2, 0, 1]).shape).toEqual([4, 2, 3]);
    expect(await c.permute([2, 0, 1]).contiguous().slice(0, 1, 2).flatten().toNumbers()).toEqual([1, 5, 9, 13, 17, 21]);
    expect(await Tensor.arange(10).slice(0, 1, 8, 3).toNumbers()).toEqual([1, 4, 7]);
    expect(await a.indexSelect(0, Tensor.fromArray(new BigInt64Array([1n, 1n, 0n]))).array()).toEqual([[3, 4], [3, 4], [1, 2]]);
    expect(await a.gather(1, Tensor.fromArray(new BigInt64Array([1n, 0n]), [2, 1])).array()).toEqual([[2], [3]]);
    expect(await a.select(1, 0).toNumbers()).toEqual([1, 3]);
    expect(a.unsqueeze(0).shape).toEqual([1, 2, 2]);
    expect(a.unsqueeze(0).squeeze(0).shape).toEqual([2, 2]);
    expect(b.expand([3, 2]).shape).toEqual([3, 2]);
    expect(await a.maskedSelect(a.gt(2)).toNumbers()).toEqual([3, 4]);
  });

  it('matmul on 2-D and batched inputs', async () => {
    const a = Tensor.of([[1, 2], [3, 4]]);
    expect(await a.matmul(a).array()).toEqual([[7, 10], [15, 22]]);
    const batched = Tensor.stack([a, a.mul(2)]).matmul(a);
    expect(await batched.array()).toEqual([[[7, 10], [15, 22]], [[14, 20], [30, 44]]]);
  });

  it('strided views of a storage tensor (checkpoint views)', async () => {
    const storage = Tensor.arange(0, 12, 1, { dtype: 'float32' });
    expect(await storage.asStrided([2, 3], [1, 2], 1).array()).toEqual([[1, 3, 5], [2, 4, 6]]);
    await expect(storage.asStrided([2, 3], [6, 2], 2).data()).rejects.toThrow(/reaches element 12 of a storage of 12/);
  });
});

describe('allFinite', () => {
  // Independent truth: a JS scan of the same values (Number.isFinite), and torch's isfinite().all().
  it('finds a NaN / ±Inf anywhere, in every floating dtype and in strided views; integers are finite', async () => {
    const n = 300_007; // more than one parallel chunk, not a multiple of the step
    for (const dtype of ['float32', 'float64', 'float16', 'bfloat16'] as const) {
      for (const [pos, bad] of [[-1, 0], [0, NaN], [n - 1, NaN], [150_001, Infinity], [77_777, -Infinity]] as const) {
        const v = new Float32Array(n);
        for (let i = 0; i < n; i++) v[i] = Math.sin(i) * 100;
        if (pos >= 0) v[pos] = bad;
        const t = Tensor.fromArray(v, [n]).cast(dtype);
        const want = v.every((x) => Number.isFinite(x));
        expect(await t.allFinite().item(), `${dtype} bad at ${pos}`).toBe(want ? 1 : 0);
        expect(await t.isfinite().all().item()).toBe(want ? 1 : 0);
        t.dispose();
      }
    }
    const big = Tensor.fromArray(Float64Array.of(1e300, -1e300, 5e-324), [3]); // finite in float64, not in float32
    expect(await big.allFinite().item()).toBe(1);
    const m = Tensor.fromArray(Float32Array.from({ length: 12 }, (_, i) => (i === 7 ? NaN : i)), [3, 4]);
    expect(await m.transpose(0, 1).allFinite().item()).toBe(0);
    expect(await Tensor.arange(10).allFinite().item()).toBe(1);
    expect(await Tensor.zeros([0]).allFinite().item()).toBe(1);
  });
});
