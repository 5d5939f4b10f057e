/**
 * The report as a browser shows it: headless Chromium (Debian package `chromium`) renders
 * report.html; its DOM (--dump-dom, after layout) must hold the tables, cells and plots, and a
 * screenshot (--screenshot) must show them: table highlight colour, histogram bars, ROC curves
 * and text in the expected amounts. Skipped, saying why, when Chromium is not installed.
 */
import { execFile, execFileSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { promisify } from 'node:util';
import { afterAll, expect, it } from 'vitest';
import { writeReport } from '../../lib/report';
import { SYSTEM_PYTHON } from '../helpers/fixtures';
import { sampleResults } from './sample';
import { describeWith } from '../helpers/requirements';

const execFileP = promisify(execFile);
const CHROMIUM = [process.env.MOOD_CHROMIUM, '/usr/bin/chromium', '/usr/bin/chromium-browser'].find((p): p is string => !!p && fs.existsSync(p));
const skipWhy = !CHROMIUM
  ? 'Chromium not installed (apt-get install chromium, or set MOOD_CHROMIUM)'
  : !fs.existsSync(SYSTEM_PYTHON)
    ? `${SYSTEM_PYTHON} (with PIL) missing to read the screenshot`
    : '';
if (skipWhy) console.warn(`tests/report/chromium.test.ts skipped: ${skipWhy}`);

const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'mood-chromium-'));
afterAll(() => fs.rmSync(tmp, { recursive: true, force: true }));

async function chromium(...args: string[]): Promise<string> {
  // --no-sandbox: CI and this machine run tests as root, where Chromium's sandbox refuses to start;
  // the page is our own local file. A private profile keeps parallel runs apart.
  const r = await execFileP(
    CHROMIUM!,
    ['--headless', '--no-sandbox', '--disable-gpu', '--hide-scrollbars', `--user-data-dir=${path.join(tmp, 'profile')}`, ...args],
    { encoding: 'utf8', maxBuffer: 1 << 26, timeout: 90_000 },
  );
  return r.stdout;
}

describeWith(['chromium'])('report in headless Chromium', () => {
  const res = sampleResults();
  const out = path.join(tmp, 'rep');
  const { html } = writeReport(res, out, { png: false });
  const url = `file://${html}`;

  it('DOM after load has the tables with the right numbers and every plot', async () => {
    const dom = await chromium('--dump-dom', url);
    expect(dom.match(/<table class="results auroc"/g)?.length).toBe(2);
    expect(dom.match(/<svg[^>]*class="chart"/g)?.length).toBe(12);
    const mc = res.protocols[1];
    // Every AUROC of the multi-class table is in its cells, and the mean line is the mean.
    const table = dom.slice(dom.indexOf('id="auroc-1"'), dom.indexOf('</table>', dom.indexOf('id="auroc-1"')));
    const cells = [...table.matchAll(/<td(?: class="best")?>([0-9.]+)<\/td>/g)].map((m) => Number(m[1]));
    const want = [mc.rows[0].auroc, mc.rows[1].auroc, mc.rows[2].auroc, mc.rows[3].auroc].map((v) => Number((100 * v).toFixed(2)));
    const meanM = Number(((100 * (mc.rows[0].auroc + mc.rows[2].auroc)) / 2).toFixed(2));
    const meanL = Number(((100 * (mc.rows[1].auroc + mc.rows[3].auroc)) / 2).toFixed(2));
    expect(cells).toEqual([...want, meanM, meanL]);
    // Plots have drawn content: polylines with points, bar rectangles.
    expect((dom.match(/<polyline class="series line"[^>]*points="[^"]{200,}"/g) ?? []).length).toBeGreaterThanOrEqual(7);
    expect((dom.match(/<g class="series bars"/g) ?? []).length).toBe(14);
    expect(dom).toContain('<table id="settings">');
  });

  it('screenshot shows table highlights, histogram bars, ROC curves and text', async () => {
    const shot = path.join(tmp, 'shot.png');
    await chromium('--window-size=1400,2600', `--screenshot=${shot}`, url);
    expect(fs.statSync(shot).size).toBeGreaterThan(10_000);
    const counts = JSON.parse(
      execFileSync(
        SYSTEM_PYTHON,
        [
          '-c',
          [
            'import json,sys; from PIL import Image; import numpy as np',
            'a=np.asarray(Image.open(sys.argv[1]).convert("RGB")).astype(int)',
            'near=lambda c,t=12: int((np.abs(a-np.array(c)).max(2)<=t).sum())',
            // best-cell green, ID bar blue at 50% over white, ROC orange line, dark text
            'print(json.dumps(dict(h=a.shape[0],w=a.shape[1],best=near([0xe3,0xf2,0xe1],4),idbar=near([127,184,216]),orange=near([0xe6,0x9f,0x00],30),dark=int((a.sum(2)<200).sum()),white=near([255,255,255],2))))',
          ].join('\n'),
          shot,
        ],
        { encoding: 'utf8' },
      ),
    ) as Record<string, number>;
    expect([counts.w, counts.h]).toEqual([1400, 2600]);
    expect(counts.best, 'highlighted best cells').toBeGreaterThan(1000);
    expect(counts.idbar, 'ID histogram bars').toBeGreaterThan(5000);
    expect(counts.orange, 'second ROC curve').toBeGreaterThan(300);
    expect(counts.dark, 'text and axes').toBeGreaterThan(20_000);
    expect(counts.white / (counts.w * counts.h), 'not a blank page').toBeLessThan(0.97);
  });
});

