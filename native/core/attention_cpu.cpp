#include "core/attention_cpu.h"

#include <c10/core/InferenceMode.h>
#include <torch/csrc/autograd/custom_function.h>

#include <string>

#include "core/parallel.h"
#include "core/runtime.h"

namespace mood {
namespace beit {
namespace {

struct Geometry {
  int64_t B, N, H, C, D;  // batch, tokens, heads, head dim, heads * head dim
};

Geometry geometry_of(const at::Tensor& qkv, int64_t heads) {
  const int64_t D = qkv.size(2) / 3;
  return {qkv.size(0), qkv.size(1), heads, D / heads, D};
}

// q, k or v of one batch item and head: [N, C] rows of the qkv projection (row stride 3D).
at::Tensor head_slice(const at::Tensor& rows, const Geometry& g, int64_t which, int64_t h) {
  return rows.narrow(1, which * g.D + h * g.C, g.C);
}

// Forward for every (batch item, head); `probs` [B, H, N, N] receives the attention probabilities
// when defined (kept for backward), else each task works in a scratch buffer.
at::Tensor forward_impl(const at::Tensor& qkv, const at::Tensor& bias, const Geometry& g, double scale,
                        const at::Tensor& probs) {
  at::Tensor out = at::empty({g.B, g.N, g.D}, qkv.options());
  const bool inference = c10::InferenceMode::is_enabled();
  BlasSingleThreadScope blas;
  parallel_items_aten(g.B * g.H, 1, [&](int64_t item) {
    AtenTaskState state(inference);
    const int64_t b = item / g.H, h = item % g.H;
    const at::Tensor rows = qkv.select(0, b);
    const at::Tensor q = head_slice(rows, g, 0, h), k = head_slice(rows, g, 1, h), v = head_slice(rows, g, 2, h);
    at::Tensor s = probs.defined() ? probs.select(0, b).select(0, h) : at::empty({g.N, g.N}, qkv.options());
    // s = bias + scale * q k^T in one gemm (bias as C with beta 1; with beta 0 C's content is ignored).
    if (bias.defined()) at::addmm_out(s, bias.select(0, h), q, k.t(), 1.0, scale);
    else at::addmm_out(s, s, q, k.t(), 0.0, scale);
    at::_softmax_out(s, s, 1, false);
    at::Tensor o = out.select(0, b).narrow(1, h * g.C, g.C);
    at::mm_out(o, s, v);
  });
  return out;
}

// Gradients of qkv (always) and bias (when `dbias` is defined, [H, N, N]). Tasks are heads, each
// looping over the batch, so a head's bias gradient is summed by one thread.
at::Tensor backward_impl(const at::Tensor& grad_out, const at::Tensor& qkv, const at::Tensor& probs,
                         const Geometry& g, double scale, const at::Tensor& dbias) {
  at::Tensor dqkv = at::empty({g.B, g.N, 3 * g.D}, qkv.options());
  BlasSingleThreadScope blas;
  parallel_items_aten(g.H, 1, [&](int64_t h) {
    AtenTaskState state(false);
    at::Tensor dp = at::empty({g.N, g.N}, qkv.options()), ds = at::empty({g.N, g.N}, qkv.options());
    for (int64_t b = 0; b < g.B; ++b) {
      const at::Tensor rows = qkv.select(0, b), drows = dqkv.select(0, b);
      const at::Tensor q = head_slice(rows, g, 0, h), k = head_slice(rows, g, 1, h), v = head_slice(rows, g, 2, h);
      at::Tensor dq = head_slice(drows, g, 0, h), dk = head_slice(drows, g, 1, h), dv = head_slice(drows, g, 2, h);
      const at::Tensor p = probs.select(0, b).select(0, h);
      const at::Tensor go = grad_out.select(0, b).narrow(1, h * g.C, g.C);
      at::mm_out(dp, go, v.t());  // dP = dO v^T
      at::mm_out(dv, p.t(), go);  // dV = P^T dO
      at::_softmax_backward_data_out(ds, dp, p, 1, at::kFloat);  // dS = P * (dP - rowsum(dP * P))
      if (dbias.defined()) {
        at::Tensor db = dbias.select(0, h);
        if (b == 0) db.copy_(ds);
        else db.add_(ds);
      }
      at::addmm_out(dq, dq, ds, k, 0.0, scale);      // dQ = scale dS K
      at::addmm_out(dk, dk, ds.t(), q, 0.0, scale);  // dK = scale dS^T Q
    }
  });
  return dqkv;
}

struct AttentionCpuFunction : public torch::autograd::Function<AttentionCpuFunction> {
  static at::Tensor forward(torch::autograd::AutogradContext* ctx, const at::Tensor& qkv, const at::Tensor& bias,
                            int64_t heads, double scale) {
    const Geometry g = geometry_of(qkv, heads);
    at::Tensor probs = at::empty({g.B, g.H, g.N, g.N}, qkv.options());
    // No bias comes as an empty tensor: custom functions of libtorch 1.13 reject undefined inputs.
    const bool has_bias = bias.numel() > 0;
    at::Tensor out = forward_impl(qkv.detach(), has_bias ? bias.detach() : at::Tensor(), g, scale, probs);
    ctx->save_for_backward({qkv});
    ctx->saved_data["probs"] = probs;
    ctx->saved_data["heads"] = heads;
    ctx->saved_data["scale"] = scale;
    ctx->saved_data["has_bias"] = has_bias;
    return out;
  }

  static torch::autograd::variable_list backward(torch::autograd::AutogradContext* ctx,
                                                 torch::autograd::variable_list grads) {
    const at::Tensor qkv = ctx->get_saved_variables()[0].detach();
    const at::Tensor probs = ctx->saved_data["probs"].toTensor();
    const Geometry g = geometry_of(qkv, ctx->saved_data["heads"].toInt());
    const bool bias_grad = ctx->saved_data["has_bias"].toBool() && ctx->needs_input_grad(1);
    at::Tensor dbias = bias_grad ? at::empty({g.H, g.N, g.N}, qkv.options()) : at::Tensor();
    at::Tensor dqkv = backward_impl(grads[0].detach().contiguous(), qkv, probs, g,
                                    ctx->saved_data["scale"].toDouble(), dbias);
    return {dqkv, dbias, at::Tensor(), at::Tensor()};
  }
};

}  // namespace

bool attention_cpu_pays(int64_t tokens, int64_t head_dim) { return tokens * tokens * head_dim >= (int64_t{1} << 20); }

bool attention_cpu_supported(const at::Tensor& qkv, const at::Tensor& bias, int64_t heads) {
  if (!qkv.defined() || !qkv.device().is_cpu() || qkv.scalar_type() != at::kFloat || qkv.dim() != 3) return false;
  if (heads <= 0 || qkv.size(2) % (3 * heads) != 0) return false;
  if (!bias.defined()) return true;
  const int64_t N = qkv.size(1);
  return bias.device().is_cpu() && bias.scalar_type() == at::kFloat && bias.dim() == 3 && bias.size(0) == heads &&
         bias.size(1) == N && bias.size(2) == N;
}

at::Tensor attention_cpu(const at::Tensor& qkv, const at::Tensor& bias, int64_t heads, double scale) {
  TORCH_CHECK(attention_cpu_supported(qkv, bias, heads),
              "attention_cpu: expected CPU float32 qkv [B, N, 3 * heads * head_dim] with heads = ", heads,
              " and bias [heads, N, N] or none; got qkv ", qkv.defined() ? qkv.toString() : std::string("undefined"),
              " ", qkv.defined() ? qkv.sizes() : at::IntArrayRef{}, ", bias ",
              bias.defined() ? bias.sizes() : at::IntArrayRef{});
  const at::Tensor q = qkv.contiguous();
  const at::Tensor bc = bias.defined() ? bias.contiguous() : bias;
  const bool grad = at::GradMode::is_enabled() && (q.requires_grad() || (bc.defined() && bc.requires_grad()));
  if (!grad) return forward_impl(q, bc, geometry_of(q, heads), scale, at::Tensor());
  return AttentionCpuFunction::apply(q, bc.defined() ? bc : at::empty({0}, q.options()), heads, scale);
}

}  // namespace beit
}  // namespace mood
