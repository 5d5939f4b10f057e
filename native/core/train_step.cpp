#include "core/train_step.h"

#include "core/adamw.h"

#include <torch/autograd.h>

#include <cmath>
#include <map>
#include <stdexcept>

namespace mood {
namespace train {

namespace {

std::string shape_str(at::IntArrayRef s) {
  std::string r = "[";
  for (size_t i = 0; i < s.size(); ++i) r += (i ? ", " : "") + std::to_string(s[i]);
  return r + "]";
}

bool starts_with(const std::string& s, const std::string& p) { return s.compare(0, p.size(), p) == 0; }

}  // namespace

TrainStep::TrainStep(std::shared_ptr<beit::BeitImpl> model, TrainConfig cfg) : model_(std::move(model)), cfg_(std::move(cfg)) {
  if (!model_) throw std::invalid_argument("train step: no model");
  if (cfg_.update_freq < 1) throw std::invalid_argument("train step: update_freq must be >= 1, got " + std::to_string(cfg_.update_freq));
  if (!(cfg_.beta1 >= 0 && cfg_.beta1 < 1 && cfg_.beta2 >= 0 && cfg_.beta2 < 1))
    throw std::invalid_argument("train step: betas must lie in [0, 1)");
  if (!(cfg_.eps > 0)) throw std::invalid_argument("train step: eps must be > 0");
  if (cfg_.smoothing < 0 || cfg_.smoothing >= 1) throw std::invalid_argument("train step: smoothing must lie in [0, 1)");
  if (cfg_.ema_decay > 1) throw std::invalid_argument("train step: ema decay must be <= 1");

  std::map<std::string, at::Tensor> by_name;
  for (auto& e : model_->state_dict_entries(false)) by_name[e.name] = e.tensor;
  std::map<std::string, bool> used;
  for (size_t g = 0; g < cfg_.groups.size(); ++g) {
    for (auto& n : cfg_.groups[g]) {
      auto it = by_name.find(n);
      if (it == by_name.end()) throw std::invalid_argument("train step: param group " + std::to_string(g) + " names '" + n + "', which is not a parameter of the model");
      if (used[n]) throw std::invalid_argument("train step: parameter '" + n + "' is in two param groups");
      used[n] = true;
      params_.push_back(it->second);
      names_.push_back(n);
      group_of_.push_back(g);
      is_head_.push_back(starts_with(n, cfg_.head_prefix));
    }
  }
  if (params_.empty()) throw std::invalid_argument("train step: no parameter to train (every group is empty)");
  // Parameters outside the groups are frozen (the reference's requires_grad = False).
  for (auto& kv : by_name)
    if (!used[kv.first]) kv.second.set_requires_grad(false);
  for (auto& p : params_) p.set_requires_grad(true);

  step_.resize(params_.size());
  exp_avg_.resize(params_.size());
  exp_avg_sq_.resize(params_.size());
  l2_ref_.resize(params_.size());
  if (cfg_.l2_alpha > 0) {
    at::NoGradGuard ng;
    for (size_t i = 0; i < params_.size(); ++i)
      if (!is_head_[i]) l2_ref_[i] = params_[i].detach().clone();
  }
  if (cfg_.ema_decay > 0) {
    at::NoGradGuard ng;
    for (auto& e : model_->state_dict_entries(true)) {
      ema_.emplace_back(e.name, e.tensor.detach().clone());
      ema_src_.push_back(e.tensor);
    }
  }
  if (cfg_.grad_sync_id > 0) {
    sync_ = GradientSyncRegistry::instance().find(cfg_.grad_sync_id);
    if (!sync_) throw std::invalid_argument("train step: no gradient sync with id " + std::to_string(cfg_.grad_sync_id));
    sync_->attach(params_);
  }
}

at::Tensor TrainStep::compute_loss(const at::Tensor& logits, const MicroStep& s) const {
  // Half-precision logits (autocast) are upcast; float64 models keep float64 end to end.
  at::Tensor z = logits.scalar_type() == at::kDouble ? logits : logits.to(at::kFloat);
  if (s.soft_targets.defined()) {
    // timm SoftTargetCrossEntropy: sum(-target * log_softmax(x), -1).mean()
    return at::sum(-s.soft_targets.to(z.device(), z.scalar_type()) * at::log_softmax(z, -1), -1).mean();
  }
  // timm LabelSmoothingCrossEntropy ((1-s) nll + s mean(-logp)) is torch's label_smoothing formula.
  return at::cross_entropy_loss(z, s.targets.to(z.device(), at::kLong), {}, at::Reduction::Mean, -100, cfg_.smoothing);
}

at::Tensor TrainStep::l2sp_value() const {
  at::NoGradGuard ng;
  at::Tensor total = at::zeros({}, at::TensorOptions().dtype(at::kDouble).device(model_->param_device()));
  for (size_t i = 0; i < params_.size(); ++i) {
    if (is_head_[i] && cfg_.l2_beta > 0) total += 0.5 * cfg_.l2_beta * params_[i].detach().to(at::kDouble).pow(2).sum();
    else if (!is_head_[i] && cfg_.l2_alpha > 0) total += 0.5 * cfg_.l2_alpha * (params_[i].detach() - l2_ref_[i]).to(at::kDouble).pow(2).sum();
  }
  return total.to(model_->param_dtype());
}

void TrainStep::add_l2sp_grads() {
  // The gradient of the L2-SP term summed over the micro-steps (each adds it / update_freq):
  // alpha (w - w0) or beta w. Identical on every rank, so added after the all-reduce.
  at::NoGradGuard ng;
  for (size_t i = 0; i < params_.size(); ++i) {
    at::Tensor& p = params_[i];
    at::Tensor add;
    if (is_head_[i] && cfg_.l2_beta > 0) add = p.detach() * cfg_.l2_beta;
    else if (!is_head_[i] && cfg_.l2_alpha > 0) add = (p.detach() - l2_ref_[i]) * cfg_.l2_alpha;
    if (!add.defined()) continue;
    if (p.grad().defined()) p.mutable_grad().add_(add);
    else p.mutable_grad() = add;
  }
}

at::Tensor TrainStep::clip_and_norm() {
  // torch.nn.utils.clip_grad_norm_ (torch 1.13, norm 2), or the reference's get_grad_norm_.
  return optim::clip_grad_norm_(params_, cfg_.clip_grad);
}

void TrainStep::adamw(const MicroStep& s) {
  // torch.optim.AdamW, torch 1.13 _single_tensor_adamw (amsgrad=False, maximize=False), op for op.
  at::NoGradGuard ng;
  optim::AdamWHyper h;
  h.beta1 = cfg_.beta1;
  h.beta2 = cfg_.beta2;
  h.eps = cfg_.eps;
  for (size_t i = 0; i < params_.size(); ++i) {
    at::Tensor& p = params_[i];
    if (!p.grad().defined()) continue;  // PyTorch skips parameters without a gradient
    const size_t g = group_of_[i];
    h.lr = s.lrs[g];
    h.weight_decay = s.wds[g];
    if (!step_[i].defined()) {
      step_[i] = at::zeros({}, at::kFloat);
      exp_avg_[i] = at::zeros_like(p, at::MemoryFormat::Preserve);
      exp_avg_sq_[i] = at::zeros_like(p, at::MemoryFormat::Preserve);
    }
    step_[i] += 1;
    optim::adamw_update(p, p.grad(), exp_avg_[i], exp_avg_sq_[i], step_[i].item<double>(), h);
  }
}

void TrainStep::update_ema() {
  // timm ModelEma.update: ema = decay * ema + (1 - decay) * model, floating entries; others copied.
  at::NoGradGuard ng;
  const double d = cfg_.ema_decay;
  for (size_t i = 0; i < ema_.size(); ++i) {
    at::Tensor& e = ema_[i].second;
    const at::Tensor m = ema_src_[i].detach();
    if (at::isFloatingType(e.scalar_type())) e.copy_(e * d + (1. - d) * m);
    else e.copy_(m);
  }
}

StepResult TrainStep::step(const MicroStep& s) {
  if (s.last && (s.lrs.size() != cfg_.groups.size() || s.wds.size() != cfg_.groups.size()))
    throw std::invalid_argument("train step: expected " + std::to_string(cfg_.groups.size()) + " learning rates and weight decays (one per param group), got " +
                                std::to_string(s.lrs.size()) + " and " + std::to_string(s.wds.size()));
  if (!s.images.defined() || s.images.dim() != 4) throw std::invalid_argument("train step: images must be [B, C, H, W]");
  const int64_t b = s.images.size(0);
  if (s.soft_targets.defined()) {
    if (s.soft_targets.dim() != 2 || s.soft_targets.size(0) != b)
      throw std::invalid_argument("train step: soft targets must be [B, classes] with B = " + std::to_string(b) + ", got " + shape_str(s.soft_targets.sizes()));
  } else if (!s.targets.defined() || s.targets.dim() != 1 || s.targets.size(0) != b) {
    throw std::invalid_argument("train step: targets must be [B] with B = " + std::to_string(b));
  }
  if (s.seed >= 0) at::manual_seed(static_cast<uint64_t>(s.seed));

  if (s.first)
    for (auto& p : params_) p.mutable_grad() = at::Tensor();
  model_->train(true);
  at::AutoGradMode grad_mode(true);
  at::Tensor logits = model_->forward(s.images.to(model_->param_device(), model_->param_dtype()));
  at::Tensor loss = compute_loss(logits, s);
  at::Tensor reported = loss.detach().clone();
  if (cfg_.l2_alpha > 0 || cfg_.l2_beta > 0) reported += l2sp_value();
  StepResult r;
  r.loss = reported;
  r.grad_norm = at::full({}, NAN, reported.options());
  // The reference checks the loss before backward and stops: nothing is changed.
  if (!std::isfinite(reported.item<double>())) {
    r.finite = false;
    for (auto& p : params_) p.mutable_grad() = at::Tensor();
    return r;
  }
  if (sync_) sync_->begin_backward(s.last);
  (loss / static_cast<double>(cfg_.update_freq)).backward();
  if (sync_) sync_->finish_backward();
  if (!s.last) return r;
  add_l2sp_grads();
  r.grad_norm = clip_and_norm();
  adamw(s);
  if (!ema_.empty()) update_ema();
  return r;
}

std::vector<at::Tensor> TrainStep::state(size_t i) const {
  if (i >= params_.size()) throw std::out_of_range("train step: no parameter " + std::to_string(i));
  if (!step_[i].defined()) return {at::Tensor(), at::Tensor(), at::Tensor()};
  return {step_[i].clone(), exp_avg_[i].clone(), exp_avg_sq_[i].clone()};
}

void TrainStep::set_state(size_t i, const at::Tensor& step, const at::Tensor& exp_avg, const at::Tensor& exp_avg_sq) {
  if (i >= params_.size()) throw std::out_of_range("train step: optimizer state for parameter " + std::to_string(i) + ", the optimizer has " + std::to_string(params_.size()));
  const at::Tensor& p = params_[i];
  if (!exp_avg.defined() || !exp_avg_sq.defined() || !step.defined() || step.numel() != 1)
    throw std::invalid_argument("optimizer state " + std::to_string(i) + " (" + names_[i] + "): needs step, exp_avg and exp_avg_sq");
  if (exp_avg.sizes() != p.sizes() || exp_avg_sq.sizes() != p.sizes())
    throw std::invalid_argument("optimizer state " + std::to_string(i) + " (" + names_[i] + "): exp_avg " + shape_str(exp_avg.sizes()) + " / exp_avg_sq " +
                                shape_str(exp_avg_sq.sizes()) + " do not match the parameter " + shape_str(p.sizes()));
  at::NoGradGuard ng;
  step_[i] = step.reshape({}).to(at::kFloat).clone();
  exp_avg_[i] = exp_avg.to(p.device(), p.scalar_type()).clone();
  exp_avg_sq_[i] = exp_avg_sq.to(p.device(), p.scalar_type()).clone();
}

std::vector<at::Tensor> TrainStep::grads() const {
  std::vector<at::Tensor> r;
  for (auto& p : params_) r.push_back(p.grad().defined() ? p.grad().detach().clone() : at::zeros_like(p));
  return r;
}

std::vector<std::pair<std::string, at::Tensor>> TrainStep::ema_state() const {
  std::vector<std::pair<std::string, at::Tensor>> r;
  for (auto& e : ema_) r.emplace_back(e.first, e.second.clone());
  return r;
}

void TrainStep::set_ema(const std::string& name, const at::Tensor& t) {
  for (auto& e : ema_)
    if (e.first == name) {
      if (t.sizes() != e.second.sizes())
        throw std::invalid_argument("model_ema '" + name + "': shape " + shape_str(t.sizes()) + ", the model has " + shape_str(e.second.sizes()));
      at::NoGradGuard ng;
      e.second.copy_(t);
      return;
    }
  throw std::invalid_argument(ema_.empty() ? "model_ema given but EMA is off" : "model_ema has an unknown key '" + name + "'");
}

void TrainStep::set_l2_reference(const std::string& name, const at::Tensor& t) {
  for (size_t i = 0; i < params_.size(); ++i)
    if (names_[i] == name && l2_ref_[i].defined()) {
      if (t.sizes() != l2_ref_[i].sizes()) throw std::invalid_argument("L2-SP reference '" + name + "': shape mismatch");
      at::NoGradGuard ng;
      l2_ref_[i].copy_(t);
      return;
    }
  throw std::invalid_argument("L2-SP reference: '" + name + "' is not a regularised backbone parameter");
}

}  // namespace train
}  // namespace mood
