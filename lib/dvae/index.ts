/** BEiT's visual tokenizer: OpenAI's DALL-E dVAE encoder read safely from encoder.pkl, run natively. */
export { DalleEncoder, optionsFromStructure } from './encoder';
export type { DalleEncoderOptions, ResolvedDalleEncoderOptions, DvaePrecision, ForwardOptions } from './encoder';
export { readDalleEncoderFile, encoderPath } from './encoder-file';
export type { DalleEncoderFile, DalleEncoderStructure, MaxPoolSpec } from './encoder-file';
export { DvaeError } from './errors';
