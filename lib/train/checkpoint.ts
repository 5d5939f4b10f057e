/**
 * Fine-tuning checkpoints as the reference writes them (`utils.save_model` without DeepSpeed):
 * `checkpoint-<epoch>.pth` in the output dir holding {model, optimizer, epoch, scaler, args,
 * model_ema?}, loadable by torch.load (also weights_only=True: args is a plain dict here, not an
 * argparse.Namespace). Writes are atomic, so a kill during a save leaves the previous file intact.
 * `latestCheckpoint` is the reference's auto_resume rule: the highest numbered checkpoint-N.pth.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import type { Tensor } from '../tensor';
import { SaveValue, pyFloat, saveCheckpoint } from '../checkpoint/writer';
import { tensorsToData } from '../checkpoint/save-tensors';
import { readCheckpoint } from '../checkpoint/reader';
import { loadTensors } from '../checkpoint/load-tensors';
import { PyDict, PyValue } from '../checkpoint/pyvalues';
import type { Beit } from '../models/beit';
import type { FinetuneOptimizer } from './optimizer';

export interface SaveTrainCheckpointParts {
  model: Beit;
  optimizer: FinetuneOptimizer;
  /** The epoch just finished (an int), or a tag like 'best'. */
  epoch: number | string;
  args: Record<string, unknown>;
}

/** Plain JSON-like args -> pickle values (non-integral numbers stay floats; integral floats are ints, as JSON). */
function argsValue(args: Record<string, unknown>): SaveValue {
  const conv = (v: unknown): SaveValue => {
    if (v === undefined) return null;
    if (v === null || typeof v === 'string' || typeof v === 'boolean') return v;
    if (typeof v === 'number') return Number.isInteger(v) ? v : pyFloat(v);
    if (Array.isArray(v)) return v.map(conv);
    if (typeof v === 'object') return Object.fromEntries(Object.entries(v as object).map(([k, x]) => [k, conv(x)]));
    return String(v);
  };
  return conv(args);
}

export function checkpointPath(outputDir: string, epoch: number | string): string {
  return path.join(outputDir, `checkpoint-${epoch}.pth`);
}

/** Writes the checkpoint atomically; returns its path. */
export async function saveTrainCheckpoint(file: string, p: SaveTrainCheckpointParts): Promise<string> {
  const model = await tensorsToData(p.model.stateDict(), { file });
  const opt = await p.optimizer.stateDict();
  let ema: Map<string, Tensor> | null = null;
  try {
    // Only the tensor part of the optimizer state needs converting; param_groups are plain values.
    const state = (await tensorsToData(opt.state as unknown as Map<unknown, unknown>, { file })) as SaveValue;
    const value: Record<string, SaveValue> = {
      model,
      optimizer: { state, param_groups: opt.param_groups as unknown as SaveValue },
      epoch: typeof p.epoch === 'number' ? p.epoch : p.epoch,
      scaler: {}, // no loss scaler on CPU / bfloat16 (GradScaler(enabled=False).state_dict() is {})
      args: argsValue(p.args),
    };
    if (p.optimizer.hasEma) {
      ema = p.optimizer.emaStateDict();
      value.model_ema = await tensorsToData(ema, { file });
    }
    saveCheckpoint(file, value);
    return file;
  } finally {
    opt.tensors.forEach((t) => t.dispose());
    ema?.forEach((t) => t.dispose());
  }
}

/** The reference's auto_resume: checkpoint-<N>.pth with the largest N in `outputDir` (null if none). */
export function latestCheckpoint(outputDir: string): string | null {
  let best = -1;
  let names: string[] = [];
  try {
    names = fs.readdirSync(outputDir);
  } catch {
    return null;
  }
  for (const n of names) {
    const m = /^checkpoint-(\d+)\.pth$/.exec(n);
    if (m && Number(m[1]) > best) best = Number(m[1]);
  }
  return best >= 0 ? checkpointPath(outputDir, best) : null;
}

export interface ResumeInfo {
  file: string;
  /** The epoch to start from (saved epoch + 1), or undefined when the checkpoint has no int epoch. */
  startEpoch?: number;
  args?: PyValue;
  restoredOptimizer: boolean;
  restoredEma: boolean;
}

/**
 * The reference's auto_load_model: model weights always; optimizer (and the next epoch) when the
 * checkpoint has 'optimizer' and 'epoch'; the EMA when both sides keep one.
 */
export async function loadTrainCheckpoint(file: string, model: Beit, optimizer?: FinetuneOptimizer): Promise<ResumeInfo> {
  const ckpt = readCheckpoint(file);
  const root = ckpt.root;
  if (!(root instanceof PyDict) || !root.has('model')) throw new Error(`${file}: not a fine-tuning checkpoint (no 'model' entry)`);
  const weights = await loadTensors(ckpt, { key: 'model' });
  try {
    await model.loadStateDict(weights, { strict: true });
  } catch (e) {
    throw new Error(`${file}: the checkpoint's model does not fit this model: ${(e as Error).message}`);
  } finally {
    weights.forEach((t) => t.dispose());
  }
  const info: ResumeInfo = { file, restoredOptimizer: false, restoredEma: false, args: root.get('args') };
  const epoch = root.get('epoch');
  const optV = root.get('optimizer');
  if (optimizer && optV instanceof PyDict && typeof epoch === 'number') {
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
    info.restoredOptimizer = true;
    info.startEpoch = epoch + 1;
  }
  if (optimizer?.hasEma && root.has('model_ema')) {
    const ema = await loadTensors(ckpt, { key: 'model_ema' });
    try {
      await optimizer.loadEma(ema);
    } finally {
      ema.forEach((t) => t.dispose());
    }
    info.restoredEma = true;
  }
  return info;
}
