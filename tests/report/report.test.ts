/**
 * Report pieces against independent truth: PNGs decoded by PIL, ROC points vs sklearn's roc_curve,
 * histograms vs numpy, schema errors naming the key, the page's tables/plots, and `mood report`.
 */
import { execFile, execFileSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { promisify } from 'node:util';
import { afterAll, describe, expect, it } from 'vitest';
import { Bitmap, parseColor } from '../../lib/report/bitmap';
import { encodePng, readResults, rocPoints, scoreHistogram, validateResults, writeReport, type ResultsFile } from '../../lib/report';
import { REPO_ROOT, SYSTEM_PYTHON } from '../helpers/fixtures';
import { gaussian, rng, sampleResults } from './sample';
import { itWith } from '../helpers/requirements';

const execFileP = promisify(execFile);
const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'mood-report-'));
afterAll(() => fs.rmSync(tmp, { recursive: true, force: true }));

function py(script: string, input: unknown): unknown {
  const out = execFileSync(SYSTEM_PYTHON, ['-c', script], { input: JSON.stringify(input), encoding: 'utf8', env: { ...process.env, OMP_NUM_THREADS: '1' } });
  return JSON.parse(out);
}

describe('png encoder', () => {
  itWith(['pil', 'numpy', 'sklearn'])('round-trips through PIL pixel for pixel', () => {
    const bm = new Bitmap(37, 23, [250, 240, 230]);
    bm.fillRect(3, 4, 20, 15, parseColor('#0072b2'));
    bm.fillRect(10, 8, 30, 20, parseColor('#d55e00'), 0.5);
    bm.line(0, 22, 36, 0, parseColor('#000000'), 2);
    bm.text(2, 2, 'Ab9%', parseColor('#009e73'));
    const file = path.join(tmp, 'a.png');
    fs.writeFileSync(file, encodePng(bm.width, bm.height, bm.data));
    const got = py(
      'import json,sys; from PIL import Image; a=json.load(sys.stdin); im=Image.open(a); im.load(); print(json.dumps([im.mode, im.size, list(im.tobytes())]))',
      file,
    ) as [string, [number, number], number[]];
    expect(got[0]).toBe('RGB');
    expect(got[1]).toEqual([37, 23]);
    expect(Buffer.from(got[2]).equals(Buffer.from(bm.data))).toBe(true);
  });

  it('rejects a buffer of the wrong size, naming both sizes', () => {
    expect(() => encodePng(4, 4, new Uint8Array(10))).toThrow(/expected 48 RGB bytes for 4 x 4, got 10/);
  });
});

describe('curves', () => {
  itWith(['pil', 'numpy', 'sklearn'])('ROC points equal sklearn roc_curve(drop_intermediate=True); histogram equals numpy', () => {
    const r = rng(3);
    // Rounded scores: many ties, the case where curve semantics differ between libraries.
    const sIn = Array.from(gaussian(r, 500, 0, 1), (v) => Math.round(v * 10) / 10);
    const sOut = Array.from(gaussian(r, 300, 0.8, 1.3), (v) => Math.round(v * 10) / 10);
    const roc = rocPoints(sIn, sOut, 'higher_is_ood', 0);
    const rocId = rocPoints(sIn, sOut, 'higher_is_id', 0);
    const h = scoreHistogram(sIn, sOut, 25);
    const ref = py(
      [
        'import json,sys; import numpy as np; from sklearn.metrics import roc_curve',
        'a=json.load(sys.stdin); si=np.array(a["in"]); so=np.array(a["ood"]); y=np.r_[np.zeros(len(si)),np.ones(len(so))]; s=np.r_[si,so]',
        'f,t,_=roc_curve(y,s,drop_intermediate=True); f2,t2,_=roc_curve(y,-s,drop_intermediate=True)',
        'e=np.array(a["edges"]); lo,hi=e[0],e[-1]',
        'hin=np.histogram(np.clip(si,lo,hi),bins=e)[0]/len(si); hout=np.histogram(np.clip(so,lo,hi),bins=e)[0]/len(so)',
        'q=np.quantile(s,[0.005,0.995])',
        'print(json.dumps(dict(f=f.tolist(),t=t.tolist(),f2=f2.tolist(),t2=t2.tolist(),hin=hin.tolist(),hout=hout.tolist(),q=q.tolist())))',
      ].join('\n'),
      { in: sIn, ood: sOut, edges: h.edges },
    ) as Record<string, number[]>;
    expect(roc.fpr).toEqual(ref.f);
    expect(roc.tpr).toEqual(ref.t);
    expect(rocId.fpr).toEqual(ref.f2);
    expect(rocId.tpr).toEqual(ref.t2);
    // numpy's linear quantile and histogram fractions in float64 from the same scores: a few ulps of
    // values <= 10, inside 12 digits (measured equal).
    expect(h.edges[0]).toBeCloseTo(ref.q[0], 12);
    expect(h.edges[h.edges.length - 1]).toBeCloseTo(ref.q[1], 12);
    h.in.forEach((v, i) => expect(v).toBeCloseTo(ref.hin[i], 12));
    h.ood.forEach((v, i) => expect(v).toBeCloseTo(ref.hout[i], 12));
  });

  it('thins long ROC curves to the asked count, keeping both ends', () => {
    const r = rng(5);
    const roc = rocPoints(gaussian(r, 3000, 0, 1), gaussian(r, 3000, 1, 1), 'higher_is_ood', 50);
    expect(roc.fpr.length).toBe(50);
    expect([roc.fpr[0], roc.tpr[0], roc.fpr[49], roc.tpr[49]]).toEqual([0, 0, 1, 1]);
    for (let i = 1; i < 50; i++) expect(roc.fpr[i]).toBeGreaterThanOrEqual(roc.fpr[i - 1]);
  });

  it('histogram of constant scores and bad input', () => {
    const h = scoreHistogram([2, 2, 2], [2, 2], 4);
    // Fractions count/n in float64, summed: a few ulps of 1, inside 12 digits.
    expect(h.in.reduce((a, b) => a + b, 0)).toBeCloseTo(1, 12);
    expect(h.edges[0]).toBeLessThan(2);
    expect(() => scoreHistogram([1, NaN], [2], 4)).toThrow(/non-finite score NaN at pooled index 1/);
    expect(() => scoreHistogram([], [2], 4)).toThrow(/non-empty/);
  });
});

describe('schema', () => {
  it('accepts the sample and names the first bad key', () => {
    const good = sampleResults();
    expect(() => validateResults(JSON.parse(JSON.stringify(good)))).not.toThrow();
    const bad = JSON.parse(JSON.stringify(good));
    bad.protocols[1].rows[2].auroc = 1.5;
    expect(() => validateResults(bad, 'r.json')).toThrow(/r\.json: protocols\[1\]\.rows\[2\]\.auroc must be a finite number in \[0, 1\] \(got 1\.5\)/);
    const bad2 = JSON.parse(JSON.stringify(good));
    bad2.protocols[0].rows[0].metric = 'nope';
    expect(() => validateResults(bad2)).toThrow(/rows\[0\]\.metric must be one of the protocol's metrics \(mahalanobis\)/);
    expect(() => validateResults({ schema: 'other' })).toThrow(/schema must be 'mood-results\/1'/);
    const bad3 = JSON.parse(JSON.stringify(good));
    bad3.protocols[1].rows[0].histogram.in.pop();
    expect(() => validateResults(bad3)).toThrow(/histogram\.in must be 30 values \(one per bin\) \(got 29\)/);
  });
});

describe('writeReport', () => {
  const out = path.join(tmp, 'rep');
  const res = sampleResults();
  const w = writeReport(res, out);
  const html = fs.readFileSync(w.html, 'utf8');

  it('writes a self-contained page with the tables, plots and settings', () => {
    expect(html).not.toMatch(/<script|<link|src=|href="http/);
    expect(html.match(/<table class="results auroc"/g)?.length).toBe(2);
    // One ROC chart per (protocol, metric), one histogram per row, two training charts.
    expect(html.match(/data-kind="roc"/g)?.length).toBe(3);
    expect(html.match(/data-kind="histogram"/g)?.length).toBe(7);
    expect(html.match(/data-kind="training"/g)?.length).toBe(2);
    const r0 = res.protocols[1].rows[0];
    expect(html).toContain(`<td class="best">${(100 * r0.auroc).toFixed(2)}</td>`);
    expect(html).toContain('<td class="label">beit_test_tiny</td>');
    expect(html).toContain('70.25');
  });

  itWith(['pil', 'numpy', 'sklearn'])('writes one PNG per plot that PIL opens, with ink in title, plot and legend', () => {
    expect(w.pngs.length).toBe(12);
    const stats = py(
      [
        'import json,sys; from PIL import Image; import numpy as np',
        'out=[]',
        'for f in json.load(sys.stdin):',
        '  a=np.asarray(Image.open(f).convert("RGB")).astype(int); h,w,_=a.shape',
        '  dark=(a.sum(2)<300); blue=(abs(a[...,0]-0)<40)&(abs(a[...,1]-114)<40)&(a[...,2]>140)',
        '  out.append(dict(w=w,h=h,title=int(dark[:26*2].sum()),blue=int(blue.sum()),colors=int(len(np.unique(a.reshape(-1,3),axis=0)))))',
        'print(json.dumps(out))',
      ].join('\n'),
      w.pngs,
    ) as Array<{ w: number; h: number; title: number; blue: number; colors: number }>;
    for (const s of stats) {
      expect([s.w, s.h]).toEqual([840, 600]);
      expect(s.title).toBeGreaterThan(50); // title text rendered
      expect(s.colors).toBeGreaterThan(3);
    }
    // Every chart's first series is palette blue (ROC, histogram ID bars, training loss).
    const names = w.pngs.map((p) => path.basename(p));
    names.forEach((n, i) => {
      if (!n.startsWith('training-accuracy')) expect(stats[i].blue, n).toBeGreaterThan(100);
    });
  });

  it('mood report rebuilds the page from the JSON; bad input is a clear error', async () => {
    const dir = path.join(tmp, 'cli');
    fs.mkdirSync(dir);
    const file = path.join(dir, 'results.json');
    fs.writeFileSync(file, JSON.stringify(res));
    const bin = path.join(REPO_ROOT, 'bin', 'mood.js');
    const r = await execFileP(process.execPath, [bin, 'report', file, '--no-png'], { cwd: REPO_ROOT, encoding: 'utf8' });
    expect(r.stdout).toContain(path.join(dir, 'report.html'));
    expect(fs.readFileSync(path.join(dir, 'report.html'), 'utf8')).toBe(html);
    expect(fs.existsSync(path.join(dir, 'plots'))).toBe(false);
    expect(readResults(file).protocols.length).toBe(2);
    fs.writeFileSync(path.join(dir, 'bad.json'), '{"schema": "mood-results/1", "created": 5}');
    const bad = await execFileP(process.execPath, [bin, 'report', path.join(dir, 'bad.json')], { cwd: REPO_ROOT, encoding: 'utf8' }).catch((e) => e as { code: number; stderr: string });
    expect((bad as { code: number }).code).toBe(1);
    expect((bad as { stderr: string }).stderr).toMatch(/bad\.json: created must be a string \(got 5\)/);
    const missing = await execFileP(process.execPath, [bin, 'report', path.join(dir, 'none.json')], { cwd: REPO_ROOT, encoding: 'utf8' }).catch((e) => e as { stderr: string });
    expect((missing as { stderr: string }).stderr).toMatch(/cannot read results file .*none\.json: no such file/);
  });
});

describe('ticks', () => {
  it('round ticks with as many decimals as the step needs', async () => {
    const { niceTicks, formatTick } = await import('../../lib/report/chart');
    const t = niceTicks(0, 0.1, 4);
    expect(t).toEqual([0, 0.025, 0.05, 0.075, 0.1].map((v) => expect.closeTo(v, 12)) as unknown as number[]);
    expect(t.map((v) => formatTick(v, t))).toEqual(['0.000', '0.025', '0.050', '0.075', '0.100']);
    const u = niceTicks(0, 1);
    expect(u.map((v) => formatTick(v, u))).toEqual(['0.0', '0.2', '0.4', '0.6', '0.8', '1.0']);
  });
});

describe('protocols that say what each stage saw and compare backbones', () => {
  /** The sample plus a one-class protocol with two arms (MIM, random init), a title and data_seen. */
  function withArms(): ResultsFile {
    const res = sampleResults();
    const oc = res.protocols[0];
    const rows = oc.rows.flatMap((r, i) => [
      { ...r, arm: 'MIM' },
      { ...r, arm: 'random init', auroc: r.auroc - 0.05 * (i + 1) },
    ]);
    res.protocols.unshift({
      ...oc,
      variant: 'pretrained',
      title: 'One-class, no fine-tuning: MIM vs random init',
      arms: ['MIM', 'random init'],
      data_seen: { pretraining: 'MIM on images of classes 0-5, no labels', finetuning: 'none', detectors: "the ID class's training features", id: 'test images of the ID class', ood: 'each other class' },
      rows,
    });
    return res;
  }

  it('validates arms and data_seen, naming the bad key', () => {
    const good = withArms();
    expect(() => validateResults(JSON.parse(JSON.stringify(good)))).not.toThrow();
    const a = JSON.parse(JSON.stringify(good));
    a.protocols[0].rows[1].arm = 'scratch';
    expect(() => validateResults(a)).toThrow(/protocols\[0\]\.rows\[1\]\.arm must be one of the protocol's arms \(MIM, random init\) \(got "scratch"\)/);
    const b = JSON.parse(JSON.stringify(good));
    b.protocols[1].rows[0].arm = 'MIM';
    expect(() => validateResults(b)).toThrow(/protocols\[1\]\.rows\[0\]\.arm must be absent \(the protocol has no arms\)/);
    const c = JSON.parse(JSON.stringify(good));
    delete c.protocols[0].data_seen.finetuning;
    expect(() => validateResults(c)).toThrow(/protocols\[0\]\.data_seen\.finetuning must be a string/);
  });

  it('the page heads the table with its title and what each stage saw; arms side by side with their difference', () => {
    const res = withArms();
    const w = writeReport(res, path.join(tmp, 'arms'), { png: false });
    const html = fs.readFileSync(w.html, 'utf8');
    const p = res.protocols[0];
    expect(html).toContain('<section class="protocol" data-protocol="one-class" data-variant="pretrained"><h2>One-class, no fine-tuning: MIM vs random init</h2>');
    expect(html).toContain('<dl class="data-seen"><dt>pre-training</dt><dd>MIM on images of classes 0-5, no labels</dd><dt>fine-tuning</dt><dd>none</dd>');
    expect(html).toContain('<th>mahalanobis MIM</th><th>mahalanobis random init</th><th class="diff">mahalanobis difference</th>');
    // Each line: both arms and MIM - random init, from the rows (independent of the grid code).
    for (let c = 0; c < 3; c++) {
      const [m, r] = [p.rows[2 * c].auroc, p.rows[2 * c + 1].auroc];
      const d = 100 * (m - r);
      expect(html).toContain(`<td class="best">${(100 * m).toFixed(2)}</td><td>${(100 * r).toFixed(2)}</td><td class="diff">${d >= 0 ? '+' : ''}${d.toFixed(2)}</td>`);
    }
    const mean = (arm: string) => (100 * p.rows.filter((r) => r.arm === arm).reduce((s, r) => s + r.auroc, 0)) / 3;
    const md = mean('MIM') - mean('random init');
    expect(html).toContain(`<td>${mean('MIM').toFixed(2)}</td><td>${mean('random init').toFixed(2)}</td><td class="diff">+${md.toFixed(2)}</td></tr>`);
    // One ROC chart per arm, named by the variant; the full table names each row's backbone.
    expect(html).toMatch(/id="one-class-pretrained-roc-mahalanobis-mim"/);
    expect(html).toMatch(/id="one-class-pretrained-roc-mahalanobis-random-init"/);
    expect(html).toContain('<th class="label">backbone</th>');
  });
});
