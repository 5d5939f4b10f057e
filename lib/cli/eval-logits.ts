/**
 * `mood eval-logits`: the reference's eval_with_logits.py. Scores ID test and OOD images of a BEiT
 * checkpoint with a logit metric (softmax = the max logit the reference computes, msp, entropy, energy,
 * gradnorm per sample) and evaluates multi-class or one-class (--class_idx). No training pass: logit
 * metrics have nothing to fit. Logits (and features, for gradnorm) come from the cached extraction.
 */
import type { Command } from 'commander';
// eval-common's top level imports only node builtins and types, so this keeps `mood --help` fast.
import { addEvalOptions, type EvalCliOptions } from './eval-common';

export function registerEvalLogits(program: Command): Command {
  const cmd = program
    .command('eval-logits')
    .description('OOD evaluation of a BEiT checkpoint with logit metrics (eval_with_logits.py): result lines, eval_results.txt, JSON');
  addEvalOptions(cmd, 'logits');
  return cmd.action(async (opts: EvalCliOptions) => {
    await (await import('./eval-common')).runEval('logits', opts);
  });
}
