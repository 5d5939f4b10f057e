/**
 * Long-running checkpoint fuzzer: mutates seed checkpoints (ours, a hand-built legacy stream, and the
 * shared fixtures when present), pickles and .npy files until the time budget runs out, and fails
 * on the first input that escapes as anything but a CheckpointError or takes too long.
 *
 *   npx ts-node scripts/fuzz/checkpoint-fuzz.ts [--seconds 300] [--seed 1] [--max-ms 5000]
 */
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { MUTATIONS, checkFile, checkNpy, checkPickle, hostilePickles, legacySeed, rng, zipSeed } from './cases';
import { encodeNpy, ndarray } from '../../lib/npy/npy';

function arg(name: string, def: number): number {
  const i = process.argv.indexOf(`--${name}`);
  return i >= 0 ? Number(process.argv[i + 1]) : def;
}

function main(): number {
  const seconds = arg('seconds', 300);
  const seed = arg('seed', Date.now() % 1e9);
  const maxMs = arg('max-ms', 5000);
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'mood-fuzz-'));
  const seeds: Array<[string, Buffer]> = [['ours.zip', zipSeed(dir)], ['legacy', legacySeed()]];
  const fixtures = process.env.MOOD_FIXTURES ?? path.resolve(__dirname, '..', '..', 'tests', 'fixtures', 'official');
  for (const f of ['ft_meanpool.pth', 'ft_cls_abspos.pth', 'ft_meanpool_views.pth']) {
    const p = path.join(fixtures, f);
    if (fs.existsSync(p)) seeds.push([f, fs.readFileSync(p)]);
  }
  const pkls = hostilePickles().map(([, b]) => b);
  const npy = Buffer.concat(encodeNpy(ndarray('float64', [4, 3], new Float64Array(12), { fortranOrder: true })));
  const r = rng(seed);
  const counts = { ok: 0, rejected: 0 };
  const target = path.join(dir, 'case.bin');
  const end = Date.now() + seconds * 1000;
  console.log(`fuzzing for ${seconds}s, seed ${seed}, seeds: ${seeds.map(([n]) => n).join(', ')}`);
  let i = 0;
  for (; Date.now() < end; i++) {
    const [mname, mutate] = MUTATIONS[Math.floor(r() * MUTATIONS.length)];
    const pick = r();
    let input: Buffer;
    let what: string;
    const t0 = Date.now();
    let res: 'ok' | 'rejected';
    try {
      if (pick < 0.6) {
        const [sname, s] = seeds[Math.floor(r() * seeds.length)];
        input = mutate(s, r);
        // Stack mutations now and then to get past the first check.
        if (r() < 0.3) input = MUTATIONS[Math.floor(r() * MUTATIONS.length)][1](input, r);
        what = `file from ${sname}`;
        fs.writeFileSync(target, input);
        res = checkFile(target);
      } else if (pick < 0.9) {
        input = mutate(pkls[Math.floor(r() * pkls.length)], r);
        what = 'pickle';
        res = checkPickle(input);
      } else {
        input = mutate(npy, r);
        what = 'npy';
        res = checkNpy(input);
      }
    } catch (e) {
      const keep = path.join(process.cwd(), `fuzz-crash-${seed}-${i}.bin`);
      fs.writeFileSync(keep, fs.existsSync(target) ? fs.readFileSync(target) : Buffer.alloc(0));
      console.error(`case ${i} (${mname}) escaped: ${(e as Error).stack}\ninput kept in ${keep}`);
      return 1;
    }
    const ms = Date.now() - t0;
    if (ms > maxMs) {
      console.error(`case ${i} (${mname}, ${what}) took ${ms} ms`);
      return 1;
    }
    counts[res]++;
    if (i % 5000 === 0 && i) console.log(`${i} cases: ${counts.ok} ok, ${counts.rejected} rejected`);
  }
  console.log(`done: ${i} cases, ${counts.ok} ok, ${counts.rejected} rejected cleanly`);
  fs.rmSync(dir, { recursive: true, force: true });
  return 0;
}

process.exitCode = main();
