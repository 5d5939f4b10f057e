/**
 * mulberry32: a tiny seeded PRNG (uniform doubles in [0, 1), 32 random bits) for reproducible
 * generated data: far-OOD noise images and the demo's per-class sample, fuzz cases, test inputs.
 * Everything else (augmentation plans, masks, k-means++ draws) uses lib/data's KeyedRng; this one
 * stays because the demo's data and the tests' generated inputs are pinned to its stream.
 */
export function mulberry32(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}
