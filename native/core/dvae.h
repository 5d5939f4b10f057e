// The DALL-E dVAE encoder (OpenAI's `dall_e.encoder.Encoder`, the tokenizer behind BEiT's
// `--discrete_vae_type dall-e` targets) as a libtorch module in torch::nn style.
//
// Parameter names, shapes and state-dict order are those of the pickled module, so `encoder.pkl`'s
// tensors load key for key:
//   blocks.input.{w,b}                                   Conv2d(input_channels, n_hid, 7)
//   blocks.group_G.block_K.id_path.{w,b}?                1x1 Conv2d where the block changes width
//   blocks.group_G.block_K.res_path.conv_{1..4}.{w,b}    3x3, 3x3, 3x3, 1x1 convs (hidden = n_out / 4)
//   blocks.output.conv.{w,b}                             Conv2d(width of the last group, vocab_size, 1)
// Group g (1-based) has width n_hid * 2^(g-1); a 2x2 max-pool follows every group but the last; a
// block computes id_path(x) + post_gain * res_path(x) with post_gain = 1 / (group_count *
// n_blk_per_group)^2 and ReLU before every res_path conv; the output is ReLU then the 1x1 conv: logits
// [N, vocab_size, H / 8, W / 8] for the reference's 4 groups. Token ids = argmax over the vocabulary.
#pragma once
#include <ATen/ATen.h>
#include <torch/nn/module.h>
#include <torch/nn/pimpl.h>

#include <map>
#include <optional>
#include <string>
#include <vector>

#include "core/beit.h"

namespace mood {
namespace dvae {

// The reference's `map_pixels`: (1 - 2 * 0.1) * x + 0.1, float32 arithmetic as PyTorch's.
at::Tensor map_pixels(const at::Tensor& x);

enum class Precision {
  kAuto,      // the reference: float32 on the CPU; on CUDA float16 for every conv whose use_float16 is set
              // (dall_e's Conv2d default: all but the output conv), float32 for the others
  kFloat32,   // float32 everywhere (any device)
  kFloat16,   // CUDA only: float16 for the use_float16 convs (what kAuto does on CUDA)
  kBFloat16,  // CUDA only: bfloat16 for the use_float16 convs (an option of ours, not the reference's)
};
Precision parse_precision(const std::string& s);  // auto | float32 | float16 | bfloat16
std::string precision_name(Precision p);

struct EncoderOptions {
  // The reference constructor's attributes (dall_e.encoder.Encoder).
  int64_t input_channels = 3;
  int64_t n_hid = 256;
  int64_t n_blk_per_group = 2;
  int64_t group_count = 4;  // a class constant (4) in the reference; taken from the file's group_N modules
  int64_t vocab_size = 8192;
  // nn.MaxPool2d(kernel_size=2) between groups, as the file states it.
  int64_t pool_kernel = 2, pool_stride = 2, pool_padding = 0, pool_dilation = 1;
  bool pool_ceil_mode = false;
  // Convs (state-dict prefixes such as "blocks.input") whose use_float16 is set; unset: dall_e's
  // default, every conv but blocks.output.conv.
  std::optional<std::vector<std::string>> float16_convs;

  c10::Device device{c10::kCPU};
  Precision precision = Precision::kAuto;
  int64_t seed = -1;  // >= 0: deterministic init (N(0, 1/sqrt(n_in*kw^2)) weights, zero biases)

  int64_t n_layers() const { return group_count * n_blk_per_group; }
  double post_gain() const { return 1.0 / static_cast<double>(n_layers() * n_layers()); }
  int64_t group_width(int64_t g) const { return n_hid << (g - 1); }  // g is 1-based
  // Throws std::invalid_argument naming the offending option.
  void validate() const;
};

// dall_e.utils.Conv2d: weight `w` [n_out, n_in, kw, kw], bias `b`, padding (kw - 1) / 2; runs in the
// dtype its encoder picks for it (use_float16 + precision + device).
class ConvImpl : public torch::nn::Module {
 public:
  ConvImpl(int64_t n_in, int64_t n_out, int64_t kw, bool use_float16, const at::TensorOptions& to);
  at::Tensor forward(const at::Tensor& x, at::ScalarType compute);
  at::Tensor w, b;
  int64_t n_in, n_out, kw;
  bool use_float16;
};
TORCH_MODULE(Conv);

// res_path: relu_1, conv_1 (3x3), relu_2, conv_2 (3x3), relu_3, conv_3 (3x3), relu_4, conv_4 (1x1).
class ResPathImpl : public torch::nn::Module {
 public:
  Conv conv_1{nullptr}, conv_2{nullptr}, conv_3{nullptr}, conv_4{nullptr};
};
TORCH_MODULE(ResPath);

class EncoderBlockImpl : public torch::nn::Module {
 public:
  Conv id_path{nullptr};  // null: Identity (n_in == n_out)
  ResPath res_path{nullptr};
  double post_gain = 1.0;
};
TORCH_MODULE(EncoderBlock);

class EncoderImpl : public torch::nn::Module {
 public:
  explicit EncoderImpl(EncoderOptions options);

  // x: float32 [N, input_channels, H, W] (already through map_pixels) -> logits float32 [N, vocab, h, w].
  at::Tensor forward(const at::Tensor& x);
  // argmax of the logits over the vocabulary: int64 [N, h, w] (Dalle_VAE.get_codebook_indices).
  at::Tensor tokens(const at::Tensor& x) { return forward(x).argmax(1); }

  // Output grid for an input side (H -> h through the group poolings).
  int64_t output_side(int64_t input_side) const;
  // Throws std::invalid_argument naming what is wrong with the input.
  void check_input(const at::Tensor& x) const;

  std::vector<beit::StateEntry> state_dict_entries() const;
  beit::LoadResult check_keys(const std::vector<std::string>& names) const;
  // Copies (and casts to float32) every tensor; size mismatches and (strict) missing/unexpected keys throw.
  beit::LoadResult load_state_dict(const std::map<std::string, at::Tensor>& sd, bool strict);
  void reset_parameters(int64_t seed = -1);

  const EncoderOptions& options() const { return options_; }
  c10::Device device() const { return options_.device; }

 private:
  at::ScalarType compute_dtype(const ConvImpl& c) const;
  EncoderOptions options_;
  // blocks.input, blocks.group_G.block_K, blocks.output.conv (modules named as the pickle's).
  Conv input_{nullptr}, output_{nullptr};
  std::vector<std::vector<EncoderBlock>> groups_;
  std::vector<Conv> convs_;  // every conv in state-dict order (init, dtype choice)
};
TORCH_MODULE(Encoder);

}  // namespace dvae
}  // namespace mood
