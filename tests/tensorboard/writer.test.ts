import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { crc32, crc32c } from '../../lib/io/crc32';
import { TensorBoardWriter } from '../../lib/tensorboard';
import { crc32cBitwise, eventFiles, readEventBytes, readEventFile, scalars } from '../helpers/tfevents';

const scratch = fs.mkdtempSync(path.join(os.tmpdir(), 'mood-tb-'));
afterAll(() => fs.rmSync(scratch, { recursive: true, force: true }));
let dirs = 0;
const freshDir = (): string => path.join(scratch, `run${dirs++}`);
const root = path.resolve(__dirname, '../..');

describe('CRC-32C', () => {
  it('matches the RFC 3720 (iSCSI) test vectors and the bitwise reference', () => {
    const seq = (f: (i: number) => number) => Uint8Array.from({ length: 32 }, (_, i) => f(i));
    expect(crc32c(Buffer.from('123456789'))).toBe(0xe3069283);
    expect(crc32c(seq(() => 0))).toBe(0x8a9136aa);
    expect(crc32c(seq(() => 0xff))).toBe(0x62a8ab43);
    expect(crc32c(seq((i) => i))).toBe(0x46dd794e);
    expect(crc32c(seq((i) => 31 - i))).toBe(0x113fdb5c);
    // Lengths around the 8-byte slicing boundary, and continuation in pieces.
    const data = Uint8Array.from({ length: 100 }, (_, i) => (i * 37 + 11) & 0xff);
    for (let n = 0; n <= 20; n++) expect(crc32c(data.subarray(0, n))).toBe(crc32cBitwise(data.subarray(0, n)));
    expect(crc32c(data.subarray(57), crc32c(data.subarray(0, 57)))).toBe(crc32cBitwise(data));
    // The zip/PNG CRC-32 shares the code: its check value is unchanged.
    expect(crc32(Buffer.from('123456789'))).toBe(0xcbf43926);
  });
});

describe('TensorBoardWriter', () => {
  it('writes file_version first, then one event per scalar with its tag, step, value and wall time', () => {
    const dir = freshDir();
    const w = new TensorBoardWriter(dir);
    const written = [
      { tag: 'loss/loss', value: 2.302585, step: 0, wall: 1700000000.25 },
      { tag: 'opt/lr', value: 1e-6, step: 0, wall: 1700000000.5 },
      { tag: 'loss/loss', value: 1.75, step: 1, wall: 1700000001 },
      { tag: 'perf/test_acc1', value: 87.5, step: 2 ** 40, wall: 1700000002 },
      { tag: 'ünïcode/tag', value: -0.1, step: 7, wall: 1700000003 },
      { tag: 'opt/grad_norm', value: Infinity, step: 8, wall: 1700000004 },
    ];
    for (const s of written) w.addScalar(s.tag, s.value, s.step, s.wall);
    w.close();
    const files = eventFiles(dir);
    expect(files).toEqual([w.file]);
    expect(path.basename(w.file)).toMatch(new RegExp(`^events\\.out\\.tfevents\\.\\d{10}\\.${os.hostname().replace(/[.]/g, '\\.')}\\.${process.pid}\\.\\d+$`));
    const f = readEventFile(w.file);
    expect(f.truncatedTail).toBe(0);
    expect(f.events[0].fileVersion).toBe('brain.Event:2');
    expect(f.events[0].values).toEqual([]);
    expect(Math.abs(f.events[0].wallTime - Date.now() / 1000)).toBeLessThan(60);
    // simple_value is a protobuf float: the value read back is the float32 rounding of the one written.
    expect(scalars(f)).toEqual(written.map((s) => ({ tag: s.tag, step: s.step, value: Math.fround(s.value), wallTime: s.wall })));
    expect(f.events.slice(1).every((e) => e.values.length === 1)).toBe(true);
  });

  it('NaN survives the float32 round trip', () => {
    const w = new TensorBoardWriter(freshDir());
    w.addScalar('loss/loss', NaN, 3, 1);
    w.close();
    const [s] = scalars(readEventFile(w.file));
    expect(s.tag).toBe('loss/loss');
    expect(Number.isNaN(s.value)).toBe(true);
  });

  it('records reach the file every maxQueue records and on flush(), while the writer is open', () => {
    const w = new TensorBoardWriter(freshDir(), { maxQueue: 4 });
    const visible = () => scalars(readEventFile(w.file)).length;
    expect(readEventFile(w.file).events.map((e) => e.fileVersion)).toEqual(['brain.Event:2']); // on open
    for (let i = 0; i < 3; i++) w.addScalar('x', i, i);
    expect(visible()).toBe(0);
    w.addScalar('x', 3, 3);
    expect(visible()).toBe(4);
    w.addScalar('x', 4, 4);
    expect(visible()).toBe(4);
    w.flush();
    expect(visible()).toBe(5);
    expect(readEventFile(w.file).truncatedTail).toBe(0);
    w.close();
  });

  it('flushes pending records after flushSecs without further calls', async () => {
    const w = new TensorBoardWriter(freshDir(), { maxQueue: 1000, flushSecs: 0.05 });
    w.addScalar('x', 1, 1);
    expect(scalars(readEventFile(w.file))).toHaveLength(0);
    await new Promise((r) => setTimeout(r, 300));
    expect(scalars(readEventFile(w.file))).toHaveLength(1);
    w.close();
  });

  it('two writers in one folder in the same second get two files; an existing file is never reused', () => {
    const dir = freshDir();
    const a = new TensorBoardWriter(dir);
    const b = new TensorBoardWriter(dir);
    a.addScalar('a', 1, 0);
    b.addScalar('b', 2, 0);
    a.close();
    b.close();
    expect(a.file).not.toBe(b.file);
    expect(eventFiles(dir)).toHaveLength(2);
    expect(scalars(readEventFile(a.file)).map((s) => s.tag)).toEqual(['a']);
    expect(scalars(readEventFile(b.file)).map((s) => s.tag)).toEqual(['b']);
  });

  it('rejects bad input with a message naming it', () => {
    const file = path.join(scratch, 'not-a-dir');
    fs.writeFileSync(file, '');
    expect(() => new TensorBoardWriter(path.join(file, 'sub'))).toThrow(/TensorBoard log dir .*not-a-dir\/sub/);
    expect(() => new TensorBoardWriter(freshDir(), { maxQueue: 0 })).toThrow(/maxQueue/);
    expect(() => new TensorBoardWriter(freshDir(), { filenameSuffix: '/x' })).toThrow(/filenameSuffix/);
    const w = new TensorBoardWriter(freshDir());
    expect(() => w.addScalar('x', 1, 1.5)).toThrow(/step must be an integer, got 1.5/);
    expect(() => w.addScalar('', 1, 1)).toThrow(/tag must be a non-empty string/);
    expect(() => w.addScalar('x', '1' as unknown as number, 1)).toThrow(/'x' must be a number, got string/);
    expect(() => w.addScalar('x', 1, 1, NaN)).toThrow(/wallTime/);
    w.close();
    w.close();
    expect(() => w.addScalar('x', 1, 1)).toThrow(/is closed/);
    expect(scalars(readEventFile(w.file))).toEqual([]);
  });
});

describe('event files as a reader finds them after a crash', () => {
  it('a file cut anywhere inside its last record reads as the complete records before it', () => {
    const w = new TensorBoardWriter(freshDir());
    for (let i = 0; i < 5; i++) w.addScalar('loss/loss', i / 2, i, 100 + i);
    w.close();
    const full = fs.readFileSync(w.file);
    const lastStart = full.length - recordLength(full, 5); // record 0 is file_version
    for (let cut = lastStart; cut < full.length; cut++) {
      const f = readEventBytes(full.subarray(0, cut));
      expect(f.truncatedTail).toBe(cut - lastStart);
      expect(scalars(f).map((s) => s.step)).toEqual([0, 1, 2, 3]);
    }
    // The reader is not lenient about damage: one flipped bit in a record's data is a checksum error.
    const bad = Buffer.from(full);
    bad[lastStart + 14] ^= 0x10;
    expect(() => readEventBytes(bad)).toThrow(/data checksum mismatch/);
    bad[lastStart + 14] ^= 0x10;
    bad[lastStart + 2] ^= 0x01;
    expect(() => readEventBytes(bad)).toThrow(/length checksum mismatch/);
  });

  // Child processes load lib/ through ts-node, as a user's script would through the built package.
  const run = (body: string, shellPrefix = ''): { status: number | null; stdout: string; stderr: string } => {
    const script = path.join(scratch, `child${dirs++}.js`);
    fs.writeFileSync(script, `require(${JSON.stringify(path.join(root, 'node_modules', 'ts-node'))}).register({ transpileOnly: true, compilerOptions: { module: 'commonjs' } });\nconst { TensorBoardWriter } = require(${JSON.stringify(path.join(root, 'lib', 'tensorboard'))});\n${body}`);
    const r = spawnSync('bash', ['-c', `${shellPrefix} exec "${process.execPath}" "${script}"`], { encoding: 'utf8' });
    return { status: r.status, stdout: r.stdout, stderr: r.stderr };
  };

  it('SIGKILL loses only the records not yet flushed; what is on disk is whole', () => {
    const dir = freshDir();
    const r = run(`const w = new TensorBoardWriter(${JSON.stringify(dir)}, { maxQueue: 10 });
for (let i = 0; i < 505; i++) w.addScalar('loss/loss', i, i, 1);
process.kill(process.pid, 'SIGKILL');`);
    expect(r.status).toBeNull();
    const f = readEventFile(eventFiles(dir)[0]);
    expect(f.truncatedTail).toBe(0);
    expect(scalars(f).map((s) => s.step)).toEqual(Array.from({ length: 500 }, (_, i) => i));
  });

  it('a writer never closed is flushed when the process exits', () => {
    const dir = freshDir();
    const r = run(`const w = new TensorBoardWriter(${JSON.stringify(dir)}, { maxQueue: 1000 });
for (let i = 0; i < 7; i++) w.addScalar('opt/lr', i, i, 1);
process.exitCode = 3;`);
    expect(r.status).toBe(3);
    expect(scalars(readEventFile(eventFiles(dir)[0])).map((s) => s.step)).toEqual([0, 1, 2, 3, 4, 5, 6]);
  });

  it('a write that fails part way (file size limit) is cut back to the last whole record and reported', () => {
    const dir = freshDir();
    // ulimit -f counts 1024-byte blocks; Node ignores SIGXFSZ, so the write past the limit fails with EFBIG.
    const r = run(`const w = new TensorBoardWriter(${JSON.stringify(dir)}, { maxQueue: 1000 });
for (let i = 0; i < 20; i++) w.addScalar('loss/loss', i, i, 1);
w.flush();
try { for (let i = 20; i < 200; i++) w.addScalar('loss/loss', i, i, 1); w.flush(); console.log('no error'); }
catch (e) { console.log(e.message); }`, 'ulimit -f 2;');
    expect(r.stderr).toBe('');
    expect(r.stdout).toMatch(/TensorBoard event file .*tfevents.*: .*EFBIG.* bytes of records not written/);
    const file = eventFiles(dir)[0];
    const f = readEventFile(file);
    expect(f.truncatedTail).toBe(0);
    expect(fs.statSync(file).size).toBeLessThanOrEqual(2048);
    expect(scalars(f).map((s) => s.step)).toEqual(Array.from({ length: 20 }, (_, i) => i));
  });
});

/** Byte length of record number `index` (0-based) in a framed file. */
function recordLength(buf: Buffer, index: number): number {
  let off = 0;
  for (let i = 0; ; i++) {
    const n = Number(buf.readBigUInt64LE(off)) + 16;
    if (i === index) return n;
    off += n;
  }
}
