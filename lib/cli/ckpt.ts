/**
 * `mood ckpt inspect FILE [--json]` and `mood ckpt convert IN OUT [--dtype D] [--key K]`.
 *
 * Registration is cheap: the checkpoint modules are imported when a subcommand runs, and neither
 * subcommand loads libtorch (both work on the file directly in JS).
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import type { Command } from 'commander';
import type { DType } from '../checkpoint/dtypes';
import type { PyValue } from '../checkpoint/pyvalues';
import type { SaveValue } from '../checkpoint/writer';

export interface CliIO {
  out: (s: string) => void;
  err: (s: string) => void;
}

const stdio: CliIO = {
  out: (s) => void process.stdout.write(s),
  err: (s) => void process.stderr.write(s),
};

export interface InspectOptions {
  json?: boolean;
  /** Most metadata lines printed in text mode (JSON always has all); default 200. */
  maxMetadataLines?: number;
}

export interface InspectTensor {
  key: string;
  /** PyTorch's dtype name without the `torch.` prefix: float32, float16, bfloat16, int64, ... */
  dtype: string;
  shape: number[];
  numel: number;
}

export interface InspectReport {
  file: string;
  format: 'zip' | 'legacy';
  /** Bytes on disk. */
  fileBytes: number;
  tensors: InspectTensor[];
  /** Floating-point elements of the model state dict (`stateDictKey`; the root when it is the state dict). */
  totalParameters: number;
  /** Container the parameters were counted in ('model', 'module', 'state_dict', or '' for the root). */
  stateDictKey: string;
  /** Tensors in that state dict. */
  stateDictTensors: number;
  /** Floating-point elements in every tensor of the file (optimizer state included), each tensor once. */
  floatingElements: number;
  /** Elements in every tensor of the file, each tensor once. */
  totalElements: number;
  /** Bytes of all storages (shared storages once). */
  storageBytes: number;
  /** Non-tensor values by dotted path: epoch, args.*, scaler.*, ... */
  metadata: Record<string, unknown>;
  /** Classes kept as inert records instead of being constructed (e.g. argparse.Namespace). */
  foreignClasses: string[];
}

function plainDType(torchName: string): string {
  return torchName.startsWith('torch.') ? torchName.slice(6) : torchName;
}

/** Read `file` and describe it (throws CheckpointError for unreadable files). */
export async function inspectCheckpoint(file: string): Promise<InspectReport> {
  const { readCheckpoint } = await import('../checkpoint/reader');
  const { summarize, listTensors } = await import('../checkpoint/inspect');
  const { pickStateDict } = await import('../checkpoint/adapt');
  const { PyDict } = await import('../checkpoint/pyvalues');
  const ckpt = readCheckpoint(file);
  const s = summarize(ckpt);
  let stateDictKey = '';
  let totalParameters = s.parameterCount;
  let stateDictTensors = s.tensors.length;
  if (ckpt.root instanceof PyDict) {
    const picked = pickStateDict(ckpt.root);
    stateDictKey = picked.key;
    const seen = new Set<unknown>();
    totalParameters = 0;
    const entries = listTensors(picked.dict);
    stateDictTensors = entries.length;
    for (const { ref } of entries) {
      if (seen.has(ref)) continue;
      seen.add(ref);
      if (ref.dtype === 'float32' || ref.dtype === 'float64' || ref.dtype === 'float16' || ref.dtype === 'bfloat16') totalParameters += ref.numel;
    }
  }
  return {
    file: ckpt.file,
    format: ckpt.format,
    fileBytes: fs.statSync(ckpt.file).size,
    tensors: s.tensors.map((t) => ({ key: t.path, dtype: plainDType(t.dtype), shape: t.shape, numel: t.numel })),
    totalParameters,
    stateDictKey,
    stateDictTensors,
    floatingElements: s.parameterCount,
    totalElements: s.totalElements,
    storageBytes: s.storageBytes,
    metadata: s.metadata,
    foreignClasses: s.foreignClasses,
  };
}

function formatCount(n: number): string {
  if (n >= 1e9) return `${(n / 1e9).toFixed(2)}B`;
  if (n >= 1e6) return `${(n / 1e6).toFixed(2)}M`;
  if (n >= 1e3) return `${(n / 1e3).toFixed(1)}K`;
  return String(n);
}

export function formatInspect(r: InspectReport, maxMetadataLines = 200): string {
  const lines: string[] = [];
  lines.push(`${r.file} (${r.format} format, ${r.fileBytes} bytes)`);
  const w = Math.max(3, ...r.tensors.map((t) => t.key.length));
  const dw = Math.max(5, ...r.tensors.map((t) => t.dtype.length));
  for (const t of r.tensors) lines.push(`${t.key.padEnd(w)}  ${t.dtype.padEnd(dw)}  [${t.shape.join(', ')}]`);
  const where = r.stateDictKey ? ` in '${r.stateDictKey}'` : '';
  lines.push(`# ${r.tensors.length} tensors; total parameters${where}: ${r.totalParameters} (${formatCount(r.totalParameters)}) in ${r.stateDictTensors} tensors; ${r.storageBytes} storage bytes`);
  if (r.floatingElements !== r.totalParameters) lines.push(`# floating-point elements in the whole file: ${r.floatingElements}`);
  const meta = Object.entries(r.metadata);
  for (const [k, v] of meta.slice(0, maxMetadataLines)) lines.push(`# ${k} = ${JSON.stringify(v)}`);
  if (meta.length > maxMetadataLines) lines.push(`# ... ${meta.length - maxMetadataLines} more metadata values (see --json)`);
  if (r.foreignClasses.length) lines.push(`# recorded, not executed: ${r.foreignClasses.join(', ')}`);
  return lines.join('\n') + '\n';
}

/** `mood ckpt inspect`: returns the exit code (0, or 1 with the reason on stderr). */
export async function runInspect(file: string, opts: InspectOptions = {}, io: CliIO = stdio): Promise<number> {
  let r: InspectReport;
  try {
    r = await inspectCheckpoint(file);
  } catch (e) {
    io.err(`mood ckpt inspect: ${(e as Error).message}\n`);
    return 1;
  }
  io.out(opts.json ? JSON.stringify(r, null, 2) + '\n' : formatInspect(r, opts.maxMetadataLines));
  return 0;
}

export interface ConvertOptions {
  /** Cast floating-point tensors to this dtype (round to nearest even, as torch's `.to(dtype)`). */
  dtype?: string;
  /** Write only this entry of the checkpoint's root dict; 'model|module' takes the first present. */
  key?: string;
  /**
   * Python floats outside tensors (args.lr, scaler.scale, ...): 'keep' (default; readable with
   * weights_only=True by torch >= 2.0, and by any torch without it), 'str' (their Python repr, as
   * strings) or 'tensor' (0-d float64 tensors): both read by torch 1.13's weights_only unpickler,
   * which has no float opcode at all.
   */
  floats?: string;
}

const FLOAT_MODES = ['keep', 'str', 'tensor'];

/** Python's repr() of a float (shortest round-trip digits, Python's exponent rules). */
export function pyFloatRepr(x: number): string {
  if (Number.isNaN(x)) return 'nan';
  if (!Number.isFinite(x)) return x > 0 ? 'inf' : '-inf';
  if (x === 0) return Object.is(x, -0) ? '-0.0' : '0.0';
  const [m, e0] = x.toExponential().split('e');
  const e = Number(e0);
  const neg = m.startsWith('-');
  const digits = m.replace('-', '').replace('.', '');
  let body: string;
  if (e >= -4 && e < 16) {
    if (e < 0) body = `0.${'0'.repeat(-e - 1)}${digits}`;
    else if (digits.length <= e + 1) body = `${digits}${'0'.repeat(e + 1 - digits.length)}.0`;
    else body = `${digits.slice(0, e + 1)}.${digits.slice(e + 1)}`;
  } else {
    const mant = digits.length > 1 ? `${digits[0]}.${digits.slice(1)}` : digits;
    body = `${mant}e${e < 0 ? '-' : '+'}${String(Math.abs(e)).padStart(2, '0')}`;
  }
  return neg ? `-${body}` : body;
}

export interface ConvertReport {
  input: string;
  output: string;
  /** Root key written ('' = whole checkpoint). */
  key: string;
  tensors: number;
  castTensors: number;
  /** Inert records (e.g. argparse.Namespace) written as plain dicts. */
  recordsAsDicts: number;
  /** Paths of the Python floats outside tensors (kept, or converted as `floats` says). */
  floatPaths: string[];
  floats: 'keep' | 'str' | 'tensor';
  bytes: number;
}

const CONVERT_DTYPES = ['float16', 'float32', 'bfloat16'];

function sameFile(a: string, b: string): boolean {
  if (path.resolve(a) === path.resolve(b)) return true;
  try {
    const sa = fs.statSync(a);
    const sb = fs.statSync(b);
    return sa.dev === sb.dev && sa.ino === sb.ino;
  } catch {
    return false;
  }
}

/**
 * Rewrite a checkpoint as a plain zip checkpoint that `torch.load(weights_only=True)` accepts:
 * inert records become dicts (their attribute dict), global references their dotted names, numpy
 * arrays tensors; optionally cast floating tensors and keep only one root entry. Atomic; refuses to
 * write over its input. Throws CheckpointError / Error with the reason.
 */
export async function convertCheckpoint(input: string, output: string, opts: ConvertOptions = {}): Promise<ConvertReport> {
  const { readCheckpoint } = await import('../checkpoint/reader');
  const { CheckpointError } = await import('../checkpoint/errors');
  const { PyDict, PickleRecord, PyGlobal, isTuple } = await import('../checkpoint/pyvalues');
  const { TensorRef, StorageRef } = await import('../checkpoint/tensorref');
  const { materialize } = await import('../checkpoint/materialize');
  const { saveCheckpoint } = await import('../checkpoint/writer');
  const { NdArray } = await import('../npy/ndarray');

  const dtype = opts.dtype as DType | undefined;
  if (dtype !== undefined && !CONVERT_DTYPES.includes(dtype)) throw new Error(`--dtype must be one of ${CONVERT_DTYPES.join(', ')}, got '${dtype}'`);
  const floats = (opts.floats ?? 'keep') as ConvertReport['floats'];
  if (!FLOAT_MODES.includes(floats)) throw new Error(`--floats must be one of ${FLOAT_MODES.join(', ')}, got '${floats}'`);
  if (sameFile(input, output)) throw new Error(`refusing to overwrite the input file ${path.resolve(input)}: choose another OUT`);
  if (fs.existsSync(output) && fs.statSync(output).isDirectory()) throw new Error(`${path.resolve(output)} is a directory`);

  const ckpt = readCheckpoint(input);
  let root: PyValue = ckpt.root;
  let key = '';
  if (opts.key !== undefined) {
    const keys = opts.key.split(/[|,]/).map((k) => k.trim()).filter(Boolean);
    if (!keys.length) throw new Error('--key needs a name');
    const have = root instanceof PyDict ? [...root.keys()].map(String) : [];
    const found = keys.find((k) => root instanceof PyDict && root.has(k));
    if (found === undefined) {
      throw new CheckpointError(ckpt.file, `no ${keys.map((k) => `'${k}'`).join(' or ')} entry at the root (${have.length ? `root keys: ${have.join(', ')}` : 'the root is not a dict'})`);
    }
    key = found;
    root = (root as InstanceType<typeof PyDict>).get(found) as PyValue;
  }

  let tensors = 0;
  let castTensors = 0;
  let recordsAsDicts = 0;
  const floatPaths: string[] = [];
  const isFloat = (d: DType): boolean => d === 'float32' || d === 'float64' || d === 'float16' || d === 'bfloat16';
  const done = new Map<object, SaveValue>(); // shared subtrees and tensors stay shared
  const active = new Set<object>();

  const fail = (msg: string, where: string): never => {
    throw new CheckpointError(ckpt.file, msg, { where: `value at '${where || '<root>'}'` });
  };

  const walk = (v: PyValue, where: string, depth: number): SaveValue => {
    if (depth > 512) fail('nesting too deep', where);
    if (typeof v === 'number' && !(Number.isSafeInteger(v) && !Object.is(v, -0))) {
      // The writer pickles this as a Python float (BINFLOAT).
      floatPaths.push(where || '<root>');
      if (floats === 'str') return pyFloatRepr(v);
      if (floats === 'tensor') return { dtype: 'float64', shape: [], data: Float64Array.of(v) };
      return v;
    }
    if (v === null || typeof v !== 'object') return v as SaveValue;
    if (v instanceof Uint8Array) return v;
    const hit = done.get(v);
    if (hit !== undefined) return hit;
    if (active.has(v)) fail('cyclic structure cannot be written', where);
    const sub = (k: unknown): string => (where ? `${where}.${String(k)}` : String(k));
    let out: SaveValue;
    if (v instanceof TensorRef) {
      tensors++;
      if (dtype !== undefined && isFloat(v.dtype) && v.dtype !== dtype) {
        castTensors++;
        // fp16/bf16 widen to float32 exactly; float64 goes through float32 as torch's own cast does
        // (c10::Half/BFloat16 are built from a float); the writer then rounds to nearest even.
        const vals = materialize(v) as Float32Array | Float64Array;
        const data = vals instanceof Float64Array ? Float32Array.from(vals) : vals;
        out = { dtype, shape: [...v.shape], data };
      } else {
        out = v; // storage copied as is: views and sharing kept
      }
    } else if (v instanceof StorageRef) {
      return fail('a bare storage (not a tensor) cannot be loaded with weights_only', where);
    } else if (v instanceof PyGlobal) {
      out = v.fullName;
    } else if (v instanceof NdArray) {
      out = ndarrayToTensor(v, where);
      tensors++;
    } else {
      active.add(v);
      try {
        if (v instanceof PickleRecord) {
          recordsAsDicts++;
          const m = new PyDict('builtins.dict');
          if (v.state instanceof PyDict) {
            for (const [k, x] of v.state) m.set(k, walk(x, sub(k), depth + 1) as PyValue);
          } else {
            m.set('__class__', v.__class__);
            m.set('args', walk(v.args as PyValue, sub('args'), depth + 1) as PyValue);
            if (v.state !== undefined) m.set('state', walk(v.state, sub('state'), depth + 1) as PyValue);
          }
          v.listItems?.forEach((x, i) => m.set(i, walk(x, sub(i), depth + 1) as PyValue));
          v.dictItems?.forEach(([k, x]) => m.set(k, walk(x, sub(k), depth + 1) as PyValue));
          out = m;
        } else if (v instanceof PyDict) {
          const m = new PyDict(v.pyClass === 'collections.OrderedDict' ? v.pyClass : 'builtins.dict');
          if (v.attributes !== undefined) m.attributes = walk(v.attributes, sub('__dict__'), depth + 1) as PyValue;
          for (const [k, x] of v) m.set(k, walk(x, sub(k), depth + 1) as PyValue);
          out = m;
        } else if (Array.isArray(v)) {
          const items = (v as PyValue[]).map((x, i) => walk(x, sub(i), depth + 1));
          out = isTuple(v) ? Object.freeze(items) : items;
        } else if (v instanceof Set) {
          out = new Set([...v].map((x, i) => walk(x, sub(i), depth + 1)));
        } else {
          out = v as SaveValue; // PyComplex
        }
      } finally {
        active.delete(v);
      }
    }
    done.set(v, out);
    return out;
  };

  function ndarrayToTensor(a: InstanceType<typeof NdArray>, where: string): SaveValue {
    const ok = ['float16', 'float32', 'float64', 'int8', 'int16', 'int32', 'int64', 'uint8', 'bool'];
    if (!ok.includes(a.dtype)) return fail(`numpy ${a.dtype} arrays have no torch dtype to convert to`, where);
    if (a.fortranOrder && a.shape.filter((d) => d > 1).length > 1) return fail('Fortran-order numpy arrays are not converted', where);
    return { dtype: a.dtype as DType, shape: [...a.shape], data: a.typed() as never };
  }

  const tree = walk(root, '', 0);
  saveCheckpoint(output, tree);
  return { input: ckpt.file, output: path.resolve(output), key, tensors, castTensors, recordsAsDicts, floatPaths, floats, bytes: fs.statSync(output).size };
}

/** `mood ckpt convert`: returns the exit code (0, or 1 with the reason on stderr). */
export async function runConvert(input: string, output: string, opts: ConvertOptions = {}, io: CliIO = stdio): Promise<number> {
  let r: ConvertReport;
  try {
    r = await convertCheckpoint(input, output, opts);
  } catch (e) {
    io.err(`mood ckpt convert: ${(e as Error).message}\n`);
    return 1;
  }
  const parts = [`${r.tensors} tensors`];
  if (r.castTensors) parts.push(`${r.castTensors} cast to ${opts.dtype}`);
  if (r.recordsAsDicts) parts.push(`${r.recordsAsDicts} inert records written as dicts`);
  if (r.floatPaths.length && r.floats !== 'keep') parts.push(`${r.floatPaths.length} float values as ${r.floats === 'str' ? 'strings' : '0-d float64 tensors'}`);
  if (r.floatPaths.length && r.floats === 'keep') {
    const some = r.floatPaths.slice(0, 4).join(', ') + (r.floatPaths.length > 4 ? ', ...' : '');
    io.err(`note: ${r.floatPaths.length} Python float values outside tensors (${some}): torch >= 2.0 reads them with weights_only=True, torch 1.13 only with weights_only=False; --floats str or --floats tensor makes the file readable by 1.13's weights_only loader\n`);
  }
  io.out(`wrote ${r.output}${r.key ? ` (root '${r.key}')` : ''}: ${parts.join(', ')}, ${r.bytes} bytes\n`);
  return 0;
}

/** Adds `ckpt inspect` and `ckpt convert` to the `mood` program. */
export function registerCkpt(program: Command): Command {
  const ckpt = program.command('ckpt').description('inspect and convert PyTorch checkpoints (.pth, zip or legacy format), never executing their code');
  ckpt
    .command('inspect')
    .description('list every tensor (key, dtype, shape), total parameters and metadata such as epoch and args')
    .argument('<file>', 'checkpoint written by torch.save')
    .option('--json', 'machine-readable output')
    .action(async (file: string, opts: { json?: boolean }) => {
      process.exitCode = await runInspect(file, opts);
    });
  ckpt
    .command('convert')
    .description('rewrite a checkpoint so torch.load(weights_only=True) reads it (inert records as dicts), optionally casting floating tensors')
    .argument('<in>', 'checkpoint to read')
    .argument('<out>', 'file to write (atomically; never IN itself)')
    .option('--dtype <dtype>', `cast floating-point tensors: ${CONVERT_DTYPES.join(', ')}`)
    .option('--key <key>', "write only this root entry, e.g. 'model' ('model|module': first present)")
    .option('--floats <mode>', 'Python floats outside tensors: keep | str | tensor (str/tensor: loadable by torch 1.13 with weights_only=True)', 'keep')
    .action(async (input: string, output: string, opts: { dtype?: string; key?: string; floats?: string }) => {
      process.exitCode = await runConvert(input, output, opts);
    });
  return ckpt;
}
