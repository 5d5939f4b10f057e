/**
 * readCheckpoint: open a `.pth` written by torch.save — the zip format (torch >= 1.6) or the legacy
 * stream format — and return its object tree with every tensor as a TensorRef that points into the
 * file. No tensor bytes are read here; `materialize()` (JS) or the native loader read them later.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { CheckpointError, PickleTruncatedError } from './errors';
import { ELEMENT_SIZE } from './dtypes';
import { preadExact } from '../io/fileio';
import { GlobalHandler, HandlerContext, UnpickleLimits, unpickle } from './pickle';
import { PyValue } from './pyvalues';
import { StorageRef } from './tensorref';
import { readEntryBytes, readZipDirectory, looksLikeZip, ZIP_STORED, ZipDirectory } from '../io/zip';
import { BUILTIN_GLOBALS } from './globals-builtin';
import { TORCH_GLOBALS, storageDType } from './globals-torch';
import { NUMPY_GLOBALS } from './globals-numpy';

export interface ReadCheckpointOptions {
  /** Refuse (throw) any global outside the allow-list instead of keeping an inert record. */
  strict?: boolean;
  /**
   * More allow-listed globals for one kind of file (e.g. the DALL-E encoder's module classes, as inert
   * records: lib/checkpoint/globals-dalle.ts), on top of the tensor/numpy/builtin handlers.
   */
  extraGlobals?: ReadonlyMap<string, GlobalHandler>;
  /** What the allow-list admits, named in the strict-mode error. */
  allowListName?: string;
  /** Decoding of Python 2 byte strings in the pickle (default 'latin1'). */
  encoding?: 'latin1' | 'ascii' | 'utf8' | 'bytes';
  /** Pickle VM limits (memo, stack, ...). */
  limits?: Partial<UnpickleLimits>;
  /** Largest data.pkl / legacy pickle we agree to hold in memory (default 1 GiB). */
  maxPickleBytes?: number;
  /**
   * Called for each storage of a zip checkpoint as soon as the pickle references it (before the rest
   * of the pickle is parsed), with its location already checked against the archive. Loaders use it
   * to start reading tensor data while parsing goes on. Legacy files place their storages after the
   * pickle, so it is not called for them.
   */
  onStorage?: (storage: StorageRef) => void;
}

export interface Checkpoint {
  /** Absolute path of the file. */
  file: string;
  format: 'zip' | 'legacy';
  /** The unpickled object (usually a PyDict such as {model: OrderedDict, epoch: 7, args: ...}). */
  root: PyValue;
  /** Every storage referenced, in first-use order (shared storages appear once). */
  storages: StorageRef[];
  /** Zip: the record prefix (`<stem>` in `<stem>/data.pkl`). */
  archiveName?: string;
  /** Zip `version` record or legacy protocol version, when present. */
  version?: number;
}

const ALL_GLOBALS: ReadonlyMap<string, GlobalHandler> = new Map([...BUILTIN_GLOBALS, ...TORCH_GLOBALS, ...NUMPY_GLOBALS]);

function globalsFor(opts: ReadCheckpointOptions): ReadonlyMap<string, GlobalHandler> {
  return opts.extraGlobals ? new Map([...ALL_GLOBALS, ...opts.extraGlobals]) : ALL_GLOBALS;
}

/** Globals the reader accepts without recording them as foreign objects (for docs and tests). */
export function allowedGlobals(): string[] {
  return [...ALL_GLOBALS.keys()];
}

/** The full allow-list of handlers, for other pickle users (e.g. CIFAR batch loading). */
export const SAFE_GLOBALS: ReadonlyMap<string, GlobalHandler> = ALL_GLOBALS;

const LEGACY_MAGIC = 0x1950a86a20f9469cfc6cn;
const LEGACY_PROTOCOL = 1001;

/** Parsed fields of a `('storage', cls, key, location, numel[, view])` persistent id. */
interface StoragePid {
  key: string;
  dtype: StorageRef['dtype'];
  location: string;
  numel: number;
}

function parseStoragePid(pid: PyValue, ctx: HandlerContext): StoragePid {
  if (!Array.isArray(pid) || pid.length < 5) ctx.fail('persistent id must be a tuple (\'storage\', type, key, location, numel)');
  const t = pid as PyValue[];
  if (t[0] !== 'storage') ctx.fail(`only storage persistent ids are allowed, got ${String(t[0])}`);
  const dtype = storageDType(t[1], ctx);
  if (typeof t[2] !== 'string' || t[2].length === 0 || t[2].length > 256) ctx.fail('storage key must be a short string');
  if (typeof t[3] !== 'string') ctx.fail('storage location must be a string');
  const numel = t[4];
  if (typeof numel !== 'number' || !Number.isSafeInteger(numel) || numel < 0) ctx.fail(`bad storage element count ${String(numel)}`);
  if (t.length > 5 && t[5] !== null) ctx.fail('legacy storage views (view_metadata) are not supported');
  return { key: t[2] as string, dtype, location: t[3] as string, numel: numel as number };
}

/** Read a checkpoint's structure. Throws CheckpointError for anything malformed or unsafe. */
export function readCheckpoint(file: string, opts: ReadCheckpointOptions = {}): Checkpoint {
  const abs = path.resolve(file);
  let fd: number;
  try {
    fd = fs.openSync(abs, 'r');
  } catch (e) {
    throw new CheckpointError(abs, `cannot open: ${(e as Error).message}`, { cause: e });
  }
  try {
    return looksLikeZip(fd) ? readZipCheckpoint(fd, abs, opts) : readLegacyCheckpoint(fd, abs, opts);
  } finally {
    fs.closeSync(fd);
  }
}

function readZipCheckpoint(fd: number, file: string, opts: ReadCheckpointOptions): Checkpoint {
  const dir = readZipDirectory(fd, file);
  if (!dir.entries.length) throw new CheckpointError(file, 'zip archive has no records');
  // torch names the archive after the first record's directory; find data.pkl under it.
  const first = dir.entries[0].name;
  const slash = first.indexOf('/');
  if (slash <= 0) throw new CheckpointError(file, `first zip record '${first}' is not inside an archive directory`);
  const stem = first.slice(0, slash);
  const pklEntry = dir.byName.get(`${stem}/data.pkl`);
  if (!pklEntry) throw new CheckpointError(file, `no '${stem}/data.pkl' record: not a torch.save zip checkpoint`);

  const smallText = (name: string): string | undefined => {
    const e = dir.byName.get(`${stem}/${name}`);
    return e ? readEntryBytes(fd, dir, e, 1 << 16).toString('latin1').trim() : undefined;
  };
  const byteorder = smallText('byteorder');
  if (byteorder !== undefined && byteorder !== 'little') throw new CheckpointError(file, `byteorder '${byteorder}' is not supported (little-endian only)`);
  const versionText = smallText('version') ?? smallText('.data/version');
  const version = versionText !== undefined && /^\d+$/.test(versionText) ? Number(versionText) : undefined;

  const pkl = readEntryBytes(fd, dir, pklEntry, opts.maxPickleBytes ?? 1 << 30);
  const storages = new Map<string, StorageRef>();
  const persistentLoad = (pid: PyValue, ctx: HandlerContext): PyValue => {
    const p = parseStoragePid(pid, ctx);
    const known = storages.size;
    const ref = zipStorage(dir, stem, p, storages, ctx);
    if (opts.onStorage && storages.size > known) opts.onStorage(ref);
    return ref;
  };
  const { value } = unpickle(pkl, {
    file: `${file} (${pklEntry.name})`,
    globals: globalsFor(opts),
    strict: opts.strict,
    allowListName: opts.allowListName,
    encoding: opts.encoding,
    limits: opts.limits,
    persistentLoad,
  });
  return { file, format: 'zip', root: value, storages: [...storages.values()], archiveName: stem, version };
}

function zipStorage(dir: ZipDirectory, stem: string, p: StoragePid, cache: Map<string, StorageRef>, ctx: HandlerContext): StorageRef {
  const hit = cache.get(p.key);
  if (hit) {
    if (hit.dtype !== p.dtype) ctx.fail(`storage '${p.key}' referenced as ${hit.dtype} and as ${p.dtype}`);
    return hit;
  }
  const name = `${stem}/data/${p.key}`;
  const entry = dir.byName.get(name);
  if (!entry) ctx.fail(`storage record '${name}' is missing from the archive`);
  if (entry.method !== ZIP_STORED) {
    ctx.fail(`storage record '${name}' is compressed (method ${entry.method}); torch stores tensor data uncompressed and so must any checkpoint we map`);
  }
  const need = p.numel * ELEMENT_SIZE[p.dtype];
  if (!Number.isSafeInteger(need) || need > entry.uncompressedSize) {
    ctx.fail(`storage '${p.key}' declares ${p.numel} ${p.dtype} elements (${need} bytes) but its record holds ${entry.uncompressedSize} bytes`);
  }
  const ref = new StorageRef({ key: p.key, dtype: p.dtype, numel: p.numel, file: dir.file, byteOffset: entry.dataOffset, location: p.location });
  cache.set(p.key, ref);
  return ref;
}

/**
 * Run one pickle that starts at `pos`, reading a growing window of the file: the legacy format gives
 * no lengths, so we only know where a pickle ends by running it.
 */
function unpickleAt(
  fd: number,
  file: string,
  fileSize: number,
  pos: number,
  opts: ReadCheckpointOptions,
  what: string,
  persistentLoad?: (pid: PyValue, ctx: HandlerContext) => PyValue,
): { value: PyValue; end: number } {
  const max = Math.min(fileSize - pos, opts.maxPickleBytes ?? 1 << 30);
  if (max <= 0) throw new CheckpointError(file, `file ends before the ${what}`, { offset: pos });
  let window = Math.min(max, 1 << 20);
  for (;;) {
    const buf = preadExact(fd, window, pos, file, what);
    try {
      const r = unpickle(buf, { file: `${file} (${what})`, globals: globalsFor(opts), strict: opts.strict, allowListName: opts.allowListName, encoding: opts.encoding, limits: opts.limits, persistentLoad, baseOffset: pos });
      return { value: r.value, end: pos + r.bytesRead };
    } catch (e) {
      if (e instanceof PickleTruncatedError && window < max) {
        window = Math.min(max, window * 4);
        continue;
      }
      throw e;
    }
  }
}

function readLegacyCheckpoint(fd: number, file: string, opts: ReadCheckpointOptions): Checkpoint {
  const fileSize = fs.fstatSync(fd).size;
  const head = preadExact(fd, Math.min(fileSize, 512), 0, file, 'file header');
  if (fileSize >= 262 && head.subarray(257, 262).toString('latin1') === 'ustar') {
    throw new CheckpointError(file, 'tar-format checkpoints (torch < 0.4) are not supported');
  }
  if (head[0] !== 0x80) throw new CheckpointError(file, 'neither a zip checkpoint nor a legacy torch.save stream (no pickle at offset 0)', { offset: 0 });

  const magic = unpickleAt(fd, file, fileSize, 0, opts, 'magic number');
  if (magic.value !== LEGACY_MAGIC) throw new CheckpointError(file, 'invalid magic number: not a torch.save file', { offset: 0 });
  const proto = unpickleAt(fd, file, fileSize, magic.end, opts, 'protocol version');
  if (proto.value !== LEGACY_PROTOCOL) throw new CheckpointError(file, `unsupported legacy protocol version ${String(proto.value)}`, { offset: magic.end });
  const sys = unpickleAt(fd, file, fileSize, proto.end, opts, 'sys info');
  const sysInfo = sys.value;
  if (sysInfo instanceof Map && sysInfo.get('little_endian') === false) {
    throw new CheckpointError(file, 'big-endian legacy checkpoints are not supported', { offset: proto.end });
  }

  // Storages are described by the main pickle, but their bytes come after the key list.
  const pending = new Map<string, StorageRef>();
  const persistentLoad = (pid: PyValue, ctx: HandlerContext): PyValue => {
    const p = parseStoragePid(pid, ctx);
    const hit = pending.get(p.key);
    if (hit) {
      if (hit.dtype !== p.dtype || hit.numel !== p.numel) ctx.fail(`storage '${p.key}' referenced with conflicting type or size`);
      return hit;
    }
    const ref = new StorageRef({ key: p.key, dtype: p.dtype, numel: p.numel, file, byteOffset: -1, location: p.location });
    pending.set(p.key, ref);
    return ref;
  };
  const main = unpickleAt(fd, file, fileSize, sys.end, opts, 'main pickle', persistentLoad);
  const keysP = unpickleAt(fd, file, fileSize, main.end, opts, 'storage key list');
  if (!Array.isArray(keysP.value)) throw new CheckpointError(file, 'storage key list is not a list', { offset: main.end });

  let pos = keysP.end;
  const seen = new Set<string>();
  for (const key of keysP.value as PyValue[]) {
    if (typeof key !== 'string') throw new CheckpointError(file, 'storage key list holds a non-string', { offset: main.end });
    const ref = pending.get(key);
    if (!ref) throw new CheckpointError(file, `storage '${key}' in the key list was never referenced by the pickle (its size is unknown)`, { offset: pos });
    if (seen.has(key)) throw new CheckpointError(file, `storage '${key}' listed twice`, { offset: pos });
    seen.add(key);
    const header = preadExact(fd, 8, pos, file, `size of storage '${key}'`);
    const numel = header.readBigInt64LE(0);
    if (numel !== BigInt(ref.numel)) {
      throw new CheckpointError(file, `storage '${key}' holds ${numel} elements, the pickle says ${ref.numel}`, { offset: pos });
    }
    const start = pos + 8;
    if (start + ref.byteLength > fileSize) {
      throw new CheckpointError(file, `storage '${key}' (${ref.byteLength} bytes at ${start}) runs past end of file (${fileSize})`, { offset: pos });
    }
    ref.byteOffset = start;
    pos = start + ref.byteLength;
  }
  for (const [key] of pending) {
    if (!seen.has(key)) throw new CheckpointError(file, `storage '${key}' is referenced but missing from the storage list`);
  }
  return { file, format: 'legacy', root: main.value, storages: [...pending.values()], version: LEGACY_PROTOCOL };
}
