/**
 * All-reduce bandwidth of a c10d group: float32 sums of several sizes across N local processes,
 * bus bandwidth as nccl-tests defines it (2(n-1)/n x bytes / time). The GPU check of the NCCL path:
 *
 *   npx ts-node --transpile-only scripts/bench/dist-allreduce.ts --nproc 2 --backend nccl   # one process per GPU, cuda:LOCAL_RANK
 *   npx ts-node --transpile-only scripts/bench/dist-allreduce.ts --nproc 2                  # Gloo on CPU
 *
 * Options: --sizes-mb 1,16,64 (default; 256 added for nccl) --iters 5. Prints one JSON object.
 */
import * as net from 'node:net';
import { Writable } from 'node:stream';
import type { Device } from '../../lib/tensor';

function flag(name: string): string | undefined {
  const i = process.argv.indexOf(`--${name}`);
  return i >= 0 ? process.argv[i + 1] : undefined;
}

function median(v: number[]): number {
  const s = [...v].sort((a, b) => a - b);
  return s.length % 2 ? s[(s.length - 1) / 2] : (s[s.length / 2 - 1] + s[s.length / 2]) / 2;
}

const backend = (flag('backend') ?? 'gloo') as 'gloo' | 'nccl';
const sizesMb = (flag('sizes-mb') ?? (backend === 'nccl' ? '1,16,64,256' : '1,16,64')).split(',').map(Number);
const iters = Number(flag('iters') ?? 5);

async function child(): Promise<void> {
  const { initFromEnv, readDistEnv } = await import('../../lib/distributed');
  const { Tensor } = await import('../../lib/tensor');
  const env = readDistEnv();
  const device: string = backend === 'nccl' ? `cuda:${env.localRank}` : 'cpu';
  const pg = (await initFromEnv({ backend, timeoutMs: 300_000 }))!;
  const rows: Array<{ mb: number; ms: number; busGBps: number }> = [];
  for (const mb of sizesMb) {
    const n = (mb * 1024 * 1024) / 4;
    const x = Tensor.fromArray(new Float32Array(n).fill(1), [n], { device: device as Device });
    const times: number[] = [];
    for (let i = 0; i < iters + 1; i++) {
      await pg.barrier();
      const t0 = process.hrtime.bigint();
      const y = pg.allReduce(x, 'sum');
      await y.ready();
      if (i > 0) times.push(Number(process.hrtime.bigint() - t0) / 1e6);
      if (i === 0) {
        const v = (await y.to('cpu').data()) as Float32Array;
        if (v[0] !== pg.worldSize) throw new Error(`all-reduce gave ${v[0]}, expected ${pg.worldSize}`);
      }
      y.dispose();
    }
    x.dispose();
    const ms = median(times);
    const w = pg.worldSize;
    rows.push({ mb, ms, busGBps: ((2 * (w - 1)) / w) * ((mb * 1024 * 1024) / (ms / 1e3)) / 1e9 });
  }
  process.stdout.write(`RESULT ${JSON.stringify({ rank: pg.rank, device, rows })}\n`);
  await pg.destroy();
}

async function freePort(): Promise<number> {
  return new Promise((resolve) => {
    const s = net.createServer();
    s.listen(0, '127.0.0.1', () => {
      const p = (s.address() as net.AddressInfo).port;
      s.close(() => resolve(p));
    });
  });
}

async function main(): Promise<void> {
  if (process.argv[2] === 'child') return child();
  const { launch } = await import('../../lib/distributed/launch');
  const nproc = Number(flag('nproc') ?? 2);
  let buf = '';
  const stdout = new Writable({
    write(c, _e, cb) {
      buf += String(c);
      cb();
    },
  });
  const r = await launch({ nprocPerNode: nproc, masterPort: await freePort(), command: [__filename, 'child', ...process.argv.slice(2)], stdout });
  if (r.exitCode !== 0) throw new Error(r.message);
  const results = buf.split('\n').flatMap((l) => {
    const m = /RESULT (\{.*\})$/.exec(l);
    return m ? [JSON.parse(m[1]) as { rank: number; device: string; rows: Array<{ mb: number; ms: number; busGBps: number }> }] : [];
  });
  const rows = sizesMb.map((mb, i) => ({
    mb,
    ms: Math.max(...results.map((x) => x.rows[i].ms)),
    bus_GBps: Math.min(...results.map((x) => x.rows[i].busGBps)),
  }));
  process.stdout.write(JSON.stringify({ bench: 'dist-allreduce', backend, processes: nproc, devices: results.map((x) => x.device), iters, rows }, null, 2) + '\n');
}

main().catch((e) => {
  process.stderr.write(`dist-allreduce: ${(e as Error).message}\n`);
  process.exit(1);
});
