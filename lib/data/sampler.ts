/**
 * Sample order per epoch. Shuffled orders use torch.randperm with a generator seeded seed + epoch, as
 * torch.utils.data.DistributedSampler does, so the indices equal PyTorch's for the same seed, epoch,
 * rank and world size (single process = world size 1).
 */
import { Tensor } from '../tensor';

export interface SamplerOptions {
  shuffle: boolean;
  seed: number;
  rank: number;
  worldSize: number;
  /** DistributedSampler's drop_last: drop the tail instead of padding to equal shards. */
  dropLast: boolean;
}

/** Samples one rank gets per epoch (DistributedSampler.num_samples). */
export function shardSize(length: number, o: Pick<SamplerOptions, 'worldSize' | 'dropLast'>): number {
  if (o.dropLast && length % o.worldSize !== 0) return Math.max(0, Math.ceil((length - o.worldSize) / o.worldSize));
  return Math.ceil(length / o.worldSize);
}

export function checkSamplerOptions(o: SamplerOptions): void {
  if (!Number.isInteger(o.worldSize) || o.worldSize < 1) throw new RangeError(`worldSize must be a positive integer, got ${o.worldSize}`);
  if (!Number.isInteger(o.rank) || o.rank < 0 || o.rank >= o.worldSize)
    throw new RangeError(`rank must be an integer in [0, ${o.worldSize - 1}], got ${o.rank}`);
  if (!Number.isSafeInteger(o.seed)) throw new RangeError(`seed must be an integer, got ${o.seed}`);
}

/** torch.randperm(n, generator=manual_seed(seed)). */
export async function torchRandperm(n: number, seed: number): Promise<Int32Array> {
  const t = Tensor.runOp('data_randperm', [], { n, seed })[0];
  try {
    const d = (await t.data()) as BigInt64Array;
    return Int32Array.from(d, (v) => Number(v));
  } finally {
    t.dispose();
  }
}

/** The dataset indices this rank visits in `epoch`, in order. */
export async function epochIndices(length: number, epoch: number, o: SamplerOptions): Promise<Int32Array> {
  checkSamplerOptions(o);
  let order: Int32Array;
  if (o.shuffle) order = await torchRandperm(length, o.seed + epoch);
  else {
    order = new Int32Array(length);
    for (let i = 0; i < length; i++) order[i] = i;
  }
  const numSamples = shardSize(length, o);
  const total = numSamples * o.worldSize;
  let full: Int32Array;
  if (total <= length) full = order.subarray(0, total);
  else {
    // Pad by repeating from the start (as many times as needed), like DistributedSampler.
    full = new Int32Array(total);
    full.set(order);
    for (let i = length; i < total; i++) full[i] = order[(i - length) % length];
  }
  const out = new Int32Array(numSamples);
  for (let i = 0; i < numSamples; i++) out[i] = full[o.rank + i * o.worldSize];
  return out;
}
