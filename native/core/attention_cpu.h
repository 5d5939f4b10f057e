// BEiT's attention core on the CPU as one autograd op: softmax(scale * q k^T + bias) v for every
// batch item and head, read straight out of the fused qkv projection and written straight into the
// layout the output projection takes.
//
// Why: the same math through at::matmul costs a BEiT-base train step ~0.45 s of ~2.7 s on 2 cores
// (per layer ~12 ms forward, ~25 ms backward, measured). bmm runs its 48 small (197 x 197 x 64)
// gemms one after another, each split over OpenBLAS's threads; q, k and v are copied out of the qkv
// layout and the output back into it; scale, bias and softmax are each a pass over [B, H, N, N].
// Here each (batch item, head) is one task on libtorch's intra-op threads: its gemms run single-
// threaded side by side on strided views (no copies), the bias comes in as the gemm's C operand and
// the scale as its alpha, and the backward pass sums the bias gradient per head without a
// [B, H, N, N] temporary. Per layer: ~5 ms forward, ~10 ms backward.
//
// Numerics: the gemms and the softmax (forward and backward) are libtorch's own CPU kernels on the
// same operands; the one difference to the reference is where the scale is applied
// (scale * (q k^T) instead of (q * scale) k^T), exact when the scale is a power of two
// (head_dim 64: 1/8) and within float32 rounding otherwise.
#pragma once
#include <ATen/ATen.h>

namespace mood {
namespace beit {

// Whether attention_cpu takes these operands: CPU float32, qkv [B, N, 3 * heads * head_dim] and bias
// [heads, N, N] or undefined.
bool attention_cpu_supported(const at::Tensor& qkv, const at::Tensor& bias, int64_t heads);

// Whether the core beats the math path at this size. Each (item, head) task costs ~30 ATen calls
// forward and backward, so it pays once its gemms are large: N * N * head_dim >= 2^20. Measured
// (depth-4 models, train step through the core vs the math path, alternating): N 197 / head_dim 64
// (BEiT at 224 px, 2.5M) 1.35x; N 145 / 64 (1.3M) 1.63x; N 65 / 64 (0.27M) 0.64x; N 50 / 24 (the
// Fashion-MNIST demo's model, 0.06M) 0.87x.
bool attention_cpu_pays(int64_t tokens, int64_t head_dim);

// qkv: the qkv projection's output, [B, N, 3 * D] with D = heads * head_dim (q | k | v, heads in
// order within each); bias: [heads, N, N] or undefined. Returns [B, N, D], heads side by side.
// Differentiable in qkv and bias (first order). No attention dropout: callers that need it take the
// math path.
at::Tensor attention_cpu(const at::Tensor& qkv, const at::Tensor& bias, int64_t heads, double scale);

}  // namespace beit
}  // namespace mood
