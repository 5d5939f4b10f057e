#include "core/mim.h"

#include <ATen/CPUGeneratorImpl.h>
#include <torch/autograd.h>

#include <cmath>
#include <set>
#include <sstream>
#include <stdexcept>

#include "core/adamw.h"
#include "core/executor.h"
#include "core/ops.h"

namespace mood {
namespace mim {

namespace {

std::string tensor_str(const at::Tensor& t) {
  if (!t.defined()) return "undefined";
  return dtype_name(t.scalar_type()) + shape_str(t.sizes()) + " on " + t.device().str();
}

bool ends_with(const std::string& s, const std::string& suffix) {
  return s.size() >= suffix.size() && s.compare(s.size() - suffix.size(), suffix.size(), suffix) == 0;
}

// timm's trunc_normal_(t, std, a, b) by inverse-CDF sampling; the pre-training code truncates at +-std.
void trunc_normal(at::Tensor t, double std, c10::optional<at::Generator>& gen) {
  if (!t.defined() || t.device().is_meta()) return;
  at::NoGradGuard ng;
  const double a = -std, b = std;
  auto cdf = [](double x) { return (1.0 + std::erf(x / std::sqrt(2.0))) / 2.0; };
  const double l = cdf(a / std), u = cdf(b / std);
  at::Tensor tmp = at::empty(t.sizes(), t.options().device(at::kCPU));
  tmp.uniform_(2 * l - 1, 2 * u - 1, gen);
  tmp.erfinv_().mul_(std * std::sqrt(2.0)).clamp_(a, b);
  t.copy_(tmp);
}

}  // namespace

// ---- options -------------------------------------------------------------------------------------

int64_t MimOptions::head_dim() const {
  return target == Target::kPixels ? backbone.patch_size * backbone.patch_size * backbone.in_chans : vocab_size;
}

void MimOptions::validate() const {
  backbone.validate();
  if (target == Target::kTokens && vocab_size < 2)
    throw std::invalid_argument("MIM options: vocab_size must be >= 2 for token targets, got " + std::to_string(vocab_size));
  if (!(init_std > 0)) throw std::invalid_argument("MIM options: init_std must be positive");
}

MimOptions config(const std::string& name) {
  const std::string suffix = "_8k_vocab";
  auto known = [] {
    std::string s;
    for (auto& n : config_names()) s += (s.empty() ? "" : ", ") + n;
    return s;
  };
  if (!ends_with(name, suffix))
    throw std::invalid_argument("unknown MIM model '" + name + "' (known: " + known() + ")");
  const std::string base = name.substr(0, name.size() - suffix.size());
  if (base != "beit_base_patch16_224" && base != "beit_large_patch16_224" && base != "beit_test_tiny" &&
      base != "beit_test_micro")
    throw std::invalid_argument("unknown MIM model '" + name + "' (known: " + known() + ")");
  MimOptions o;
  o.backbone = beit::config(base);
  o.backbone.num_classes = 0;
  o.backbone.use_mean_pooling = false;
  o.vocab_size = 8192;
  return o;
}

std::vector<std::string> config_names() {
  return {"beit_base_patch16_224_8k_vocab", "beit_large_patch16_224_8k_vocab", "beit_test_tiny_8k_vocab",
          "beit_test_micro_8k_vocab"};
}

at::Tensor patchify(const at::Tensor& images, int64_t p) {
  const int64_t B = images.size(0), C = images.size(1), H = images.size(2), W = images.size(3);
  return images.reshape({B, C, H / p, p, W / p, p}).permute({0, 2, 4, 3, 5, 1}).reshape({B, (H / p) * (W / p), p * p * C});
}

// ---- the model -----------------------------------------------------------------------------------

MimImpl::MimImpl(MimOptions o) : options_(std::move(o)) {
  options_.backbone.num_classes = 0;
  options_.backbone.use_mean_pooling = false;
  options_.validate();
  const c10::Device target_device = options_.backbone.device;
  const bool meta = target_device.is_meta();
  beit::BeitOptions bo = options_.backbone;
  bo.device = meta ? c10::Device(c10::kMeta) : c10::Device(c10::kCPU);  // build on the CPU, move at the end
  bo.seed = -1;  // our own initialisation follows
  backbone_ = std::make_shared<beit::BeitImpl>(bo);
  at::TensorOptions to = at::TensorOptions().dtype(bo.dtype).device(bo.device);
  const int64_t C = bo.embed_dim;

  // Registration order = the reference's state-dict order.
  cls_token = register_parameter("cls_token", backbone_->cls_token);
  mask_token = register_parameter("mask_token", at::zeros({1, 1, C}, to));
  if (backbone_->pos_embed.defined()) pos_embed = register_parameter("pos_embed", backbone_->pos_embed);
  patch_embed = register_module("patch_embed", backbone_->patch_embed);
  if (backbone_->rel_pos_bias) rel_pos_bias = register_module("rel_pos_bias", backbone_->rel_pos_bias);
  blocks = register_module("blocks", backbone_->blocks);
  norm = register_module("norm", backbone_->norm);
  lm_head = register_module("lm_head", beit::Linear(C, options_.head_dim(), true, to));

  reset_parameters(options_.backbone.seed);
  if (!meta && !target_device.is_cpu()) this->to(target_device);
}

void MimImpl::reset_parameters(int64_t seed) {
  if (cls_token.device().is_meta()) return;
  c10::optional<at::Generator> gen;
  if (seed >= 0) gen = at::make_generator<at::CPUGeneratorImpl>(static_cast<uint64_t>(seed));
  const double s = options_.init_std;
  at::NoGradGuard ng;
  // As the reference: pos_embed, cls_token, mask_token, lm_head, then every Linear / LayerNorm / patch
  // conv (trunc_normal weights, zero biases), then block-depth rescaling of attn.proj and mlp.fc2.
  if (pos_embed.defined()) trunc_normal(pos_embed, s, gen);
  trunc_normal(cls_token, s, gen);
  trunc_normal(mask_token, s, gen);
  trunc_normal(lm_head->weight, s, gen);
  for (auto& m : modules(/*include_self=*/false)) {
    if (auto* lin = m->as<beit::LinearImpl>()) {
      trunc_normal(lin->weight, s, gen);
      if (lin->bias.defined()) lin->bias.zero_();
    } else if (auto* ln = m->as<beit::LayerNormImpl>()) {
      ln->weight.fill_(1.0);
      ln->bias.zero_();
    } else if (auto* conv = m->as<beit::PatchConvImpl>()) {
      trunc_normal(conv->weight, s, gen);
      conv->bias.zero_();
    }
  }
  for (size_t i = 0; i < backbone_->block_list.size(); ++i) {
    auto& b = backbone_->block_list[i];
    if (b->gamma_1.defined()) {
      b->gamma_1.fill_(options_.backbone.init_values);
      b->gamma_2.fill_(options_.backbone.init_values);
    }
    if (b->attn->q_bias.defined()) {
      b->attn->q_bias.zero_();
      b->attn->v_bias.zero_();
    }
    if (b->attn->relative_position_bias_table.defined()) b->attn->relative_position_bias_table.zero_();
    const double r = std::sqrt(2.0 * static_cast<double>(i + 1));
    b->attn->proj->weight.div_(r);
    b->mlp->fc2->weight.div_(r);
  }
  if (rel_pos_bias) rel_pos_bias->relative_position_bias_table.zero_();
}

at::Tensor MimImpl::check_mask(const at::Tensor& x, const at::Tensor& mask) const {
  backbone_->check_input(x);
  const int64_t B = x.size(0), N = options_.backbone.num_patches();
  auto fail = [&](const std::string& why) {
    throw std::invalid_argument("MIM mask: expected bool[" + std::to_string(B) + ", " + std::to_string(N) +
                                "] (true = masked patch), got " + tensor_str(mask) + " (" + why + ")");
  };
  if (!mask.defined()) fail("no tensor");
  at::Tensor m = mask.dim() == 3 ? mask.flatten(1) : mask;  // [B, gh, gw] grids as the reference's masks
  if (m.dim() != 2 || m.size(0) != B || m.size(1) != N) fail("wrong shape");
  if (m.scalar_type() != at::kBool) {
    if (at::isFloatingType(m.scalar_type())) fail("floating dtype");
    m = m.ne(0);
  }
  return m.to(x.device());
}

at::Tensor MimImpl::forward_features(const at::Tensor& x, const at::Tensor& mask) {
  at::Tensor m = check_mask(x, mask);
  const bool train = is_training();
  at::Tensor t = patch_embed->forward(x);  // [B, N, C]
  const int64_t B = t.size(0), N = t.size(1);
  // The reference's blend (not a masked_fill): gradients reach mask_token through w.
  at::Tensor w = m.unsqueeze(-1).to(t.scalar_type());
  t = t * (1 - w) + mask_token.expand({B, N, -1}) * w;
  t = at::cat({cls_token.expand({B, -1, -1}), t}, 1);
  if (pos_embed.defined()) t = t + pos_embed;
  const double drop = options_.backbone.drop_rate;
  if (drop > 0 && train) t = at::dropout(t, drop, true);
  at::Tensor shared;
  if (rel_pos_bias) shared = rel_pos_bias->forward();
  for (auto& b : backbone_->block_list) t = b->forward(t, shared);
  return norm->forward(t);
}

at::Tensor MimImpl::forward(const at::Tensor& x, const at::Tensor& mask, bool all_tokens) {
  at::Tensor t = forward_features(x, mask).slice(1, 1);
  if (all_tokens) return lm_head->forward(t);
  at::Tensor m = check_mask(x, mask);
  return lm_head->forward(t.index({m}));
}

// ---- state dict ----------------------------------------------------------------------------------

namespace {

const StateRules& mim_rules() {
  static const StateRules rules{"VisionTransformerForMaskedImageModeling", {"relative_position_index"}, [](const std::string& name) {
    return name == "lm_head.weight" || name == "lm_head.bias"
               ? std::string(" (lm_head width is the vocabulary size for token targets, patch*patch*3 for pixel targets)")
               : std::string();
  }};
  return rules;
}

}  // namespace

std::vector<beit::StateEntry> MimImpl::state_dict_entries(bool include_buffers) const {
  return collect_state(*this, include_buffers);
}

beit::LoadResult MimImpl::check_keys(const std::vector<std::string>& names) const {
  return check_state_keys(state_dict_entries(true), names, mim_rules());
}

beit::LoadResult MimImpl::load_state_dict(const std::map<std::string, at::Tensor>& sd, bool strict) {
  return load_state(state_dict_entries(true), sd, strict, mim_rules());
}

// ---- loss ----------------------------------------------------------------------------------------

LossResult mim_loss(MimImpl& model, const at::Tensor& x, const at::Tensor& mask, const at::Tensor& target) {
  at::Tensor m = model.check_mask(x, mask);
  LossResult r;
  r.masked = m.sum().item<int64_t>();
  if (r.masked == 0) throw std::invalid_argument("MIM mask selects no patch (nothing to predict)");
  const auto& o = model.options();
  if (o.target == Target::kTokens) {
    const int64_t N = o.backbone.num_patches();
    if (!target.defined() || target.dim() != 2 || target.size(0) != x.size(0) || target.size(1) != N ||
        target.scalar_type() != at::kLong)
      throw std::invalid_argument("MIM token targets: expected int64[" + std::to_string(x.size(0)) + ", " +
                                  std::to_string(N) + "] token ids, got " + tensor_str(target));
    at::Tensor labels = target.to(x.device()).index({m});
    const int64_t lo = labels.min().item<int64_t>(), hi = labels.max().item<int64_t>();
    if (lo < 0 || hi >= o.vocab_size)
      throw std::invalid_argument("MIM token targets: ids must be in [0, " + std::to_string(o.vocab_size) + "), got " +
                                  std::to_string(lo) + ".." + std::to_string(hi));
    at::Tensor logits = model.forward(x, m).to(at::kFloat);
    r.loss = at::cross_entropy_loss(logits, labels);
    r.accuracy = logits.detach().argmax(-1).eq(labels).to(at::kFloat).mean();
  } else {
    at::Tensor want;
    {
      at::NoGradGuard ng;
      want = patchify(x, o.backbone.patch_size).to(at::kFloat);
      if (o.norm_pix) {
        at::Tensor mean = want.mean(-1, true);
        at::Tensor var = want.var(-1, /*unbiased=*/true, /*keepdim=*/true);
        want = (want - mean) / (var + 1e-6).sqrt();
      }
      want = want.index({m});
    }
    at::Tensor pred = model.forward(x, m).to(at::kFloat);
    r.loss = (pred - want).pow(2).mean();
  }
  return r;
}

ParamGroups parameter_groups(MimImpl& model) {
  ParamGroups g;
  for (auto& p : model.named_parameters(/*recurse=*/true)) {
    if (!p.value().requires_grad()) continue;
    const std::string& n = p.key();
    if (p.value().dim() == 1 || ends_with(n, ".bias") || n == "pos_embed" || n == "cls_token") {
      g.no_decay_names.push_back(n);
      g.no_decay.push_back(p.value());
    } else {
      g.decay_names.push_back(n);
      g.decay.push_back(p.value());
    }
  }
  return g;
}

// ---- trainer -------------------------------------------------------------------------------------

Trainer::Trainer(std::shared_ptr<MimImpl> model, double beta1, double beta2, double eps)
    : model_(std::move(model)), beta1_(beta1), beta2_(beta2), eps_(eps) {
  if (!model_) throw std::invalid_argument("MIM trainer: no model");
  if (!(beta1 >= 0 && beta1 < 1 && beta2 >= 0 && beta2 < 1))
    throw std::invalid_argument("MIM trainer: --opt_betas must be in [0, 1)");
  if (!(eps > 0)) throw std::invalid_argument("MIM trainer: --opt_eps must be positive");
  groups_ = parameter_groups(*model_);
  at::NoGradGuard ng;
  auto init = [&](const std::vector<std::string>& names, const std::vector<at::Tensor>& ps) {
    for (size_t i = 0; i < names.size(); ++i) moments_[names[i]] = {at::zeros_like(ps[i]), at::zeros_like(ps[i])};
  };
  init(groups_.decay_names, groups_.decay);
  init(groups_.no_decay_names, groups_.no_decay);
}

StepResult Trainer::step(const at::Tensor& x, const at::Tensor& mask, const at::Tensor& target, const StepOptions& o) {
  MimImpl& model = *model_;
  model.train(true);
  at::AutoGradMode grad_mode(true);
  // A per-step seed makes drop path a function of the step, not of every draw before it: a run resumed
  // from a checkpoint draws what the uninterrupted run drew.
  if (o.seed >= 0) at::manual_seed(static_cast<uint64_t>(o.seed));
  for (auto& p : model.parameters()) p.mutable_grad() = at::Tensor();
  LossResult lr = mim_loss(model, x, mask, target);
  StepResult r;
  r.loss = lr.loss.detach().item<float>();
  r.masked = lr.masked;
  if (lr.accuracy.defined()) r.accuracy = lr.accuracy.item<float>();
  if (!std::isfinite(r.loss))
    throw std::runtime_error("MIM loss is " + std::to_string(r.loss) + ", stopping training (no update made)");
  if (sync_) sync_->begin_backward(/*sync=*/true);
  lr.loss.backward();
  if (sync_) sync_->finish_backward();  // every .grad() now holds the average over ranks

  at::NoGradGuard ng;
  // Global gradient norm (reported always, as the reference's loss scaler), clipped when asked:
  // torch.nn.utils.clip_grad_norm_, as the fine-tuning step (core/adamw.h).
  std::vector<at::Tensor> params = groups_.decay;
  params.insert(params.end(), groups_.no_decay.begin(), groups_.no_decay.end());
  r.grad_norm = optim::clip_grad_norm_(params, o.clip_grad).item<float>();

  ++steps_;
  optim::AdamWHyper h;
  h.lr = o.lr;
  h.beta1 = beta1_;
  h.beta2 = beta2_;
  h.eps = eps_;
  auto update = [&](const std::vector<std::string>& names, const std::vector<at::Tensor>& ps, double wd) {
    h.weight_decay = wd;
    for (size_t i = 0; i < ps.size(); ++i) {
      const at::Tensor& p = ps[i];
      if (!p.grad().defined()) continue;
      auto& mo = moments_.at(names[i]);
      // PyTorch's AdamW (torch/optim/adamw.py, single-tensor path).
      optim::adamw_update(p, p.grad(), mo.first, mo.second, static_cast<double>(steps_), h);
    }
  };
  update(groups_.decay_names, groups_.decay, o.weight_decay);
  update(groups_.no_decay_names, groups_.no_decay, 0.0);
  return r;
}

std::map<std::string, std::pair<at::Tensor, at::Tensor>> Trainer::moments() const { return moments_; }

void Trainer::set_grad_sync(std::shared_ptr<GradientSync> sync) {
  if (!sync) throw std::invalid_argument("MIM trainer: no gradient sync");
  if (sync_) throw std::invalid_argument("MIM trainer: a gradient sync is already attached");
  std::vector<at::Tensor> params = groups_.decay;
  params.insert(params.end(), groups_.no_decay.begin(), groups_.no_decay.end());
  sync->attach(params);
  sync_ = std::move(sync);
}

void Trainer::load_moments(const std::map<std::string, std::pair<at::Tensor, at::Tensor>>& m, int64_t steps) {
  if (steps < 0) throw std::invalid_argument("MIM trainer: optimizer step count must be >= 0");
  std::vector<std::string> problems;
  for (auto& kv : moments_) {
    auto it = m.find(kv.first);
    if (it == m.end()) {
      problems.push_back("missing moments for " + kv.first);
    } else if (it->second.first.sizes() != kv.second.first.sizes() || it->second.second.sizes() != kv.second.second.sizes()) {
      problems.push_back("moments of " + kv.first + " have shape " + shape_str(it->second.first.sizes()) + ", expected " +
                         shape_str(kv.second.first.sizes()));
    }
  }
  for (auto& kv : m)
    if (!moments_.count(kv.first)) problems.push_back("moments for unknown parameter " + kv.first);
  if (!problems.empty()) {
    std::string msg = "MIM trainer: cannot restore the optimizer state:";
    for (auto& p : problems) msg += "\n\t" + p;
    throw std::invalid_argument(msg);
  }
  at::NoGradGuard ng;
  for (auto& kv : moments_) {
    const auto& src = m.at(kv.first);
    kv.second.first.copy_(src.first);
    kv.second.second.copy_(src.second);
  }
  steps_ = steps;
}

}  // namespace mim
}  // namespace mood
