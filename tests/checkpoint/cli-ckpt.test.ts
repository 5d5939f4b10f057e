/**
 * `mood ckpt inspect` / `mood ckpt convert`: listings of every fixture, machine-readable output,
 * clean failures on unreadable files, and converted files that real torch loads (weights_only=True)
 * with identical values. Most cases call the exported runners in-process; a few run the real
 * command in a child process (bin/mood.js once main.ts registers `ckpt`, else commander + registerCkpt).
 */
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import * as crypto from 'node:crypto';
import { spawnSync } from 'node:child_process';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { REPO_ROOT, fixturePath } from '../helpers/fixtures';
import { loadManifest, python } from './helpers';
import { CliIO, InspectReport, runConvert, runInspect } from '../../lib/cli/ckpt';
import { itWith } from '../helpers/requirements';

const manifest = loadManifest();

function capture(): CliIO & { stdout: () => string; stderr: () => string } {
  let out = '';
  let err = '';
  return { out: (s) => void (out += s), err: (s) => void (err += s), stdout: () => out, stderr: () => err };
}

async function inspect(file: string, json = true): Promise<{ code: number; out: string; err: string; report?: InspectReport }> {
  const io = capture();
  const code = await runInspect(file, { json }, io);
  return { code, out: io.stdout(), err: io.stderr(), report: code === 0 && json ? JSON.parse(io.stdout()) : undefined };
}

async function convert(input: string, output: string, opts: { dtype?: string; key?: string; floats?: string } = {}): Promise<{ code: number; out: string; err: string }> {
  const io = capture();
  const code = await runConvert(input, output, opts, io);
  return { code, out: io.stdout(), err: io.stderr() };
}

let binHasCkpt: boolean | undefined;

/** Runs `mood ckpt ...` in a child process. */
function cli(args: string[]): { status: number | null; stdout: string; stderr: string } {
  const bin = path.join(REPO_ROOT, 'bin', 'mood.js');
  binHasCkpt ??= /^\s+ckpt\b/m.test(spawnSync(process.execPath, [bin, '--help'], { encoding: 'utf8' }).stdout ?? '');
  const useBin = binHasCkpt;
  const harness = `
const path = require('node:path');
require('ts-node').register({ transpileOnly: true, project: path.join(${JSON.stringify(REPO_ROOT)}, 'tsconfig.json') });
const { Command } = require('commander');
const p = new Command().name('mood').exitOverride();
require(path.join(${JSON.stringify(REPO_ROOT)}, 'lib/cli/ckpt.ts')).registerCkpt(p);
p.parseAsync(process.argv.slice(1), { from: 'user' }).catch((e) => { process.exitCode = e.exitCode ?? 1; if (e.exitCode === undefined) process.stderr.write(e.message + '\\n'); });
`;
  const argv = useBin ? [bin, 'ckpt', ...args] : ['-e', harness, 'ckpt', ...args];
  const r = spawnSync(process.execPath, argv, { encoding: 'utf8', cwd: REPO_ROOT, timeout: 60_000 });
  return { status: r.status, stdout: r.stdout, stderr: r.stderr };
}

const sha = (f: string): string => crypto.createHash('sha256').update(fs.readFileSync(f)).digest('hex');

let tmp: string;
beforeAll(() => {
  tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'mood-cli-ckpt-'));
});
afterAll(() => {
  fs.rmSync(tmp, { recursive: true, force: true });
});

describe('mood ckpt inspect', () => {
  for (const [name, c] of Object.entries(manifest.cases)) {
    it(`${name}: every state-dict tensor with PyTorch dtype names and the parameter count`, async () => {
      const { code, report } = await inspect(fixturePath(c.checkpoint.file));
      expect(code).toBe(0);
      const r = report as InspectReport;
      expect(r.format).toBe(c.checkpoint.format);
      expect(r.stateDictKey).toBe(c.checkpoint.state_dict_key);
      const byKey = new Map(r.tensors.map((t) => [t.key, t]));
      let params = 0;
      for (const [k, shape, dtype] of c.checkpoint.state_dict) {
        const t = byKey.get(c.checkpoint.state_dict_key ? `${c.checkpoint.state_dict_key}.${k}` : k);
        expect(t, k).toBeDefined();
        expect(t?.shape, k).toEqual(shape);
        expect(t?.dtype, k).toBe(dtype.replace(/^torch\./, ''));
        if (/float/.test(dtype)) params += shape.reduce((a, b) => a * b, 1);
      }
      expect(r.totalParameters).toBe(params);
      expect(r.stateDictTensors).toBe(c.checkpoint.state_dict.length);
    });
  }

  it('fp16/bf16 dtypes print as float16/bfloat16, index buffers as int64', async () => {
    for (const [file, want] of [['fp16_storage.pth', 'float16'], ['bf16_storage.pth', 'bfloat16']]) {
      const r = (await inspect(fixturePath(file))).report as InspectReport;
      expect(new Set(r.tensors.map((t) => t.dtype))).toEqual(new Set([want, 'int64']));
    }
  });

  it('text listing: key, dtype, shape per tensor, totals, epoch and args, recorded classes', async () => {
    const { code, out, err } = await inspect(fixturePath('ft_meanpool.pth'), false);
    expect(code).toBe(0);
    expect(err).toBe('');
    expect(out).toMatch(/^model\.blocks\.0\.attn\.qkv\.weight\s+float32\s+\[144, 48\]$/m);
    expect(out).toMatch(/^model\.blocks\.0\.attn\.relative_position_index\s+int64\s+\[17, 17\]$/m);
    expect(out).toMatch(/^# 41 tensors; total parameters in 'model': \d+/m);
    expect(out).toMatch(/^# epoch = 7$/m);
    expect(out).toMatch(/^# args\.model = "/m);
    expect(out).toMatch(/^# args\.nb_classes = 10$/m);
    expect(out).toMatch(/^# recorded, not executed: argparse\.Namespace$/m);
  });

  it('JSON has metadata (epoch, args.*, scaler.*) and foreign classes', async () => {
    const r = (await inspect(fixturePath('ft_meanpool.pth'))).report as InspectReport;
    expect(r.metadata.epoch).toBe(7);
    expect(r.metadata['args.nb_classes']).toBe(10);
    expect(r.metadata['args.lr']).toBeTypeOf('number');
    expect(Object.keys(r.metadata).some((k) => k.startsWith('scaler.'))).toBe(true);
    expect(r.foreignClasses).toEqual(['argparse.Namespace']);
    expect(r.tensors.length).toBe(41);
  });

  it('unreadable files: exit 1, reason on stderr, nothing on stdout', async () => {
    const garbage = path.join(tmp, 'garbage.pth');
    fs.writeFileSync(garbage, 'this is not a checkpoint\n');
    const truncated = path.join(tmp, 'truncated.pth');
    const full = fs.readFileSync(fixturePath('ft_meanpool.pth'));
    fs.writeFileSync(truncated, full.subarray(0, full.length >> 1));
    const empty = path.join(tmp, 'empty.pth');
    fs.writeFileSync(empty, '');
    const cases: Array<[string, RegExp]> = [
      [path.join(tmp, 'missing.pth'), /cannot open: ENOENT/],
      [garbage, /neither a zip checkpoint nor a legacy torch\.save stream/],
      [truncated, /zip|end|truncat/i],
      [empty, /./],
      [tmp, /EISDIR|directory|cannot/i],
    ];
    for (const [f, why] of cases) {
      const { code, out, err } = await inspect(f);
      expect(code, f).toBe(1);
      expect(out, f).toBe('');
      expect(err, f).toMatch(/^mood ckpt inspect: /);
      expect(err, f).toMatch(why);
    }
  });
});

describe('mood ckpt convert', () => {
  it('refuses to overwrite its input (same path, other spelling, hard link); input untouched', async () => {
    const input = path.join(tmp, 'in.pth');
    fs.copyFileSync(fixturePath('ft_meanpool.pth'), input);
    const before = sha(input);
    const link = path.join(tmp, 'in-link.pth');
    fs.linkSync(input, link);
    for (const out of [input, path.join(tmp, '.', 'in.pth'), link]) {
      const r = await convert(input, out, { dtype: 'float16' });
      expect(r.code).toBe(1);
      expect(r.err).toMatch(/refusing to overwrite the input file/);
    }
    expect(sha(input)).toBe(before);
  });

  it('bad options and bad input: exit 1 with the reason, no output file, no temp files', async () => {
    const out = path.join(tmp, 'never.pth');
    const bad: Array<[string, Record<string, string>, RegExp]> = [
      [fixturePath('ft_meanpool.pth'), { dtype: 'int8' }, /--dtype must be one of float16, float32, bfloat16/],
      [fixturePath('ft_meanpool.pth'), { key: 'state_dict|ema' }, /no 'state_dict' or 'ema' entry at the root \(root keys: model, epoch, args, scaler\)/],
      [fixturePath('ft_meanpool.pth'), { floats: 'drop' }, /--floats must be one of keep, str, tensor/],
      [path.join(tmp, 'missing.pth'), {}, /cannot open/],
    ];
    for (const [input, opts, why] of bad) {
      const r = await convert(input, out, opts);
      expect(r.code).toBe(1);
      expect(r.err).toMatch(/^mood ckpt convert: /);
      expect(r.err).toMatch(why);
    }
    expect(fs.existsSync(out)).toBe(false);
    expect(fs.readdirSync(tmp).filter((n) => n.endsWith('.tmp'))).toEqual([]);
  });

  itWith(['torch', 'numpy'])('converted files load in torch (weights_only=True) with identical values', async () => {
    const o = (n: string): string => path.join(tmp, n);
    const runs: Array<[string, string, Record<string, string>]> = [
      ['ft_meanpool.pth', 'keep.pth', {}],
      ['ft_meanpool.pth', 'str.pth', { floats: 'str' }],
      ['ft_meanpool.pth', 'tensor.pth', { floats: 'tensor' }],
      ['ft_meanpool.pth', 'model16.pth', { key: 'model', dtype: 'float16' }],
      ['ft_meanpool.pth', 'modelbf16.pth', { key: 'module|model', dtype: 'bfloat16' }],
      ['fp16_storage.pth', 'fp16to32.pth', { key: 'model', dtype: 'float32' }],
      ['bf16_storage.pth', 'bf16to32.pth', { key: 'model', dtype: 'float32' }],
      ['ft_meanpool_views.pth', 'views.pth', {}],
      ['ft_meanpool_views.pth', 'views16.pth', { dtype: 'float16' }],
      ['ft_cls_abspos.pth', 'legacy.pth', { key: 'module' }],
      ['pt_shared_relpos_pt22k.pth', 'pt.pth', {}],
    ];
    for (const [src, dst, opts] of runs) {
      const r = await convert(fixturePath(src), o(dst), opts);
      expect(r.code, `${src} -> ${dst}: ${r.err}`).toBe(0);
      expect(r.out).toMatch(new RegExp(`^wrote ${o(dst).replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}`));
      if (dst === 'keep.pth') expect(r.err).toMatch(/note: \d+ Python float values outside tensors .*--floats str/);
      else expect(r.err).toBe('');
    }
    const jobs = [
      // [converted, original, key in original, key in converted, cast, weights_only]
      [o('keep.pth'), fixturePath('ft_meanpool.pth'), 'model', 'model', null, false],
      [o('str.pth'), fixturePath('ft_meanpool.pth'), 'model', 'model', null, true],
      [o('tensor.pth'), fixturePath('ft_meanpool.pth'), 'model', 'model', null, true],
      [o('model16.pth'), fixturePath('ft_meanpool.pth'), 'model', '', 'half', true],
      [o('modelbf16.pth'), fixturePath('ft_meanpool.pth'), 'model', '', 'bfloat16', true],
      [o('fp16to32.pth'), fixturePath('fp16_storage.pth'), 'model', '', 'float', true],
      [o('bf16to32.pth'), fixturePath('bf16_storage.pth'), 'model', '', 'float', true],
      [o('views.pth'), fixturePath('ft_meanpool_views.pth'), 'model', 'model', null, true],
      [o('views16.pth'), fixturePath('ft_meanpool_views.pth'), 'model', 'model', 'half', true],
      [o('legacy.pth'), fixturePath('ft_cls_abspos.pth'), 'module', '', null, true],
      [o('pt.pth'), fixturePath('pt_shared_relpos_pt22k.pth'), 'model', 'model', null, true],
    ];
    const res = JSON.parse(
      python(
        `
import sys, json, torch
jobs = json.loads(sys.argv[1])
out = []
for conv, orig, okey, ckey, cast, wo in jobs:
    c = torch.load(conv, weights_only=wo)
    o = torch.load(orig, map_location='cpu')
    csd = c[ckey] if ckey else c
    osd = o[okey]
    bad = []
    for k, v in osd.items():
        want = v
        if cast and v.is_floating_point():
            want = getattr(v, cast)()
        got = csd.get(k)
        if got is None or got.dtype != want.dtype or got.shape != want.shape or not torch.equal(got, want):
            bad.append(k)
    r = {'bad': bad, 'keys_in_order': list(csd.keys()) == list(osd.keys())}
    if not cast and conv.endswith('views.pth'):
        r['strides_kept'] = all(csd[k].stride() == v.stride() and csd[k].storage_offset() == v.storage_offset() for k, v in osd.items())
        idx = [k for k in osd if k.endswith('relative_position_index')]
        r['shared'] = len({csd[k].storage().data_ptr() for k in idx}) == 1 and len({osd[k].storage().data_ptr() for k in idx}) == 1
        r['float_storages'] = len({csd[k].storage().data_ptr() for k, v in osd.items() if v.is_floating_point()})
    if ckey == 'model' and 'args' in o:
        ns = vars(o['args'])
        a = c['args']
        def norm(x):
            # --floats str/tensor: compare the numbers they stand for (both sides normalised).
            if isinstance(x, torch.Tensor): return float(x)
            if isinstance(x, str):
                try: return float(x)
                except ValueError: return x
            if isinstance(x, (list, tuple)): return [norm(y) for y in x]
            if isinstance(x, dict): return {k: norm(y) for k, y in x.items()}
            return x
        if conv.endswith('str.pth') or conv.endswith('tensor.pth'):
            r['args_equal'] = norm(a) == norm(ns) and set(a) == set(ns)
            r['lr_type'] = type(a['lr']).__name__
            r['betas_type'] = type(a['opt_betas'][0]).__name__
        else:
            r['args_equal'] = a == ns
        r['scaler_equal'] = norm(c['scaler']) == o['scaler']
        r['epoch'] = c['epoch']
    out.append(r)
print(json.dumps(out))
`,
        [JSON.stringify(jobs)],
      ),
    );
    jobs.forEach((j, i) => {
      const r = res[i];
      expect(r.bad, String(j[0])).toEqual([]);
      expect(r.keys_in_order, String(j[0])).toBe(true);
    });
    const [keep, str, tensor] = res;
    expect(keep.args_equal).toBe(true);
    expect(keep.epoch).toBe(7);
    expect(keep.scaler_equal).toBe(true);
    expect(str.args_equal).toBe(true);
    expect(str.lr_type).toBe('str');
    expect(str.betas_type).toBe('str');
    expect(str.scaler_equal).toBe(true);
    expect(tensor.args_equal).toBe(true);
    expect(tensor.lr_type).toBe('Tensor');
    expect(tensor.betas_type).toBe('Tensor');
    const views = res[7];
    expect(views.strides_kept).toBe(true);
    expect(views.shared).toBe(true);
    expect(views.float_storages).toBe(1);
  });

  itWith(['torch', 'numpy'])('a pickle that would call os.system is recorded, never run; convert writes it as a plain dict', async () => {
    const marker = path.join(tmp, 'pwned');
    const evil = path.join(tmp, 'evil.pth');
    python(
      `
import os, sys, torch
class Evil:
    def __reduce__(self):
        return (os.system, ('touch ' + sys.argv[2],))
torch.save({'model': {'w': torch.arange(3.0)}, 'evil': Evil()}, sys.argv[1])
`,
      [evil, marker],
    );
    const { code, report } = await inspect(evil);
    expect(code).toBe(0);
    expect(report?.foreignClasses.some((c) => /\.system$/.test(c))).toBe(true);
    const r = await convert(evil, path.join(tmp, 'evil-clean.pth'));
    expect(r.code).toBe(0);
    expect(fs.existsSync(marker)).toBe(false);
    const back = JSON.parse(python(`import sys, json, torch; c = torch.load(sys.argv[1], weights_only=True); print(json.dumps({'evil': c['evil'], 'w': c['model']['w'].tolist()}))`, [path.join(tmp, 'evil-clean.pth')]));
    expect(back.w).toEqual([0, 1, 2]);
    expect(back.evil.__class__).toMatch(/\.system$/);
    expect(back.evil.args).toEqual([`touch ${marker}`]);
    expect(fs.existsSync(marker)).toBe(false);
  });
});

describe('the command in a child process', () => {
  it('inspect --json, inspect of a bad file, convert, --help', () => {
    const ok = cli(['inspect', fixturePath('ft_cls_abspos.pth'), '--json']);
    expect(ok.status, ok.stderr).toBe(0);
    const r = JSON.parse(ok.stdout) as InspectReport;
    expect(r.format).toBe('legacy');
    expect(r.stateDictKey).toBe('module');

    const garbage = path.join(tmp, 'garbage2.pth');
    fs.writeFileSync(garbage, Buffer.alloc(100, 0x80));
    const bad = cli(['inspect', garbage]);
    expect(bad.status).toBe(1);
    expect(bad.stdout).toBe('');
    expect(bad.stderr).toMatch(/^mood ckpt inspect: .*garbage2\.pth.*unsupported pickle protocol/);

    const out = path.join(tmp, 'child.pth');
    const conv = cli(['convert', fixturePath('ft_meanpool.pth'), out, '--dtype', 'bfloat16', '--key', 'model']);
    expect(conv.status, conv.stderr).toBe(0);
    expect(conv.stdout).toMatch(/41 tensors, 39 cast to bfloat16/);
    const again = cli(['inspect', out, '--json']);
    const r2 = JSON.parse(again.stdout) as InspectReport;
    expect(r2.tensors.filter((t) => t.dtype === 'bfloat16').length).toBe(39);
    expect(r2.stateDictKey).toBe('');

    const same = cli(['convert', out, out]);
    expect(same.status).toBe(1);
    expect(same.stderr).toMatch(/refusing to overwrite the input file/);

    const help = cli(['convert', '--help']);
    expect(help.status).toBe(0);
    expect(help.stdout).toMatch(/--dtype <dtype>/);
  });
});
