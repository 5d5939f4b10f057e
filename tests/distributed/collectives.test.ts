/**
 * Collectives over 2 CPU processes on Gloo/loopback, launched by `mood launch` (one node x 2, and
 * two "nodes" x 1 through --nnodes 2 --node_rank), values checked against plain arithmetic.
 */
import { describe, expect, it } from 'vitest';
import { freePort, rankJson, runLaunch, WORKER } from './helpers';

function checkRanks(out: Record<number, Record<string, unknown>>, port: number, localWorldSize: number): void {
  expect(Object.keys(out).sort()).toEqual(['0', '1']);
  for (const r of [0, 1]) {
    const o = out[r];
    expect(o.rank).toBe(r);
    expect(o.worldSize).toBe(2);
    expect(o.env).toEqual({
      RANK: String(r),
      LOCAL_RANK: String(localWorldSize === 2 ? r : 0),
      WORLD_SIZE: '2',
      LOCAL_WORLD_SIZE: String(localWorldSize),
      MASTER_ADDR: '127.0.0.1',
      MASTER_PORT: String(port),
    });
    // rank 0 holds [1,2,3,4], rank 1 the same + 10.
    expect(o.sum).toEqual([12, 14, 16, 18]);
    expect(o.avg).toEqual([6, 7, 8, 9]);
    expect(o.max).toEqual([11, 12, 13, 14]);
    expect(o.min).toEqual([1, 2, 3, 4]);
    expect(o.input).toEqual([1, 2, 3, 4].map((v) => v + 10 * r)); // inputs untouched
    expect(o.bcast).toEqual([11, 12, 13, 14]);
    expect(o.gather).toEqual([[0], [1, 1]]); // unequal rows, rank order
    // 7 rows sharded rank-strided (rank 1 padded with row 0) come back in dataset order, padding dropped.
    expect(o.ordered).toEqual([0, 1, 2, 3, 4, 5, 6].flatMap((i) => [i, i === 0 ? 0 : -i]));
    expect(o.mismatch).toMatch(/allReduce: rank \d passed a tensor of another dtype\/shape/);
  }
}

describe('collectives, 2 Gloo processes', () => {
  it('mood launch --nproc_per_node 2: torchrun env, all-reduce/broadcast/all-gather/ordered gather', async () => {
    const port = await freePort();
    const r = await runLaunch(['--nproc_per_node', '2', '--master_port', String(port), '--', WORKER]);
    expect(r.stderr).not.toMatch(/worker:/);
    expect(r.code).toBe(0);
    checkRanks(rankJson(r.stdout), port, 2);
  });

  it('2 "nodes" x 1 process through --nnodes 2 --node_rank on loopback', async () => {
    const port = await freePort();
    const node = (nodeRank: number) =>
      runLaunch(['--nproc_per_node', '1', '--nnodes', '2', '--node_rank', String(nodeRank), '--master_addr', '127.0.0.1', '--master_port', String(port), '--', WORKER]);
    const [a, b] = await Promise.all([node(0), node(1)]);
    expect(a.code).toBe(0);
    expect(b.code).toBe(0);
    checkRanks({ ...rankJson(a.stdout), ...rankJson(b.stdout) }, port, 1);
  });
});
