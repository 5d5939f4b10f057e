// Tests of the fused CPU block (native/core/block_cpu.*) against the block's math written with ATen
// ops (the reference's modeling_finetune.Block), run in float64 as the truth.
//
// Tolerance, derived rather than tuned: every value here comes out of at most S = 12 chained
// float32 reductions (forward: LayerNorm, qkv, q k^T, softmax, p v, proj, LayerNorm, fc1, fc2; the
// backward's transposed products, LayerNorm and softmax sums, and the weight gradients' sums over
// the B * N rows), each of length at most K = max(C, F, N, B * N). A length-K float32 sum errs by at
// most K * u relative to the magnitude of its terms (u = 2^-24; Higham's gamma_K), so a result may
// differ from the truth by S * K * u * max|truth| (the inputs are of unit spread, so LayerNorm does
// not amplify). The module's own float32 path must meet the same bound (checked), and a wrong
// kernel misses it by orders of magnitude.
#include <ATen/ATen.h>
#include <ATen/CPUGeneratorImpl.h>
#include <ATen/Parallel.h>
#include <c10/core/InferenceMode.h>
#include <torch/autograd.h>

#include <cmath>
#include <string>
#include <vector>

#include "core/beit.h"
#include "core/block_cpu.h"
#include "core/runtime.h"
#include "tests/test_harness.h"

using namespace mood::beit;

namespace {

struct Geometry {
  int64_t B, N, C, H, F;
  bool qkv_bias, layer_scale, bias;
};

double max_abs(const at::Tensor& a, const at::Tensor& b) { return (a.to(at::kDouble) - b.to(at::kDouble)).abs().max().item<double>(); }
double max_of(const at::Tensor& a) { return a.abs().max().item<double>(); }

double bound(const Geometry& g, const at::Tensor& truth) {
  const double u = std::ldexp(1.0, -24);
  const double K = static_cast<double>(std::max({g.C, g.F, g.N, g.B * g.N}));
  return 12.0 * K * u * std::max(1.0, max_of(truth));
}

std::vector<at::Tensor*> fields(BlockCpuParams& p) {
  return {&p.norm1_w, &p.norm1_b, &p.qkv_w, &p.q_bias, &p.v_bias, &p.proj_w, &p.proj_b, &p.gamma_1,
          &p.norm2_w, &p.norm2_b, &p.fc1_w, &p.fc1_b, &p.fc2_w, &p.fc2_b, &p.gamma_2};
}

// float64 parameters whose every part matters: weights of unit-order effect, biases and norms
// perturbed off their init, layer scale in (0.5, 1.5).
BlockCpuParams random_params(const Geometry& g, uint64_t seed) {
  auto gen = at::make_generator<at::CPUGeneratorImpl>(seed);
  auto o = at::TensorOptions().dtype(at::kDouble);
  auto n = [&](at::IntArrayRef s, double sd, double mean = 0) { return at::normal(mean, sd, s, gen, o); };
  const int64_t C = g.C, F = g.F;
  BlockCpuParams p;
  p.norm1_w = n({C}, 0.2, 1), p.norm1_b = n({C}, 0.2), p.qkv_w = n({3 * C, C}, 1 / std::sqrt(C));
  if (g.qkv_bias) p.q_bias = n({C}, 0.3), p.v_bias = n({C}, 0.3);
  p.proj_w = n({C, C}, 1 / std::sqrt(C)), p.proj_b = n({C}, 0.2);
  p.norm2_w = n({C}, 0.2, 1), p.norm2_b = n({C}, 0.2), p.fc1_w = n({F, C}, 1 / std::sqrt(C)), p.fc1_b = n({F}, 0.3);
  p.fc2_w = n({C, F}, 1 / std::sqrt(F)), p.fc2_b = n({C}, 0.2);
  if (g.layer_scale) p.gamma_1 = at::rand({C}, gen, o) + 0.5, p.gamma_2 = at::rand({C}, gen, o) + 0.5;
  p.eps1 = 1e-6;
  p.eps2 = 1e-5;
  return p;
}

BlockCpuParams cast(const BlockCpuParams& p, at::ScalarType t, bool grad) {
  BlockCpuParams q = p;
  for (at::Tensor* f : fields(q))
    if (f->defined()) *f = f->to(t).detach().requires_grad_(grad);
  return q;
}

// The block as the reference writes it (float32 or float64), drop path with the given masks.
at::Tensor reference_block(const BlockCpuParams& p, const at::Tensor& x, const at::Tensor& bias, int64_t H, double scale,
                           const DropPathDraw& d1, const DropPathDraw& d2) {
  const int64_t B = x.size(0), N = x.size(1), C = x.size(2);
  auto path = [&](at::Tensor t, const DropPathDraw& d) {
    return d.mask.defined() ? t.div(d.keep) * d.mask.reshape({B, 1, 1}).to(t.scalar_type()) : t;
  };
  at::Tensor qkv_b = p.q_bias.defined() ? at::cat({p.q_bias, at::zeros_like(p.v_bias), p.v_bias}) : at::Tensor();
  at::Tensor t = at::linear(at::layer_norm(x, {C}, p.norm1_w, p.norm1_b, p.eps1), p.qkv_w, qkv_b)
                     .reshape({B, N, 3, H, -1})
                     .permute({2, 0, 3, 1, 4});
  at::Tensor attn = at::matmul(t[0] * scale, t[1].transpose(-2, -1));
  if (bias.defined()) attn = attn + bias.unsqueeze(0);
  at::Tensor o = at::matmul(attn.softmax(-1), t[2]).transpose(1, 2).reshape({B, N, C});
  at::Tensor a = at::linear(o, p.proj_w, p.proj_b);
  if (p.gamma_1.defined()) a = p.gamma_1 * a;
  at::Tensor y = x + path(a, d1);
  at::Tensor m = at::linear(at::gelu(at::linear(at::layer_norm(y, {C}, p.norm2_w, p.norm2_b, p.eps2), p.fc1_w, p.fc1_b)), p.fc2_w, p.fc2_b);
  if (p.gamma_2.defined()) m = p.gamma_2 * m;
  return y + path(m, d2);
}

struct Run {
  at::Tensor y;
  std::vector<at::Tensor> grads;  // x, the 15 parameters (undefined where absent), bias
};

// Forward and backward of `block` (the fused op or the reference) on copies of the operands in `t`.
template <typename F>
Run run(F&& block, const BlockCpuParams& p64, const at::Tensor& x64, const at::Tensor& bias64, const at::Tensor& dy64,
        at::ScalarType t) {
  BlockCpuParams p = cast(p64, t, true);
  at::Tensor x = x64.to(t).detach().requires_grad_(), bias = bias64.defined() ? bias64.to(t).detach().requires_grad_() : at::Tensor();
  Run r;
  r.y = block(p, x, bias);
  r.y.backward(dy64.to(t));
  r.grads.push_back(x.grad());
  for (at::Tensor* f : fields(p)) r.grads.push_back(f->defined() ? f->grad() : at::Tensor());
  r.grads.push_back(bias.defined() ? bias.grad() : at::Tensor());
  return r;
}

const char* kNames[] = {"x",       "norm1.w", "norm1.b", "qkv.w",   "q_bias",  "v_bias", "proj.w", "proj.b", "gamma_1",
                        "norm2.w", "norm2.b", "fc1.w",   "fc1.b",   "fc2.w",   "fc2.b",  "gamma_2", "bias"};

// Every output and gradient of `got` within the bound of `truth`; returns the worst error / bound.
double check_within_bound(const Geometry& g, const Run& got, const Run& truth, const std::string& what) {
  double worst = max_abs(got.y, truth.y) / bound(g, truth.y);
  CHECK(got.grads.size() == truth.grads.size());
  for (size_t i = 0; i < truth.grads.size(); ++i) {
    if (!truth.grads[i].defined()) {
      CHECK(!got.grads[i].defined());
      continue;
    }
    CHECK(got.grads[i].defined());
    if (!got.grads[i].defined()) {
      std::printf("  %s: no gradient of %s\n", what.c_str(), kNames[i]);
      continue;
    }
    CHECK(max_of(truth.grads[i]) > 1e-3);  // every gradient is really exercised
    const double e = max_abs(got.grads[i], truth.grads[i]) / bound(g, truth.grads[i]);
    if (e > 1) std::printf("  %s: gradient of %s off by %.3g bounds\n", what.c_str(), kNames[i], e);
    worst = std::max(worst, e);
  }
  if (worst > 1) std::printf("  %s: worst error %.3g of the bound\n", what.c_str(), worst);
  CHECK(worst <= 1.0);
  return worst;
}

at::Tensor random_bias(const Geometry& g, uint64_t seed) {
  auto gen = at::make_generator<at::CPUGeneratorImpl>(seed);
  return g.bias ? at::normal(0, 0.5, {g.H, g.N, g.N}, gen, at::TensorOptions().dtype(at::kDouble)) : at::Tensor();
}

at::Tensor random_input(at::IntArrayRef s, uint64_t seed) {
  auto gen = at::make_generator<at::CPUGeneratorImpl>(seed);
  return at::normal(0, 1, s, gen, at::TensorOptions().dtype(at::kDouble));
}

class Threads {
 public:
  explicit Threads(int n) : saved_(at::get_num_threads()) { mood::apply_threads_to_this_thread(n); }
  ~Threads() { mood::apply_threads_to_this_thread(saved_); }

 private:
  int saved_;
};

const Geometry kGeometries[] = {
    // head_dim 12 (scale not a power of two), own bias, q/v bias, layer scale; 17 tokens.
    {5, 17, 48, 4, 96, true, true, true},
    // one head of 64 (scale 1/8), no bias, no q/v bias, no layer scale, MLP 4.
    {3, 10, 64, 1, 256, false, false, false},
};

}  // namespace

MOOD_TEST(block_cpu_matches_the_block_math_forward_and_backward_on_1_2_3_threads) {
  uint64_t seed = 10;
  for (const Geometry& g : kGeometries) {
    const BlockCpuParams p = random_params(g, ++seed);
    const at::Tensor x = random_input({g.B, g.N, g.C}, ++seed), dy = random_input({g.B, g.N, g.C}, ++seed);
    const at::Tensor bias = random_bias(g, ++seed);
    const double scale = std::pow(static_cast<double>(g.C / g.H), -0.5);
    auto ref = [&](const BlockCpuParams& q, const at::Tensor& xx, const at::Tensor& b) { return reference_block(q, xx, b, g.H, scale, {}, {}); };
    auto fused = [&](const BlockCpuParams& q, const at::Tensor& xx, const at::Tensor& b) { return block_cpu(xx, q, b, g.H, scale, {}, {}); };
    const Run truth = run(ref, p, x, bias, dy, at::kDouble);
    // The module's float32 math meets the bound too: it is float32 rounding, not a tuned number.
    check_within_bound(g, run(ref, p, x, bias, dy, at::kFloat), truth, "reference float32");
    for (int n : {1, 2, 3}) {
      Threads t(n);
      CHECK(block_cpu_supported(x.to(at::kFloat), cast(p, at::kFloat, false), bias.defined() ? bias.to(at::kFloat) : bias, g.H));
      const Run a = run(fused, p, x, bias, dy, at::kFloat);
      check_within_bound(g, a, truth, "fused, " + std::to_string(n) + " threads");
      // Deterministic for a thread count: the same bits again.
      const Run b = run(fused, p, x, bias, dy, at::kFloat);
      CHECK(max_abs(a.y, b.y) == 0);
      for (size_t i = 0; i < a.grads.size(); ++i)
        if (a.grads[i].defined()) CHECK(max_abs(a.grads[i], b.grads[i]) == 0);
      // Without grad and in inference mode: the same output, no graph.
      at::Tensor xf = x.to(at::kFloat);
      const BlockCpuParams pf = cast(p, at::kFloat, false);
      const at::Tensor bf = bias.defined() ? bias.to(at::kFloat) : bias;
      {
        at::NoGradGuard ng;
        at::Tensor y = block_cpu(xf, cast(p, at::kFloat, true), bf, g.H, scale, {}, {});
        CHECK(!y.requires_grad());
        CHECK(max_abs(y, a.y.detach()) == 0);
      }
      {
        c10::InferenceMode im;
        CHECK(max_abs(block_cpu(xf.clone(), pf, bf, g.H, scale, {}, {}), a.y.detach()) == 0);
      }
    }
  }
}

MOOD_TEST(block_cpu_drop_path_skips_dropped_samples_and_matches_the_math) {
  const Geometry g{8, 17, 48, 4, 96, true, true, true};
  const BlockCpuParams p = random_params(g, 3);
  const at::Tensor x = random_input({g.B, g.N, g.C}, 4), dy = random_input({g.B, g.N, g.C}, 5), bias = random_bias(g, 6);
  const double scale = std::pow(12.0, -0.5), keep = 0.7;
  // Sample 1 is dropped by both branches, 0 and 4 by one each; runs of kept samples of every length.
  const DropPathDraw d1{at::tensor({1., 0., 1., 1., 0., 1., 1., 1.}, at::kDouble), keep};
  const DropPathDraw d2{at::tensor({0., 0., 1., 1., 1., 1., 1., 0.}, at::kDouble), keep};
  auto ref = [&](const BlockCpuParams& q, const at::Tensor& xx, const at::Tensor& b) { return reference_block(q, xx, b, g.H, scale, d1, d2); };
  auto fused = [&](const BlockCpuParams& q, const at::Tensor& xx, const at::Tensor& b) {
    return block_cpu(xx, q, b, g.H, scale, {d1.mask.to(at::kFloat), keep}, {d2.mask.to(at::kFloat), keep});
  };
  const Run truth = run(ref, p, x, bias, dy, at::kDouble);
  for (int n : {1, 2, 3}) {
    Threads t(n);
    const Run a = run(fused, p, x, bias, dy, at::kFloat);
    check_within_bound(g, a, truth, "drop path, " + std::to_string(n) + " threads");
    // A sample both branches dropped passes through untouched, its gradient too.
    CHECK(max_abs(a.y[1], x[1].to(at::kFloat)) == 0);
    CHECK(max_abs(a.grads[0][1], dy[1].to(at::kFloat)) == 0);
    // Without grad: the same output as with.
    at::NoGradGuard ng;
    CHECK(max_abs(fused(cast(p, at::kFloat, false), x.to(at::kFloat), bias.to(at::kFloat)), a.y) == 0);
  }
}

MOOD_TEST(block_cpu_mean_pooled_matches_the_block_then_the_mean) {
  for (const Geometry& g : kGeometries) {
    const BlockCpuParams p = random_params(g, 31);
    const at::Tensor x = random_input({g.B, g.N, g.C}, 32), bias = random_bias(g, 33);
    const double scale = std::pow(static_cast<double>(g.C / g.H), -0.5);
    at::NoGradGuard ng;
    const at::Tensor truth = reference_block(p, x, bias, g.H, scale, {}, {}).slice(1, 1).mean(1);
    for (int n : {1, 2, 3}) {
      Threads t(n);
      at::Tensor got = block_cpu_mean_pooled(x.to(at::kFloat), cast(p, at::kFloat, false), bias.defined() ? bias.to(at::kFloat) : bias, g.H, scale);
      CHECK(got.sizes() == truth.sizes());
      CHECK(max_abs(got, truth) <= bound(g, truth));
    }
  }
  // Through the model: forward_features (the shortcut) against the full pass's features.
  BeitOptions o = config("beit_test_tiny");
  o.use_rel_pos_bias = true;
  o.init_values = 0.2;
  o.seed = 5;
  BeitImpl m(o);
  m.eval();
  {
    at::NoGradGuard ng;
    auto gen = at::make_generator<at::CPUGeneratorImpl>(8);
    for (auto& e : m.state_dict_entries(false)) e.tensor.add_(at::normal(0, 0.2, e.tensor.sizes(), gen, e.tensor.options()));
    at::Tensor x = at::randn({4, 3, 32, 32});
    ForwardRequest all{true, true, true, true, true};
    auto r = m.run(x, all);
    at::Tensor f = m.forward_features(x);
    CHECK(max_of(r.features) > 0.1);
    CHECK(max_abs(f, r.features) <= 2 * (2 * 12 + 2) * 192 * std::ldexp(1.0, -24) * std::max(1.0, max_of(r.features)));
  }
}

MOOD_TEST(block_cpu_gradients_only_where_wanted) {
  const Geometry g = kGeometries[0];
  const BlockCpuParams p = random_params(g, 21);
  const at::Tensor x = random_input({g.B, g.N, g.C}, 22).to(at::kFloat), dy = random_input({g.B, g.N, g.C}, 23).to(at::kFloat);
  const at::Tensor bias = random_bias(g, 24).to(at::kFloat);
  const double scale = std::pow(12.0, -0.5);
  // Frozen: everything but the MLP and v_bias; x needs no gradient (a first block's input).
  BlockCpuParams f = cast(p, at::kFloat, false), r = cast(p, at::kFloat, false);
  for (BlockCpuParams* q : {&f, &r})
    for (at::Tensor* t : {&q->fc1_w, &q->fc1_b, &q->fc2_w, &q->fc2_b, &q->v_bias}) t->requires_grad_(true);
  block_cpu(x, f, bias, g.H, scale, {}, {}).backward(dy);
  reference_block(r, x, bias, g.H, scale, {}, {}).backward(dy);
  // Both float32: each within the bound of the truth, so within twice it of each other.
  for (auto q : {&BlockCpuParams::fc1_w, &BlockCpuParams::fc1_b, &BlockCpuParams::fc2_w, &BlockCpuParams::fc2_b, &BlockCpuParams::v_bias})
    CHECK(max_abs((f.*q).grad(), (r.*q).grad()) <= 2 * bound(g, (r.*q).grad().to(at::kDouble)));
  CHECK(!f.qkv_w.grad().defined());
  CHECK(!f.q_bias.grad().defined());
  CHECK(!f.norm1_w.grad().defined());
}

MOOD_TEST(block_cpu_model_step_matches_the_module_path) {
  // A BEiT train step (drop path on, same seed) through the fused block ('auto') and through the
  // modules ('exact'): same drop-path draws, same loss and gradients up to float32 rounding.
  BeitOptions o = config("beit_test_tiny");
  o.use_rel_pos_bias = true;
  o.use_shared_rel_pos_bias = true;
  o.init_values = 0.3;
  o.drop_path_rate = 0.5;
  o.seed = 4;
  BeitImpl m(o);
  {
    at::NoGradGuard ng;
    auto gen = at::make_generator<at::CPUGeneratorImpl>(9);
    for (auto& e : m.state_dict_entries(false)) e.tensor.add_(at::normal(0, 0.2, e.tensor.sizes(), gen, e.tensor.options()));
  }
  // 5 samples on 2 threads: a batch that does not split evenly still takes the fused block.
  Threads two(2);
  at::Tensor x = at::randn({5, 3, 32, 32});
  at::Tensor y = at::arange(5, at::kLong);
  auto step = [&](AttentionMode mode) {
    for (auto& b : m.block_list) b->attn->mode = mode;
    at::manual_seed(77);
    at::Tensor loss = cross_entropy_backward(m, x, y);
    std::vector<at::Tensor> g{loss};
    for (auto& p : m.parameters()) g.push_back(p.grad().defined() ? p.grad().clone() : at::zeros_like(p));
    return g;
  };
  const std::vector<at::Tensor> exact = step(AttentionMode::kExact), fused = step(AttentionMode::kAuto);
  CHECK(exact.size() == fused.size());
  double worst = 0, biggest = 0;
  for (size_t i = 0; i < exact.size(); ++i) {
    worst = std::max(worst, max_abs(exact[i], fused[i]) / std::max(1.0, max_of(exact[i])));
    biggest = std::max(biggest, max_of(exact[i]));
  }
  CHECK(biggest > 1e-2);
  CHECK(worst > 0);  // the fused block ran (its sums go in another order than the modules')
  // Both are float32 paths, each within S * K * u of the truth: K = 192 (the MLP width; B * N = 85
  // rows), S = 2 blocks * 12 + 4 (patch embedding, pooling, head, loss); so within twice that of
  // each other.
  CHECK(worst <= 2 * (2 * 12 + 4) * 192 * std::ldexp(1.0, -24));
  // The shared and own relative position tables get gradients through the fused block's bias.
  CHECK(max_of(m.rel_pos_bias->relative_position_bias_table.grad()) > 0);
}

MOOD_TEST(block_cpu_rejects_what_it_does_not_take) {
  const Geometry g = kGeometries[0];
  const BlockCpuParams p = cast(random_params(g, 1), at::kFloat, false);
  const at::Tensor x = at::randn({2, g.N, g.C});
  CHECK(block_cpu_supported(x, p, at::Tensor(), g.H));
  CHECK(!block_cpu_supported(x.to(at::kDouble), p, at::Tensor(), g.H));            // float32 only
  CHECK(!block_cpu_supported(x, cast(p, at::kDouble, false), at::Tensor(), g.H));  // parameters too
  CHECK(!block_cpu_supported(x, p, at::randn({g.H, g.N + 1, g.N + 1}), g.H));      // bias of another size
  CHECK(!block_cpu_supported(x, p, at::Tensor(), 5));                              // 48 not divisible by 5
  CHECK(!block_cpu_supported(at::randn({2, g.N, g.C + 1}), p, at::Tensor(), g.H)); // wrong width
  BlockCpuParams half = p;
  half.gamma_2 = at::Tensor();  // one layer scale without the other
  CHECK(!block_cpu_supported(x, half, at::Tensor(), g.H));
  bool threw = false;
  try {
    block_cpu(x.to(at::kDouble), p, at::Tensor(), g.H, 0.3, {}, {});
  } catch (const std::exception& e) {
    threw = std::string(e.what()).find("block_cpu: expected CPU float32") != std::string::npos;
  }
  CHECK(threw);
}

int main(int argc, char** argv) { return mood_test::run_all(argc, argv); }
