/**
 * A rank of the 2-process tests (run by `mood launch` or spawned directly with the torchrun
 * environment). argv[2] picks the scenario; results go to stdout as one JSON line.
 */
import { initFromEnv, readDistEnv } from '../../../lib/distributed';
import { Tensor } from '../../../lib/tensor';

async function values(t: Tensor): Promise<number[]> {
  return Array.from((await t.data()) as Float32Array);
}

async function main(): Promise<void> {
  const mode = process.argv[2] ?? 'collectives';
  const env = readDistEnv();
  if (mode === 'fail') {
    // Rank 1 fails with an error; the others would run forever.
    if (env.rank === 1) {
      process.stderr.write('worker: deliberate failure on rank 1\n');
      process.exit(3);
    }
    await new Promise((r) => setTimeout(r, 600_000));
    return;
  }
  if (mode === 'threads') {
    // The thread environment this rank ends up with once the addon is loaded.
    const t = Tensor.zeros([1]);
    await t.data();
    process.stdout.write(JSON.stringify({ omp: process.env.OMP_NUM_THREADS ?? null, mood: process.env.MOOD_NUM_THREADS ?? null }) + '\n');
    return;
  }
  if (mode === 'sleep') {
    // Waits for the launcher to forward a signal, then exits cleanly saying so.
    process.on('SIGTERM', () => {
      process.stdout.write(`got SIGTERM\n`);
      process.exit(0);
    });
    process.stdout.write('ready\n');
    await new Promise((r) => setTimeout(r, 600_000));
    return;
  }
  const pg = await initFromEnv({ timeoutMs: Number(process.env.TEST_TIMEOUT_MS ?? 30000) });
  if (!pg) throw new Error('worker: not launched distributed');
  const r = pg.rank;
  if (mode === 'die') {
    await pg.barrier();
    if (r === 1) process.kill(process.pid, 'SIGKILL');
    await new Promise((res) => setTimeout(res, 300));
    const t0 = Date.now();
    try {
      await pg.allReduce(Tensor.fromArray(new Float32Array(1000).fill(1))).data();
    } catch (e) {
      process.stderr.write(`worker: ${(e as Error).message} after ${Date.now() - t0} ms\n`);
      process.exit(4);
    }
    return;
  }
  const x = Tensor.fromArray(new Float32Array([1, 2, 3, 4].map((v) => v + 10 * r)), [2, 2]);
  // DistributedSampler order without shuffling over 7 rows: rank r gets r, r+2, ...; padded by wrapping.
  const total = 7;
  const mine: number[] = [];
  for (let i = r; i < 8; i += pg.worldSize) mine.push(i % total);
  const feats = Tensor.fromArray(new Float32Array(mine.flatMap((i) => [i, -i])), [mine.length, 2]);
  const out = {
    rank: r,
    worldSize: pg.worldSize,
    env: { RANK: process.env.RANK, LOCAL_RANK: process.env.LOCAL_RANK, WORLD_SIZE: process.env.WORLD_SIZE, LOCAL_WORLD_SIZE: process.env.LOCAL_WORLD_SIZE, MASTER_ADDR: process.env.MASTER_ADDR, MASTER_PORT: process.env.MASTER_PORT },
    sum: await values(pg.allReduce(x, 'sum')),
    avg: await values(pg.allReduce(x, 'avg')),
    max: await values(pg.allReduce(x, 'max')),
    min: await values(pg.allReduce(x, 'min')),
    input: await values(x),
    bcast: await values(pg.broadcast(x, 1)),
    gather: await Promise.all(pg.allGather(Tensor.fromArray(new Float32Array(r + 1).fill(r), [r + 1])).map(values)),
    ordered: await values(pg.allGatherOrdered(feats, total)),
    mismatch: await pg.allReduce(Tensor.fromArray(new Float32Array(2 + r))).data().then(() => 'no error', (e: Error) => e.message),
  };
  await pg.barrier();
  process.stdout.write(JSON.stringify(out) + '\n');
  await pg.destroy();
}

main().catch((e) => {
  process.stderr.write(`worker: ${(e as Error).message}\n`);
  process.exit(1);
});
