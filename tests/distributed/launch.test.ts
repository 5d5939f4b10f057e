/**
 * `mood launch` process management: fail-fast with the failing rank's status and error, signal
 * forwarding, flag and environment validation.
 */
import { spawn } from 'node:child_process';
import * as os from 'node:os';
import { Writable } from 'node:stream';
import { describe, expect, it } from 'vitest';
import { launch } from '../../lib/distributed/launch';
import { ompThreadsSeeded } from '../../lib/binding';
import { loadNative } from '../../lib/native';
import { freePort, MOOD, rankJson, runLaunch, WORKER } from './helpers';

describe('mood launch', () => {
  it('mood launch: one rank fails -> the others are stopped, exit status and error of that rank', async () => {
    const port = await freePort();
    const r = await runLaunch(['--nproc_per_node', '2', '--master_port', String(port), '--', WORKER, 'fail']);
    expect(r.code).toBe(3);
    expect(r.stderr).toMatch(/\[rank 1\] worker: deliberate failure on rank 1/);
    expect(r.stderr).toMatch(/mood launch: rank 1 \(local rank 1, pid \d+\) exited with status 3; stopped the other ranks/);
    expect(r.stderr).toMatch(/its last error output:\n {2}worker: deliberate failure on rank 1/);
    expect(r.ms).toBeLessThan(40_000); // rank 0 would otherwise sleep 10 minutes
  });

  it('mood launch forwards SIGTERM to every rank and exits 128+15', async () => {
    const child = spawn(process.execPath, [MOOD, 'launch', '--nproc_per_node', '2', '--', WORKER, 'sleep'], { stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    let err = '';
    child.stderr.on('data', (d) => (err += d));
    const ready = new Promise<void>((res) =>
      child.stdout.on('data', (d) => {
        out += d;
        if (out.includes('[rank 0] ready') && out.includes('[rank 1] ready')) res();
      }),
    );
    const done = new Promise<number | null>((res) => child.on('close', (code) => res(code)));
    const killer = setTimeout(() => child.kill('SIGKILL'), 60_000);
    await ready;
    child.kill('SIGTERM');
    const code = await done;
    clearTimeout(killer);
    expect(out).toMatch(/\[rank 0\] got SIGTERM/);
    expect(out).toMatch(/\[rank 1\] got SIGTERM/);
    expect(err).toMatch(/mood launch: stopped by SIGTERM/);
    expect(code).toBe(143);
  });

  it('ranks get their own thread count, not the OMP_NUM_THREADS this process seeded for itself', async () => {
    loadNative(); // seeds OMP_NUM_THREADS here when it was unset
    const mine = process.env.OMP_NUM_THREADS;
    let out = '';
    const sink = new Writable({ write: (c, _e, cb) => ((out += c), cb()) });
    const r = await launch({ nprocPerNode: 2, masterPort: await freePort(), command: [WORKER, 'threads'], env: { MOOD_NUM_THREADS: undefined }, stdout: sink, stderr: sink });
    expect(r.exitCode, out).toBe(0);
    const ranks = rankJson(out);
    const perRank = String(Math.max(1, Math.floor(os.cpus().length / 2)));
    for (const k of [0, 1]) {
      expect(ranks[k].mood).toBe(perRank);
      // Seeded here: each rank seeds its own from its MOOD_NUM_THREADS; set by the user: passed on.
      expect(ranks[k].omp).toBe(ompThreadsSeeded() ? perRank : mine);
    }
  });

  it('bad launcher flags and environment are named', async () => {
    const r = await runLaunch(['--nproc_per_node', '2', '--nnodes', '2', '--node_rank', '2', '--', WORKER]);
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(/--node_rank must be an integer in 0\.\.1, got 2/);
    const { readDistEnv } = await import('../../lib/distributed/env');
    expect(() => readDistEnv({ WORLD_SIZE: '2', RANK: '2' })).toThrow(/RANK=2 is not below WORLD_SIZE=2/);
    expect(() => readDistEnv({ WORLD_SIZE: 'two' })).toThrow(/WORLD_SIZE='two' must be an integer/);
    expect(readDistEnv({})).toMatchObject({ rank: 0, worldSize: 1, launched: false, masterPort: 29500 });
  });
});
