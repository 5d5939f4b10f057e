/**
 * Training checkpoints, one layout for every loop (the reference's `utils.save_model` without
 * DeepSpeed): `checkpoint-<epoch>.pth` holding {model, optimizer, epoch, scaler, args, model_ema?,
 * max_accuracy?}, loadable by torch.load (args is a plain dict, not an argparse.Namespace). What
 * 'optimizer' holds is the optimizer's own business (an OptimizerState): PyTorch's AdamW state_dict
 * for fine-tuning, the MIM model's moments for pre-training. Writes are atomic, so a kill during a
 * save leaves the previous file intact. `latestCheckpoint` is the reference's auto_resume rule.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import type { Tensor } from '../tensor';
import { PyFloat, SaveValue, pyFloat, saveCheckpoint } from '../checkpoint/writer';
import { tensorsToData } from '../checkpoint/save-tensors';
import { Checkpoint, readCheckpoint } from '../checkpoint/reader';
import { loadTensors } from '../checkpoint/load-tensors';
import { PyDict, PyValue } from '../checkpoint/pyvalues';
import type { StateSpecEntry } from '../models/native-beit';
import type { FinetuneOptimizer } from './optimizer';

/** What the loop and its checkpoints need of a model (Beit, MimModel). */
export interface TrainableModel {
  /** Parameters and buffers by name, in state_dict order (views: the caller disposes them). */
  stateDict(): Map<string, Tensor>;
  loadStateDict(sd: Map<string, Tensor>, opts?: { strict?: boolean }): Promise<unknown>;
  stateSpec(): StateSpecEntry[];
  train(mode?: boolean): unknown;
  dispose(): void;
}

/** How an optimizer's state goes into a checkpoint and comes back. */
export interface OptimizerState {
  /** Top-level entries to add ('optimizer', and e.g. 'model_ema'), tensors already copied out. */
  save(file: string): Promise<Record<string, SaveValue>>;
  /** Restores from the checkpoint's entries; `ema`: an EMA of the weights came back too. */
  load(ckpt: Checkpoint, file: string): Promise<{ ema: boolean }>;
}

export interface SaveTrainCheckpointParts {
  model: TrainableModel;
  /** The fine-tuning optimizer (its AdamW state_dict and EMA); `state` for any other optimizer. */
  optimizer?: FinetuneOptimizer;
  state?: OptimizerState;
  /** The epoch just finished (an int), or a tag like 'best' / 'init'. */
  epoch: number | string;
  args: Record<string, unknown>;
  /**
   * Best test acc@1 so far (fine-tuning with evaluation), restored on resume. Kept as args.max_accuracy
   * (run state in args, as the reference keeps window_size there) so the top-level keys stay the reference's.
   */
  maxAccuracy?: number;
}

/** Plain JSON-like args -> pickle values (non-integral numbers stay floats; integral floats are ints, as JSON). */
function argsValue(args: Record<string, unknown>): SaveValue {
  const conv = (v: unknown): SaveValue => {
    if (v === undefined) return null;
    if (v === null || typeof v === 'string' || typeof v === 'boolean' || v instanceof PyFloat) return v;
    if (typeof v === 'number') return Number.isInteger(v) ? v : pyFloat(v);
    if (Array.isArray(v)) return v.map(conv);
    if (typeof v === 'object') return Object.fromEntries(Object.entries(v as object).map(([k, x]) => [k, conv(x)]));
    return String(v);
  };
  return conv(args);
}

/** A state dict as torch writes it (collections.OrderedDict, names in order), values copied out. */
export async function stateDictValue(sd: Map<string, Tensor>, file: string): Promise<SaveValue> {
  return tensorsToData(new PyDict('collections.OrderedDict', sd as unknown as Map<PyValue, PyValue>), { file });
}

export function checkpointPath(outputDir: string, epoch: number | string, prefix = 'checkpoint'): string {
  return path.join(outputDir, `${prefix}-${epoch}.pth`);
}

/** Writes the checkpoint atomically; returns its path. */
export async function saveTrainCheckpoint(file: string, p: SaveTrainCheckpointParts): Promise<string> {
  const state = p.state ?? (p.optimizer ? finetuneOptimizerState(p.optimizer) : undefined);
  const sd = p.model.stateDict();
  try {
    const value: Record<string, SaveValue> = { model: await stateDictValue(sd, file) };
    const extra = state ? await state.save(file) : {};
    if (extra.optimizer !== undefined) value.optimizer = extra.optimizer;
    value.epoch = p.epoch;
    value.scaler = {}; // no loss scaler on CPU / float32 (GradScaler(enabled=False).state_dict() is {})
    value.args = argsValue(p.maxAccuracy === undefined ? p.args : { ...p.args, max_accuracy: pyFloat(p.maxAccuracy) });
    for (const [k, v] of Object.entries(extra)) if (k !== 'optimizer') value[k] = v;
    saveCheckpoint(file, value);
    return file;
  } finally {
    for (const t of sd.values()) t.dispose();
  }
}

/** The reference's auto_resume: `<prefix>-<N>.pth` with the largest N in `outputDir` (null if none). */
export function latestCheckpoint(outputDir: string, prefix = 'checkpoint'): string | null {
  let best = -1;
  let names: string[] = [];
  try {
    names = fs.readdirSync(outputDir);
  } catch {
    return null;
  }
  const re = new RegExp(`^${prefix.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}-(\\d+)\\.pth$`);
  for (const n of names) {
    const m = re.exec(n);
    if (m && Number(m[1]) > best) best = Number(m[1]);
  }
  return best >= 0 ? checkpointPath(outputDir, best, prefix) : null;
}

export interface ResumeInfo {
  file: string;
  /** The epoch to start from (saved epoch + 1), or undefined when the checkpoint has no int epoch. */
  startEpoch?: number;
  args?: PyValue;
  restoredOptimizer: boolean;
  restoredEma: boolean;
  /** args.max_accuracy when the checkpoint has it. */
  maxAccuracy?: number;
}

/**
 * The reference's auto_load_model: model weights always (every tensor must fit); the optimizer state
 * (with the EMA) and the next epoch when the checkpoint has 'optimizer' and an int 'epoch'.
 */
export async function loadTrainCheckpoint(file: string, model: TrainableModel, state?: OptimizerState): Promise<ResumeInfo> {
  const ckpt = readCheckpoint(file);
  const root = ckpt.root;
  if (!(root instanceof PyDict) || !root.has('model')) throw new Error(`${file}: not a training checkpoint (no 'model' entry)`);
  const weights = await loadTensors(ckpt, { key: 'model' });
  try {
    await model.loadStateDict(weights, { strict: true });
  } catch (e) {
    throw new Error(`${file}: the checkpoint's model does not fit this model: ${(e as Error).message}`);
  } finally {
    weights.forEach((t) => t.dispose());
  }
  const info: ResumeInfo = { file, restoredOptimizer: false, restoredEma: false, args: root.get('args') };
  const args = root.get('args');
  const best = args instanceof PyDict ? args.get('max_accuracy') : undefined;
  if (typeof best === 'number') info.maxAccuracy = best;
  const epoch = root.get('epoch');
  if (state && root.get('optimizer') instanceof PyDict && typeof epoch === 'number') {
    const r = await state.load(ckpt, file);
    info.restoredOptimizer = true;
    info.restoredEma = r.ema;
    info.startEpoch = epoch + 1;
  }
  return info;
}

/** The fine-tuning optimizer's entries: PyTorch's AdamW state_dict as 'optimizer', the EMA as 'model_ema'. */
export function finetuneOptimizerState(optimizer: FinetuneOptimizer): OptimizerState {
  return {
    async save(file) {
      const opt = await optimizer.stateDict();
      let ema: Map<string, Tensor> | null = null;
      try {
        // Only the tensor part of the optimizer state needs converting; param_groups are plain values.
        const state = await tensorsToData(opt.state as unknown as Map<unknown, unknown>, { file });
        const out: Record<string, SaveValue> = { optimizer: { state, param_groups: opt.param_groups as unknown as SaveValue } };
        if (optimizer.hasEma) {
          ema = optimizer.emaStateDict();
          out.model_ema = await stateDictValue(ema, file);
        }
        return out;
      } finally {
        opt.tensors.forEach((t) => t.dispose());
        ema?.forEach((t) => t.dispose());
      }
    },
    async load(ckpt, file) {
      const optV = (ckpt.root as PyDict).get('optimizer') as PyDict;
      const groups = optV.get('param_groups');
      if (!Array.isArray(groups)) throw new Error(`${file}: optimizer.param_groups is not a list`);
      const sizes = groups.map((g) => (g instanceof PyDict && Array.isArray(g.get('params')) ? (g.get('params') as unknown[]).length : -1));
      const values = groups.map((g) => ({ lr: (g as PyDict).get('lr') as number | undefined, weight_decay: (g as PyDict).get('weight_decay') as number | undefined }));
      const st = await loadTensors(ckpt, { key: 'optimizer', filter: (k) => k.startsWith('state.') });
      try {
        await optimizer.loadStateDict(st, sizes, values, file);
      } finally {
        st.forEach((t) => t.dispose());
      }
      if (!optimizer.hasEma || !(ckpt.root as PyDict).has('model_ema')) return { ema: false };
      const ema = await loadTensors(ckpt, { key: 'model_ema' });
      try {
        await optimizer.loadEma(ema);
      } finally {
        ema.forEach((t) => t.dispose());
      }
      return { ema: true };
    },
  };
}
