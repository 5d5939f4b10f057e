/**
 * A small seeded random stream keyed by (seed, epoch, index): every sample's random choices are a
 * pure function of those three numbers, so masks do not depend on worker counts or batch order.
 *
 * sfc32 (a 128-bit small fast counter generator) seeded through a splitmix32-style mix of the key.
 * Doubles use 53 random bits like Python's random.random().
 */

function mix32(x: number): number {
  x = Math.imul(x ^ (x >>> 16), 0x7feb352d);
  x = Math.imul(x ^ (x >>> 15), 0x846ca68b);
  return (x ^ (x >>> 16)) >>> 0;
}

export interface Rng {
  /** Uniform double in [0, 1) with 53 random bits. */
  random(): number;
  /** Python random.uniform(a, b): a + (b - a) * random(). */
  uniform(a: number, b: number): number;
  /** Python random.randint(a, b): integer in [a, b], both ends included. */
  randint(a: number, b: number): number;
}

/** The stream of one (seed, epoch, index) key. Integers only (negative / fractional keys are rejected). */
export function planRng(seed: number, epoch = 0, index = 0): Rng {
  for (const [k, v] of [['seed', seed], ['epoch', epoch], ['index', index]] as const) {
    if (!Number.isSafeInteger(v)) throw new RangeError(`planRng: ${k} must be an integer, got ${v}`);
  }
  // Fold each 53-bit key into 32-bit words (low and high halves) so distinct keys give distinct states.
  const words = [seed, epoch, index].flatMap((v) => [v >>> 0, Math.floor(v / 0x100000000) >>> 0]);
  let h = 0x9e3779b9;
  for (const w of words) h = mix32((h ^ w) + 0x9e3779b9);
  let a = mix32(h ^ 0x243f6a88);
  let b = mix32(h ^ 0x85a308d3);
  let c = mix32(h ^ 0x13198a2e);
  let d = 1;
  const next = (): number => {
    const t = (((a + b) | 0) + d) | 0;
    d = (d + 1) | 0;
    a = b ^ (b >>> 9);
    b = (c + (c << 3)) | 0;
    c = (c << 21) | (c >>> 11);
    c = (c + t) | 0;
    return t >>> 0;
  };
  for (let i = 0; i < 12; i++) next();  // warm-up: decorrelate from the key
  const random = (): number => (next() * 0x200000 + (next() >>> 11)) / 9007199254740992;
  return {
    random,
    uniform: (lo, hi) => lo + (hi - lo) * random(),
    randint: (lo, hi) => lo + Math.floor(random() * (hi - lo + 1)),
  };
}
