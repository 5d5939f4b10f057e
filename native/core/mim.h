// Masked image modeling (BEiT pre-training) as a libtorch module in torch::nn style: the official
// `modeling_pretrain.VisionTransformerForMaskedImageModeling` built from BeitImpl's public pieces.
//
// State-dict names and order are those of the official `beit_*_patch16_224_8k_vocab` models, so the
// official `*_pt22k.pth` files load key for key and what we save fine-tunes through the BEiT adaptation:
//   cls_token, mask_token, pos_embed?, patch_embed.proj.{weight,bias},
//   rel_pos_bias.{relative_position_bias_table,relative_position_index}?, blocks.N.*, norm.{weight,bias},
//   lm_head.{weight,bias}
//
// Targets: visual tokens (cross-entropy over the tokenizer's vocabulary at masked positions, the
// reference's dall-e / customized dVAE path, given the token ids) or normalised pixels (SimMIM/MAE style
// regression of each masked patch, lm_head outputs patch*patch*in_chans values), which needs no tokenizer.
#pragma once
#include <ATen/ATen.h>
#include <torch/nn/module.h>
#include <torch/nn/modules/container/modulelist.h>
#include <torch/nn/pimpl.h>

#include <map>
#include <memory>
#include <string>
#include <vector>

#include "core/beit.h"
#include "core/grad_sync.h"

namespace mood {
namespace mim {

enum class Target {
  kTokens,  // int64 token ids [B, N] from a tokenizer; loss = cross-entropy at masked positions
  kPixels,  // per-patch normalised pixels of the input itself; loss = mean squared error at masked positions
};

struct MimOptions {
  // The backbone (img_size, patch_size, embed_dim, depth, heads, init_values, use_abs_pos_emb,
  // use_rel_pos_bias, use_shared_rel_pos_bias, drop_path_rate, layer_norm_eps, device, dtype, seed,
  // attention). use_mean_pooling and num_classes are ignored: the MIM model has `norm` and no head.
  beit::BeitOptions backbone;
  int64_t vocab_size = 8192;  // tokens: the tokenizer's vocabulary; pixels: ignored
  Target target = Target::kTokens;
  bool norm_pix = true;       // pixels: normalise each target patch by its mean / std (MAE's norm_pix_loss)
  double init_std = 0.02;     // trunc_normal std (truncated at +-std, as the reference's pre-training init)

  // lm_head width: vocab_size for tokens, patch*patch*in_chans for pixels.
  int64_t head_dim() const;
  void validate() const;
};

// The reference's pre-training factories: beit_{base,large}_patch16_224_8k_vocab (8192 tokens) and,
// for tests, beit_test_tiny_8k_vocab / beit_test_micro_8k_vocab (the small BEiT test geometries).
// Options follow the model class defaults (abs pos emb on, no shared rel pos bias, no layer scale);
// `mood pretrain` applies the script's flags on top.
MimOptions config(const std::string& name);
std::vector<std::string> config_names();

// Patches of NCHW images as rows: [B, (H/p)*(W/p), p*p*C], patch order row-major, values within a
// patch ordered (row, col, channel) like MAE's patchify.
at::Tensor patchify(const at::Tensor& images, int64_t patch);

class MimImpl : public torch::nn::Module {
 public:
  explicit MimImpl(MimOptions options);

  // Final-normed tokens [B, N+1, C] with masked patch embeddings replaced by mask_token.
  // mask: bool/uint8 [B, N] (N = patches), true = masked.
  at::Tensor forward_features(const at::Tensor& x, const at::Tensor& mask);
  // lm_head of the masked tokens [M, head_dim] (rows in row-major (batch, patch) order), or of every
  // patch token [B, N, head_dim] when all_tokens.
  at::Tensor forward(const at::Tensor& x, const at::Tensor& mask, bool all_tokens = false);

  // Throws std::invalid_argument naming what is wrong with the input / mask.
  at::Tensor check_mask(const at::Tensor& x, const at::Tensor& mask) const;

  std::vector<beit::StateEntry> state_dict_entries(bool include_buffers = true) const;
  beit::LoadResult load_state_dict(const std::map<std::string, at::Tensor>& sd, bool strict);
  beit::LoadResult check_keys(const std::vector<std::string>& names) const;
  void reset_parameters(int64_t seed = -1);

  const MimOptions& options() const { return options_; }
  beit::BeitImpl& backbone() { return *backbone_; }
  at::ScalarType param_dtype() const { return cls_token.scalar_type(); }
  c10::Device param_device() const { return cls_token.device(); }

  at::Tensor cls_token, mask_token, pos_embed;
  beit::PatchEmbed patch_embed{nullptr};
  beit::RelativePositionBias rel_pos_bias{nullptr};
  torch::nn::ModuleList blocks{nullptr};
  beit::LayerNorm norm{nullptr};
  beit::Linear lm_head{nullptr};

 private:
  MimOptions options_;
  std::shared_ptr<beit::BeitImpl> backbone_;  // owns the shared pieces; its forward is not used
};
TORCH_MODULE(Mim);

struct LossResult {
  at::Tensor loss;      // scalar float32 (graph attached)
  at::Tensor accuracy;  // tokens: share of masked positions predicted right (detached); pixels: undefined
  int64_t masked = 0;   // masked positions in the batch
};

// Forward and loss of one batch. target: int64 token ids [B, N] (tokens) or unused (pixels).
LossResult mim_loss(MimImpl& model, const at::Tensor& x, const at::Tensor& mask, const at::Tensor& target);

// The reference's parameter groups for AdamW: no weight decay for 1-D parameters, names ending in
// ".bias", and the model's no_weight_decay list {pos_embed, cls_token}.
struct ParamGroups {
  std::vector<std::string> decay_names, no_decay_names;
  std::vector<at::Tensor> decay, no_decay;
};
ParamGroups parameter_groups(MimImpl& model);

struct StepOptions {
  double lr = 5e-4;
  double weight_decay = 0.05;  // applied to the decay group only
  double clip_grad = 0.0;      // > 0: clip the global gradient norm
  int64_t seed = -1;           // >= 0: reseed the default generator first (drop path), as the fine-tuning step
};

struct StepResult {
  float loss = 0, accuracy = 0, grad_norm = 0;
  int64_t masked = 0;
};

// Model + AdamW (betas, eps as the reference's defaults: torch AdamW 0.9 0.999, --opt_eps 1e-8) over the
// reference's parameter groups: one call per optimisation step. The update is PyTorch's AdamW
// (decoupled decay, bias-corrected moments), written out so the moments are plain named tensors
// for checkpoints (libtorch's optimizer keys its state by tensor address, differently across versions).
class Trainer {
 public:
  Trainer(std::shared_ptr<MimImpl> model, double beta1 = 0.9, double beta2 = 0.999, double eps = 1e-8);
  // zero grads, forward, loss, backward, optional clipping, AdamW update. Throws on a non-finite loss
  // (nothing is updated then).
  StepResult step(const at::Tensor& x, const at::Tensor& mask, const at::Tensor& target, const StepOptions& o);

  // AdamW moments per parameter name (for checkpoints / resume): name -> {exp_avg, exp_avg_sq}, and the
  // step count (the same for every parameter).
  std::map<std::string, std::pair<at::Tensor, at::Tensor>> moments() const;
  int64_t steps() const { return steps_; }
  // Restores moments saved by moments(); every parameter must be present with its own shape.
  void load_moments(const std::map<std::string, std::pair<at::Tensor, at::Tensor>>& m, int64_t steps);

  MimImpl& model() { return *model_; }

  // Distributed data parallel: gradients are averaged over ranks by `sync` during backward (attached
  // once, parameters in a fixed order). Rank-0 weights are broadcast by the caller before training.
  void set_grad_sync(std::shared_ptr<GradientSync> sync);
  bool has_grad_sync() const { return static_cast<bool>(sync_); }

 private:
  std::shared_ptr<MimImpl> model_;
  ParamGroups groups_;
  double beta1_, beta2_, eps_;
  std::map<std::string, std::pair<at::Tensor, at::Tensor>> moments_;
  int64_t steps_ = 0;
  std::shared_ptr<GradientSync> sync_;
};

}  // namespace mim
}  // namespace mood
