#include "core/dvae.h"

#include "core/executor.h"

#include <ATen/CPUGeneratorImpl.h>

#include <cmath>
#include <set>
#include <stdexcept>

namespace mood {
namespace dvae {

namespace {

constexpr double kLogitLaplaceEps = 0.1;  // dall_e.utils.logit_laplace_eps

// A named container without parameters of its own (the pickle's nn.Sequential levels).
std::shared_ptr<torch::nn::Module> holder(torch::nn::Module& parent, const std::string& name) {
  return parent.register_module(name, std::make_shared<torch::nn::Module>("Sequential"));
}

}  // namespace

at::Tensor map_pixels(const at::Tensor& x) {
  if (x.dim() != 4) throw std::invalid_argument("map_pixels: expected a 4-D input, got " + shape_str(x.sizes()));
  if (x.scalar_type() != at::kFloat) throw std::invalid_argument("map_pixels: expected a float32 input");
  // Two scalar ops like the reference's expression (a float32 multiply, then a float32 add).
  return at::add(at::mul(x, 1.0 - 2.0 * kLogitLaplaceEps), kLogitLaplaceEps);
}

Precision parse_precision(const std::string& s) {
  if (s == "auto") return Precision::kAuto;
  if (s == "float32") return Precision::kFloat32;
  if (s == "float16") return Precision::kFloat16;
  if (s == "bfloat16") return Precision::kBFloat16;
  throw std::invalid_argument("dVAE precision must be auto, float32, float16 or bfloat16, got '" + s + "'");
}

std::string precision_name(Precision p) {
  switch (p) {
    case Precision::kAuto: return "auto";
    case Precision::kFloat32: return "float32";
    case Precision::kFloat16: return "float16";
    case Precision::kBFloat16: return "bfloat16";
  }
  return "?";
}

void EncoderOptions::validate() const {
  auto positive = [](const char* k, int64_t v) {
    if (v < 1) throw std::invalid_argument(std::string("dVAE encoder option ") + k + " must be >= 1, got " + std::to_string(v));
  };
  positive("input_channels", input_channels);
  positive("n_hid", n_hid);
  positive("n_blk_per_group", n_blk_per_group);
  positive("group_count", group_count);
  positive("vocab_size", vocab_size);
  positive("pool_kernel", pool_kernel);
  positive("pool_stride", pool_stride);
  positive("pool_dilation", pool_dilation);
  if (pool_padding < 0 || 2 * pool_padding > pool_kernel)
    throw std::invalid_argument("dVAE encoder option pool_padding must be in 0..pool_kernel/2, got " + std::to_string(pool_padding));
  if (group_count > 16) throw std::invalid_argument("dVAE encoder option group_count " + std::to_string(group_count) + " is implausible (the reference has 4)");
  if ((n_hid << (group_count - 1)) % 4 != 0 || n_hid % 4 != 0)
    throw std::invalid_argument("dVAE encoder option n_hid must be a multiple of 4 (block widths are split in four), got " + std::to_string(n_hid));
  if (!device.is_cpu() && !device.is_cuda()) throw std::invalid_argument("dVAE encoder: device must be cpu or cuda");
  if ((precision == Precision::kFloat16 || precision == Precision::kBFloat16) && !device.is_cuda())
    throw std::invalid_argument("dVAE precision " + precision_name(precision) + " needs a CUDA device (on the CPU the reference runs float32: use auto or float32)");
}

// ---- layers --------------------------------------------------------------------------------------

ConvImpl::ConvImpl(int64_t in, int64_t out, int64_t k, bool half, const at::TensorOptions& to) : n_in(in), n_out(out), kw(k), use_float16(half) {
  w = register_parameter("w", at::zeros({out, in, k, k}, to), /*requires_grad=*/false);
  b = register_parameter("b", at::zeros({out}, to), /*requires_grad=*/false);
}

at::Tensor ConvImpl::forward(const at::Tensor& x, at::ScalarType compute) {
  // dall_e.utils.Conv2d casts input, weight and bias to the conv's dtype first.
  const at::Tensor xi = x.scalar_type() == compute ? x : x.to(compute);
  const at::Tensor wi = w.scalar_type() == compute ? w : w.to(compute);
  const at::Tensor bi = b.scalar_type() == compute ? b : b.to(compute);
  const int64_t pad = (kw - 1) / 2;
  return at::conv2d(xi, wi, bi, /*stride=*/{1, 1}, /*padding=*/{pad, pad});
}

// ---- encoder -------------------------------------------------------------------------------------

EncoderImpl::EncoderImpl(EncoderOptions o) : options_(std::move(o)) {
  options_.validate();
  const at::TensorOptions to = at::TensorOptions().dtype(at::kFloat).device(options_.device);
  std::set<std::string> half;
  if (options_.float16_convs) half.insert(options_.float16_convs->begin(), options_.float16_convs->end());
  std::set<std::string> known;
  auto conv = [&](torch::nn::Module& parent, const std::string& prefix, const std::string& name, int64_t in, int64_t out, int64_t kw) {
    const std::string full = prefix + name;
    known.insert(full);
    const bool f16 = options_.float16_convs ? half.count(full) > 0 : full != "blocks.output.conv";
    Conv c = parent.register_module(name, Conv(in, out, kw, f16, to));
    convs_.push_back(c);
    return c;
  };
  auto blocks = holder(*this, "blocks");
  input_ = conv(*blocks, "blocks.", "input", options_.input_channels, options_.n_hid, 7);
  int64_t width = options_.n_hid;
  for (int64_t g = 1; g <= options_.group_count; ++g) {
    const std::string gname = "group_" + std::to_string(g);
    auto group = holder(*blocks, gname);
    const int64_t out = options_.group_width(g);
    std::vector<EncoderBlock> blks;
    for (int64_t i = 1; i <= options_.n_blk_per_group; ++i) {
      const std::string bname = "block_" + std::to_string(i);
      const std::string prefix = "blocks." + gname + "." + bname + ".";
      const int64_t in = i == 1 ? width : out, hid = out / 4;
      EncoderBlock blk = group->register_module(bname, EncoderBlock());
      blk->post_gain = options_.post_gain();
      if (in != out) blk->id_path = conv(*blk, prefix, "id_path", in, out, 1);
      blk->res_path = blk->register_module("res_path", ResPath());
      const std::string rp = prefix + "res_path.";
      blk->res_path->conv_1 = conv(*blk->res_path, rp, "conv_1", in, hid, 3);
      blk->res_path->conv_2 = conv(*blk->res_path, rp, "conv_2", hid, hid, 3);
      blk->res_path->conv_3 = conv(*blk->res_path, rp, "conv_3", hid, hid, 3);
      blk->res_path->conv_4 = conv(*blk->res_path, rp, "conv_4", hid, out, 1);
      blks.push_back(blk);
    }
    groups_.push_back(std::move(blks));
    width = out;
  }
  auto output = holder(*blocks, "output");
  output_ = conv(*output, "blocks.output.", "conv", width, options_.vocab_size, 1);
  for (auto& n : half)
    if (!known.count(n)) throw std::invalid_argument("dVAE encoder option float16_convs names '" + n + "', which is not a conv of this encoder");
  reset_parameters(options_.seed);
}

void EncoderImpl::reset_parameters(int64_t seed) {
  c10::optional<at::Generator> gen;
  if (seed >= 0) gen = at::make_generator<at::CPUGeneratorImpl>(static_cast<uint64_t>(seed));
  at::NoGradGuard ng;
  for (auto& c : convs_) {
    // dall_e.utils.Conv2d: w ~ N(0, 1 / sqrt(n_in * kw^2)), b = 0 (drawn on the CPU, in construction order).
    at::Tensor t = at::empty(c->w.sizes(), at::TensorOptions().dtype(at::kFloat));
    t.normal_(0.0, 1.0 / std::sqrt(static_cast<double>(c->n_in * c->kw * c->kw)), gen);
    c->w.copy_(t);
    c->b.zero_();
  }
}

at::ScalarType EncoderImpl::compute_dtype(const ConvImpl& c) const {
  if (!options_.device.is_cuda() || !c.use_float16) return at::kFloat;
  switch (options_.precision) {
    case Precision::kAuto:
    case Precision::kFloat16: return at::kHalf;
    case Precision::kBFloat16: return at::kBFloat16;
    case Precision::kFloat32: return at::kFloat;
  }
  return at::kFloat;
}

int64_t EncoderImpl::output_side(int64_t side) const {
  const EncoderOptions& o = options_;
  for (int64_t g = 1; g < o.group_count; ++g) {
    // nn.MaxPool2d's output size.
    const int64_t span = side + 2 * o.pool_padding - o.pool_dilation * (o.pool_kernel - 1) - 1;
    if (span < 0) return 0;
    int64_t n = (o.pool_ceil_mode ? (span + o.pool_stride - 1) / o.pool_stride : span / o.pool_stride) + 1;
    if (o.pool_ceil_mode && (n - 1) * o.pool_stride >= side + o.pool_padding) --n;
    side = n;
  }
  return side;
}

void EncoderImpl::check_input(const at::Tensor& x) const {
  // The reference Encoder.forward's checks, with the shape in the message.
  if (x.dim() != 4) throw std::invalid_argument("dVAE encoder: input shape " + shape_str(x.sizes()) + " is not 4-D [N, C, H, W]");
  if (x.size(1) != options_.input_channels)
    throw std::invalid_argument("dVAE encoder: input has " + std::to_string(x.size(1)) + " channels but the encoder was built for " + std::to_string(options_.input_channels));
  if (x.scalar_type() != at::kFloat) throw std::invalid_argument("dVAE encoder: input must be float32, got " + std::string(c10::toString(x.scalar_type())));
  if (output_side(x.size(2)) < 1 || output_side(x.size(3)) < 1)
    throw std::invalid_argument("dVAE encoder: input " + shape_str(x.sizes()) + " is too small for " + std::to_string(options_.group_count - 1) + " poolings");
}

at::Tensor EncoderImpl::forward(const at::Tensor& input) {
  check_input(input);
  at::Tensor x = input.device() == options_.device ? input : input.to(options_.device);
  const EncoderOptions& o = options_;
  x = input_->forward(x, compute_dtype(*input_));
  for (size_t g = 0; g < groups_.size(); ++g) {
    for (auto& blk : groups_[g]) {
      ResPathImpl& r = *blk->res_path;
      at::Tensor h = r.conv_1->forward(at::relu(x), compute_dtype(*r.conv_1));
      h = r.conv_2->forward(at::relu(h), compute_dtype(*r.conv_2));
      h = r.conv_3->forward(at::relu(h), compute_dtype(*r.conv_3));
      h = r.conv_4->forward(at::relu(h), compute_dtype(*r.conv_4));
      at::Tensor id = blk->id_path ? blk->id_path->forward(x, compute_dtype(*blk->id_path)) : x;
      x = id + blk->post_gain * h;
    }
    if (g + 1 < groups_.size())
      x = at::max_pool2d(x, {o.pool_kernel, o.pool_kernel}, {o.pool_stride, o.pool_stride}, {o.pool_padding, o.pool_padding},
                         {o.pool_dilation, o.pool_dilation}, o.pool_ceil_mode);
  }
  x = output_->forward(at::relu(x), compute_dtype(*output_));
  return x.scalar_type() == at::kFloat ? x : x.to(at::kFloat);
}

namespace {

const StateRules& encoder_rules() {
  static const StateRules rules{"dall_e.encoder.Encoder", {}, nullptr};
  return rules;
}

}  // namespace

std::vector<beit::StateEntry> EncoderImpl::state_dict_entries() const {
  return collect_state(*this, /*include_buffers=*/false);
}

beit::LoadResult EncoderImpl::check_keys(const std::vector<std::string>& names) const {
  return check_state_keys(state_dict_entries(), names, encoder_rules());
}

beit::LoadResult EncoderImpl::load_state_dict(const std::map<std::string, at::Tensor>& sd, bool strict) {
  return load_state(state_dict_entries(), sd, strict, encoder_rules());
}

}  // namespace dvae
}  // namespace mood
