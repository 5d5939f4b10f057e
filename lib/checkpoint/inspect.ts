/**
 * Summaries of a checkpoint's object tree: tensors under dotted key paths, dtypes as PyTorch prints
 * them, element counts, and the non-tensor metadata (epoch, args, ...). Walks are iterative, visit
 * each container once (pickles may share or even cycle), and refuse absurd depths.
 */
import { CheckpointError } from './errors';
import { torchDTypeName } from './dtypes';
import { NdArray } from '../npy/ndarray';
import { PickleRecord, PyComplex, PyDict, PyGlobal, PyValue } from './pyvalues';
import { StorageRef, TensorRef } from './tensorref';
import type { Checkpoint } from './reader';

export interface WalkOptions {
  /** Deepest nesting followed (default 256). */
  maxDepth?: number;
  /** Most values visited (default 10 million). */
  maxVisits?: number;
}

export type Leaf = Exclude<PyValue, PyDict | PyValue[] | PickleRecord | Set<PyValue>>;

/** Children of a container with their path segment, or undefined for leaves. */
function children(v: PyValue): Array<[string, PyValue]> | undefined {
  if (v instanceof PyDict) return [...v].map(([k, x]) => [keyString(k), x]);
  if (Array.isArray(v)) return (v as PyValue[]).map((x, i) => [String(i), x]);
  if (v instanceof PickleRecord) {
    const out: Array<[string, PyValue]> = [];
    const st = v.state;
    // argparse.Namespace and most plain objects pickle their __dict__ as the BUILD state.
    if (st instanceof PyDict) for (const [k, x] of st) out.push([keyString(k), x]);
    else if (st !== undefined) out.push(['__state__', st]);
    v.listItems?.forEach((x, i) => out.push([String(i), x]));
    v.dictItems?.forEach(([k, x]) => out.push([keyString(k), x]));
    if (!out.length && v.args.length) v.args.forEach((x, i) => out.push([`__args__.${i}`, x]));
    return out;
  }
  if (v instanceof Set) return [...v].map((x, i) => [String(i), x]);
  return undefined;
}

function keyString(k: PyValue): string {
  if (typeof k === 'string') return k;
  if (typeof k === 'number' || typeof k === 'bigint' || typeof k === 'boolean') return String(k);
  if (k === null) return 'None';
  return `<${Array.isArray(k) ? 'tuple' : typeof k}>`;
}

/** Visit every leaf (non-container) under `root` with its dotted path, depth first, in order. */
export function walkLeaves(root: PyValue, visit: (path: string, value: Leaf) => void, opts: WalkOptions = {}): void {
  const maxDepth = opts.maxDepth ?? 256;
  const maxVisits = opts.maxVisits ?? 10_000_000;
  const seen = new Set<object>();
  const stack: Array<[string, PyValue, number]> = [['', root, 0]];
  let visits = 0;
  while (stack.length) {
    const [p, v, depth] = stack.pop() as [string, PyValue, number];
    if (++visits > maxVisits) throw new CheckpointError('<tree>', `more than ${maxVisits} values`);
    const kids = children(v);
    if (!kids) {
      visit(p, v as Leaf);
      continue;
    }
    if (seen.has(v as object)) continue; // shared or cyclic container: listed once
    seen.add(v as object);
    if (depth >= maxDepth) throw new CheckpointError('<tree>', `nesting deeper than ${maxDepth} at '${p}'`);
    for (let i = kids.length - 1; i >= 0; i--) {
      const [k, x] = kids[i];
      stack.push([p ? `${p}.${k}` : k, x, depth + 1]);
    }
  }
}

export interface TensorEntry {
  path: string;
  ref: TensorRef;
}

/** Every tensor under `root` as (dotted path, TensorRef), in pickle order. */
export function listTensors(root: PyValue, opts?: WalkOptions): TensorEntry[] {
  const out: TensorEntry[] = [];
  walkLeaves(root, (path, v) => {
    if (v instanceof TensorRef) out.push({ path, ref: v });
  }, opts);
  return out;
}

export interface TensorSummary {
  path: string;
  /** PyTorch's name, e.g. 'torch.float32'. */
  dtype: string;
  shape: number[];
  numel: number;
  storageKey: string;
  contiguous: boolean;
}

export interface CheckpointSummary {
  format: Checkpoint['format'];
  tensors: TensorSummary[];
  /** Elements in floating-point tensors (parameters; BEiT's only non-float tensors are index buffers). */
  parameterCount: number;
  /** Elements in all tensors (each distinct tensor counted once). */
  totalElements: number;
  /** Bytes of all storages (shared storages once). */
  storageBytes: number;
  /** Non-tensor leaves by dotted path (epoch, args.*, scaler.*), JSON-friendly. */
  metadata: Record<string, unknown>;
  /** Classes recorded instead of constructed (e.g. 'argparse.Namespace'). */
  foreignClasses: string[];
}

/** A JSON-friendly view of a leaf value (for metadata and printing). */
export function plainLeaf(v: Leaf | PyValue): unknown {
  if (v === null || typeof v === 'boolean' || typeof v === 'number' || typeof v === 'string') return v;
  if (typeof v === 'bigint') return v.toString();
  if (v instanceof Uint8Array) return `<bytes ${v.length}>`;
  if (v instanceof PyGlobal) return `<global ${v.fullName}>`;
  if (v instanceof PyComplex) return { re: v.re, im: v.im };
  if (v instanceof NdArray) return `<ndarray ${v.dtype} [${v.shape}]>`;
  if (v instanceof TensorRef) return `<tensor ${v.dtype} [${v.shape}]>`;
  if (v instanceof StorageRef) return `<storage ${v.dtype} ${v.numel}>`;
  return String(v);
}

export function summarize(ckpt: Checkpoint, opts?: WalkOptions): CheckpointSummary {
  const tensors: TensorSummary[] = [];
  const metadata: Record<string, unknown> = {};
  const seenTensors = new Set<TensorRef>();
  let parameterCount = 0;
  let totalElements = 0;
  walkLeaves(ckpt.root, (path, v) => {
    if (v instanceof TensorRef) {
      tensors.push({ path, dtype: torchDTypeName(v.dtype), shape: v.shape, numel: v.numel, storageKey: v.storage.key, contiguous: v.isContiguous });
      if (!seenTensors.has(v)) {
        seenTensors.add(v);
        totalElements += v.numel;
        if (v.dtype.startsWith('float') || v.dtype === 'bfloat16') parameterCount += v.numel;
      }
    } else {
      metadata[path] = plainLeaf(v);
    }
  }, opts);
  const foreign = new Set<string>();
  collectRecords(ckpt.root, foreign, opts);
  return {
    format: ckpt.format,
    tensors,
    parameterCount,
    totalElements,
    storageBytes: ckpt.storages.reduce((a, s) => a + s.byteLength, 0),
    metadata,
    foreignClasses: [...foreign],
  };
}

function collectRecords(root: PyValue, out: Set<string>, opts?: WalkOptions): void {
  const seen = new Set<object>();
  const stack: Array<[PyValue, number]> = [[root, 0]];
  const maxDepth = opts?.maxDepth ?? 256;
  while (stack.length) {
    const [v, d] = stack.pop() as [PyValue, number];
    if (v instanceof PickleRecord) out.add(v.__class__);
    const kids = children(v);
    if (!kids || seen.has(v as object) || d >= maxDepth) continue;
    seen.add(v as object);
    for (const [, x] of kids) stack.push([x, d + 1]);
  }
}

/** Format a summary like a short `inspect` listing (one tensor per line). */
export function formatSummary(s: CheckpointSummary): string {
  const lines = s.tensors.map((t) => `${t.path}\t${t.dtype}\t[${t.shape.join(', ')}]`);
  lines.push(`# ${s.tensors.length} tensors, ${s.parameterCount} floating-point parameters, ${s.storageBytes} storage bytes (${s.format})`);
  for (const [k, v] of Object.entries(s.metadata)) lines.push(`# ${k} = ${JSON.stringify(v)}`);
  return lines.join('\n');
}
