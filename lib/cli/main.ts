/**
 * `mood` command-line entry. Subcommands load their modules lazily so `mood --help` starts fast
 * (libtorch is only loaded by commands that compute).
 */
import { Command, CommanderError } from 'commander';
import { normalizeFlags } from './argv';
// Registration-only modules: their top-level imports are types, so libtorch stays unloaded.
import { registerCkpt } from './ckpt';
import { registerLaunch } from './launch';
import { registerPretrain } from './pretrain';
import { registerDemo } from './demo';
import { registerOodScore } from './ood-score';
import { registerReport } from './report';
import { registerEvalFeatures } from './eval-features';
import { registerEvalLogits } from './eval-logits';
import { registerScore } from './score';
import { registerFinetune } from './finetune';
import { registerData } from './data';
import { registerDvae } from './dvae';
import { FINETUNE_REFERENCE_FLAGS, PRETRAIN_REFERENCE_FLAGS, acceptReferenceFlags } from './reference-flags';

function version(): string {
  // eslint-disable-next-line @typescript-eslint/no-var-requires
  return (require('../../package.json') as { version: string }).version;
}

export function buildProgram(): Command {
  const program = new Command();
  program
    .name('mood')
    .description('Out-of-distribution detection with masked-image-modeling vision transformers (MOOD) on libtorch')
    .version(version(), '-v, --version')
    .showHelpAfterError()
    .exitOverride();

  program
    .command('info')
    .description('libtorch version, CUDA/NCCL/Gloo availability, threads and build flags')
    .option('--json', 'machine-readable output')
    .action(async (opts: { json?: boolean }) => {
      (await import('./info')).runInfo(opts);
    });

  program
    .command('forward')
    .description('run a BEiT checkpoint on a numpy batch (.npy, float32 NCHW) and write features/logits as float32 .npy')
    .option('--ckpt <file>', 'checkpoint (.pth: official BEiT/MOOD or our own)')
    .option('--model <name>', 'named configuration to start from (e.g. beit_base_patch16_224)')
    .option('--model-opts <json>', "constructor options with the reference's keyword names, e.g. '{\"img_size\": 224}'")
    .option('--input <file>', 'input batch .npy, (N, C, H, W) float32 (float64 converted)')
    .option('--features-out <file>', 'write pooled features (N, D) float32 .npy')
    .option('--logits-out <file>', 'write logits (N, num_classes) float32 .npy')
    .option('--batch-size <n>', 'images per forward pass (default 32)')
    .option('--json', 'machine-readable summary')
    .action(async (opts: import('./forward').ForwardCliOptions) => {
      await (await import('./forward')).runForwardCommand(opts);
    });

  registerOodScore(program);
  registerData(program);
  registerCkpt(program);
  registerLaunch(program);
  registerReport(program);
  registerDemo(program);
  acceptReferenceFlags(registerPretrain(program), PRETRAIN_REFERENCE_FLAGS);
  registerEvalFeatures(program);
  registerEvalLogits(program);
  registerScore(program);
  acceptReferenceFlags(registerFinetune(program), FINETUNE_REFERENCE_FLAGS);
  registerDvae(program);

  return program;
}

export async function main(argv: string[]): Promise<void> {
  const program = buildProgram();
  try {
    await program.parseAsync(normalizeFlags(argv), { from: 'user' });
  } catch (e) {
    if (e instanceof CommanderError) {
      process.exitCode = e.exitCode;
      return;
    }
    process.stderr.write(`mood: ${(e as Error).message}\n`);
    process.exitCode = 1;
  }
}
