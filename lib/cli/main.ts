/**
 * `mood` command-line entry. Subcommands load their modules lazily so `mood --help` starts fast
 * (libtorch is only loaded by commands that compute).
 */
import { Command, CommanderError } from 'commander';
import { normalizeFlags } from './argv';

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
