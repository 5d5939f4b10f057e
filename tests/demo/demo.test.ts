/**
 * `mood demo` end to end on a very short configuration (a few hundred Fashion-MNIST images, a tiny
 * BEiT): results.json numbers re-computed by sklearn from the saved scores, the report written, and
 * an interrupted run resumed from its stage markers to the same numbers.
 */
import { execFileSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { afterAll, expect, it } from 'vitest';
import { parseDemoOptions } from '../../lib/demo/options';
import { runDemo } from '../../lib/demo/run';
import { Interrupt } from '../../lib/demo/stages';
import { readResults } from '../../lib/report';
import { SYSTEM_PYTHON } from '../helpers/fixtures';
import { TINY, quiet } from './common';
import { fakeDataModule } from './fake-data';
import { describeWith } from '../helpers/requirements';

const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'mood-demo-'));
afterAll(() => fs.rmSync(tmp, { recursive: true, force: true }));

describeWith(['fashion-mnist'])('mood demo, tiny configuration', () => {
  const data = fakeDataModule({ train: 600, test: 300 });

  it('writes results.json whose AUROCs sklearn recomputes from the saved scores, and the report; one-class tables are leakage-free', async () => {
    const dir = path.join(tmp, 'full');
    const q = quiet();
    const r = await runDemo(parseDemoOptions({ ...TINY, classes: '0,1,6,7', outputDir: dir }), { data, pretrain: null, ...q, interrupt: new Interrupt(false) });
    expect(r.interrupted).toBe(false);
    const res = readResults(r.resultsFile);
    expect(res.protocols.map((p) => `${p.protocol} ${p.variant ?? ''}`)).toEqual(['one-class pretrained', 'one-class held-out', 'multi-class ']);
    const [pre, held, mc] = res.protocols;
    // One-class: feature metrics only (msp is class-independent: its one-class mean is 50 by construction), and a note says so.
    for (const p of [pre, held]) expect(p.metrics.map((m) => m.name)).toEqual(['mahalanobis', 'knn']);
    expect(res.notes!.join(' ')).toMatch(/One-class tables show feature metrics only: msp .* 50 by construction/);
    expect(pre.rows.map((x) => x.id)).toEqual(['class 0 T-shirt/top', 'class 0 T-shirt/top', 'class 1 Trouser', 'class 1 Trouser', 'class 6 Shirt', 'class 6 Shirt', 'class 7 Sneaker', 'class 7 Sneaker']);
    expect(pre.data_seen!.finetuning).toMatch(/^none/);
    expect(pre.title).toMatch(/no fine-tuning.*no stage saw any label/);
    // Held-out: only classes the backbone was not fine-tuned on, as ID and as OOD.
    expect(held.rows.map((x) => x.id)).toEqual(['class 6 Shirt', 'class 6 Shirt', 'class 7 Sneaker', 'class 7 Sneaker']);
    for (const row of held.rows) {
      const id = Number(row.id.split(' ')[1]);
      expect(row.parts!.map((p) => Number(p.ood.split(' ')[0]))).toEqual([6, 7, 8, 9].filter((c) => c !== id));
    }
    expect(held.data_seen!.finetuning).toMatch(/^none \(--epochs 0/);
    expect(held.title).toBe('One-class on held-out classes 6-9: start backbone, not fine-tuned (--epochs 0)');
    expect(held.incomplete).toBeUndefined();
    expect(mc.rows.map((x) => x.ood)).toEqual(Array(3).fill(['held-out classes 6-9', 'uniform noise', 'vertically flipped']).flat());
    expect(mc.data_seen!.ood).toMatch(/held-out classes 6-9/);
    expect(res.settings.init).toBe('scratch');
    expect(res.notes!.join(' ')).toMatch(/trained from scratch/);
    expect(fs.existsSync(r.reportFile!)).toBe(true);
    expect(fs.readdirSync(path.join(dir, 'plots')).length).toBeGreaterThan(10);
    const html = fs.readFileSync(r.reportFile!, 'utf8');
    expect(html).toContain('<dt>fine-tuning</dt><dd>none (not fine-tuned: no labels)</dd>');
    const printed = q.logs.join('\n');
    expect(printed).toMatch(/One-class, classes 0,1,6,7, no fine-tuning: random-init backbone[^\n]*\n  pre-training: none \(seeded random init\)\n  fine-tuning: none[\s\S]*?AUROC \(%\)\nID class\s+mahalanobis\s+knn\nclass 0 T-shirt\/top/);
    expect(printed).toMatch(/One-class on held-out classes 6-9[\s\S]*?ID class\s+mahalanobis\s+knn\nclass 6 Shirt/);
    expect(printed).toMatch(/Multi-class: classes 0-5 as ID[\s\S]*?OOD set\s+mahalanobis\s+knn\s+msp\nheld-out classes 6-9/);

    if (!fs.existsSync(SYSTEM_PYTHON)) return;
    // Every multi-class row and every one-class part: AUROC of the saved scores by sklearn.
    const jobs: Array<{ file: string; in: string; ood: string; flip: boolean; want: number }> = [];
    for (const p of res.protocols) {
      const flip = new Map(p.metrics.map((m) => [m.name, m.orientation === 'higher_is_id']));
      for (const row of p.rows) {
        for (const part of row.parts ?? [row]) jobs.push({ file: path.join(dir, part.scores!.file), in: part.scores!.in, ood: part.scores!.ood, flip: flip.get(row.metric)!, want: part.auroc });
      }
    }
    const got = JSON.parse(
      execFileSync(
        SYSTEM_PYTHON,
        ['-c', 'import json,sys; import numpy as np; from sklearn.metrics import roc_auc_score as A\nout=[]\nfor j in json.load(sys.stdin):\n  z=np.load(j["file"]); a=z[j["in"]].astype(np.float64); b=z[j["ood"]].astype(np.float64); s=np.r_[a,b]*(-1 if j["flip"] else 1)\n  out.append(A(np.r_[np.zeros(len(a)),np.ones(len(b))], s))\nprint(json.dumps(out))'],
        { input: JSON.stringify(jobs), encoding: 'utf8' },
      ),
    ) as number[];
    expect(jobs.length).toBe(9 + 8 * 9 + 4 * 3);
    // sklearn on the very scores we saved (float32 -> float64 exactly): the same ranking, AUROC a ratio of
    // counts summed in another order: a few ulps (measured 2.2e-16).
    jobs.forEach((j, i) => expect(Math.abs(j.want - got[i]), `${j.file} ${j.ood}`).toBeLessThanOrEqual(1e-12));
    // One-class row = mean of its parts.
    for (const row of [...pre.rows, ...held.rows]) expect(row.auroc).toBeCloseTo(row.parts!.reduce((a, p) => a + p.auroc, 0) / row.parts!.length, 12);
  });

  it('an interrupted run saves partial results; the next run reuses the finished stages and completes the rest', async () => {
    const dir = path.join(tmp, 'resume');
    const intr = new Interrupt(false);
    const q1 = quiet();
    const first = await runDemo(parseDemoOptions({ ...TINY, outputDir: dir }), {
      data,
      pretrain: null,
      log: (m) => {
        q1.log(m);
        if (m.startsWith('one-class (pretrained): class 1')) intr.request(); // Ctrl-C while class 1 is evaluated
      },
      out: q1.out,
      interrupt: intr,
    });
    expect(first.interrupted).toBe(true);
    const part = readResults(first.resultsFile);
    expect(part.title).toMatch(/partial/);
    expect(part.protocols[0].rows.map((r) => r.id)).toEqual(Array(2).fill('class 0 T-shirt/top').concat(Array(2).fill('class 1 Trouser')));
    expect(part.protocols[0].incomplete).toMatch(/classes 2, 3 not evaluated \(interrupted\)/);
    expect(fs.existsSync(path.join(dir, 'report.html'))).toBe(true);

    const q2 = quiet();
    const second = await runDemo(parseDemoOptions({ ...TINY, outputDir: dir }), { data, pretrain: null, ...q2, interrupt: new Interrupt(false) });
    expect(second.interrupted).toBe(false);
    const log2 = q2.logs.join('\n');
    expect(log2).not.toMatch(/multi-class OOD evaluation|one-class \(pretrained\): class [01]/); // reused from markers
    expect(log2).toMatch(/one-class \(pretrained\): class 2[\s\S]*one-class \(pretrained\): class 3/);
    const done = readResults(second.resultsFile);
    expect(done.protocols[0].incomplete).toBeUndefined();
    // Same numbers as the uninterrupted run? Only when the weights are the same: both runs start
    // from their own random init, so compare structure here and exact numbers within this run.
    expect(done.protocols[0].rows.map((r) => r.id)).toEqual([0, 1, 2, 3].flatMap((c) => Array(2).fill(`class ${c} ${['T-shirt/top', 'Trouser', 'Pullover', 'Dress'][c]}`)));
    expect(done.protocols[0].rows.slice(0, 4)).toEqual(part.protocols[0].rows);
    expect(done.protocols[1].rows).toEqual(part.protocols[1].rows);
  });

  it('a time budget leaves classes for the next run and says so', async () => {
    const dir = path.join(tmp, 'budget');
    const r = await runDemo(parseDemoOptions({ ...TINY, outputDir: dir, timeBudget: 1e-9 }), { data, pretrain: null, ...quiet(), interrupt: new Interrupt(false) });
    const oc = r.results.protocols[0];
    expect(oc.rows.map((x) => x.id)).toEqual(Array(2).fill('class 0 T-shirt/top'));
    expect(oc.incomplete).toMatch(/classes 1, 2, 3 not evaluated \(time budget of 1e-9 s reached\); re-run to continue/);
    expect(r.interrupted).toBe(false);
  });

  it('with every class as ID the multi-class protocol uses the far-OOD sets only, or is skipped with a note', async () => {
    const a = await runDemo(parseDemoOptions({ ...TINY, outputDir: path.join(tmp, 'allid'), idClasses: '0-9', farOod: 'uniform', classes: '0' }), { data, pretrain: null, ...quiet(), interrupt: new Interrupt(false) });
    expect(a.results.protocols[1].rows.map((r) => r.ood)).toEqual(['uniform noise', 'uniform noise', 'uniform noise']);
    expect(a.results.protocols[1].description).toMatch(/OOD = far-OOD sets built from/);
    const b = await runDemo(parseDemoOptions({ ...TINY, outputDir: path.join(tmp, 'allid'), idClasses: '0-9', farOod: 'none', classes: '0' }), { data, pretrain: null, ...quiet(), interrupt: new Interrupt(false) });
    expect(b.results.protocols.map((p) => p.protocol)).toEqual(['one-class']);
    expect(b.results.notes!.join(' ')).toMatch(/Multi-class protocol skipped: no held-out classes/);
    expect(b.results.notes!.join(' ')).toMatch(/One-class on held-out classes skipped: it needs at least 2 classes outside --id_classes \(got none\)/);
  });
});
