// The optimizer arithmetic shared by fine-tuning (core/train_step) and MIM pre-training (core/mim):
// torch.nn.utils.clip_grad_norm_ and one parameter's torch.optim.AdamW update, both as torch 1.13
// computes them. Header-only; callers own the optimizer state (its layout differs: PyTorch's per-index
// state for fine-tuning, named moments for pre-training) and call these under at::NoGradGuard.
#pragma once

#include <ATen/ATen.h>

#include <cmath>
#include <vector>

namespace mood {
namespace optim {

// torch.nn.utils.clip_grad_norm_ (torch 1.13, norm 2) over the gradients of `params` (parameters
// without one are skipped): returns the total norm before clipping (float32 scalar on the gradients'
// device; zero when no parameter has a gradient). max_norm > 0 scales every gradient in place by
// min(1, max_norm / (total + 1e-6)); otherwise only the norm is measured (the reference's get_grad_norm_).
inline at::Tensor clip_grad_norm_(const std::vector<at::Tensor>& params, double max_norm) {
  at::NoGradGuard ng;
  std::vector<at::Tensor> norms;
  std::vector<at::Tensor> grads;
  for (auto& p : params)
    if (p.grad().defined()) {
      grads.push_back(p.grad());
      norms.push_back(at::norm(p.grad().detach(), 2));
    }
  if (grads.empty()) return at::zeros({}, at::kFloat);
  at::Tensor total = at::norm(at::stack(norms), 2);
  if (max_norm > 0) {
    at::Tensor coef = at::clamp(max_norm / (total + 1e-6), c10::nullopt, 1.0);
    for (auto& g : grads) g.detach().mul_(coef);
  }
  return total;
}

struct AdamWHyper {
  double lr = 1e-3, weight_decay = 0.0;
  double beta1 = 0.9, beta2 = 0.999, eps = 1e-8;
};

// One parameter's torch.optim.AdamW update, torch 1.13 _single_tensor_adamw (amsgrad=False,
// maximize=False), op for op: decoupled weight decay, moment updates, bias-corrected step.
// `step` is the parameter's step count after incrementing it (1 on the first update).
inline void adamw_update(const at::Tensor& param, const at::Tensor& grad, at::Tensor& exp_avg, at::Tensor& exp_avg_sq, double step,
                         const AdamWHyper& h) {
  at::NoGradGuard ng;
  const double b1 = h.beta1, b2 = h.beta2;
  at::Tensor pd = param.detach();
  pd.mul_(1 - h.lr * h.weight_decay);
  exp_avg.mul_(b1).add_(grad, 1 - b1);
  exp_avg_sq.mul_(b2).addcmul_(grad, grad, 1 - b2);
  const double bc1 = 1 - std::pow(b1, step);
  const double bc2 = 1 - std::pow(b2, step);
  const double step_size = h.lr / bc1;
  at::Tensor denom = (exp_avg_sq.sqrt() / std::sqrt(bc2)).add_(h.eps);
  pd.addcdiv_(exp_avg, denom, -step_size);
}

}  // namespace optim
}  // namespace mood
