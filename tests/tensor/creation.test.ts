import { describe, expect, it } from 'vitest';
import { Tensor, halfBitsToNumber } from '../../lib';

describe('creating tensors and reading them back', () => {
  it('round-trips every TypedArray kind with its dtype', async () => {
    const cases: [ArrayBufferView, string][] = [
      [new Float32Array([1.5, -2, 3]), 'float32'],
      [new Float64Array([1e-300, 2, -3]), 'float64'],
      [new Int32Array([1, -2, 2147483647]), 'int32'],
      [new BigInt64Array([1n, -2n, 9007199254740993n]), 'int64'],
      [new Uint8Array([0, 255, 7]), 'uint8'],
      [new Int16Array([-32768, 5, 7]), 'int16'],
      [new Int8Array([-128, 5, 7]), 'int8'],
    ];
    for (const [arr, dtype] of cases) {
      const t = Tensor.fromArray(arr, [3]);
      expect(t.dtype).toBe(dtype);
      expect(t.shape).toEqual([3]);
      expect(t.device).toBe('cpu');
      const back = await t.data();
      expect(back.constructor).toBe(arr.constructor);
      expect(Array.from(back as ArrayLike<number>)).toEqual(Array.from(arr as unknown as ArrayLike<number>));
    }
  });

  it('reads Uint16Array bits as float16 or bfloat16 exactly', async () => {
    // 0x3c00 = 1.0 (half), 0xc000 = -2.0 (half), 0x3f80 = 1.0 (bfloat16), 0x4049 = 3.140625 (bfloat16)
    const h = Tensor.fromArray(new Uint16Array([0x3c00, 0xc000, 0x0001]), [3], { dtype: 'float16' });
    expect(await h.cast('float32').toNumbers()).toEqual([1, -2, 2 ** -24]);
    const b = Tensor.fromArray(new Uint16Array([0x3f80, 0x4049]), [2], { dtype: 'bfloat16' });
    expect(await b.cast('float64').toNumbers()).toEqual([1, 3.140625]);
    expect(halfBitsToNumber(0x7c00, 'float16')).toBe(Infinity);
    // Reading a half tensor returns the same bits.
    expect(Array.from(await h.data())).toEqual([0x3c00, 0xc000, 0x0001]);
  });

  it('makes bool tensors from any non-zero byte', async () => {
    const t = Tensor.fromArray(new Uint8Array([0, 1, 200]), [3], { dtype: 'bool' });
    expect(t.dtype).toBe('bool');
    expect(Array.from(await t.data())).toEqual([0, 1, 1]);
  });

  it('creates from shape and fill', async () => {
    expect(await Tensor.zeros([2, 2]).array()).toEqual([[0, 0], [0, 0]]);
    expect(await Tensor.ones([3], { dtype: 'int32' }).array()).toEqual([1, 1, 1]);
    expect(await Tensor.full([2], 7.5, { dtype: 'float64' }).array()).toEqual([7.5, 7.5]);
    expect(await Tensor.arange(4).array()).toEqual([0, 1, 2, 3]);
    expect(Tensor.arange(4).dtype).toBe('int64');
    expect(await Tensor.arange(0, 1, 0.25).array()).toEqual([0, 0.25, 0.5, 0.75]);
    expect(await Tensor.eye(2).array()).toEqual([[1, 0], [0, 1]]);
    expect(await Tensor.of(3).item()).toBe(3);
  });

  it('seeded random tensors repeat exactly and have the right moments', async () => {
    const a = await Tensor.randn([20000], { seed: 7 }).data();
    const b = await Tensor.randn([20000], { seed: 7 }).data();
    const c = await Tensor.randn([20000], { seed: 8 }).data();
    expect(Array.from(a)).toEqual(Array.from(b));
    expect(Array.from(a)).not.toEqual(Array.from(c));
    const mean = (a as Float32Array).reduce((s, v) => s + v, 0) / a.length;
    const varr = (a as Float32Array).reduce((s, v) => s + (v - mean) ** 2, 0) / a.length;
    // Sampling error of 20000 N(0, 1) draws: standard errors 0.0071 (mean) and 0.010 (variance); the
    // bounds are 4.2 and 5 of them (seeded, so the same draw every run; ulp-level differences between
    // ATen's vectorised paths do not matter at this scale).
    expect(Math.abs(mean)).toBeLessThan(0.03);
    expect(Math.abs(varr - 1)).toBeLessThan(0.05);
    const u = (await Tensor.rand([1000], { seed: 1 }).data()) as Float32Array;
    expect(Math.min(...u)).toBeGreaterThanOrEqual(0);
    expect(Math.max(...u)).toBeLessThan(1);
  });

  it('converts dtype with to()/cast()', async () => {
    const t = Tensor.of([1.7, -2.2]);
    const i = t.cast('int64');
    expect(i.dtype).toBe('int64');
    expect(Array.from(await i.data())).toEqual([1n, -2n]);
    expect(t.to({ dtype: 'float64' }).dtype).toBe('float64');
    expect(t.to('cpu').device).toBe('cpu');
  });
});

describe('bad input is a clear error', () => {
  it('rejects a TypedArray that does not fit the dtype', () => {
    expect(() => Tensor.fromArray(new Float64Array(3), [3], { dtype: 'float32' })).toThrow(/dtype float32 needs a Float32Array/);
    expect(() => Tensor.fromArray(new Float32Array(3), [3], { dtype: 'int64' })).toThrow(/needs a BigInt64Array/);
    expect(() => Tensor.fromArray(new Float32Array(3), [3], { dtype: 'float16' })).toThrow(/Uint16Array/);
    expect(() => Tensor.fromArray([1, 2] as unknown as Float32Array)).toThrow(/TypedArray/);
    expect(() => Tensor.fromArray(new Float32Array(2), [2], { dtype: 'complex64' as never })).toThrow(/unknown dtype 'complex64'/);
  });

  it('rejects a shape that does not match the length', () => {
    expect(() => Tensor.fromArray(new Float32Array(5), [2, 3])).toThrow(/shape \[2, 3\] needs 6 elements, the array has 5/);
    expect(() => Tensor.fromArray(new Float32Array(2), [-2])).toThrow(/non-negative integer/);
    expect(() => Tensor.fromArray(new Float32Array(2), [1.5])).toThrow(/non-negative integer/);
    expect(() => Tensor.of([[1, 2], [3]])).toThrow(/ragged/);
  });

  it('rejects unknown devices and CUDA without CUDA', () => {
    expect(() => Tensor.zeros([2], { device: 'tpu' as never })).toThrow(/unknown device 'tpu'/);
    expect(() => Tensor.zeros([2], { device: 'cuda:x' as never })).toThrow(/unknown device/);
    expect(() => Tensor.fromArray(new Float32Array(2), [2], { device: 'cuda' })).toThrow(/CUDA is not available/);
  });

  it('rejects use after dispose, and dispose is idempotent', async () => {
    const t = Tensor.of([1, 2]);
    t.dispose();
    t.dispose();
    expect(t.isDisposed).toBe(true);
    expect(() => t.add(1)).toThrow(/add: tensor used after dispose\(\)/);
    expect(() => t.shape).toThrow(/after dispose/);
    await expect(t.data()).rejects.toThrow(/data: tensor used after dispose/);
  });

  it('reports op errors with the op name and the shapes, both on read and on metadata', async () => {
    const bad = Tensor.zeros([2, 3]).matmul(Tensor.zeros([4, 5]));
    await expect(bad.data()).rejects.toThrow(/matmul\(float32\[2, 3\], float32\[4, 5\]\)/);
    expect(() => bad.shape).toThrow(/matmul/);
    // An op fed by a failed op reports the first failure.
    await expect(bad.add(1).data()).rejects.toThrow(/matmul\(float32\[2, 3\]/);
    await expect(Tensor.of([1, 2, 3]).add(Tensor.of([1, 2])).data()).rejects.toThrow(/add\(float32\[3\], float32\[2\]\).*size of tensor a \(3\) must match/);
    await expect(Tensor.of([1]).item()).resolves.toBe(1);
    await expect(Tensor.of([1, 2]).item()).rejects.toThrow(/one element/);
    expect(() => Tensor.runOp('frobnicate', [])).toThrow(/unknown op 'frobnicate'/);
  });
});
