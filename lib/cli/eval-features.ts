/**
 * `mood eval-features`: the reference's eval_with_features.py. Fits a feature detector (mahalanobis,
 * cos, projection, gauss, kmeans, euclidean, minkowski, chebyshev, --cc/--avgcc, and our extras) on ID
 * training features of a BEiT checkpoint and evaluates ID test vs OOD (multi-class) or the other
 * classes (one-class, --class_idx). Features come from one cached extraction per set.
 */
import type { Command } from 'commander';
// eval-common's top level imports only node builtins and types, so this keeps `mood --help` fast.
import { addEvalOptions, type EvalCliOptions } from './eval-common';

export function registerEvalFeatures(program: Command): Command {
  const cmd = program
    .command('eval-features')
    .description('OOD evaluation of a BEiT checkpoint with feature metrics (eval_with_features.py): result lines, eval_results.txt, JSON');
  addEvalOptions(cmd, 'features');
  return cmd.action(async (opts: EvalCliOptions) => {
    await (await import('./eval-common')).runEval('features', opts);
  });
}
