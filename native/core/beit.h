// BEiT (the vision transformer of MOOD / BEiT fine-tuning) as a libtorch module in torch::nn style.
//
// Parameter and buffer names, shapes and state-dict order are exactly those of the official
// `modeling_finetune.VisionTransformer` (BEiT / MOOD), so official checkpoints load key for key:
//   cls_token, pos_embed?, patch_embed.proj.{weight,bias}, rel_pos_bias.{relative_position_bias_table,
//   relative_position_index}?, blocks.N.{gamma_1?, gamma_2?, norm1, attn.{q_bias?, v_bias?,
//   relative_position_bias_table?, relative_position_index?, qkv.weight, proj}, norm2, mlp.{fc1,fc2}},
//   norm | fc_norm, head?
//
// The leaf layers (Linear, LayerNorm, the patch convolution) are small torch::nn::Module subclasses
// of our own so that a model can be built on the meta device (names and shapes of a 300M-parameter
// model without allocating it) and initialised like the reference (trunc_normal std 0.02, ...).
#pragma once
#include <ATen/ATen.h>
#include <torch/nn/module.h>
#include <torch/nn/modules/container/modulelist.h>
#include <torch/nn/pimpl.h>

#include <map>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "core/state_dict.h"

namespace mood {
namespace beit {

enum class AttentionMode {
  kAuto,   // CPU float32: the native attention core (attention_cpu.h) where it pays
           // (attention_cpu_pays); elsewhere fused scaled_dot_product_attention where libtorch has
           // it (>= 2.0), else exact
  kCore,   // the native CPU attention core whatever the size (CPU float32, no attention dropout
           // while training; anything else is an error)
  kExact,  // float32 math as the reference: softmax(q*scale @ k^T + bias) @ v
  kFused,  // at::scaled_dot_product_attention with the bias as attn_mask (error if unavailable)
};

struct BeitOptions {
  // The keyword names of the reference constructor. Defaults are those of the official
  // `beit_base_patch16_224` factory (eps 1e-6, qkv_bias True) over the class defaults.
  int64_t img_size = 224;
  int64_t patch_size = 16;
  int64_t in_chans = 3;
  int64_t num_classes = 1000;  // 0: no head (logits = features)
  int64_t embed_dim = 768;
  int64_t depth = 12;
  int64_t num_heads = 12;
  double mlp_ratio = 4.0;
  bool qkv_bias = true;
  double init_values = 0.0;  // layer scale (gamma_1/gamma_2); 0 disables them
  bool use_abs_pos_emb = true;
  bool use_rel_pos_bias = false;
  bool use_shared_rel_pos_bias = false;
  bool use_mean_pooling = true;
  double drop_rate = 0.0;
  double attn_drop_rate = 0.0;
  double drop_path_rate = 0.0;  // linear over depth: block i gets rate * i / (depth - 1)
  double layer_norm_eps = 1e-6;
  double init_scale = 0.001;  // head weight and bias scaled by this after init

  // Construction (not part of the reference signature).
  c10::Device device{c10::kCPU};       // c10::kMeta: shapes only, no memory, no init
  at::ScalarType dtype = at::kFloat;   // parameter dtype (float32 or float64)
  int64_t seed = -1;                   // >= 0: deterministic init from its own generator
  AttentionMode attention = AttentionMode::kAuto;
  // CUDA only: run blocks under autocast with this dtype (kHalf / kBFloat16); ignored on CPU.
  std::optional<at::ScalarType> autocast;

  int64_t grid() const { return img_size / patch_size; }
  int64_t num_patches() const { return grid() * grid(); }
  int64_t head_dim() const { return embed_dim / num_heads; }
  int64_t mlp_hidden() const { return static_cast<int64_t>(static_cast<double>(embed_dim) * mlp_ratio); }
  // Throws std::invalid_argument naming the offending option.
  void validate() const;
};

// Named configurations: beit_base_patch16_{224,384}, beit_large_patch16_{224,384,512},
// and small test models beit_test_tiny (img 32, patch 8, dim 48, depth 2, 4 heads: the fixture
// geometry) and beit_test_micro (img 16, patch 8, dim 16, depth 2, 2 heads).
BeitOptions config(const std::string& name);
std::vector<std::string> config_names();

// Index into a relative position table for a window (the reference's relative_position_index):
// int64 [Wh*Ww+1, Wh*Ww+1].
at::Tensor relative_position_index(int64_t wh, int64_t ww);

// ---- leaf layers ---------------------------------------------------------------------------

class LinearImpl : public torch::nn::Module {
 public:
  LinearImpl(int64_t in, int64_t out, bool bias, const at::TensorOptions& to);
  at::Tensor forward(const at::Tensor& x) { return at::linear(x, weight, bias); }
  at::Tensor weight, bias;
};
TORCH_MODULE(Linear);

class LayerNormImpl : public torch::nn::Module {
 public:
  LayerNormImpl(int64_t dim, double eps, const at::TensorOptions& to);
  at::Tensor forward(const at::Tensor& x);
  at::Tensor weight, bias;
  int64_t dim;
  double eps;
};
TORCH_MODULE(LayerNorm);

// Conv2d(in_chans, embed_dim, kernel = stride = patch) -> tokens [B, gh*gw, C], patches row-major.
class PatchConvImpl : public torch::nn::Module {
 public:
  PatchConvImpl(int64_t in, int64_t out, int64_t patch, const at::TensorOptions& to);
  at::Tensor forward(const at::Tensor& x);
  at::Tensor weight, bias;
  int64_t patch;
};
TORCH_MODULE(PatchConv);

class PatchEmbedImpl : public torch::nn::Module {
 public:
  PatchEmbedImpl(const BeitOptions& o, const at::TensorOptions& to);
  at::Tensor forward(const at::Tensor& x) { return proj->forward(x); }
  PatchConv proj{nullptr};
};
TORCH_MODULE(PatchEmbed);

// Shared relative position bias (rel_pos_bias.*): forward() -> [heads, N+1, N+1].
class RelativePositionBiasImpl : public torch::nn::Module {
 public:
  RelativePositionBiasImpl(int64_t wh, int64_t ww, int64_t heads, const at::TensorOptions& to);
  at::Tensor forward();
  at::Tensor relative_position_bias_table, relative_position_index;
  int64_t tokens;
};
TORCH_MODULE(RelativePositionBias);

class AttentionImpl : public torch::nn::Module {
 public:
  AttentionImpl(const BeitOptions& o, bool window, const at::TensorOptions& to);
  // shared_bias: [heads, N, N] or undefined.
  at::Tensor forward(const at::Tensor& x, const at::Tensor& shared_bias);
  // Relative position bias of this block's own table: [heads, N, N] (undefined without one).
  at::Tensor own_bias() const;
  at::Tensor q_bias, v_bias, relative_position_bias_table, relative_position_index;
  Linear qkv{nullptr}, proj{nullptr};
  int64_t num_heads, head_dim, tokens = 0;
  double scale, attn_drop;
  AttentionMode mode;
};
TORCH_MODULE(Attention);

class MlpImpl : public torch::nn::Module {
 public:
  MlpImpl(int64_t dim, int64_t hidden, double drop, const at::TensorOptions& to);
  at::Tensor forward(const at::Tensor& x);
  Linear fc1{nullptr}, fc2{nullptr};
  double drop;
};
TORCH_MODULE(Mlp);

class BlockImpl : public torch::nn::Module {
 public:
  BlockImpl(const BeitOptions& o, double drop_path, const at::TensorOptions& to);
  at::Tensor forward(const at::Tensor& x, const at::Tensor& shared_bias);
  at::Tensor gamma_1, gamma_2;
  LayerNorm norm1{nullptr}, norm2{nullptr};
  Attention attn{nullptr};
  Mlp mlp{nullptr};
  double drop_path;
};
TORCH_MODULE(Block);

// ---- the model -----------------------------------------------------------------------------

struct ForwardRequest {
  bool features = false;        // pooled, normed features (forward_features)
  bool logits = false;          // head(features)
  bool tokens = false;          // last block output, before any final norm [B, N+1, C]
  bool blocks = false;          // every block's output [B, N+1, C] (get_intermediate_layers)
  bool pooled_prenorm = false;  // mean-pooling models: fc_norm input [B, C]; cls models: token 0
};

struct ForwardResult {
  at::Tensor features, logits, tokens, pooled_prenorm;
  std::vector<at::Tensor> blocks;
};

using LoadResult = mood::LoadResult;
using StateEntry = mood::StateEntry;

class BeitImpl : public torch::nn::Module {
 public:
  explicit BeitImpl(BeitOptions options);

  // One pass producing what `req` asks for.
  ForwardResult run(const at::Tensor& x, const ForwardRequest& req);
  at::Tensor forward(const at::Tensor& x);           // logits
  at::Tensor forward_features(const at::Tensor& x);  // pooled features
  std::pair<at::Tensor, at::Tensor> forward_both(const at::Tensor& x);  // (features, logits)
  at::Tensor forward_tokens(const at::Tensor& x);
  std::vector<at::Tensor> intermediate_layers(const at::Tensor& x);

  // Throws std::invalid_argument "BEiT input: expected float32[B, 3, 224, 224] cpu, got ...".
  void check_input(const at::Tensor& x) const;

  // PyTorch's state_dict order: per module its own parameters, then its own buffers, then children.
  std::vector<StateEntry> state_dict_entries(bool include_buffers = true) const;
  // Copies (under NoGradGuard) every matching entry; checks every shape before copying anything and
  // throws std::invalid_argument listing each mismatch. strict: missing or unexpected keys throw too.
  // Missing `relative_position_index` keys are not reported as missing (the model computes them).
  LoadResult load_state_dict(const std::map<std::string, at::Tensor>& sd, bool strict);
  // The missing / unexpected part of load_state_dict from the names alone (no tensors needed).
  LoadResult check_keys(const std::vector<std::string>& names) const;

  // Re-runs the reference initialisation (no-op on the meta device).
  void reset_parameters(int64_t seed = -1);

  const BeitOptions& options() const { return options_; }
  at::ScalarType param_dtype() const { return cls_token.scalar_type(); }
  c10::Device param_device() const { return cls_token.device(); }

  at::Tensor cls_token, pos_embed;
  PatchEmbed patch_embed{nullptr};
  RelativePositionBias rel_pos_bias{nullptr};
  torch::nn::ModuleList blocks{nullptr};
  std::vector<Block> block_list;
  LayerNorm norm{nullptr}, fc_norm{nullptr};
  Linear head{nullptr};

 private:
  BeitOptions options_;
};
TORCH_MODULE(Beit);

// One optimisation-free training step for benchmarks and smoke tests: train mode, logits,
// cross-entropy against int64 targets, backward (gradients replace any previous ones). Returns the
// detached loss. Leaves the module in the mode it found it.
at::Tensor cross_entropy_backward(BeitImpl& model, const at::Tensor& x, const at::Tensor& target);

bool fused_attention_available();
std::string attention_mode_name(AttentionMode m);
AttentionMode parse_attention_mode(const std::string& s);

}  // namespace beit
}  // namespace mood
