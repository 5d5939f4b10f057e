/**
 * Distributed evaluation (--dist_eval): each rank extracts the rows its DistributedSampler gives it;
 * `gatherShards` all-gathers the shards (features, logits, and labels+indices) and reassembles the
 * whole set in dataset order, dropping the sampler's padding duplicates. Any group with an
 * `allGather(t): Tensor[]` collective works (lib/distributed's ProcessGroup has one); nothing here imports
 * lib/distributed, so single-process use needs no distributed build.
 */
import { Tensor } from '../../tensor';
import type { ExtractedSet } from './types';

/** The collective gatherShards needs (structurally lib/distributed's ProcessGroup). */
export interface RowGatherer {
  readonly rank: number;
  readonly worldSize: number;
  /** Every rank's tensor in rank order; dim 0 may differ between ranks. */
  allGather(t: Tensor): Tensor[];
}

/** Rows of `parts` placed at their dataset indices (first occurrence wins), in dataset order. */
export function assembleRows(parts: ExtractedSet[], length: number): ExtractedSet {
  if (parts.length === 0) throw new RangeError('assembleRows: no parts');
  const fDim = parts[0].featureDim;
  const cDim = parts[0].numClasses;
  const F = new Float32Array(length * fDim);
  const L = new Float32Array(length * cDim);
  const Y = new Int32Array(length);
  const filled = new Uint8Array(length);
  for (const p of parts) {
    if (p.featureDim !== fDim || p.numClasses !== cDim) throw new RangeError(`assembleRows: shards disagree on widths (${p.featureDim}/${p.numClasses} vs ${fDim}/${cDim})`);
    for (let k = 0; k < p.n; k++) {
      const r = p.indices[k];
      if (!(r >= 0 && r < length)) throw new RangeError(`assembleRows: dataset index ${r} outside 0..${length - 1}`);
      if (filled[r]) continue;
      filled[r] = 1;
      F.set(p.features.subarray(k * fDim, (k + 1) * fDim), r * fDim);
      L.set(p.logits.subarray(k * cDim, (k + 1) * cDim), r * cDim);
      Y[r] = p.labels[k];
    }
  }
  let n = 0;
  for (let i = 0; i < length; i++) n += filled[i];
  if (n === length) return { n, features: F, featureDim: fDim, logits: L, numClasses: cDim, labels: Y, indices: Int32Array.from({ length }, (_, i) => i) };
  const idx = new Int32Array(n);
  let k = 0;
  for (let i = 0; i < length; i++) if (filled[i]) idx[k++] = i;
  const out: ExtractedSet = { n, features: new Float32Array(n * fDim), featureDim: fDim, logits: new Float32Array(n * cDim), numClasses: cDim, labels: new Int32Array(n), indices: idx };
  idx.forEach((r, j) => {
    out.features.set(F.subarray(r * fDim, (r + 1) * fDim), j * fDim);
    out.logits.set(L.subarray(r * cDim, (r + 1) * cDim), j * cDim);
    out.labels[j] = Y[r];
  });
  return out;
}

/** All ranks' shards of one set, reassembled in dataset order (a collective: every rank calls it). */
export async function gatherShards(set: ExtractedSet, group: RowGatherer, datasetLength: number): Promise<ExtractedSet> {
  if (group.worldSize <= 1) return set;
  // Labels and indices travel together as float64 (exact for integers below 2^53).
  const meta = new Float64Array(set.n * 2);
  for (let i = 0; i < set.n; i++) {
    meta[2 * i] = set.indices[i];
    meta[2 * i + 1] = set.labels[i];
  }
  const mine = [
    Tensor.fromArray(set.features, [set.n, set.featureDim]),
    Tensor.fromArray(set.logits, [set.n, set.numClasses]),
    Tensor.fromArray(meta, [set.n, 2]),
  ];
  const gathered: Tensor[][] = [];
  try {
    for (const t of mine) gathered.push(group.allGather(t));
    const parts: ExtractedSet[] = [];
    for (let r = 0; r < group.worldSize; r++) {
      const f = gathered[0][r];
      const l = gathered[1][r];
      const m = gathered[2][r];
      const n = f.shape[0];
      const [fv, lv, mv] = (await Promise.all([f.data(), l.data(), m.data()])) as [Float32Array, Float32Array, Float64Array];
      parts.push({
        n,
        features: fv,
        featureDim: f.shape[1],
        logits: lv,
        numClasses: l.shape[1],
        indices: Int32Array.from({ length: n }, (_, i) => mv[2 * i]),
        labels: Int32Array.from({ length: n }, (_, i) => mv[2 * i + 1]),
      });
    }
    return assembleRows(parts, datasetLength);
  } finally {
    for (const t of mine) t.dispose();
    for (const g of gathered) for (const t of g) t.dispose();
  }
}
