/**
 * Reading the DALL-E encoder.pkl safely: the fixture (a whole dall_e.encoder.Encoder written by
 * torch.save in the official code) gives its structure and parameters; hostile and damaged variants
 * (made by editing the fixture's pickle program) fail with an error naming the file and what was found,
 * and nothing they ask for runs.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { readDalleEncoderFile, encoderPath } from '../../lib/dvae/encoder-file';
import { DvaeError } from '../../lib/dvae/errors';
import { PickleRecord } from '../../lib/checkpoint/pyvalues';
import { readCheckpoint } from '../../lib/checkpoint/reader';
import { DVAE_DIR, ENCODER_PKL, binunicode, dvaeManifest, fixturePickle, replaceOnce, rewritePickle, tmpDir } from './helpers';

const work = tmpDir('file');
afterAll(() => fs.rmSync(work, { recursive: true, force: true }));

/** The root Encoder's own `training` flag (the first occurrence is the only one stored with BINPUT 14). */
const ROOT_TRAINING = Buffer.concat([binunicode('training'), Buffer.from('q\x0e\x89', 'latin1')]);

function variant(name: string, edit: (pkl: Buffer) => Buffer): string {
  return rewritePickle(path.join(work, `${name}.pkl`), edit);
}

function failure(file: string): DvaeError {
  try {
    readDalleEncoderFile(file);
  } catch (e) {
    expect(e).toBeInstanceOf(DvaeError);
    return e as DvaeError;
  }
  throw new Error(`${file} was accepted`);
}

describe('DALL-E encoder.pkl: structure and parameters from the file', () => {
  it('the fixture: structure as the official code built it, every parameter as its state_dict lists it', () => {
    const m = dvaeManifest();
    const r = readDalleEncoderFile(DVAE_DIR); // a folder means <folder>/encoder.pkl, as BEiT's weight path
    expect(r.file).toBe(path.resolve(ENCODER_PKL));
    expect(r.structure).toMatchObject({
      nHid: m.encoder.n_hid,
      nBlkPerGroup: m.encoder.n_blk_per_group,
      vocabSize: m.encoder.vocab_size,
      groupCount: m.encoder.group_count,
      inputChannels: 3,
      nLayers: 8,
      postGain: 1 / 64,
      pool: { kernelSize: 2, stride: 2, padding: 0, dilation: 1, ceilMode: false },
      useMixedPrecision: false,
      requiresGrad: false,
      device: 'cpu',
    });
    // use_float16 is Conv2d's default (True) everywhere except the output conv, which the reference builds with False.
    expect(r.structure.float16Convs).not.toContain('blocks.output.conv');
    expect(r.structure.float16Convs).toContain('blocks.input');
    expect(r.structure.float16Convs.length).toBe(m.state_dict.length / 2 - 1);
    expect([...r.parameters].map(([k, t]) => [k, t.shape, `torch.${t.dtype}`])).toEqual(m.state_dict);
  });

  it('numbers are read from the file: an edited n_hid / n_blk_per_group is seen (and then contradicts the modules)', () => {
    // n_hid 64 -> 128 (BININT1 0x40 -> 0x80): the input conv's 64 outputs no longer match.
    const wide = variant('n_hid', (p) => replaceOnce(p, Buffer.concat([binunicode('n_hid'), Buffer.from('q\x03K\x40', 'latin1')]), Buffer.concat([binunicode('n_hid'), Buffer.from('q\x03K\x80', 'latin1')])));
    expect(failure(wide).message).toMatch(/n_hid\.pkl: blocks\.input: n_out is 64, the encoder's structure needs 128/);
    const deep = variant('n_blk', (p) => replaceOnce(p, Buffer.concat([binunicode('n_blk_per_group'), Buffer.from('q\x04K\x02', 'latin1')]), Buffer.concat([binunicode('n_blk_per_group'), Buffer.from('q\x04K\x03', 'latin1')])));
    expect(failure(deep).message).toMatch(/blocks\.group_1: expected submodules \[block_1, block_2, block_3, pool\], found \[block_1, block_2, pool\]/);
  });

  it('a missing file or folder is named', () => {
    expect(() => encoderPath(path.join(work, 'nope'))).toThrow(/nope: no such file or folder/);
    fs.mkdirSync(path.join(work, 'empty'));
    expect(() => readDalleEncoderFile(path.join(work, 'empty'))).toThrow(/empty: no encoder\.pkl in this folder/);
  });
});

describe('DALL-E encoder.pkl: hostile and damaged files', () => {
  it('a dall_e class name under another module is refused by name', () => {
    const f = variant('wrong-module', (p) => replaceOnce(p, 'cdall_e.encoder\nEncoder\n', 'cevil.encoder\nEncoder\n'));
    const e = failure(f);
    expect(e.message).toContain(f);
    expect(e.message).toMatch(/global evil\.encoder\.Encoder is not allowed \(strict mode\); only tensors and the DALL-E encoder's own classes \(dall_e\.encoder\.Encoder, /);
    // Another dall_e module is no better: Conv2d lives in dall_e.utils.
    const g = variant('wrong-dalle-module', (p) => replaceOnce(p, 'cdall_e.utils\nConv2d\n', 'cdall_e.encoder\nConv2d\n'));
    expect(failure(g).message).toMatch(/global dall_e\.encoder\.Conv2d is not allowed/);
    // The non-strict reader records it as an inert PickleRecord all the same (nothing is constructed).
    expect(readCheckpoint(f).root).toBeInstanceOf(PickleRecord);
  });

  it('an extra __reduce__ (posix.system) is refused by name and does not run', () => {
    const marker = path.join(work, 'pwned');
    const call = Buffer.concat([Buffer.from('cposix\nsystem\n', 'latin1'), binunicode(`touch ${marker}`), Buffer.from('\x85R', 'latin1')]);
    const f = variant('reduce', (p) => replaceOnce(p, ROOT_TRAINING, Buffer.concat([ROOT_TRAINING.subarray(0, ROOT_TRAINING.length - 1), call])));
    const e = failure(f);
    expect(e.message).toContain(f);
    expect(e.message).toMatch(/GLOBAL at offset \d+: global posix\.system is not allowed/);
    expect(fs.existsSync(marker)).toBe(false);
  });

  it('an allow-listed class called with arguments (not how torch.save pickles a module) is refused', () => {
    const f = variant('ctor-args', (p) => replaceOnce(p, 'cdall_e.encoder\nEncoder\nq\x00)\x81', Buffer.concat([Buffer.from('cdall_e.encoder\nEncoder\nq\x00', 'latin1'), binunicode('x'), Buffer.from('\x85\x81', 'latin1')])));
    expect(failure(f).message).toMatch(/dall_e\.encoder\.Encoder called with 1 argument\(s\)/);
  });

  it('an unexpected attribute is named', () => {
    const f = variant('extra-attr', (p) => replaceOnce(p, ROOT_TRAINING, Buffer.concat([ROOT_TRAINING, binunicode('payload'), Buffer.from('K\x07', 'latin1')])));
    expect(failure(f).message).toMatch(/extra-attr\.pkl: Encoder: unexpected attribute 'payload' \(number\)/);
  });

  it('truncated files fail with a clear error', () => {
    const whole = fs.readFileSync(ENCODER_PKL);
    const cut = path.join(work, 'truncated.pkl');
    fs.writeFileSync(cut, whole.subarray(0, Math.floor(whole.length * 0.6)));
    const e = failure(cut);
    expect(e.message).toMatch(/not a loadable DALL-E encoder\.pkl: .*truncated\.pkl: .*no zip end-of-central-directory record \(not a zip, or truncated\)/);
    // A complete archive whose pickle program stops halfway.
    const half = variant('half-pickle', (p) => p.subarray(0, Math.floor(p.length / 2)));
    expect(failure(half).message).toMatch(/half-pickle\.pkl \(encoder\/data\.pkl\): pickle opcode \w+ at offset \d+: expected .* only \d+ remain/);
    expect(fixturePickle().length).toBeGreaterThan(1000);
  });
});
