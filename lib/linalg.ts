/** Linear algebra over Tensors (float32/float64), as torch.linalg names it. */
import { Tensor } from './tensor';

/** Moore-Penrose pseudo-inverse; `hermitian` uses an eigendecomposition (faster, for covariances). */
export function pinv(a: Tensor, opts: { hermitian?: boolean; rcond?: number } = {}): Tensor {
  return Tensor.runOp('pinv', [a], { hermitian: opts.hermitian ?? false, rcond: opts.rcond })[0];
}
export function inv(a: Tensor): Tensor {
  return Tensor.runOp('inv', [a])[0];
}
/** Lower Cholesky factor L with A = L Lᵀ (`upper` gives U = Lᵀ). */
export function cholesky(a: Tensor, opts: { upper?: boolean } = {}): Tensor {
  return Tensor.runOp('cholesky', [a], { upper: opts.upper ?? false })[0];
}
/** Solves A X = B. */
export function solve(a: Tensor, b: Tensor): Tensor {
  return Tensor.runOp('solve', [a, b])[0];
}
/** Solves A X = B given the Cholesky factor of A. */
export function choleskySolve(b: Tensor, factor: Tensor, opts: { upper?: boolean } = {}): Tensor {
  return Tensor.runOp('cholesky_solve', [b, factor], { upper: opts.upper ?? false })[0];
}
/** Eigenvalues (ascending) and eigenvectors (columns) of a symmetric matrix. */
export function eigh(a: Tensor, opts: { uplo?: 'L' | 'U' } = {}): { eigenvalues: Tensor; eigenvectors: Tensor } {
  const [eigenvalues, eigenvectors] = Tensor.runOp('eigh', [a], { uplo: opts.uplo ?? 'L' });
  return { eigenvalues, eigenvectors };
}
export function det(a: Tensor): Tensor {
  return Tensor.runOp('det', [a])[0];
}
export function slogdet(a: Tensor): { sign: Tensor; logabsdet: Tensor } {
  const [sign, logabsdet] = Tensor.runOp('slogdet', [a]);
  return { sign, logabsdet };
}
/**
 * Covariance of the rows of `x` (variables) over its columns (observations), like torch.cov.
 * `correction: 0` is numpy's `np.cov(..., bias=True)`, what MOOD's Mahalanobis uses.
 */
export function cov(x: Tensor, opts: { correction?: number } = {}): Tensor {
  return Tensor.runOp('cov', [x], { correction: opts.correction ?? 1 })[0];
}
/**
 * xᵀx for a 2-D x (N x D), exactly symmetric. Uses BLAS syrk when libtorch's BLAS has it (half the
 * flops of a gemm, what numpy does for `x.T @ x`), else a matmul.
 */
export function gram(x: Tensor): Tensor {
  return Tensor.runOp('gram', [x])[0];
}
/** Pairwise p-norm distances between the rows of a (N×D) and b (M×D): N×M. */
export function cdist(a: Tensor, b: Tensor, p = 2): Tensor {
  return Tensor.runOp('cdist', [a, b], { p })[0];
}
