import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    include: ['tests/**/*.test.ts'],
    // Native work is CPU-bound on small CI machines; keep files sequential so thread counts stay honest.
    fileParallelism: false,
    // Memory tests force a collection: without it, un-collected JS copies read back from tensors
    // (garbage, not leaks) can exceed their bounds on a loaded machine.
    execArgv: ['--expose-gc'],
    testTimeout: 120_000,
    hookTimeout: 120_000,
  },
});
