/**
 * mulberry32: a tiny seeded PRNG (uniform doubles in [0, 1), 32 random bits) for reproducible
 * generated data: far-OOD noise images, fuzz cases, test inputs. Not for augmentation plans (those
 * use lib/data's keyed generator) or anything needing more than 2^32 distinct values.
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
