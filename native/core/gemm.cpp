#include "core/gemm.h"

#include <ATen/ATen.h>

extern "C" {
// oneDNN's C API (row-major; returns dnnl_status_t, 0 = success).
int dnnl_sgemm(char transa, char transb, int64_t M, int64_t N, int64_t K, float alpha, const float* A, int64_t lda,
               const float* B, int64_t ldb, float beta, float* C, int64_t ldc) __attribute__((weak));
// CBLAS (OpenBLAS): order 101 = row-major, trans 111 = no, 112 = yes.
void cblas_sgemm(int order, int transa, int transb, int M, int N, int K, float alpha, const float* A, int lda,
                 const float* B, int ldb, float beta, float* C, int ldc) __attribute__((weak));
}

namespace mood {
namespace {

bool fits_int(int64_t v) { return v >= 0 && v <= INT32_MAX; }

void via_cblas(bool ta, bool tb, int64_t M, int64_t N, int64_t K, float alpha, const float* A, int64_t lda, const float* B,
               int64_t ldb, float beta, float* C, int64_t ldc) {
  cblas_sgemm(101, ta ? 112 : 111, tb ? 112 : 111, static_cast<int>(M), static_cast<int>(N), static_cast<int>(K), alpha, A,
              static_cast<int>(lda), B, static_cast<int>(ldb), beta, C, static_cast<int>(ldc));
}

void via_aten(bool ta, bool tb, int64_t M, int64_t N, int64_t K, float alpha, const float* A, int64_t lda, const float* B,
              int64_t ldb, float beta, float* C, int64_t ldc) {
  const auto f = at::TensorOptions().dtype(at::kFloat);
  // Views with the buffers' strides: op(A) [M, K], op(B) [K, N], C [M, N].
  at::Tensor a = ta ? at::from_blob(const_cast<float*>(A), {M, K}, {1, lda}, f) : at::from_blob(const_cast<float*>(A), {M, K}, {lda, 1}, f);
  at::Tensor b = tb ? at::from_blob(const_cast<float*>(B), {K, N}, {1, ldb}, f) : at::from_blob(const_cast<float*>(B), {K, N}, {ldb, 1}, f);
  at::Tensor c = at::from_blob(C, {M, N}, {ldc, 1}, f);
  if (beta == 0.f) {
    at::mm_out(c, a, b);
    if (alpha != 1.f) c.mul_(alpha);
  } else {
    at::addmm_out(c, c, a, b, beta, alpha);
  }
}

}  // namespace

void sgemm(GemmSize size, bool ta, bool tb, int64_t M, int64_t N, int64_t K, float alpha, const float* A, int64_t lda,
           const float* B, int64_t ldb, float beta, float* C, int64_t ldc) {
  if (M <= 0 || N <= 0) return;
  if (K <= 0) {
    // C = beta * C (BLAS leaves C alone for beta 1; beta 0 must not read uninitialised memory).
    for (int64_t i = 0; i < M; ++i)
      for (int64_t j = 0; j < N; ++j) C[i * ldc + j] = beta == 0.f ? 0.f : beta * C[i * ldc + j];
    return;
  }
  const bool cblas_ok = cblas_sgemm && fits_int(M) && fits_int(N) && fits_int(K) && fits_int(lda) && fits_int(ldb) && fits_int(ldc);
  if (dnnl_sgemm && (size == GemmSize::kLarge || !cblas_ok)) {
    if (dnnl_sgemm(ta ? 'T' : 'N', tb ? 'T' : 'N', M, N, K, alpha, A, lda, B, ldb, beta, C, ldc) == 0) return;
  }
  if (cblas_ok) return via_cblas(ta, tb, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc);
  via_aten(ta, tb, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc);
}

std::string sgemm_backends() {
  if (dnnl_sgemm && cblas_sgemm) return "dnnl + openblas";
  if (dnnl_sgemm) return "dnnl";
  if (cblas_sgemm) return "openblas";
  return "aten";
}

}  // namespace mood
