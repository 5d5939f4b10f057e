#include "core/beit.h"

#include <ATen/CPUGeneratorImpl.h>
#include <ATen/autocast_mode.h>
#include <c10/util/Exception.h>
#include <torch/autograd.h>
#include <torch/version.h>

#include <cmath>
#include <set>
#include <sstream>
#include <stdexcept>

#include "core/attention_cpu.h"
#include "core/executor.h"
#include "core/ops.h"

namespace mood {
namespace beit {

// ---- options and configs ---------------------------------------------------------------------

namespace {

std::string tensor_str(const at::Tensor& t) {
  if (!t.defined()) return "undefined";
  return dtype_name(t.scalar_type()) + shape_str(t.sizes()) + " on " + t.device().str();
}

void require(bool ok, const std::string& msg) {
  if (!ok) throw std::invalid_argument("BEiT options: " + msg);
}

}  // namespace

void BeitOptions::validate() const {
  require(img_size > 0, "img_size must be positive, got " + std::to_string(img_size));
  require(patch_size > 0, "patch_size must be positive, got " + std::to_string(patch_size));
  require(img_size % patch_size == 0, "img_size " + std::to_string(img_size) + " is not a multiple of patch_size " +
                                          std::to_string(patch_size));
  require(in_chans > 0, "in_chans must be positive");
  require(num_classes >= 0, "num_classes must be >= 0 (0: no head)");
  require(embed_dim > 0 && depth > 0 && num_heads > 0, "embed_dim, depth and num_heads must be positive");
  require(embed_dim % num_heads == 0, "embed_dim " + std::to_string(embed_dim) + " is not divisible by num_heads " +
                                          std::to_string(num_heads));
  require(mlp_ratio > 0, "mlp_ratio must be positive");
  require(init_values >= 0, "init_values must be >= 0 (0 disables layer scale)");
  require(drop_rate >= 0 && drop_rate < 1 && attn_drop_rate >= 0 && attn_drop_rate < 1 && drop_path_rate >= 0 &&
              drop_path_rate < 1,
          "drop rates must be in [0, 1)");
  require(layer_norm_eps > 0, "layer_norm_eps must be positive");
  require(dtype == at::kFloat || dtype == at::kDouble, "dtype must be float32 or float64");
}

BeitOptions config(const std::string& name) {
  BeitOptions o;
  auto large = [&](int64_t img) {
    o.img_size = img;
    o.embed_dim = 1024;
    o.depth = 24;
    o.num_heads = 16;
  };
  if (name == "beit_base_patch16_224") {
  } else if (name == "beit_base_patch16_384") {
    o.img_size = 384;
  } else if (name == "beit_large_patch16_224") {
    large(224);
  } else if (name == "beit_large_patch16_384") {
    large(384);
  } else if (name == "beit_large_patch16_512") {
    large(512);
  } else if (name == "beit_test_tiny") {
    o.img_size = 32;
    o.patch_size = 8;
    o.embed_dim = 48;
    o.depth = 2;
    o.num_heads = 4;
    o.num_classes = 10;
  } else if (name == "beit_test_micro") {
    o.img_size = 16;
    o.patch_size = 8;
    o.embed_dim = 16;
    o.depth = 2;
    o.num_heads = 2;
    o.num_classes = 3;
  } else {
    std::string known;
    for (auto& n : config_names()) known += (known.empty() ? "" : ", ") + n;
    throw std::invalid_argument("unknown BEiT config '" + name + "' (known: " + known + ")");
  }
  return o;
}

std::vector<std::string> config_names() {
  return {"beit_base_patch16_224",  "beit_base_patch16_384",  "beit_large_patch16_224",
          "beit_large_patch16_384", "beit_large_patch16_512", "beit_test_tiny",
          "beit_test_micro"};
}

at::Tensor relative_position_index(int64_t wh, int64_t ww) {
  const int64_t n = wh * ww;
  const int64_t rows = (2 * wh - 1) * (2 * ww - 1) + 3;
  at::Tensor idx = at::zeros({n + 1, n + 1}, at::kLong);
  auto a = idx.accessor<int64_t, 2>();
  for (int64_t i = 0; i < n; ++i) {
    for (int64_t j = 0; j < n; ++j) {
      int64_t dh = i / ww - j / ww, dw = i % ww - j % ww;
      a[i + 1][j + 1] = (dh + wh - 1) * (2 * ww - 1) + (dw + ww - 1);
    }
  }
  for (int64_t j = 0; j <= n; ++j) a[0][j] = rows - 3;  // cls -> token
  for (int64_t i = 0; i <= n; ++i) a[i][0] = rows - 2;  // token -> cls
  a[0][0] = rows - 1;
  return idx;
}

bool fused_attention_available() {
#if TORCH_VERSION_MAJOR >= 2
  return true;
#else
  return false;
#endif
}

std::string attention_mode_name(AttentionMode m) {
  switch (m) {
    case AttentionMode::kAuto: return "auto";
    case AttentionMode::kExact: return "exact";
    case AttentionMode::kFused: return "fused";
    case AttentionMode::kCore: return "core";
  }
  return "?";
}

AttentionMode parse_attention_mode(const std::string& s) {
  if (s == "auto") return AttentionMode::kAuto;
  if (s == "exact") return AttentionMode::kExact;
  if (s == "core") return AttentionMode::kCore;
  if (s == "fused") {
    if (!fused_attention_available())
      throw std::invalid_argument("attention 'fused' needs libtorch >= 2.0 (scaled_dot_product_attention); this is " +
                                  std::string(TORCH_VERSION));
    return AttentionMode::kFused;
  }
  throw std::invalid_argument("attention must be 'auto', 'exact', 'fused' or 'core', got '" + s + "'");
}

// ---- helpers -----------------------------------------------------------------------------------

namespace {

at::Tensor apply_drop_path(const at::Tensor& x, double p, bool training) {
  if (p <= 0.0 || !training) return x;
  const double keep = 1.0 - p;
  std::vector<int64_t> shape(x.dim(), 1);
  shape[0] = x.size(0);
  at::Tensor mask = (at::rand(shape, x.options()) + keep).floor_();
  return x.div(keep) * mask;
}

at::Tensor maybe_dropout(const at::Tensor& x, double p, bool training) {
  return (p > 0.0 && training) ? at::dropout(x, p, true) : x;
}

// Turns CUDA autocast on for a scope (float32 parameters, half/bfloat16 matmuls).
class AutocastScope {
 public:
  AutocastScope(bool on, at::ScalarType dtype) : on_(on) {
    if (!on_) return;
#if TORCH_VERSION_MAJOR > 2 || (TORCH_VERSION_MAJOR == 2 && TORCH_VERSION_MINOR >= 4)
    prev_enabled_ = at::autocast::is_autocast_enabled(at::kCUDA);
    prev_dtype_ = at::autocast::get_autocast_dtype(at::kCUDA);
    at::autocast::set_autocast_enabled(at::kCUDA, true);
    at::autocast::set_autocast_dtype(at::kCUDA, dtype);
#else
    prev_enabled_ = at::autocast::is_enabled();
    prev_dtype_ = at::autocast::get_autocast_gpu_dtype();
    at::autocast::set_enabled(true);
    at::autocast::set_autocast_gpu_dtype(dtype);
#endif
    at::autocast::increment_nesting();
  }
  ~AutocastScope() {
    if (!on_) return;
    if (at::autocast::decrement_nesting() == 0) at::autocast::clear_cache();
#if TORCH_VERSION_MAJOR > 2 || (TORCH_VERSION_MAJOR == 2 && TORCH_VERSION_MINOR >= 4)
    at::autocast::set_autocast_enabled(at::kCUDA, prev_enabled_);
    at::autocast::set_autocast_dtype(at::kCUDA, prev_dtype_);
#else
    at::autocast::set_enabled(prev_enabled_);
    at::autocast::set_autocast_gpu_dtype(prev_dtype_);
#endif
  }
  AutocastScope(const AutocastScope&) = delete;
  AutocastScope& operator=(const AutocastScope&) = delete;

 private:
  bool on_;
  bool prev_enabled_ = false;
  at::ScalarType prev_dtype_ = at::kHalf;
};

// Suspends CUDA autocast (exact attention math stays in float32 inside an autocast region).
class NoAutocast {
 public:
  NoAutocast() {
#if TORCH_VERSION_MAJOR > 2 || (TORCH_VERSION_MAJOR == 2 && TORCH_VERSION_MINOR >= 4)
    prev_ = at::autocast::is_autocast_enabled(at::kCUDA);
    if (prev_) at::autocast::set_autocast_enabled(at::kCUDA, false);
#else
    prev_ = at::autocast::is_enabled();
    if (prev_) at::autocast::set_enabled(false);
#endif
  }
  ~NoAutocast() {
    if (!prev_) return;
#if TORCH_VERSION_MAJOR > 2 || (TORCH_VERSION_MAJOR == 2 && TORCH_VERSION_MINOR >= 4)
    at::autocast::set_autocast_enabled(at::kCUDA, true);
#else
    at::autocast::set_enabled(true);
#endif
  }
  NoAutocast(const NoAutocast&) = delete;
  NoAutocast& operator=(const NoAutocast&) = delete;

 private:
  bool prev_ = false;
};

bool is_half(at::ScalarType t) { return t == at::kHalf || t == at::kBFloat16; }

// ---- initialisation (the reference's, on CPU tensors) -----------------------------------------

struct Init {
  c10::optional<at::Generator> gen;
  explicit Init(int64_t seed) {
    if (seed >= 0) gen = at::make_generator<at::CPUGeneratorImpl>(static_cast<uint64_t>(seed));
  }
  // timm's trunc_normal_(std, a=-2, b=2): inverse-CDF sampling of a uniform draw.
  void trunc_normal(at::Tensor t, double std, double a = -2.0, double b = 2.0) {
    if (!t.defined() || t.device().is_meta()) return;
    at::NoGradGuard ng;
    auto cdf = [](double x) { return (1.0 + std::erf(x / std::sqrt(2.0))) / 2.0; };
    double l = cdf(a / std), u = cdf(b / std);
    at::Tensor tmp = at::empty(t.sizes(), t.options().device(at::kCPU));
    tmp.uniform_(2 * l - 1, 2 * u - 1, gen);
    tmp.erfinv_().mul_(std * std::sqrt(2.0)).clamp_(a, b);
    t.copy_(tmp);
  }
  // PyTorch's default Conv/Linear init: kaiming_uniform(a=sqrt(5)) -> U(-1/sqrt(fan_in), +).
  void uniform_fan_in(at::Tensor w, at::Tensor b, int64_t fan_in) {
    if (w.device().is_meta()) return;
    at::NoGradGuard ng;
    double bound = 1.0 / std::sqrt(static_cast<double>(fan_in));
    at::Tensor tw = at::empty(w.sizes(), w.options().device(at::kCPU));
    tw.uniform_(-bound, bound, gen);
    w.copy_(tw);
    if (b.defined()) {
      at::Tensor tb = at::empty(b.sizes(), b.options().device(at::kCPU));
      tb.uniform_(-bound, bound, gen);
      b.copy_(tb);
    }
  }
  static void fill(at::Tensor t, double v) {
    if (!t.defined() || t.device().is_meta()) return;
    at::NoGradGuard ng;
    t.fill_(v);
  }
};

at::Tensor make(at::IntArrayRef shape, const at::TensorOptions& to) { return at::zeros(shape, to); }

at::Tensor relative_position_index_of(int64_t wh, int64_t ww, const c10::Device& d) {
  if (d.is_meta()) return at::empty({wh * ww + 1, wh * ww + 1}, at::TensorOptions().dtype(at::kLong).device(d));
  return relative_position_index(wh, ww).to(d);
}

}  // namespace

// ---- leaf layers -------------------------------------------------------------------------------

LinearImpl::LinearImpl(int64_t in, int64_t out, bool with_bias, const at::TensorOptions& to) {
  weight = register_parameter("weight", make({out, in}, to));
  if (with_bias) bias = register_parameter("bias", make({out}, to));
}

LayerNormImpl::LayerNormImpl(int64_t d, double e, const at::TensorOptions& to) : dim(d), eps(e) {
  weight = register_parameter("weight", make({d}, to));
  bias = register_parameter("bias", make({d}, to));
  Init::fill(weight, 1.0);
}

at::Tensor LayerNormImpl::forward(const at::Tensor& x) { return at::layer_norm(x, {dim}, weight, bias, eps); }

PatchConvImpl::PatchConvImpl(int64_t in, int64_t out, int64_t p, const at::TensorOptions& to) : patch(p) {
  weight = register_parameter("weight", make({out, in, p, p}, to));
  bias = register_parameter("bias", make({out}, to));
}

at::Tensor PatchConvImpl::forward(const at::Tensor& x) {
  // [B, C, gh, gw] -> [B, gh*gw, C]
  return at::conv2d(x, weight, bias, {patch, patch}).flatten(2).transpose(1, 2);
}

PatchEmbedImpl::PatchEmbedImpl(const BeitOptions& o, const at::TensorOptions& to) {
  proj = register_module("proj", PatchConv(o.in_chans, o.embed_dim, o.patch_size, to));
}

RelativePositionBiasImpl::RelativePositionBiasImpl(int64_t wh, int64_t ww, int64_t heads, const at::TensorOptions& to)
    : tokens(wh * ww + 1) {
  relative_position_bias_table = register_parameter("relative_position_bias_table",
                                                    make({(2 * wh - 1) * (2 * ww - 1) + 3, heads}, to));
  relative_position_index =
      register_buffer("relative_position_index", relative_position_index_of(wh, ww, to.device()));
}

at::Tensor RelativePositionBiasImpl::forward() {
  return relative_position_bias_table.index_select(0, relative_position_index.reshape(-1))
      .view({tokens, tokens, -1})
      .permute({2, 0, 1})
      .contiguous();
}

// ---- attention, mlp, block ---------------------------------------------------------------------

AttentionImpl::AttentionImpl(const BeitOptions& o, bool window, const at::TensorOptions& to)
    : num_heads(o.num_heads),
      head_dim(o.head_dim()),
      scale(std::pow(static_cast<double>(o.head_dim()), -0.5)),
      attn_drop(o.attn_drop_rate),
      mode(o.attention) {
  const int64_t all = head_dim * num_heads;
  if (o.qkv_bias) {
    q_bias = register_parameter("q_bias", make({all}, to));
    v_bias = register_parameter("v_bias", make({all}, to));
  }
  if (window) {
    const int64_t g = o.grid();
    tokens = g * g + 1;
    relative_position_bias_table =
        register_parameter("relative_position_bias_table", make({(2 * g - 1) * (2 * g - 1) + 3, num_heads}, to));
    relative_position_index = register_buffer("relative_position_index", relative_position_index_of(g, g, to.device()));
  }
  qkv = register_module("qkv", Linear(o.embed_dim, all * 3, false, to));
  proj = register_module("proj", Linear(all, o.embed_dim, true, to));
}

at::Tensor AttentionImpl::own_bias() const {
  if (!relative_position_bias_table.defined()) return {};
  return relative_position_bias_table.index_select(0, relative_position_index.reshape(-1))
      .view({tokens, tokens, -1})
      .permute({2, 0, 1})
      .contiguous();
}

at::Tensor AttentionImpl::forward(const at::Tensor& x, const at::Tensor& shared_bias) {
  const int64_t B = x.size(0), N = x.size(1);
  at::Tensor qkv_b;
  if (q_bias.defined()) qkv_b = at::cat({q_bias, at::zeros_like(v_bias), v_bias});  // k has no bias
  const at::Tensor qkv_out = at::linear(x, qkv->weight, qkv_b);

  at::Tensor bias = own_bias();
  if (shared_bias.defined()) bias = bias.defined() ? bias + shared_bias : shared_bias;
  if (bias.defined() && bias.size(-1) != N)
    throw std::invalid_argument("BEiT attention: relative position bias covers " + std::to_string(bias.size(-1)) +
                                " tokens, the input has " + std::to_string(N));

  const bool train = is_training();
  // CPU float32: the native attention core (no attention dropout there).
  const bool core_takes = !(train && attn_drop > 0.0) && attention_cpu_supported(qkv_out, bias, num_heads);
  if (mode == AttentionMode::kCore && !core_takes)
    throw std::invalid_argument("BEiT attention 'core' runs on the CPU in float32 without attention dropout while "
                                "training; got " + qkv_out.toString() + (train && attn_drop > 0.0 ? " with attn_drop_rate " + std::to_string(attn_drop) : std::string()) +
                                " (use 'auto')");
  if (mode == AttentionMode::kCore || (mode == AttentionMode::kAuto && core_takes && attention_cpu_pays(N, head_dim)))
    return proj->forward(attention_cpu(qkv_out, bias, num_heads, scale));

  at::Tensor t = qkv_out.reshape({B, N, 3, num_heads, -1}).permute({2, 0, 3, 1, 4});
  at::Tensor q = t[0], k = t[1], v = t[2];
  at::Tensor out;
  bool fused = false;
#if TORCH_VERSION_MAJOR >= 2
  fused = mode == AttentionMode::kFused || mode == AttentionMode::kAuto;
  if (fused) {
    c10::optional<at::Tensor> mask;
    if (bias.defined()) mask = bias.unsqueeze(0).to(q.scalar_type()).expand({B, num_heads, N, N});
    // The default scale is head_dim ** -0.5, as the reference's.
    out = at::scaled_dot_product_attention(q, k, v, mask, train ? attn_drop : 0.0, false);
  }
#endif
  if (!fused) {
    NoAutocast no_autocast;  // exact: float32 (or float64) math even inside an autocast region
    const at::ScalarType in_type = q.scalar_type();
    const at::ScalarType ct = is_half(in_type) ? at::kFloat : in_type;
    at::Tensor qf = q.to(ct) * scale;
    at::Tensor attn = at::matmul(qf, k.to(ct).transpose(-2, -1));
    if (bias.defined()) attn = attn + bias.to(ct).unsqueeze(0);
    attn = maybe_dropout(attn.softmax(-1), attn_drop, train);
    out = at::matmul(attn, v.to(ct)).to(in_type);
  }
  out = out.transpose(1, 2).reshape({B, N, -1});
  return proj->forward(out);
}

MlpImpl::MlpImpl(int64_t dim, int64_t hidden, double d, const at::TensorOptions& to) : drop(d) {
  fc1 = register_module("fc1", Linear(dim, hidden, true, to));
  fc2 = register_module("fc2", Linear(hidden, dim, true, to));
}

at::Tensor MlpImpl::forward(const at::Tensor& x) {
  const bool train = is_training();
  at::Tensor h = maybe_dropout(at::gelu(fc1->forward(x)), drop, train);  // exact (erf) GELU
  return maybe_dropout(fc2->forward(h), drop, train);
}

BlockImpl::BlockImpl(const BeitOptions& o, double dp, const at::TensorOptions& to) : drop_path(dp) {
  if (o.init_values > 0) {
    gamma_1 = register_parameter("gamma_1", make({o.embed_dim}, to));
    gamma_2 = register_parameter("gamma_2", make({o.embed_dim}, to));
    Init::fill(gamma_1, o.init_values);
    Init::fill(gamma_2, o.init_values);
  }
  norm1 = register_module("norm1", LayerNorm(o.embed_dim, o.layer_norm_eps, to));
  attn = register_module("attn", Attention(o, o.use_rel_pos_bias, to));
  norm2 = register_module("norm2", LayerNorm(o.embed_dim, o.layer_norm_eps, to));
  mlp = register_module("mlp", Mlp(o.embed_dim, o.mlp_hidden(), o.drop_rate, to));
}

at::Tensor BlockImpl::forward(const at::Tensor& x, const at::Tensor& shared_bias) {
  const bool train = is_training();
  at::Tensor a = attn->forward(norm1->forward(x), shared_bias);
  if (gamma_1.defined()) a = gamma_1 * a;
  at::Tensor y = x + apply_drop_path(a, drop_path, train);
  at::Tensor m = mlp->forward(norm2->forward(y));
  if (gamma_2.defined()) m = gamma_2 * m;
  return y + apply_drop_path(m, drop_path, train);
}

// ---- the model ---------------------------------------------------------------------------------

BeitImpl::BeitImpl(BeitOptions o) : options_(std::move(o)) {
  options_.validate();
  const bool meta = options_.device.is_meta();
  // Build and initialise on the CPU (or meta), then move: init draws come from CPU generators.
  at::TensorOptions to = at::TensorOptions().dtype(options_.dtype).device(meta ? c10::Device(c10::kMeta) : c10::Device(c10::kCPU));
  const int64_t g = options_.grid();
  const int64_t C = options_.embed_dim;

  cls_token = register_parameter("cls_token", make({1, 1, C}, to));
  if (options_.use_abs_pos_emb) pos_embed = register_parameter("pos_embed", make({1, g * g + 1, C}, to));
  patch_embed = register_module("patch_embed", PatchEmbed(options_, to));
  if (options_.use_shared_rel_pos_bias)
    rel_pos_bias = register_module("rel_pos_bias", RelativePositionBias(g, g, options_.num_heads, to));
  blocks = register_module("blocks", torch::nn::ModuleList());
  for (int64_t i = 0; i < options_.depth; ++i) {
    double dp = options_.depth > 1 ? options_.drop_path_rate * static_cast<double>(i) / static_cast<double>(options_.depth - 1) : 0.0;
    Block b(options_, dp, to);
    blocks->push_back(b);
    block_list.push_back(b);
  }
  if (options_.use_mean_pooling) {
    fc_norm = register_module("fc_norm", LayerNorm(C, options_.layer_norm_eps, to));
  } else {
    norm = register_module("norm", LayerNorm(C, options_.layer_norm_eps, to));
  }
  if (options_.num_classes > 0) head = register_module("head", Linear(C, options_.num_classes, true, to));

  reset_parameters(options_.seed);
  if (!meta && !options_.device.is_cpu()) this->to(options_.device);
}

void BeitImpl::reset_parameters(int64_t seed) {
  if (cls_token.device().is_meta()) return;
  Init init(seed);
  at::NoGradGuard ng;
  // Order as the reference: pos_embed, cls_token, head, then every Linear/LayerNorm (apply), then
  // fix_init_weight and the head scaling. Tables and q/v biases start at zero, the patch conv keeps
  // PyTorch's default Conv2d init.
  init.uniform_fan_in(patch_embed->proj->weight, patch_embed->proj->bias,
                      options_.in_chans * options_.patch_size * options_.patch_size);
  if (pos_embed.defined()) init.trunc_normal(pos_embed, 0.02);
  init.trunc_normal(cls_token, 0.02);
  for (auto& m : modules(/*include_self=*/false)) {
    if (auto* lin = m->as<LinearImpl>()) {
      init.trunc_normal(lin->weight, 0.02);
      if (lin->bias.defined()) lin->bias.zero_();
    } else if (auto* ln = m->as<LayerNormImpl>()) {
      ln->weight.fill_(1.0);
      ln->bias.zero_();
    }
  }
  for (auto& b : block_list) {
    if (b->gamma_1.defined()) {
      b->gamma_1.fill_(options_.init_values);
      b->gamma_2.fill_(options_.init_values);
    }
    if (b->attn->q_bias.defined()) {
      b->attn->q_bias.zero_();
      b->attn->v_bias.zero_();
    }
    if (b->attn->relative_position_bias_table.defined()) b->attn->relative_position_bias_table.zero_();
  }
  if (rel_pos_bias) rel_pos_bias->relative_position_bias_table.zero_();
  for (size_t i = 0; i < block_list.size(); ++i) {
    const double s = std::sqrt(2.0 * static_cast<double>(i + 1));
    block_list[i]->attn->proj->weight.div_(s);
    block_list[i]->mlp->fc2->weight.div_(s);
  }
  if (head) {
    head->weight.mul_(options_.init_scale);
    head->bias.mul_(options_.init_scale);
  }
}

void BeitImpl::check_input(const at::Tensor& x) const {
  const auto& o = options_;
  std::ostringstream want;
  want << dtype_name(param_dtype()) << "[B, " << o.in_chans << ", " << o.img_size << ", " << o.img_size << "] on "
       << param_device().str();
  auto fail = [&](const std::string& why) {
    throw std::invalid_argument("BEiT input: expected " + want.str() + ", got " + tensor_str(x) + " (" + why + ")");
  };
  if (!x.defined()) fail("no tensor");
  if (x.dim() != 4) fail("need 4 dimensions NCHW");
  if (x.size(1) != o.in_chans) fail("wrong channel count");
  if (x.size(2) != o.img_size || x.size(3) != o.img_size) fail("wrong image size");
  if (x.scalar_type() != param_dtype()) fail("wrong dtype");
  if (x.device() != param_device()) fail("wrong device");
  if (x.size(0) == 0) fail("empty batch");
}

ForwardResult BeitImpl::run(const at::Tensor& input, const ForwardRequest& req) {
  check_input(input);
  const bool train = is_training();
  const bool autocast = input.is_cuda() && options_.autocast.has_value();
  AutocastScope ac(autocast, options_.autocast.value_or(at::kHalf));

  at::Tensor x = patch_embed->forward(input);
  const int64_t B = x.size(0);
  x = at::cat({cls_token.expand({B, -1, -1}).to(x.scalar_type()), x}, 1);
  if (pos_embed.defined()) x = x + pos_embed;
  x = maybe_dropout(x, options_.drop_rate, train);

  at::Tensor shared;
  if (rel_pos_bias) shared = rel_pos_bias->forward();
  ForwardResult r;
  if (req.blocks) r.blocks.reserve(block_list.size());
  for (auto& b : block_list) {
    x = b->forward(x, shared);
    if (req.blocks) r.blocks.push_back(x);
  }
  if (req.tokens) r.tokens = x;
  if (req.features || req.logits || req.pooled_prenorm) {
    at::Tensor pooled, features;
    if (options_.use_mean_pooling) {
      pooled = x.slice(1, 1).mean(1);
      features = fc_norm->forward(pooled);
    } else {
      pooled = x.select(1, 0);
      features = norm->forward(x).select(1, 0);
    }
    if (req.pooled_prenorm) r.pooled_prenorm = pooled;
    if (req.features) r.features = features;
    if (req.logits) r.logits = head ? head->forward(features) : features;
  }
  return r;
}

at::Tensor BeitImpl::forward(const at::Tensor& x) {
  ForwardRequest q;
  q.logits = true;
  return run(x, q).logits;
}

at::Tensor BeitImpl::forward_features(const at::Tensor& x) {
  ForwardRequest q;
  q.features = true;
  return run(x, q).features;
}

std::pair<at::Tensor, at::Tensor> BeitImpl::forward_both(const at::Tensor& x) {
  ForwardRequest q;
  q.features = q.logits = true;
  auto r = run(x, q);
  return {r.features, r.logits};
}

at::Tensor BeitImpl::forward_tokens(const at::Tensor& x) {
  ForwardRequest q;
  q.tokens = true;
  return run(x, q).tokens;
}

std::vector<at::Tensor> BeitImpl::intermediate_layers(const at::Tensor& x) {
  ForwardRequest q;
  q.blocks = true;
  return run(x, q).blocks;
}

// ---- state dict --------------------------------------------------------------------------------

namespace {

// The reference computes relative_position_index itself and ignores it when a checkpoint lacks it.
const StateRules& beit_rules() {
  static const StateRules rules{"BEiT", {"relative_position_index"}, nullptr};
  return rules;
}

}  // namespace

std::vector<StateEntry> BeitImpl::state_dict_entries(bool include_buffers) const {
  return collect_state(*this, include_buffers);
}

LoadResult BeitImpl::load_state_dict(const std::map<std::string, at::Tensor>& sd, bool strict) {
  return load_state(state_dict_entries(true), sd, strict, beit_rules());
}

LoadResult BeitImpl::check_keys(const std::vector<std::string>& names) const {
  return check_state_keys(state_dict_entries(true), names, beit_rules());
}

at::Tensor cross_entropy_backward(BeitImpl& model, const at::Tensor& x, const at::Tensor& target) {
  const bool was_training = model.is_training();
  model.train(true);
  at::AutoGradMode grad(true);
  for (auto& p : model.parameters()) p.mutable_grad() = at::Tensor();
  at::Tensor loss;
  try {
    at::Tensor logits = model.forward(x);
    loss = at::cross_entropy_loss(logits.to(at::kFloat), target);
    loss.backward();
  } catch (...) {
    model.train(was_training);
    throw;
  }
  model.train(was_training);
  return loss.detach();
}

}  // namespace beit
}  // namespace mood
