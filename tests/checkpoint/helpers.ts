import * as fs from 'node:fs';
import * as crypto from 'node:crypto';
import { execFileSync } from 'node:child_process';
import { FIXTURES_DIR, SYSTEM_PYTHON, fixturePath } from '../helpers/fixtures';

export interface ManifestCase {
  model: Record<string, unknown> & { window_size: [number, number]; num_classes: number; depth: number; use_mean_pooling: boolean; use_rel_pos_bias: boolean; use_abs_pos_emb: boolean; img_size: number; patch_size: number };
  source_model?: ManifestCase['model'];
  checkpoint: { file: string; format: 'zip' | 'legacy'; state_dict_key: string; key_prefix: string; state_dict: Array<[string, number[], string]>; zip_prefix?: string };
  adapted_state_dict?: { file: string; state_dict: Array<[string, number[], string]> };
  adaptation: Record<string, unknown> & { path: string };
}

export function loadManifest(): { cases: Record<string, ManifestCase> } {
  return JSON.parse(fs.readFileSync(fixturePath('manifest.json'), 'utf8'));
}

export function readBinF32(file: string): Float32Array {
  const b = fs.readFileSync(file);
  return new Float32Array(b.buffer.slice(b.byteOffset, b.byteOffset + b.byteLength));
}

export function sha256(a: ArrayBufferView): string {
  return crypto.createHash('sha256').update(new Uint8Array(a.buffer, a.byteOffset, a.byteLength)).digest('hex');
}

export interface TorchDigest {
  dtype: string;
  shape: number[];
  /** sha256 of the contiguous tensor bytes in its own dtype. */
  raw: string;
  /** sha256 of the contiguous float32 upcast (floating tensors only). */
  f32?: string;
}

/**
 * What real torch sees in a checkpoint: every tensor reachable under `stateKey` (or the root when it is
 * a state dict), hashed. Independent truth for the reader.
 */
export function torchDigest(file: string, stateKey: string | null, weightsOnly = false): Record<string, TorchDigest> {
  return torchDigests([[file, stateKey]], weightsOnly)[0];
}

/** torchDigest for many files in one Python process (torch's import dominates the cost). */
export function torchDigests(files: Array<[string, string | null]>, weightsOnly = false): Array<Record<string, TorchDigest>> {
  const script = `
import sys, json, hashlib, torch
res = []
for f, key in json.loads(sys.argv[1]):
  ck = torch.load(f, map_location='cpu'${weightsOnly ? ', weights_only=True' : ''})
  sd = ck[key] if key else ck
  res.append(digest(sd))
print(json.dumps(res))
`.replace('res = []', `def digest(sd):
  out = {}
  for k, t in sd.items():
    if not isinstance(t, torch.Tensor):
        continue
    c = t.contiguous().reshape(-1)
    raw = hashlib.sha256(c.view(torch.uint8).numpy().tobytes() if c.numel() else b'').hexdigest() if c.dtype != torch.bfloat16 else hashlib.sha256(c.view(torch.int16).numpy().tobytes()).hexdigest()
    d = {'dtype': str(t.dtype).replace('torch.', ''), 'shape': list(t.shape), 'raw': raw}
    if t.is_floating_point():
        d['f32'] = hashlib.sha256(c.float().numpy().tobytes()).hexdigest()
    out[k] = d
  return out
res = []`);
  const txt = execFileSync(SYSTEM_PYTHON, ['-c', script, JSON.stringify(files.map(([f, k]) => [f, k ?? '']))], { encoding: 'utf8', maxBuffer: 1 << 26 });
  return JSON.parse(txt);
}

export function python(script: string, args: string[] = []): string {
  return execFileSync(SYSTEM_PYTHON, ['-c', script, ...args], { encoding: 'utf8', maxBuffer: 1 << 26 });
}

export function havePython(): boolean {
  try {
    execFileSync(SYSTEM_PYTHON, ['-c', 'import torch, numpy'], { stdio: 'ignore' });
    return true;
  } catch {
    return false;
  }
}

export { FIXTURES_DIR, fixturePath };
