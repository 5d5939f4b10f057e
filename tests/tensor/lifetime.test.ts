import { describe, expect, it } from 'vitest';
import { Tensor, keep, tensorStats, tidy } from '../../lib';

describe('tensor lifetimes', () => {
  it('tidy disposes intermediates but not the result (sync)', async () => {
    const before = tensorStats().live;
    let inner: Tensor[] = [];
    const r = tidy(() => {
      const a = Tensor.of([1, 2, 3]);
      const b = a.mul(2);
      inner = [a, b];
      return b.add(1);
    });
    expect(inner.every((t) => t.isDisposed)).toBe(true);
    expect(await r.toNumbers()).toEqual([3, 5, 7]);
    expect(tensorStats().live).toBe(before + 1);
    r.dispose();
    expect(tensorStats().live).toBe(before);
  });

  it('tidy follows async functions and keeps kept tensors', async () => {
    let kept: Tensor | undefined;
    let tmp: Tensor | undefined;
    const out = await tidy(async () => {
      tmp = Tensor.randn([64, 64], { seed: 1 });
      const s = tmp.matmul(tmp);
      await s.ready();
      kept = keep(s.sum());
      return { value: await s.mean().item(), t: s.max() };
    });
    expect(tmp!.isDisposed).toBe(true);
    expect(kept!.isDisposed).toBe(false);
    expect(out.t.isDisposed).toBe(false);
    expect(typeof out.value).toBe('number');
    kept!.dispose();
    out.t.dispose();
  });

  it('tidy disposes on error too', () => {
    let a: Tensor | undefined;
    expect(() =>
      tidy(() => {
        a = Tensor.of([1]);
        throw new Error('boom');
      }),
    ).toThrow('boom');
    expect(a!.isDisposed).toBe(true);
  });

  it('many concurrent heavy ops all settle (worker -> JS thread hand-off)', async () => {
    const a = Tensor.randn([96, 96], { seed: 3 });
    const reads: Promise<number>[] = [];
    for (let i = 0; i < 300; i++) reads.push(a.matmul(a).sum().item());
    const values = await Promise.all(reads);
    expect(new Set(values).size).toBe(1);
  });

  it('10,000 create/op/dispose cycles keep RSS flat', async () => {
    const cycle = async (n: number): Promise<void> => {
      for (let i = 0; i < n; i++) {
        const a = Tensor.fromArray(new Float32Array(4096), [64, 64]);
        const c = a.add(1);
        const b = c.matmul(a);
        await b.data();
        a.dispose();
        c.dispose();
        b.dispose();
      }
    };
    // Warm up allocator pools and JIT with a full run first: glibc's per-thread arenas (tensors are
    // made on the executor thread and freed on the JS thread) reach their high-water mark at a
    // load-dependent pace, so only growth over a second, equal run counts as a leak.
    const gc = (globalThis as { gc?: () => void }).gc;
    expect(typeof gc).toBe('function'); // vitest.config.ts passes --expose-gc
    await cycle(10000);
    gc!();
    const before = process.memoryUsage().rss;
    await cycle(10000);
    gc!();
    const grown = process.memoryUsage().rss - before;
    // 10,000 cycles make 10000 * 4 * 16 KiB = 640 MiB of tensors and copies; a leak of any of them shows.
    expect(grown).toBeLessThan(48 * 1024 * 1024);
  });
});
