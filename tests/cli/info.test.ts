/**
 * `mood info` (the real bin/mood.js as a child process): the thread environment a process runs
 * with. OMP_WAIT_POLICY and OPENBLAS_THREAD_TIMEOUT are read once, when libtorch / OpenBLAS load, so
 * lib/binding.ts must set them before loading the addon, and only when the user has not.
 */
import { execFile } from 'node:child_process';
import * as path from 'node:path';
import { promisify } from 'node:util';
import { describe, expect, it } from 'vitest';
import { REPO_ROOT } from '../helpers/fixtures';

const execFileP = promisify(execFile);
const BIN = path.join(REPO_ROOT, 'bin', 'mood.js');

async function info(env: Record<string, string | undefined>, json = true): Promise<string> {
  const childEnv: NodeJS.ProcessEnv = { ...process.env, ...env };
  for (const [k, v] of Object.entries(env)) if (v === undefined) delete childEnv[k];
  const r = await execFileP(process.execPath, [BIN, 'info', ...(json ? ['--json'] : [])], { cwd: REPO_ROOT, env: childEnv, encoding: 'utf8' });
  return r.stdout;
}

describe('mood info: thread environment', () => {
  it('sets OMP_WAIT_POLICY=PASSIVE and OPENBLAS_THREAD_TIMEOUT=4 when unset', async () => {
    const i = JSON.parse(await info({ OMP_WAIT_POLICY: undefined, OPENBLAS_THREAD_TIMEOUT: undefined })) as Record<string, unknown>;
    expect(i.ompWaitPolicy).toBe('PASSIVE');
    expect(i.openblasThreadTimeout).toBe('4');
  });

  it("keeps the user's values", async () => {
    const i = JSON.parse(await info({ OMP_WAIT_POLICY: 'ACTIVE', OPENBLAS_THREAD_TIMEOUT: '20' })) as Record<string, unknown>;
    expect(i.ompWaitPolicy).toBe('ACTIVE');
    expect(i.openblasThreadTimeout).toBe('20');
  });

  it('prints both in the text report', async () => {
    const text = await info({ OPENBLAS_THREAD_TIMEOUT: undefined }, false);
    expect(text).toMatch(/^OMP_WAIT_POLICY PASSIVE$/m);
    expect(text).toMatch(/^OPENBLAS_THREAD_TIMEOUT 4$/m);
  });
});
