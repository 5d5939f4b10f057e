/**
 * On-disk cache of extracted sets: one directory per (model, dataset, transform) key holding
 * features.npy, logits.npy, labels.npy, indices.npy (numpy-readable) and meta.json (the key parts).
 * An entry is written into a temporary directory and renamed into place, so readers see a complete
 * entry or none; an unreadable entry is treated as a miss and replaced.
 */
import * as crypto from 'node:crypto';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { ndarray, readNpy, writeNpy } from '../../npy';
import { writeFileAtomic } from '../../io/atomic';
import type { CacheKeyParts, CheckpointIdentity, ExtractedSet } from './types';

export const CACHE_FORMAT_VERSION = 1;
const MIB = 1 << 20;

function sha256(buf: Uint8Array): string {
  return crypto.createHash('sha256').update(buf).digest('hex');
}

/** Path, size, mtime and hashes of the first and last MiB: changes whenever the file is rewritten. */
export function checkpointIdentity(file: string): CheckpointIdentity {
  const abs = path.resolve(file);
  let st: fs.Stats;
  try {
    st = fs.statSync(abs);
  } catch {
    throw new Error(`checkpoint ${file}: no such file`);
  }
  if (!st.isFile()) throw new Error(`checkpoint ${file}: not a regular file`);
  const fd = fs.openSync(abs, 'r');
  try {
    const read = (pos: number, len: number): Uint8Array => {
      const b = Buffer.alloc(len);
      let off = 0;
      while (off < len) {
        const n = fs.readSync(fd, b, off, len - off, pos + off);
        if (n === 0) break;
        off += n;
      }
      return b.subarray(0, off);
    };
    const headLen = Math.min(st.size, MIB);
    const tailLen = Math.min(st.size, MIB);
    return {
      path: abs,
      size: st.size,
      mtimeMs: st.mtimeMs,
      headSha256: sha256(read(0, headLen)),
      tailSha256: sha256(read(st.size - tailLen, tailLen)),
    };
  } finally {
    fs.closeSync(fd);
  }
}

/** sha256 of labels, so subsets (one-class, other class lists) of the same files get different keys. */
export function targetsHash(targets: Int32Array): string {
  return sha256(new Uint8Array(targets.buffer, targets.byteOffset, targets.byteLength));
}

/** Key order-independent JSON (sorted object keys), so equal parts always hash equally. */
export function canonicalJson(v: unknown): string {
  if (v === null || typeof v !== 'object') return JSON.stringify(v ?? null);
  if (Array.isArray(v)) return `[${v.map(canonicalJson).join(',')}]`;
  const o = v as Record<string, unknown>;
  return `{${Object.keys(o)
    .filter((k) => o[k] !== undefined)
    .sort()
    .map((k) => `${JSON.stringify(k)}:${canonicalJson(o[k])}`)
    .join(',')}}`;
}

export function cacheKey(parts: CacheKeyParts): string {
  return crypto.createHash('sha256').update(canonicalJson(parts)).digest('hex').slice(0, 24);
}

/** Directory of the entry for `parts`: `<dir>/<dataset>-<split>-<transform>-<key>`. */
export function entryDir(dir: string, parts: CacheKeyParts): string {
  const slug = `${parts.dataset.name}-${parts.dataset.split}-${parts.transform.kind}`.replace(/[^A-Za-z0-9_.-]+/g, '_');
  return path.join(path.resolve(dir), `${slug}-${cacheKey(parts)}`);
}

/** Reads an entry; undefined when absent, or when unreadable or not matching (a warning says why). */
export function readEntry(dir: string, parts: CacheKeyParts, warn: (msg: string) => void = () => undefined): ExtractedSet | undefined {
  const e = entryDir(dir, parts);
  const metaFile = path.join(e, 'meta.json');
  if (!fs.existsSync(metaFile)) return undefined;
  try {
    const meta = JSON.parse(fs.readFileSync(metaFile, 'utf8')) as { key: CacheKeyParts };
    if (canonicalJson(meta.key) !== canonicalJson(parts)) throw new Error('meta.json key differs from the requested key');
    const f = readNpy(path.join(e, 'features.npy'));
    const l = readNpy(path.join(e, 'logits.npy'));
    const y = readNpy(path.join(e, 'labels.npy'));
    const idx = readNpy(path.join(e, 'indices.npy'));
    if (f.dtype !== 'float32' || l.dtype !== 'float32' || y.dtype !== 'int32' || idx.dtype !== 'int32') throw new Error('unexpected dtypes');
    const n = f.shape[0];
    if (f.shape.length !== 2 || l.shape.length !== 2 || l.shape[0] !== n || y.shape[0] !== n || idx.shape[0] !== n) throw new Error('inconsistent shapes');
    return {
      n,
      features: f.toCOrder().typed() as Float32Array,
      featureDim: f.shape[1],
      logits: l.toCOrder().typed() as Float32Array,
      numClasses: l.shape[1],
      labels: y.typed() as Int32Array,
      indices: idx.typed() as Int32Array,
    };
  } catch (err) {
    warn(`feature cache: ignoring unreadable entry ${e} (${(err as Error).message}); extracting again`);
    return undefined;
  }
}

/** Writes an entry atomically (temp directory + rename); returns its directory. */
export function writeEntry(dir: string, parts: CacheKeyParts, set: ExtractedSet): string {
  const final = entryDir(dir, parts);
  fs.mkdirSync(path.dirname(final), { recursive: true });
  const tmp = fs.mkdtempSync(path.join(path.dirname(final), `.tmp-${path.basename(final)}-`));
  try {
    writeNpy(path.join(tmp, 'features.npy'), ndarray('float32', [set.n, set.featureDim], set.features));
    writeNpy(path.join(tmp, 'logits.npy'), ndarray('float32', [set.n, set.numClasses], set.logits));
    writeNpy(path.join(tmp, 'labels.npy'), ndarray('int32', [set.n], set.labels));
    writeNpy(path.join(tmp, 'indices.npy'), ndarray('int32', [set.n], set.indices));
    const meta = JSON.stringify({ format: 'mood-ood-feature-cache', version: CACHE_FORMAT_VERSION, created: new Date().toISOString(), rows: set.n, key: parts }, null, 2);
    writeFileAtomic(path.join(tmp, 'meta.json'), meta);
    // A stale or broken entry under the same key is replaced; a concurrent writer's complete entry wins.
    if (fs.existsSync(final)) fs.rmSync(final, { recursive: true, force: true });
    try {
      fs.renameSync(tmp, final);
    } catch (e) {
      if (!fs.existsSync(path.join(final, 'meta.json'))) throw e;
      fs.rmSync(tmp, { recursive: true, force: true });
    }
    return final;
  } catch (e) {
    fs.rmSync(tmp, { recursive: true, force: true });
    throw e;
  }
}
