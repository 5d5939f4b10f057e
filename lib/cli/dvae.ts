/**
 * `mood dvae`: BEiT's visual tokenizer on its own (registration only: the command's module, and
 * libtorch, load when it runs). `mood dvae tokens` is lib/cli/dvae-tokens.ts.
 */
import type { Command } from 'commander';
import type { DvaeTokensOptions } from './dvae-tokens';

export function registerDvae(program: Command): Command {
  const dvae = program.command('dvae').description("BEiT's visual tokenizer: OpenAI's DALL-E dVAE encoder (encoder.pkl), read safely and run natively");
  dvae
    .command('tokens')
    .description('token ids (and logits) of images: x.npy float32 (N, 3, H, W) in [0, 1] -> ids int64 (N, H/8, W/8), argmax of the encoder on map_pixels(x)')
    .option('--discrete-vae-type <type>', 'dall-e (OpenAI\'s DALL-E encoder)', 'dall-e')
    .option('--discrete-vae-weight-path <dir>', 'folder holding encoder.pkl (or the file itself)')
    .option('--input <file>', 'images .npy, float32 (N, 3, H, W) in [0, 1] (before map_pixels)')
    .option('--out <file>', 'token ids .npy, int64 (N, H/8, W/8)')
    .option('--logits-out <file>', 'also the logits .npy, float32 (N, vocab, H/8, W/8)')
    .option('--batch-size <n>', 'images per forward pass', '64')
    .option('--device <dev>', 'cpu | cuda | cuda:N', 'cpu')
    .option('--precision <p>', 'auto (the reference: float32 on CPU, float16 convs on CUDA) | float32 | float16 | bfloat16 (CUDA)', 'auto')
    .option('--json', 'machine-readable summary')
    .action(async (opts: DvaeTokensOptions) => {
      const { runDvaeTokens, formatDvaeTokens } = await import('./dvae-tokens');
      const s = await runDvaeTokens(opts);
      process.stdout.write(opts.json ? JSON.stringify(s, null, 2) + '\n' : formatDvaeTokens(s));
    });
  return program;
}
