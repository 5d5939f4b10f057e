/**
 * Failures end every process with a clear message within a bounded time: a rank killed mid-step,
 * port in use, world-size mismatch, a missing rank, an unreachable master. (Launcher faults:
 * launch.test.ts.)
 */
import * as net from 'node:net';
import { describe, expect, it } from 'vitest';
import { freePort, runRank } from './helpers';

describe('distributed faults', () => {
  it('a rank killed mid-step: the other exits non-zero naming the lost rank, within the bound', async () => {
    const port = await freePort();
    const [r0, r1] = await Promise.all([runRank('die', 0, 2, port), runRank('die', 1, 2, port)]);
    expect(r1.signal).toBe('SIGKILL');
    expect(r0.code).toBe(4);
    expect(r0.stderr).toMatch(/allReduce failed on rank 0: lost rank 1/);
    const ms = Number(/after (\d+) ms/.exec(r0.stderr)?.[1]);
    expect(ms).toBeLessThan(10_000); // far below the 30 s collective timeout
  });

  it('port in use: rank 0 says so', async () => {
    const server = net.createServer();
    await new Promise<void>((res) => server.listen(0, res));
    const port = (server.address() as net.AddressInfo).port;
    try {
      const r = await runRank('collectives', 0, 2, port, { TEST_TIMEOUT_MS: '3000' });
      expect(r.code).toBe(1);
      expect(r.stderr).toMatch(new RegExp(`MASTER_PORT ${port} is already in use`));
    } finally {
      server.close();
    }
  });

  it('world size mismatch: both ranks fail fast naming both sizes', async () => {
    const port = await freePort();
    const [a, b] = await Promise.all([
      runRank('collectives', 0, 2, port, { TEST_TIMEOUT_MS: '20000' }),
      runRank('collectives', 1, 3, port, { TEST_TIMEOUT_MS: '20000' }),
    ]);
    for (const r of [a, b]) {
      expect(r.code).toBe(1);
      expect(r.stderr).toMatch(/world size mismatch: rank \d has WORLD_SIZE=\d, rank \d has WORLD_SIZE=\d/);
      expect(r.ms).toBeLessThan(18_000);
    }
  });

  it('a rank that never comes, and an unreachable master: bounded, specific errors', async () => {
    const port = await freePort();
    const [alone, lost] = await Promise.all([
      runRank('collectives', 0, 2, port, { TEST_TIMEOUT_MS: '2000' }),
      runRank('collectives', 1, 2, await freePort(), { TEST_TIMEOUT_MS: '2000' }),
    ]);
    expect(alone.code).toBe(1);
    expect(alone.stderr).toMatch(/rank\(s\) 1 did not join the group at 127\.0\.0\.1:\d+ within 2 s/);
    expect(lost.code).toBe(1);
    expect(lost.stderr).toMatch(/rank 1 cannot reach the master at 127\.0\.0\.1:\d+/);
  });

});
