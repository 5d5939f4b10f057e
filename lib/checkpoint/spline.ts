/**
 * Interpolating cubic splines with not-a-knot ends, in float64. For s=0 and kx=ky=3, FITPACK's
 * `RectBivariateSpline` (what scipy's interp2d(kind='cubic') fits on a regular grid) places its interior
 * knots at x[2..m-3]: exactly the not-a-knot interpolant. On a grid the tensor-product interpolant is
 * unique, so interpolating rows then columns gives the same surface. Targets outside the data range are
 * clamped to the end points, as FITPACK's evaluator does for interp2d / the README's clipped targets.
 */

/**
 * Linear map from samples at `x` (strictly increasing, at least 4) to spline values at `targets`:
 * returns W (targets.length x x.length, row-major) with value(t_i) = sum_j W[i][j] * y_j.
 */
export function cubicSplineWeights(x: readonly number[], targets: readonly number[]): Float64Array {
  const n = x.length;
  if (n < 4) throw new RangeError(`a cubic spline needs at least 4 points, got ${n}`);
  for (let i = 1; i < n; i++) if (!(x[i] > x[i - 1])) throw new RangeError('spline abscissae must be strictly increasing');
  // Second derivatives M depend linearly on y: M = S y. Build S column by column from unit vectors.
  const S = new Float64Array(n * n);
  for (let j = 0; j < n; j++) {
    const y = new Float64Array(n);
    y[j] = 1;
    const M = secondDerivatives(x, y);
    for (let i = 0; i < n; i++) S[i * n + j] = M[i];
  }
  const W = new Float64Array(targets.length * n);
  for (let t = 0; t < targets.length; t++) {
    const xv = Math.min(Math.max(targets[t], x[0]), x[n - 1]);
    let k = 0;
    while (k < n - 2 && xv > x[k + 1]) k++;
    const h = x[k + 1] - x[k];
    const a = x[k + 1] - xv;
    const b = xv - x[k];
    // S(x) = M_k a^3/(6h) + M_{k+1} b^3/(6h) + (y_k/h - M_k h/6) a + (y_{k+1}/h - M_{k+1} h/6) b
    const cMk = (a * a * a) / (6 * h) - (h * a) / 6;
    const cMk1 = (b * b * b) / (6 * h) - (h * b) / 6;
    for (let j = 0; j < n; j++) {
      let w = cMk * S[k * n + j] + cMk1 * S[(k + 1) * n + j];
      if (j === k) w += a / h;
      if (j === k + 1) w += b / h;
      W[t * n + j] = w;
    }
  }
  return W;
}

/** Solve for the spline's second derivatives with not-a-knot conditions (dense elimination, n is small). */
function secondDerivatives(x: readonly number[], y: Float64Array): Float64Array {
  const n = x.length;
  const A = new Float64Array(n * n);
  const r = new Float64Array(n);
  const h = (i: number): number => x[i + 1] - x[i];
  // Not-a-knot at x1: third derivative continuous -> (M1-M0)/h0 = (M2-M1)/h1.
  A[0] = -1 / h(0);
  A[1] = 1 / h(0) + 1 / h(1);
  A[2] = -1 / h(1);
  for (let i = 1; i < n - 1; i++) {
    A[i * n + i - 1] = h(i - 1);
    A[i * n + i] = 2 * (h(i - 1) + h(i));
    A[i * n + i + 1] = h(i);
    r[i] = 6 * ((y[i + 1] - y[i]) / h(i) - (y[i] - y[i - 1]) / h(i - 1));
  }
  const L = (n - 1) * n;
  A[L + n - 3] = -1 / h(n - 3);
  A[L + n - 2] = 1 / h(n - 3) + 1 / h(n - 2);
  A[L + n - 1] = -1 / h(n - 2);
  return solve(A, r, n);
}

/** Gaussian elimination with partial pivoting. */
function solve(A: Float64Array, b: Float64Array, n: number): Float64Array {
  for (let c = 0; c < n; c++) {
    let p = c;
    for (let i = c + 1; i < n; i++) if (Math.abs(A[i * n + c]) > Math.abs(A[p * n + c])) p = i;
    if (A[p * n + c] === 0) throw new RangeError('singular spline system');
    if (p !== c) {
      for (let j = 0; j < n; j++) {
        const t = A[c * n + j];
        A[c * n + j] = A[p * n + j];
        A[p * n + j] = t;
      }
      const t = b[c];
      b[c] = b[p];
      b[p] = t;
    }
    for (let i = c + 1; i < n; i++) {
      const f = A[i * n + c] / A[c * n + c];
      if (f === 0) continue;
      for (let j = c; j < n; j++) A[i * n + j] -= f * A[c * n + j];
      b[i] -= f * b[c];
    }
  }
  const xs = new Float64Array(n);
  for (let i = n - 1; i >= 0; i--) {
    let s = b[i];
    for (let j = i + 1; j < n; j++) s -= A[i * n + j] * xs[j];
    xs[i] = s / A[i * n + i];
  }
  return xs;
}

/**
 * Bicubic spline resampling of a grid Z (rows x cols, row-major) sampled at (xr, xc) to the targets
 * (tr, tc): out[i][j] = spline(tr_i, tc_j). Same as RectBivariateSpline(xr, xc, Z, kx=3, ky=3, s=0)
 * evaluated on clipped targets.
 */
export function bicubicSplineGrid(
  Z: ArrayLike<number>,
  xr: readonly number[],
  xc: readonly number[],
  tr: readonly number[],
  tc: readonly number[],
): Float64Array {
  const R = xr.length;
  const C = xc.length;
  const Wr = cubicSplineWeights(xr, tr);
  const Wc = cubicSplineWeights(xc, tc);
  // tmp = Z Wc^T  (R x tc), then out = Wr tmp  (tr x tc)
  const tmp = new Float64Array(R * tc.length);
  for (let r = 0; r < R; r++) {
    for (let j = 0; j < tc.length; j++) {
      let s = 0;
      for (let c = 0; c < C; c++) s += Z[r * C + c] * Wc[j * C + c];
      tmp[r * tc.length + j] = s;
    }
  }
  const out = new Float64Array(tr.length * tc.length);
  for (let i = 0; i < tr.length; i++) {
    for (let j = 0; j < tc.length; j++) {
      let s = 0;
      for (let r = 0; r < R; r++) s += Wr[i * R + r] * tmp[r * tc.length + j];
      out[i * tc.length + j] = s;
    }
  }
  return out;
}
