/**
 * Feature extraction: one forward pass per batch gives pooled features AND logits (the model's
 * native run request), copied into preallocated float32 arrays at the rows the batch's dataset
 * indices name, so results come out in dataset order whatever the sampler did, and memory stays at
 * the size of the result (every batch tensor is disposed as soon as it is copied).
 * `extractCached` wraps it with the on-disk cache of cache.ts.
 */
import * as crypto from 'node:crypto';
import type { Beit } from '../../models/beit';
import type { Batch, DataLoader } from '../../data/types';
import { Progress } from '../../util/progress';
import { cacheKey, checkpointIdentity, entryDir, readEntry, targetsHash, writeEntry, CACHE_FORMAT_VERSION } from './cache';
import type { CacheKeyParts, CheckpointIdentity, ExtractOptions, ExtractedSet, ExtractionRecord, FeatureCacheOptions } from './types';

export class FeatureExtractionError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'FeatureExtractionError';
  }
}

/** Runs `model` (in eval mode) over every batch of `loader`. */
export async function extractFeatures(model: Beit, loader: DataLoader, opts: ExtractOptions = {}): Promise<ExtractedSet & { forwardBatches: number }> {
  const ds = loader.dataset;
  const what = opts.label ?? `${ds.name}/${ds.split}`;
  const N = ds.length;
  if (!(N > 0)) throw new FeatureExtractionError(`${what}: the dataset is empty`);
  const progressOpts = typeof opts.progress === 'object' ? opts.progress : {};
  const bar = new Progress({ ...progressOpts, label: `features ${what}`, total: loader.numSamples, unit: 'img', silent: opts.progress === false || progressOpts.silent });
  const wasTraining = model.training;
  model.eval();
  let features: Float32Array | undefined;
  let logits: Float32Array | undefined;
  let fDim = 0;
  let cDim = 0;
  const labels = new Int32Array(N);
  const filled = new Uint8Array(N);
  let batches = 0;
  // One batch in flight: the next forward is queued on the model's executor before the previous
  // batch's outputs are read and copied, so the device never waits for JS (two batches of outputs
  // alive at most).
  interface InFlight {
    batch: Batch;
    out?: ReturnType<Beit['run']>;
    no: number;
  }
  const release = (p: InFlight): void => {
    p.out?.features?.dispose();
    p.out?.logits?.dispose();
    // The consumer owns a yielded batch (the loader hands each one out once).
    p.batch.images.dispose();
    p.batch.softTargets?.dispose();
  };
  const collect = async (p: InFlight): Promise<void> => {
    try {
      const { batch, out } = p;
      const idx = batch.indices;
      const b = idx.length;
      const [f, l] = await Promise.all([out!.features!.data(), out!.logits!.data()]);
      const fs = out!.features!.shape;
      const ls = out!.logits!.shape;
      if (fs[0] !== b || ls[0] !== b) throw new FeatureExtractionError(`${what}: batch ${p.no} has ${b} indices but the model returned ${fs[0]} rows`);
      if (!features) {
        fDim = fs[1];
        cDim = ls[1];
        // Whole-result buffers up front: no growth, no per-batch arrays kept alive.
        features = new Float32Array(N * fDim);
        logits = new Float32Array(N * cDim);
      }
      const fv = f as Float32Array;
      const lv = l as Float32Array;
      for (let i = 0; i < b; i++) {
        const r = idx[i];
        if (!Number.isInteger(r) || r < 0 || r >= N) throw new FeatureExtractionError(`${what}: batch index ${r} outside the dataset (length ${N})`);
        features.set(fv.subarray(i * fDim, (i + 1) * fDim), r * fDim);
        logits!.set(lv.subarray(i * cDim, (i + 1) * cDim), r * cDim);
        labels[r] = batch.targets[i];
        filled[r] = 1;
      }
      bar.tick(b);
    } finally {
      release(p);
    }
  };
  let pending: InFlight | undefined;
  try {
    for await (const batch of loader) {
      const cur: InFlight = { batch, no: batches++ };
      try {
        if (batch.targets.length !== batch.indices.length) {
          throw new FeatureExtractionError(`${what}: batch ${cur.no} has ${batch.indices.length} indices but ${batch.targets.length} targets`);
        }
        cur.out = model.run(batch.images, { features: true, logits: true });
      } catch (e) {
        release(cur);
        throw e;
      }
      const prev = pending;
      pending = cur;
      if (prev) await collect(prev);
    }
    const last = pending;
    pending = undefined;
    if (last) await collect(last);
  } finally {
    if (pending) release(pending);
    if (wasTraining) model.train();
  }
  bar.finish();
  if (!features || !logits) throw new FeatureExtractionError(`${what}: the loader yielded no batches`);
  let n = 0;
  for (let i = 0; i < N; i++) n += filled[i];
  if (n === N) {
    return { n, features, featureDim: fDim, logits, numClasses: cDim, labels, indices: Int32Array.from({ length: N }, (_, i) => i), forwardBatches: batches };
  }
  // Some samples never came (drop_last, or a rank's shard): keep the rows that did, in dataset order.
  const indices = new Int32Array(n);
  const F = new Float32Array(n * fDim);
  const L = new Float32Array(n * cDim);
  const Y = new Int32Array(n);
  let k = 0;
  for (let i = 0; i < N; i++) {
    if (!filled[i]) continue;
    indices[k] = i;
    F.set(features.subarray(i * fDim, (i + 1) * fDim), k * fDim);
    L.set(logits.subarray(i * cDim, (i + 1) * cDim), k * cDim);
    Y[k] = labels[i];
    k++;
  }
  return { n, features: F, featureDim: fDim, logits: L, numClasses: cDim, labels: Y, indices, forwardBatches: batches };
}

/** Content hash of a model's state dict: the identity of a model that did not come from a file. */
export async function stateDictHash(model: Beit): Promise<string> {
  const h = crypto.createHash('sha256');
  for (const [k, t] of model.stateDict()) {
    try {
      const d = (await t.data()) as ArrayBufferView;
      h.update(k).update(JSON.stringify(t.shape)).update(t.dtype);
      h.update(new Uint8Array(d.buffer, d.byteOffset, d.byteLength));
    } finally {
      t.dispose();
    }
  }
  return `state-dict:${h.digest('hex')}`;
}

/** What the cache key needs to know about the loader that is not in the dataset. */
export interface LoaderDescription {
  /** Training augmentation (true) or evaluation transform. */
  train: boolean;
  inputSize: number;
  /** Augmentation seed (train only). */
  seed?: number;
  /** The augmentation and sampling settings (train only), e.g. the reference's flags. */
  augment?: Record<string, unknown>;
  /** Extra identity of the dataset (e.g. { classIdx: 3, ood: true }). */
  extra?: Record<string, unknown>;
}

/** Resolves the model identity once per model (hashing a state dict is not free). */
const identityMemo = new WeakMap<Beit, Promise<CheckpointIdentity | string>>();
export function modelIdentity(model: Beit, cache: FeatureCacheOptions): Promise<CheckpointIdentity | string> {
  if (cache.checkpoint !== undefined) {
    return Promise.resolve(typeof cache.checkpoint === 'string' ? checkpointIdentityOrString(cache.checkpoint) : cache.checkpoint);
  }
  let p = identityMemo.get(model);
  if (!p) {
    const file = model.loadReport?.file;
    p = file ? Promise.resolve(checkpointIdentity(file)) : stateDictHash(model);
    identityMemo.set(model, p);
  }
  return p;
}

/** A string naming an existing file is a checkpoint path; any other string is taken as an opaque id. */
function checkpointIdentityOrString(s: string): CheckpointIdentity | string {
  try {
    return checkpointIdentity(s);
  } catch {
    return s;
  }
}

export async function cacheKeyParts(model: Beit, loader: DataLoader, desc: LoaderDescription, cache: FeatureCacheOptions, opts: ExtractOptions = {}): Promise<CacheKeyParts> {
  const ds = loader.dataset;
  const options: Record<string, unknown> = { ...(model.options as unknown as Record<string, unknown>) };
  // Where the model runs and training-only regularisation do not change eval outputs.
  for (const k of ['device', 'drop_rate', 'attn_drop_rate', 'drop_path_rate']) delete options[k];
  const parts: CacheKeyParts = {
    version: CACHE_FORMAT_VERSION,
    model: { identity: await modelIdentity(model, cache), options },
    dataset: {
      name: ds.name,
      root: ds.root,
      split: ds.split,
      length: ds.length,
      classes: ds.classes.length,
      targetsSha256: targetsHash(ds.targets),
      ...(desc.extra ? { extra: desc.extra } : {}),
    },
    transform: {
      kind: desc.train ? 'train-augment' : 'eval',
      inputSize: desc.inputSize,
      ...(desc.train && desc.seed !== undefined ? { seed: desc.seed } : {}),
      ...(desc.train && desc.augment ? { augment: desc.augment } : {}),
    },
  };
  if ((opts.worldSize ?? 1) > 1) parts.shard = { rank: opts.rank ?? 0, worldSize: opts.worldSize! };
  return parts;
}

/**
 * extractFeatures through the cache: a complete entry for the same key is read back without any
 * forward pass; otherwise the set is extracted and stored (unless the cache is disabled).
 */
export async function extractCached(
  model: Beit,
  loader: DataLoader,
  desc: LoaderDescription,
  cache: FeatureCacheOptions | undefined,
  opts: ExtractOptions & { warn?: (msg: string) => void } = {},
): Promise<{ set: ExtractedSet; record: ExtractionRecord }> {
  const t0 = Date.now();
  const ds = loader.dataset;
  const what = opts.label ?? `${ds.name}/${ds.split}`;
  const on = !!cache && cache.enabled !== false;
  let parts: CacheKeyParts | undefined;
  if (on) {
    parts = await cacheKeyParts(model, loader, desc, cache!, opts);
    const hit = readEntry(cache!.dir, parts, opts.warn);
    if (hit) {
      return { set: hit, record: { what, cache: 'hit', entry: entryDir(cache!.dir, parts), forwardBatches: 0, rows: hit.n, seconds: (Date.now() - t0) / 1000 } };
    }
  }
  const { forwardBatches, ...set } = await extractFeatures(model, loader, opts);
  let entry: string | undefined;
  if (on) {
    // The features are already in hand: a cache that cannot be written costs a warning, not the run.
    try {
      entry = writeEntry(cache!.dir, parts!, set);
    } catch (e) {
      opts.warn?.(`feature cache: could not write an entry under ${cache!.dir} (${(e as Error).message}); continuing without caching ${what}`);
    }
  }
  return { set, record: { what, cache: on ? 'miss' : 'off', entry, forwardBatches, rows: set.n, seconds: (Date.now() - t0) / 1000 } };
}

export { cacheKey };
