// One BEiT block (the reference's modeling_finetune.Block: x + drop_path(gamma_1 * attn(norm1(x))),
// then the same with mlp(norm2(.))) on the CPU in float32 as one autograd op with a hand-written
// backward.
//
// Why: on small models the block's gemms are only part of the step. The tiny BEiT of issue #18
// (dim 192, 65 tokens, batch 128) spent ~35 % of a PyTorch-eager train step outside its linear
// layers (torch.profiler, one thread): batched 65 x 65 x 64 attention products, q/k/v and output
// copies, separate passes for LayerNorm, bias adds, GELU, layer scale, drop path and residuals over
// 6-25 MB activations, in forward and backward, each allocating its result. Here every thread takes a contiguous range of
// the batch and runs the whole block on blocks of ~256 rows that stay in its L2 cache: gemms on
// raw buffers (core/gemm.h, one per thread, no joins), attention per (sample, head) straight out of
// the qkv rows, LayerNorm / residual / bias passes written for it, libtorch's own vectorised GELU
// and softmax kernels on the block's rows. Training saves only what the backward needs (qkv,
// attention probabilities, the attention output, the two branch outputs, the MLP pre-activation,
// the first residual and the LayerNorm statistics); the LayerNorm outputs and GELU(h) are
// recomputed there, in cache. Samples that drop path removes from a branch skip that branch, in
// forward and backward. Weight gradients are summed per thread and added at the end.
//
// Numerics: the reference's operations in float32 (libtorch's erf GELU and softmax kernels); sums
// run in another order (per row block, per thread) and the attention scale multiplies q k^T instead
// of q (as core/attention_cpu.h), so results differ from the module path by float32 rounding.
// Deterministic for a given thread count.
#pragma once
#include <ATen/ATen.h>

namespace mood {
namespace beit {

// The block's parameters as its modules hold them; undefined where the block has none (q_bias /
// v_bias without qkv_bias, gamma_1 / gamma_2 without layer scale).
struct BlockCpuParams {
  at::Tensor norm1_w, norm1_b, qkv_w, q_bias, v_bias, proj_w, proj_b, gamma_1, norm2_w, norm2_b, fc1_w, fc1_b, fc2_w,
      fc2_b, gamma_2;
  double eps1 = 1e-6, eps2 = 1e-6;
};

// One residual branch's drop path (timm's drop_path): branch.div(keep) * mask[b] per sample;
// mask [B] (or [B, 1, 1]) of 0 / 1; undefined: no drop path.
struct DropPathDraw {
  at::Tensor mask;
  double keep = 1.0;
};

// Whether block_cpu takes these operands: CPU float32 x [B, N, C] and parameters of the block's
// shapes, bias [heads, N, N] or undefined.
bool block_cpu_supported(const at::Tensor& x, const BlockCpuParams& p, const at::Tensor& bias, int64_t heads);

// The block's output [B, N, C]. Differentiable (first order) in x, every parameter and bias.
at::Tensor block_cpu(const at::Tensor& x, const BlockCpuParams& p, const at::Tensor& bias, int64_t heads, double scale,
                     const DropPathDraw& path1, const DropPathDraw& path2);

// Eval only (no autograd): the block's output averaged over tokens 1..N-1 (the reference's mean
// pooling, x[:, 1:].mean(1)), [B, C]. The MLP's second projection runs on the token mean of its
// input instead of on every token (linear, so the same value up to float32 rounding).
at::Tensor block_cpu_mean_pooled(const at::Tensor& x, const BlockCpuParams& p, const at::Tensor& bias, int64_t heads,
                                 double scale);

}  // namespace beit
}  // namespace mood
