/**
 * `mood dvae tokens` (registered in lib/cli/dvae.ts): BEiT's visual tokenizer on its own. Reads
 * OpenAI's DALL-E encoder.pkl from --discrete_vae_weight_path (safely: nothing in it runs), takes images
 * x.npy float32 (N, 3, H, W) in [0, 1] (before map_pixels, like BEiT's second view after ToTensor),
 * writes the token ids int64 (N, H/8, W/8) and optionally the logits float32 (N, vocab, H/8, W/8).
 * Outputs are written atomically (temp file + rename); libtorch loads only after the cheap checks.
 */
import { ndarray, readNpy, writeNpy } from '../npy';
import type { NdArray } from '../npy';
import { checkOutputPath, requireFile, sameFile } from './forward';
import { DvaeError } from '../dvae/errors';
import { intFlag } from '../util/flags';
import { fmtShape } from './model';

export interface DvaeTokensOptions {
  discreteVaeType?: string;
  discreteVaeWeightPath?: string;
  input?: string;
  out?: string;
  logitsOut?: string;
  batchSize?: string;
  device?: string;
  precision?: string;
  json?: boolean;
}

export interface DvaeTokensSummary {
  encoder: { file: string; n_hid: number; n_blk_per_group: number; group_count: number; vocab_size: number; device: string; precision: string };
  input: { file: string; shape: number[] };
  outputs: { ids: { file: string; dtype: 'int64'; shape: number[] }; logits?: { file: string; dtype: 'float32'; shape: number[] } };
  seconds: number;
}


/** x.npy: float32 (N, C, H, W), finite, in [0, 1]. */
function readImages(file: string): { arr: NdArray; values: Float32Array } {
  let arr: NdArray;
  try {
    arr = readNpy(file);
  } catch (e) {
    throw new DvaeError(`--input ${file}: ${(e as Error).message}`);
  }
  if (arr.dtype !== 'float32') throw new DvaeError(`--input ${file}: expected float32 images in [0, 1], got dtype ${arr.dtype} (x.astype(np.float32))`);
  if (arr.shape.length !== 4) throw new DvaeError(`--input ${file}: expected a 4-d batch (N, 3, H, W), got shape ${fmtShape(arr.shape)}${arr.shape.length === 3 ? ' (for one image use x[None])' : ''}`);
  if (arr.shape[0] === 0) throw new DvaeError(`--input ${file}: the batch is empty, shape ${fmtShape(arr.shape)}`);
  const values = arr.toCOrder().typed() as Float32Array;
  let lo = Infinity;
  let hi = -Infinity;
  for (const v of values) {
    if (!Number.isFinite(v)) throw new DvaeError(`--input ${file}: holds non-finite values (${v})`);
    if (v < lo) lo = v;
    if (v > hi) hi = v;
  }
  // The tokenizer takes ToTensor pixels (before map_pixels): anything else gives meaningless ids.
  if (lo < 0 || hi > 1) throw new DvaeError(`--input ${file}: values must be in [0, 1] (pixels / 255, before map_pixels), found [${lo}, ${hi}]`);
  return { arr, values };
}

/** Only OpenAI's DALL-E encoder is loadable (BEiT's 'customized' dVAE has no released encoder format here). */
export function checkVaeType(t: string | undefined): void {
  const type = t ?? 'dall-e';
  if (type !== 'dall-e') throw new DvaeError(`--discrete_vae_type ${type}: only dall-e (OpenAI's DALL-E encoder.pkl) is supported`);
}

export async function runDvaeTokens(o: DvaeTokensOptions): Promise<DvaeTokensSummary> {
  const t0 = process.hrtime.bigint();
  checkVaeType(o.discreteVaeType);
  if (!o.discreteVaeWeightPath) throw new DvaeError('--discrete_vae_weight_path DIR is required (the folder holding encoder.pkl)');
  const input = requireFile('--input', o.input);
  if (!o.out) throw new DvaeError('--out ids.npy is required');
  const { encoderPath } = await import('../dvae/encoder-file');
  const pkl = encoderPath(o.discreteVaeWeightPath);
  const protect: Array<[string, string]> = [
    ['input file', input],
    ['encoder', pkl],
  ];
  checkOutputPath('--out', o.out, protect);
  if (o.logitsOut) {
    checkOutputPath('--logits-out', o.logitsOut, protect);
    if (sameFile(o.out, o.logitsOut)) throw new DvaeError(`--out and --logits-out name the same file ${o.out}`);
  }
  const batchSize = intFlag('--batch-size', o.batchSize, { min: 1 }) ?? 64;
  const { arr, values } = readImages(input);

  const { DalleEncoder } = await import('../dvae/encoder');
  const { Tensor } = await import('../tensor');
  const enc = await DalleEncoder.fromFile(pkl, { device: (o.device ?? 'cpu') as never, precision: (o.precision ?? 'auto') as never });
  try {
    const eo = enc.options;
    const [n, c, h, w] = arr.shape;
    if (c !== eo.input_channels) throw new DvaeError(`--input ${input}: expected ${eo.input_channels} channels (N, ${eo.input_channels}, H, W), got shape ${fmtShape(arr.shape)}`);
    const gh = enc.tokenGrid(h);
    const gw = enc.tokenGrid(w);
    const down = eo.pool_stride ** (eo.group_count - 1);
    if (gh * down !== h || gw * down !== w) throw new DvaeError(`--input ${input}: H and W must be positive multiples of ${down} (the encoder pools ${eo.group_count - 1} times by ${eo.pool_stride}), got ${h}x${w}`);
    const per = c * h * w;
    const ids = new BigInt64Array(n * gh * gw);
    const logits = o.logitsOut ? new Float32Array(n * eo.vocab_size * gh * gw) : undefined;
    for (let start = 0; start < n; start += batchSize) {
      const b = Math.min(batchSize, n - start);
      const x = Tensor.fromArray(values.subarray(start * per, (start + b) * per), [b, c, h, w]);
      const r = enc.forward(x, { mapPixels: true, ids: true, logits: !!logits });
      try {
        ids.set((await r.ids!.data()) as BigInt64Array, start * gh * gw);
        if (logits) logits.set((await r.logits!.data()) as Float32Array, start * eo.vocab_size * gh * gw);
      } finally {
        x.dispose();
        r.ids?.dispose();
        r.logits?.dispose();
      }
    }
    writeNpy(o.out, ndarray('int64', [n, gh, gw], ids));
    const outputs: DvaeTokensSummary['outputs'] = { ids: { file: o.out, dtype: 'int64', shape: [n, gh, gw] } };
    if (o.logitsOut && logits) {
      writeNpy(o.logitsOut, ndarray('float32', [n, eo.vocab_size, gh, gw], logits));
      outputs.logits = { file: o.logitsOut, dtype: 'float32', shape: [n, eo.vocab_size, gh, gw] };
    }
    return {
      encoder: { file: pkl, n_hid: eo.n_hid, n_blk_per_group: eo.n_blk_per_group, group_count: eo.group_count, vocab_size: eo.vocab_size, device: eo.device, precision: eo.precision },
      input: { file: input, shape: arr.shape },
      outputs,
      seconds: Number(process.hrtime.bigint() - t0) / 1e9,
    };
  } finally {
    enc.dispose();
  }
}

export function formatDvaeTokens(s: DvaeTokensSummary): string {
  const e = s.encoder;
  const lines = [
    `encoder ${e.file}: n_hid ${e.n_hid}, ${e.group_count} groups x ${e.n_blk_per_group} blocks, vocab ${e.vocab_size} (${e.device}, ${e.precision})`,
    `input   ${s.input.file} float32 ${fmtShape(s.input.shape)}`,
    `ids     ${s.outputs.ids.file} int64 ${fmtShape(s.outputs.ids.shape)}`,
  ];
  if (s.outputs.logits) lines.push(`logits  ${s.outputs.logits.file} float32 ${fmtShape(s.outputs.logits.shape)}`);
  lines.push(`time    ${s.seconds.toFixed(2)} s`);
  return lines.join('\n') + '\n';
}
