/** Shared settings of the demo suites: a tiny model on a few hundred images, silent logs. */
import type { DemoCliOptions } from '../../lib/demo/options';
import { FASHION_DIR } from '../ood-features/memory-data';

export const TINY: DemoCliOptions = {
  dataPath: FASHION_DIR,
  modelOpts: JSON.stringify({ embed_dim: 24, depth: 1, num_heads: 2, patch_size: 7, mlp_ratio: 2 }),
  epochs: 0,
  batchSize: 64,
  trainPerClass: 0,
  metrics: 'mahalanobis,knn,msp',
  farOod: 'uniform,vflip',
  classes: '0-3',
  timeBudget: 0,
  quiet: true,
};

export function quiet() {
  const logs: string[] = [];
  return { logs, log: (m: string) => logs.push(m), out: (m: string) => logs.push(m) };
}
