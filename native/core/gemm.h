// Single-threaded float32 GEMM on raw row-major buffers, for kernels that split their work over
// threads themselves (core/block_cpu.cpp): C = alpha * op(A) op(B) + beta * C on the calling thread.
//
// Why not at::mm: each ATen call costs a dispatch and tensor views (~5-10 us), as much as a whole
// 65 x 65 x 64 attention gemm (measured ~7 us in OpenBLAS); and a gemm split over OpenBLAS's own
// threads joins them after every call, where one gemm per thread on its own rows never waits.
//
// Backends, found at load time (weak symbols: none is linked for this): oneDNN's dnnl_sgemm (the
// libdnnl that libtorch links; its JIT kernels ran the block's row-block gemms (K = 96..768)
// 3-15 % faster than OpenBLAS on an AMD Zen 4, measured), OpenBLAS's cblas_sgemm (faster for the
// small attention gemms: 7 us against dnnl's 9-24 us for 65 x 65 x 64), else at::mm_out on views of
// the buffers (any libtorch). beta == 0: C's content is ignored (may be uninitialised).
#pragma once
#include <cstdint>
#include <string>

namespace mood {

enum class GemmSize {
  kLarge,  // row blocks of a layer (K and N in the hundreds): dnnl first
  kSmall,  // per-head attention products (tens of rows): OpenBLAS first
};

// Row-major: op(A) is [M, K] (A is [M, K] with row stride lda, or [K, M] when trans_a), op(B) is
// [K, N] (B is [K, N], or [N, K] when trans_b), C is [M, N] with row stride ldc. Runs on the calling
// thread: inside an OpenMP region or a BlasSingleThreadScope (OpenBLAS); callers outside either
// get the backend's own threading.
void sgemm(GemmSize size, bool trans_a, bool trans_b, int64_t M, int64_t N, int64_t K, float alpha, const float* A,
           int64_t lda, const float* B, int64_t ldb, float beta, float* C, int64_t ldc);

// "dnnl + openblas", "openblas", "dnnl" or "aten": which backends sgemm found.
std::string sgemm_backends();

}  // namespace mood
