/**
 * The demo's start-weight and training stages on a tiny configuration: fine-tuning (with a lib/train
 * stand-in) resumed after a mid-epoch Ctrl-C, MIM pre-training through lib/pretrain, and --checkpoint.
 */
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { afterAll, expect, it } from 'vitest';
import { parseDemoOptions } from '../../lib/demo/options';
import { runDemo } from '../../lib/demo/run';
import { Interrupt } from '../../lib/demo/stages';
import { loadTrainModule } from '../../lib/demo/backend';
import { loadTensors, readCheckpoint, PyDict } from '../../lib/checkpoint';
import { TINY, quiet } from './common';
import { createModel } from '../../lib/models/beit';
import { DEMO_MODEL_OPTS } from '../../lib/demo/options';
import { MimModel } from '../../lib/pretrain/model';
import { mimTwinOptions } from '../../lib/pretrain/beit-init';
import { fakeDataModule, fakeTrainModule } from './fake-data';
import { describeWith } from '../helpers/requirements';

const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'mood-demo-stages-'));
afterAll(() => fs.rmSync(tmp, { recursive: true, force: true }));

describeWith(['fashion-mnist'])('mood demo fine-tuning stage', () => {
  const data = fakeDataModule({ train: 400, test: 200 });

  it('records the curve, saves per-epoch weights, and resumes after the last finished epoch when interrupted mid-epoch', async () => {
    const dir = path.join(tmp, 'ft');
    const opts = parseDemoOptions({ ...TINY, outputDir: dir, epochs: 3, classes: '0-1', batchSize: 50 });
    const intr = new Interrupt(false);
    const spb = Math.floor(240 / 50); // ID classes 0-5 of the first 400 images, drop_last batches
    const train1 = fakeTrainModule((n) => {
      if (n === spb + 2) intr.request(); // Ctrl-C in the middle of epoch 1
    });
    const first = await runDemo(opts, { data, train: train1, pretrain: null, ...quiet(), interrupt: intr });
    expect(first.interrupted).toBe(true);
    expect(first.results.training!.epochs.map((e) => e.epoch)).toEqual([0]);
    expect(fs.existsSync(path.join(dir, 'checkpoints', 'epoch-0.pth'))).toBe(true);
    expect(fs.existsSync(path.join(dir, 'checkpoints', 'epoch-1.pth'))).toBe(false);
    expect(first.results.notes!.join(' ')).toMatch(/Partial results: interrupted during fine-tuning epoch 1; run the same command again to resume/);

    const train2 = fakeTrainModule();
    const q = quiet();
    const second = await runDemo(opts, { data, train: train2, pretrain: null, ...q, interrupt: new Interrupt(false) });
    expect(second.interrupted).toBe(false);
    expect(q.logs.join('\n')).toMatch(/epochs 0-0 done earlier, resuming at epoch 1/);
    expect(train2.steps).toBe(2 * spb); // epochs 1 and 2 only
    // The schedule continues where epoch 1 starts (not from the warm-up again). The same float64 cosine
    // formula at the same step, in a fresh process state: a few ulps of an lr <= 2e-3 (4e-19 each), far inside
    // 15 digits (5e-16); the warm-up's value at that step would differ by O(lr).
    expect(train2.lrs[0]).toBeCloseTo(train1.lrs[spb], 15);
    const ep = second.results.training!.epochs;
    expect(ep.map((e) => e.epoch)).toEqual([0, 1, 2]);
    expect(ep[0]).toEqual(first.results.training!.epochs[0]);
    for (const e of ep) {
      expect(e.train_loss).toBeGreaterThan(0);
      expect(e.test_acc1).toBeGreaterThanOrEqual(0);
      expect(e.test_acc1).toBeLessThanOrEqual(100);
    }
    const html = fs.readFileSync(second.reportFile!, 'utf8');
    expect(html).toContain('data-kind="training"');
    // A third run finds everything done: no training step at all.
    const train3 = fakeTrainModule();
    await runDemo(opts, { data, train: train3, pretrain: null, ...quiet(), interrupt: new Interrupt(false) });
    expect(train3.steps).toBe(0);
  });
});

describeWith(['fashion-mnist'])('mood demo with MIM pre-training', () => {
  it('pre-trains the backbone with lib/pretrain, says so, and reuses the pre-trained init on resume', async () => {
    const data = fakeDataModule({ train: 300, test: 150 });
    const dir = path.join(tmp, 'mim');
    const opts = parseDemoOptions({ ...TINY, outputDir: dir, pretrainEpochs: 1, classes: '0' });
    const q = quiet();
    const r = await runDemo(opts, { data, ...q, interrupt: new Interrupt(false) });
    expect(r.results.settings.init).toBe('mim');
    expect(r.results.settings.pretrain_epochs).toBe(1);
    expect(r.results.notes!.join(' ')).toMatch(/MIM pre-training \(normalised-pixel targets, 1 epochs\)/);
    expect(q.logs.join('\n')).toMatch(/MIM epoch 1\/1: loss \d/);
    // One-class without fine-tuning: the MIM backbone next to the random init it started from.
    const pre = r.results.protocols[0];
    expect(pre.variant).toBe('pretrained');
    expect(pre.arms).toEqual(['MIM', 'random init']);
    expect(pre.rows.map((x) => `${x.metric} ${x.arm}`)).toEqual(['mahalanobis MIM', 'knn MIM', 'mahalanobis random init', 'knn random init']);
    expect(pre.data_seen!.pretraining).toMatch(/^MIM arm: MIM on the \d+ training images of classes 0-5, no labels \(1 epochs\); random init arm: none$/);
    // Two different backbones (pre-training changed the weights), each arm's features from its own file.
    expect(pre.rows[0].auroc).not.toBe(pre.rows[2].auroc);
    const mim = await loadTensors(path.join(dir, 'checkpoints', 'init.pth'), { key: 'model' });
    const rnd = await loadTensors(path.join(dir, 'checkpoints', 'random-init.pth'), { key: 'model' });
    expect([...rnd.keys()]).toEqual([...mim.keys()]);
    const w = 'blocks.0.attn.qkv.weight';
    const [a, b] = [(await mim.get(w)!.data()) as Float32Array, (await rnd.get(w)!.data()) as Float32Array];
    expect(a.length).toBe(b.length);
    expect(a.some((v, i) => v !== b[i])).toBe(true);
    for (const t of [...mim.values(), ...rnd.values()]) t.dispose();
    const printed = q.logs.join('\n');
    const line = printed.split('\n').find((l) => l.startsWith('class 0 T-shirt/top'))!;
    const [mMim, mRnd, mDiff] = line.replace('class 0 T-shirt/top', '').trim().split(/\s+/).map(Number);
    expect(mMim).toBeCloseTo(100 * pre.rows[0].auroc, 2);
    expect(mRnd).toBeCloseTo(100 * pre.rows[2].auroc, 2);
    expect(mDiff).toBeCloseTo(100 * (pre.rows[0].auroc - pre.rows[2].auroc), 2);
    const q2 = quiet();
    const again = await runDemo(opts, { data, ...q2, interrupt: new Interrupt(false) });
    expect(q2.logs.join('\n')).not.toMatch(/MIM epoch|MIM pre-training on/);
    expect(again.results.protocols).toEqual(r.results.protocols);
    // --no-pretrain is a different init: its own stage, from scratch.
    const scratch = await runDemo(parseDemoOptions({ ...TINY, outputDir: dir, pretrain: false, classes: '0' }), { data, ...quiet(), interrupt: new Interrupt(false) });
    expect(scratch.results.settings.init).toBe('scratch');
    expect(scratch.results.notes!.join(' ')).toMatch(/from scratch \(--no-pretrain\)/);
  });
});

/** The 'model' weights of a demo run's checkpoint (under tmp/<dir>/checkpoints). */
const weights = (dir: string, file: string) => loadTensors(path.join(tmp, dir, 'checkpoints', file), { key: 'model' });

/** The same keys and bit-identical values in each of `files` of two demo runs. */
async function expectSameWeights(dirA: string, dirB: string, files: string[]): Promise<void> {
  for (const f of files) {
    const [x, y] = [await weights(dirA, f), await weights(dirB, f)];
    try {
      expect([...y.keys()], f).toEqual([...x.keys()]);
      for (const [k, t] of x) expect(Buffer.from(((await y.get(k)!.data()) as Float32Array).buffer).equals(Buffer.from(((await t.data()) as Float32Array).buffer)), `${f} ${k}`).toBe(true);
    } finally {
      for (const t of [...x.values(), ...y.values()]) t.dispose();
    }
  }
}

describeWith(['fashion-mnist'])('mood demo is a function of its flags', () => {
  it('two runs with the same flags write the same weights and results; random-init.pth is the init MIM started from', async () => {
    const data = fakeDataModule({ train: 300, test: 150 });
    const opts = (d: string) => parseDemoOptions({ ...TINY, outputDir: path.join(tmp, d), pretrainEpochs: 1, epochs: 1, classes: '0' });
    const a = await runDemo(opts('same-a'), { data, ...quiet(), interrupt: new Interrupt(false) });
    const b = await runDemo(opts('same-b'), { data, ...quiet(), interrupt: new Interrupt(false) });
    expect(b.results.protocols).toEqual(a.results.protocols);
    const curve = (r: typeof a) => r.results.training!.epochs.map(({ seconds: _s, ...rest }) => rest);
    expect(curve(b)).toEqual(curve(a));
    await expectSameWeights('same-a', 'same-b', ['random-init.pth', 'init.pth', 'epoch-0.pth']);
    // The baseline arm is MIM's own starting point: the twin's seeded init, key by key.
    const model = createModel({ ...DEMO_MODEL_OPTS, ...JSON.parse(TINY.modelOpts as string), num_classes: 6 });
    const twin = new MimModel(mimTwinOptions(model, opts('same-a').seed));
    const rnd = await weights('same-a', 'random-init.pth');
    const sd = twin.stateDict();
    const shared = [...sd.keys()].filter((k) => rnd.has(k) && !k.endsWith('relative_position_index'));
    expect(shared).toContain('blocks.0.attn.qkv.weight');
    for (const k of shared) expect(Array.from((await rnd.get(k)!.data()) as Float32Array), k).toEqual(Array.from((await sd.get(k)!.data()) as Float32Array));
    for (const t of [...rnd.values(), ...sd.values()]) t.dispose();
    twin.dispose();
    model.dispose();
  });
});

describeWith(['fashion-mnist'])('mood demo learning curve on a test sample', () => {
  it('--curve_per_class evaluates a seeded sample before the last epoch and changes no weight or result', async () => {
    const data = fakeDataModule({ train: 400, test: 300 });
    const run = (d: string, curvePerClass: number) =>
      runDemo(parseDemoOptions({ ...TINY, outputDir: path.join(tmp, d), epochs: 3, classes: '0', curvePerClass }), { data, pretrain: null, ...quiet(), interrupt: new Interrupt(false) });
    const all = await run('curve-all', 0);
    const sample = await run('curve-sample', 5);
    const testIds = all.results.training!.epochs[2].test_images;
    expect(all.results.training!.epochs.map((e) => e.test_images)).toEqual([testIds, testIds, testIds]);
    // 5 per ID class (classes 0-5 all present in the first 300 test images), then the whole ID split.
    expect(sample.results.training!.epochs.map((e) => e.test_images)).toEqual([30, 30, testIds]);
    expect(testIds).toBeGreaterThan(30);
    const last = (r: typeof all) => r.results.training!.epochs[2];
    expect([last(sample).test_acc1, last(sample).test_loss]).toEqual([last(all).test_acc1, last(all).test_loss]);
    expect(sample.results.training!.epochs.map((e) => e.train_loss)).toEqual(all.results.training!.epochs.map((e) => e.train_loss));
    expect(sample.results.protocols).toEqual(all.results.protocols);
    await expectSameWeights('curve-all', 'curve-sample', ['epoch-0.pth', 'epoch-2.pth']);
    // A sampled accuracy never counts as the best: only full evaluations set max_accuracy.
    const args = async (d: string, f: string) => ((await readCheckpoint(path.join(tmp, d, 'checkpoints', f))).root as PyDict).get('args') as PyDict;
    expect((await args('curve-sample', 'epoch-0.pth')).has('max_accuracy')).toBe(false);
    expect((await args('curve-all', 'epoch-0.pth')).get('max_accuracy')).toEqual(all.results.training!.epochs[0].test_acc1);
    expect((await args('curve-sample', 'epoch-2.pth')).get('max_accuracy')).toEqual(last(sample).test_acc1);
  });
});

describeWith(['fashion-mnist'])('mood demo --checkpoint', () => {
  it('starts from given weights (architecture from the file, head re-sized) and names a bad file', async () => {
    const { writeMicroCheckpoint } = await import('../ood-features/memory-data');
    const ck = path.join(tmp, 'micro.pth');
    await writeMicroCheckpoint(ck, 10, 1);
    const data = fakeDataModule({ train: 200, test: 100 });
    // The file implies the architecture except num_heads (no relative position table to infer it from).
    const rest = { ...TINY, modelOpts: '{"num_heads": 2}' };
    const r = await runDemo(parseDemoOptions({ ...rest, outputDir: path.join(tmp, 'ck'), checkpoint: ck, classes: '0' }), { data, pretrain: null, ...quiet(), interrupt: new Interrupt(false) });
    expect(r.results.settings.init).toBe('checkpoint');
    expect(r.results.notes!.join(' ')).toContain(`weights from ${ck}`);
    expect(r.results.protocols.find((p) => p.protocol === 'multi-class')!.rows.length).toBe(3 * 3);
    fs.writeFileSync(path.join(tmp, 'bad.pth'), 'not a checkpoint');
    await expect(runDemo(parseDemoOptions({ ...rest, outputDir: path.join(tmp, 'ck2'), checkpoint: path.join(tmp, 'bad.pth') }), { data, pretrain: null, ...quiet(), interrupt: new Interrupt(false) })).rejects.toThrow(/--checkpoint .*bad\.pth: /);
  });
});

describeWith(['fashion-mnist'])('mood demo fine-tuning with lib/train', () => {
  it('Ctrl-C after epoch 0, resume: epoch 1 equals the uninterrupted run (weights and AdamW moments restored)', async () => {
    const data = fakeDataModule({ train: 300, test: 100 });
    const base = { ...TINY, epochs: 2, batchSize: 60, classes: '0', metrics: 'mahalanobis', farOod: 'none' };
    const train = await loadTrainModule();
    const full = await runDemo(parseDemoOptions({ ...base, outputDir: path.join(tmp, 'real-full') }), { data, train, pretrain: null, ...quiet(), interrupt: new Interrupt(false) });
    // The same run with its init copied, interrupted at the first step of epoch 1, then resumed.
    const dir = path.join(tmp, 'real-resume');
    fs.mkdirSync(path.join(dir, 'checkpoints'), { recursive: true });
    fs.mkdirSync(path.join(dir, 'stages'), { recursive: true });
    fs.copyFileSync(path.join(tmp, 'real-full', 'checkpoints', 'init.pth'), path.join(dir, 'checkpoints', 'init.pth'));
    fs.copyFileSync(path.join(tmp, 'real-full', 'stages', 'init.json'), path.join(dir, 'stages', 'init.json'));
    const intr = new Interrupt(false);
    const first = await runDemo(parseDemoOptions({ ...base, outputDir: dir }), {
      data,
      train,
      pretrain: null,
      log: (m) => {
        if (m.startsWith('epoch 1/2')) intr.request();
      },
      out: () => {},
      interrupt: intr,
    });
    expect(first.interrupted).toBe(true);
    const q = quiet();
    const second = await runDemo(parseDemoOptions({ ...base, outputDir: dir }), { data, train, pretrain: null, ...q, interrupt: new Interrupt(false) });
    expect(q.logs.join('\n')).toMatch(/resuming at epoch 1 \(weights and AdamW moments\)/);
    const a = full.results.training!.epochs;
    const b = second.results.training!.epochs;
    expect({ ...b[0], seconds: 0 }).toEqual({ ...a[0], seconds: 0 }); // epoch 0 ran in both
    expect(b[1].train_loss).toBe(a[1].train_loss);
    expect(b[1].test_loss).toBe(a[1].test_loss);
    const mc = (r: typeof full) => r.results.protocols.find((p) => p.protocol === 'multi-class')!.rows[0].auroc; // from the fine-tuned weights
    expect(mc(second)).toBe(mc(full));
  });
});
