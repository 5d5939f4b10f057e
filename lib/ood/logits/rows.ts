/** Row-major (N x C) matrix checks and the numerically stable row log-sum-exp shared by logit scores. */

/** Logits or features, row-major, one row per sample. */
export type FloatMatrixData = Float64Array | Float32Array;

/** Validate a row-major buffer against its column count and return the row count. */
export function rowCount(data: FloatMatrixData, cols: number, what: string, caller: string): number {
  if (!(data instanceof Float64Array || data instanceof Float32Array)) {
    throw new TypeError(`${caller}: ${what} must be a Float64Array or Float32Array (row-major N x C)`);
  }
  if (!Number.isInteger(cols) || cols < 1) {
    throw new RangeError(`${caller}: column count for ${what} must be a positive integer (got ${String(cols)})`);
  }
  if (data.length % cols !== 0) {
    throw new RangeError(`${caller}: ${what} has ${data.length} values, not a multiple of ${cols} columns`);
  }
  for (let i = 0; i < data.length; i++) {
    if (!Number.isFinite(data[i])) {
      throw new RangeError(
        `${caller}: ${what}[${Math.floor(i / cols)}, ${i % cols}] is ${String(data[i])}; values must be finite`,
      );
    }
  }
  return data.length / cols;
}

/** Maximum of row r. */
export function rowMax(data: FloatMatrixData, r: number, cols: number): number {
  const base = r * cols;
  let m = data[base];
  for (let c = 1; c < cols; c++) if (data[base + c] > m) m = data[base + c];
  return m;
}

/**
 * log Σ_c exp(x_c / T) for row r, shifted by the row maximum so that no exponential overflows (the
 * official `-log(sum(exp(logits)))` overflows in float32 for logits above ~88).
 */
export function rowLogSumExp(data: FloatMatrixData, r: number, cols: number, temperature = 1): number {
  const m = rowMax(data, r, cols) / temperature;
  return m + Math.log(rowSumExpShifted(data, r, cols, m, temperature));
}

/**
 * Σ_c exp(x_c / T − shift) for row r. With shift = max/T every term is <= 1 and the sum is in [1, C];
 * scores use it directly (e.g. msp = 1 / sum) instead of subtracting a large logsumexp from a large
 * logit, which would lose ~|logit|·1e-16 of absolute accuracy.
 */
export function rowSumExpShifted(data: FloatMatrixData, r: number, cols: number, shift: number, temperature = 1): number {
  const base = r * cols;
  let s = 0;
  for (let c = 0; c < cols; c++) s += Math.exp(data[base + c] / temperature - shift);
  return s;
}
