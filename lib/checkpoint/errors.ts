/** The checkpoint layer's errors: the shared file-format error (lib/io) and the pickle-specific one. */
import { CheckpointError } from '../io/errors';

export { CheckpointError };

/** The pickle stream ended early: a legacy reader may retry with a larger window of the file. */
export class PickleTruncatedError extends CheckpointError {
  constructor(file: string, message: string, opts: { offset?: number; where?: string } = {}) {
    super(file, message, opts);
    this.name = 'PickleTruncatedError';
  }
}
