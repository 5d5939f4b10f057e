/**
 * Keyed random streams: every random choice of the data pipeline comes from a generator keyed by
 * (seed, epoch, index[, stream]), so a sample's augmentation depends only on those numbers — never on
 * worker count, prefetch depth or the order batches are built in.
 */

/** murmur3's 32-bit finaliser: a bijective mix with full avalanche. */
function fmix32(h: number): number {
  h ^= h >>> 16;
  h = Math.imul(h, 0x85ebca6b);
  h ^= h >>> 13;
  h = Math.imul(h, 0xc2b2ae35);
  h ^= h >>> 16;
  return h >>> 0;
}

/** A small-state generator (sfc32) seeded from a hash of the key. */
export class KeyedRng {
  private a: number;
  private b: number;
  private c: number;
  private d: number;

  constructor(seed: number, epoch: number, index: number, stream = 0) {
    const k0 = fmix32((seed | 0) ^ 0x9e3779b9);
    const k1 = fmix32(k0 ^ Math.imul(epoch | 0, 0x85ebca6b) ^ 0x27d4eb2f);
    const k2 = fmix32(k1 ^ Math.imul(index | 0, 0xc2b2ae35) ^ 0x165667b1);
    const k3 = fmix32(k2 ^ Math.imul(stream | 0, 0x27d4eb2f) ^ 0xd3a2646c);
    this.a = k0;
    this.b = k1;
    this.c = k2;
    this.d = k3 | 1;
    for (let i = 0; i < 12; i++) this.nextU32();
  }

  nextU32(): number {
    const t = (((this.a + this.b) | 0) + this.d) | 0;
    this.d = (this.d + 1) | 0;
    this.a = this.b ^ (this.b >>> 9);
    this.b = (this.c + (this.c << 3)) | 0;
    this.c = (this.c << 21) | (this.c >>> 11);
    this.c = (this.c + t) | 0;
    return t >>> 0;
  }

  /** Uniform in [0, 1) with 53 random bits. */
  random(): number {
    const hi = this.nextU32() >>> 5;
    const lo = this.nextU32() >>> 6;
    return (hi * 67108864 + lo) / 9007199254740992;
  }

  /** Python's random.uniform(a, b). */
  uniform(a: number, b: number): number {
    return a + (b - a) * this.random();
  }

  /** Python's random.randint(a, b): inclusive of both ends. */
  randint(a: number, b: number): number {
    return a + Math.min(b - a, Math.floor(this.random() * (b - a + 1)));
  }

  /** Standard normal (Box-Muller). */
  normal(): number {
    const u = 1 - this.random();
    return Math.sqrt(-2 * Math.log(u)) * Math.cos(2 * Math.PI * this.random());
  }

  /** Beta(a, a) via two gamma draws (Marsaglia-Tsang), as numpy's beta does for mixup lambdas. */
  beta(alpha: number, beta: number): number {
    const x = this.gamma(alpha);
    const y = this.gamma(beta);
    return x + y > 0 ? x / (x + y) : 0.5;
  }

  gamma(k: number): number {
    if (k < 1) return this.gamma(k + 1) * Math.pow(this.random() || Number.MIN_VALUE, 1 / k);
    const d = k - 1 / 3;
    const c = 1 / Math.sqrt(9 * d);
    for (;;) {
      let x: number;
      let v: number;
      do {
        x = this.normal();
        v = 1 + c * x;
      } while (v <= 0);
      v = v * v * v;
      const u = this.random();
      if (u < 1 - 0.0331 * x ** 4) return d * v;
      if (Math.log(u) < 0.5 * x * x + d * (1 - v + Math.log(v))) return d * v;
    }
  }
}

/** Python's round(): halves go to the even neighbour. */
export function pyRound(x: number): number {
  const r = Math.round(x);
  return Math.abs(x % 1) === 0.5 && r % 2 !== 0 ? r - 1 : r;
}
