/** Everything wrong with a tokenizer file, its input or its options: says which file / flag and what was found. */
export class DvaeError extends Error {
  constructor(message: string, opts?: { cause?: unknown }) {
    super(message, opts?.cause !== undefined ? { cause: opts.cause } : undefined);
    this.name = 'DvaeError';
  }
}
