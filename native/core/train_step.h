// The fine-tuning optimisation step of MOOD / BEiT (`engine_for_finetuning.train_one_epoch` with
// NativeScaler and torch.optim.AdamW) as one call per micro-batch, so TypeScript only decides the
// schedule (lr / weight decay per parameter group, per step) and the data.
//
// One micro-step: train-mode forward, loss (cross-entropy with label smoothing, or soft-target
// cross-entropy), optional L2-SP term, backward of loss / update_freq (gradients accumulate), the
// GradientSync hook (communication only on the final micro-step), and on the final micro-step:
// clip_grad_norm_ (or just the norm), AdamW (torch 1.13 single-tensor arithmetic, state in PyTorch's
// layout), optional model EMA. A non-finite loss skips backward and update (the reference stops).
#pragma once

#include <ATen/ATen.h>

#include <memory>
#include <string>
#include <vector>

#include "core/beit.h"
#include "core/grad_sync.h"

namespace mood {
namespace train {

struct TrainConfig {
  // Parameter names per optimizer param group, in optimizer order (PyTorch numbers the optimizer
  // state 0..N-1 over the groups in this order). Parameters in no group are frozen.
  std::vector<std::vector<std::string>> groups;
  double beta1 = 0.9, beta2 = 0.999, eps = 1e-8;
  double clip_grad = 0.0;   // > 0: clip_grad_norm_(max_norm); otherwise only the norm is measured
  double smoothing = 0.0;   // label smoothing of hard targets
  int64_t update_freq = 1;  // micro-steps per optimizer step (loss divided by it)
  // L2-SP: alpha/2 * ||w - w_pretrained||^2 over the backbone, beta/2 * ||w||^2 over the head.
  double l2_alpha = 0.0, l2_beta = 0.0;
  std::string head_prefix = "head.";
  double ema_decay = -1.0;    // in (0, 1]: keep an EMA of the state dict (timm ModelEma)
  int64_t grad_sync_id = 0;   // > 0: GradientSyncRegistry id
};

struct MicroStep {
  at::Tensor images;        // float [B, C, H, W]
  at::Tensor targets;       // int64 [B] (hard labels)
  at::Tensor soft_targets;  // float [B, K] or undefined
  bool first = true;        // first micro-step of an optimizer step: gradients start from zero
  bool last = true;         // final micro-step: sync, clip, update
  std::vector<double> lrs, wds;  // per group (used when last)
  int64_t seed = -1;        // >= 0: reseed the default generator first (drop path / dropout)
};

struct StepResult {
  at::Tensor loss;       // float32 scalar: the micro-batch loss (+ L2-SP), before / update_freq
  at::Tensor grad_norm;  // float32 scalar: total norm before clipping (NaN when not last)
  bool finite = true;    // false: loss non-finite, nothing was updated
};

class TrainStep {
 public:
  TrainStep(std::shared_ptr<beit::BeitImpl> model, TrainConfig cfg);

  StepResult step(const MicroStep& s);

  // Optimizer state in optimizer order: for parameter i, {step (float32 scalar), exp_avg,
  // exp_avg_sq} (undefined tensors until its first update). Tensors are copies.
  size_t num_params() const { return params_.size(); }
  const std::vector<std::string>& param_names() const { return names_; }
  std::vector<at::Tensor> state(size_t i) const;
  // Sets parameter i's state (copies); shapes are checked (std::invalid_argument naming the param).
  void set_state(size_t i, const at::Tensor& step, const at::Tensor& exp_avg, const at::Tensor& exp_avg_sq);

  // The EMA state dict (names as the model's state dict), copies; empty without EMA.
  std::vector<std::pair<std::string, at::Tensor>> ema_state() const;
  void set_ema(const std::string& name, const at::Tensor& t);
  // The L2-SP reference weights are the parameters when the step was built; this replaces them.
  void set_l2_reference(const std::string& name, const at::Tensor& t);

  // Current gradients in optimizer order (after the last step: clipped, with the L2-SP term), copies;
  // zeros where a parameter has none.
  std::vector<at::Tensor> grads() const;

  const TrainConfig& config() const { return cfg_; }

 private:
  at::Tensor compute_loss(const at::Tensor& logits, const MicroStep& s) const;
  at::Tensor l2sp_value() const;
  void add_l2sp_grads();
  at::Tensor clip_and_norm();
  void adamw(const MicroStep& s);
  void update_ema();

  std::shared_ptr<beit::BeitImpl> model_;
  TrainConfig cfg_;
  std::vector<at::Tensor> params_;       // optimizer order
  std::vector<std::string> names_;
  std::vector<size_t> group_of_;
  std::vector<bool> is_head_;
  std::vector<at::Tensor> l2_ref_;       // per param (undefined without l2_alpha)
  std::vector<at::Tensor> step_, exp_avg_, exp_avg_sq_;
  std::vector<std::pair<std::string, at::Tensor>> ema_;       // ema copies
  std::vector<at::Tensor> ema_src_;                           // the live model entries
  std::shared_ptr<GradientSync> sync_;
};

}  // namespace train
}  // namespace mood
