// Tests of the BEiT module (native/core/beit.*), independent of Node.
#include <ATen/ATen.h>
#include <ATen/CPUGeneratorImpl.h>
#include <ATen/Parallel.h>
#include <torch/autograd.h>

#include <cmath>
#include <functional>
#include <map>
#include <string>
#include <thread>

#include "core/attention_cpu.h"
#include "core/beit.h"
#include "core/runtime.h"
#include "tests/test_harness.h"

using namespace mood::beit;

namespace {

BeitOptions tiny(bool mean_pool = true, bool rel = true, bool shared = false, bool abs = false, double init_values = 0.1) {
  BeitOptions o = config("beit_test_tiny");
  o.use_mean_pooling = mean_pool;
  o.use_rel_pos_bias = rel;
  o.use_shared_rel_pos_bias = shared;
  o.use_abs_pos_emb = abs;
  o.init_values = init_values;
  o.seed = 1;
  o.attention = AttentionMode::kExact;
  return o;
}

// Makes every parameter matter (as the fixtures do): noise on tables, gammas, biases, norms.
void perturb(BeitImpl& m, int64_t seed) {
  at::NoGradGuard ng;
  auto gen = at::make_generator<at::CPUGeneratorImpl>(seed);
  for (auto& e : m.state_dict_entries(false)) {
    at::Tensor n = at::empty(e.tensor.sizes(), e.tensor.options());
    n.normal_(0, 1, gen);
    double s = 0.1;
    if (e.name.find("relative_position_bias_table") != std::string::npos) s = 0.5;
    if (e.name.find("weight") != std::string::npos && e.tensor.dim() >= 2)
      s = 1.0 / std::sqrt(static_cast<double>(e.tensor.numel() / e.tensor.size(0)));
    e.tensor.add_(n * s);
  }
}

double max_abs(const at::Tensor& a, const at::Tensor& b) { return (a - b).abs().max().item<double>(); }

// The reference computation written out by hand, per block.
at::Tensor naive_block(BlockImpl& b, const at::Tensor& x, const at::Tensor& shared_bias) {
  auto ln = [](LayerNormImpl& n, const at::Tensor& t) {
    auto mu = t.mean(-1, true);
    auto var = (t - mu).pow(2).mean(-1, true);
    return (t - mu) / (var + n.eps).sqrt() * n.weight + n.bias;
  };
  auto& a = *b.attn;
  const int64_t B = x.size(0), N = x.size(1), H = a.num_heads, hd = a.head_dim;
  at::Tensor h = ln(*b.norm1, x);
  at::Tensor w = a.qkv->weight;  // [3C, C]
  const int64_t C = H * hd;
  at::Tensor q = at::matmul(h, w.slice(0, 0, C).t()), k = at::matmul(h, w.slice(0, C, 2 * C).t()),
             v = at::matmul(h, w.slice(0, 2 * C).t());
  if (a.q_bias.defined()) {
    q = q + a.q_bias;
    v = v + a.v_bias;
  }
  auto heads = [&](const at::Tensor& t) { return t.reshape({B, N, H, hd}).permute({0, 2, 1, 3}); };
  q = heads(q) * std::pow(static_cast<double>(hd), -0.5);
  k = heads(k);
  v = heads(v);
  at::Tensor logits = at::matmul(q, k.transpose(-1, -2));  // [B, H, N, N]
  if (a.relative_position_bias_table.defined()) {
    at::Tensor bias = at::empty({H, N, N});
    auto idx = a.relative_position_index;
    for (int64_t i = 0; i < N; ++i)
      for (int64_t j = 0; j < N; ++j) bias.select(1, i).select(1, j).copy_(a.relative_position_bias_table[idx[i][j].item<int64_t>()]);
    logits = logits + bias.unsqueeze(0);
  }
  if (shared_bias.defined()) logits = logits + shared_bias.unsqueeze(0);
  at::Tensor p = at::exp(logits - std::get<0>(logits.max(-1, true)));
  p = p / p.sum(-1, true);
  at::Tensor o = at::matmul(p, v).permute({0, 2, 1, 3}).reshape({B, N, C});
  o = at::matmul(o, a.proj->weight.t()) + a.proj->bias;
  if (b.gamma_1.defined()) o = o * b.gamma_1;
  at::Tensor y = x + o;
  at::Tensor m = ln(*b.norm2, y);
  m = at::matmul(m, b.mlp->fc1->weight.t()) + b.mlp->fc1->bias;
  m = 0.5 * m * (1 + at::erf(m / std::sqrt(2.0)));
  m = at::matmul(m, b.mlp->fc2->weight.t()) + b.mlp->fc2->bias;
  if (b.gamma_2.defined()) m = m * b.gamma_2;
  return y + m;
}

bool throws_with(const std::function<void()>& fn, const std::string& needle) {
  try {
    fn();
  } catch (const std::exception& e) {
    std::string w = e.what();
    if (w.find(needle) == std::string::npos) std::printf("  message was: %s\n", w.c_str());
    return w.find(needle) != std::string::npos;
  }
  return false;
}

std::vector<std::string> names(const BeitImpl& m) {
  std::vector<std::string> n;
  for (auto& e : m.state_dict_entries()) n.push_back(e.name);
  return n;
}

}  // namespace

MOOD_TEST(beit_relative_position_index_matches_formula) {
  at::Tensor idx = relative_position_index(4, 4);
  CHECK(idx.sizes() == at::IntArrayRef({17, 17}));
  CHECK(idx[0][0].item<int64_t>() == 51);
  CHECK(idx[0][5].item<int64_t>() == 49);
  CHECK(idx[5][0].item<int64_t>() == 50);
  // patch 0 (0,0) vs patch 15 (3,3): d = (-3,-3) -> (0)*(7) + 0 = 0; 15 vs 0: (6)*7 + 6 = 48; self: 3*7+3 = 24
  CHECK(idx[1][16].item<int64_t>() == 0);
  CHECK(idx[16][1].item<int64_t>() == 48);
  CHECK(idx[7][7].item<int64_t>() == 24);
}

MOOD_TEST(beit_parameter_names_and_shapes_meanpool_relpos) {
  BeitImpl m(tiny());
  auto e = m.state_dict_entries();
  std::vector<std::pair<std::string, std::vector<int64_t>>> want = {
      {"cls_token", {1, 1, 48}},
      {"patch_embed.proj.weight", {48, 3, 8, 8}},
      {"patch_embed.proj.bias", {48}},
      {"blocks.0.gamma_1", {48}},
      {"blocks.0.gamma_2", {48}},
      {"blocks.0.norm1.weight", {48}},
      {"blocks.0.norm1.bias", {48}},
      {"blocks.0.attn.q_bias", {48}},
      {"blocks.0.attn.v_bias", {48}},
      {"blocks.0.attn.relative_position_bias_table", {52, 4}},
      {"blocks.0.attn.relative_position_index", {17, 17}},
      {"blocks.0.attn.qkv.weight", {144, 48}},
      {"blocks.0.attn.proj.weight", {48, 48}},
      {"blocks.0.attn.proj.bias", {48}},
      {"blocks.0.norm2.weight", {48}},
      {"blocks.0.norm2.bias", {48}},
      {"blocks.0.mlp.fc1.weight", {192, 48}},
      {"blocks.0.mlp.fc1.bias", {192}},
      {"blocks.0.mlp.fc2.weight", {48, 192}},
      {"blocks.0.mlp.fc2.bias", {48}},
  };
  CHECK(e.size() == 3 + 2 * 17 + 4);
  for (size_t i = 0; i < want.size() && i < e.size(); ++i) {
    CHECK(e[i].name == want[i].first);
    CHECK(e[i].tensor.sizes() == at::IntArrayRef(want[i].second));
  }
  CHECK(e[e.size() - 4].name == "fc_norm.weight");
  CHECK(e[e.size() - 2].name == "head.weight");
  CHECK(e[e.size() - 2].tensor.sizes() == at::IntArrayRef({10, 48}));
  CHECK(e[10].is_buffer && e[10].tensor.scalar_type() == at::kLong);
}

MOOD_TEST(beit_parameter_names_cls_abspos_shared) {
  BeitImpl m(tiny(/*mean*/ false, /*rel*/ false, /*shared*/ true, /*abs*/ true, /*init*/ 0));
  auto n = names(m);
  CHECK(n[0] == "cls_token");
  CHECK(n[1] == "pos_embed");
  CHECK(n[4] == "rel_pos_bias.relative_position_bias_table");
  CHECK(n[5] == "rel_pos_bias.relative_position_index");
  CHECK(n[6] == "blocks.0.norm1.weight");
  CHECK(n[n.size() - 4] == "norm.weight");
  for (auto& s : n) CHECK(s.find("gamma") == std::string::npos && s.find("fc_norm") == std::string::npos);
}

MOOD_TEST(beit_full_size_on_meta_device) {
  BeitOptions o = config("beit_large_patch16_224");
  o.device = c10::Device(c10::kMeta);
  o.use_abs_pos_emb = false;
  o.use_rel_pos_bias = true;
  o.init_values = 0.1;
  BeitImpl m(o);
  auto e = m.state_dict_entries();
  CHECK(e.size() == 415);
  int64_t params = 0;
  for (auto& x : e)
    if (!x.is_buffer) params += x.tensor.numel();
  CHECK(params == 304430568);
  CHECK(m.cls_token.device().is_meta());
}

MOOD_TEST(beit_init_like_reference) {
  BeitOptions o = tiny();
  o.init_scale = 0.001;
  BeitImpl m(o);
  at::NoGradGuard ng;
  CHECK_CLOSE(m.block_list[0]->gamma_1.min().item<double>(), 0.1, std::ldexp(1.0, -28));  // float32(0.1): half an ulp
  CHECK_CLOSE(m.block_list[0]->attn->relative_position_bias_table.abs().max().item<double>(), 0.0, 0);
  // Sample std of 9216 draws: standard error std / sqrt(2 * 9216) = 0.74 % (1.5e-4 and 7.4e-5); the bounds
  // are ~13 of those, and half of the std a wrong scale would give (0.01 vs 0.02).
  CHECK_CLOSE(m.block_list[1]->mlp->fc1->weight.std().item<double>(), 0.02, 0.002);
  // fix_init_weight: layer 2 fc2 divided by sqrt(4) = 2
  CHECK_CLOSE(m.block_list[1]->mlp->fc2->weight.std().item<double>(), 0.01, 0.001);
  CHECK(m.head->weight.abs().max().item<double>() < 2 * 0.02 * 0.001 * 3);
  CHECK_CLOSE(m.fc_norm->weight.min().item<double>(), 1.0, 0);
  BeitImpl m2(o);
  CHECK(max_abs(m.head->weight, m2.head->weight) == 0);  // same seed, same init
}

MOOD_TEST(beit_attention_matches_naive) {
  for (int variant = 0; variant < 3; ++variant) {
    BeitOptions o = variant == 0 ? tiny() : variant == 1 ? tiny(false, false, true, true, 0) : tiny(true, true, true, false, 0.2);
    BeitImpl m(o);
    m.eval();
    perturb(m, 7 + variant);
    at::NoGradGuard ng;
    at::Tensor x = at::randn({2, 3, 32, 32});
    auto r = m.run(x, ForwardRequest{true, true, true, true, true});
    // Naive: patch embed, cls, pos, blocks by hand.
    at::Tensor t = at::conv2d(x, m.patch_embed->proj->weight, m.patch_embed->proj->bias, {8, 8}).flatten(2).transpose(1, 2);
    t = at::cat({m.cls_token.expand({2, 1, 48}), t}, 1);
    if (m.pos_embed.defined()) t = t + m.pos_embed;
    at::Tensor shared = m.rel_pos_bias ? m.rel_pos_bias->forward() : at::Tensor();
    // Two float32 evaluations of the fixtures' architecture (C 48, depth 2, O(1) activations) in
    // different orders: held to the fixture README's bound for independent float32 implementations,
    // 1e-4 absolute on every output, pooled_prenorm included (tests/fixtures/official/README.md; the
    // reference's own fp32-vs-fp64 noise there is <= 4.1e-6). A wrong detail moves them by >= 0.04.
    for (size_t i = 0; i < m.block_list.size(); ++i) {
      t = naive_block(*m.block_list[i], t, shared);
      CHECK_WITHIN(max_abs(t, r.blocks[i]), 1e-4);
    }
    CHECK_WITHIN(max_abs(t, r.tokens), 1e-4);
    at::Tensor pooled = o.use_mean_pooling ? t.slice(1, 1).mean(1) : t.select(1, 0);
    CHECK_WITHIN(max_abs(pooled, r.pooled_prenorm), 1e-4);  // a mean of tokens held to 1e-4
    at::Tensor f = o.use_mean_pooling ? at::layer_norm(pooled, {48}, m.fc_norm->weight, m.fc_norm->bias, 1e-6)
                                      : at::layer_norm(t, {48}, m.norm->weight, m.norm->bias, 1e-6).select(1, 0);
    CHECK_WITHIN(max_abs(f, r.features), 1e-4);
    CHECK_WITHIN(max_abs(at::linear(f, m.head->weight, m.head->bias), r.logits), 1e-4);
    // The single-purpose entry points agree with the combined pass.
    CHECK(max_abs(m.forward(x), r.logits) == 0);
    CHECK(max_abs(m.forward_features(x), r.features) == 0);
    CHECK(m.intermediate_layers(x).size() == 2);
    CHECK(r.features.abs().mean().item<double>() > 0.1);
  }
}

// The reference's math on the same operands: softmax((q * scale) @ k^T + bias) @ v.
at::Tensor attention_math(const at::Tensor& qkv, const at::Tensor& bias, int64_t heads, double scale) {
  const int64_t B = qkv.size(0), N = qkv.size(1);
  at::Tensor t = qkv.reshape({B, N, 3, heads, -1}).permute({2, 0, 3, 1, 4});
  at::Tensor a = at::matmul(t[0] * scale, t[1].transpose(-2, -1));
  if (bias.defined()) a = a + bias.unsqueeze(0);
  return at::matmul(a.softmax(-1), t[2]).transpose(1, 2).reshape({B, N, -1});
}

MOOD_TEST(beit_attention_cpu_matches_math_forward_and_backward) {
  struct Case { int64_t B, N, heads, head_dim; bool bias; };
  // head_dim 64: scale 1/8 (exact either way); 12 and 5: scale not a power of two; odd token counts.
  for (const Case c : {Case{2, 17, 3, 64, true}, Case{3, 10, 2, 12, false}, Case{1, 50, 4, 5, true}}) {
    const double scale = std::pow(static_cast<double>(c.head_dim), -0.5);
    at::Tensor qkv = at::randn({c.B, c.N, 3 * c.heads * c.head_dim}).requires_grad_();
    at::Tensor bias = c.bias ? at::randn({c.heads, c.N, c.N}).requires_grad_() : at::Tensor();
    at::Tensor go = at::randn({c.B, c.N, c.heads * c.head_dim});
    CHECK(attention_cpu_supported(qkv, bias, c.heads));

    at::Tensor ref = attention_math(qkv, bias, c.heads, scale);
    ref.backward(go);
    at::Tensor gq_ref = qkv.grad().clone(), gb_ref = c.bias ? bias.grad().clone() : at::Tensor();
    qkv.mutable_grad() = at::Tensor();
    if (c.bias) bias.mutable_grad() = at::Tensor();

    at::Tensor out = attention_cpu(qkv, bias, c.heads, scale);
    CHECK(out.sizes() == ref.sizes());
    // The same float32 operands through the same ATen kernels in another order (scale on q k^T, not on
    // q; one gemm per head): rounding only. Logits sum hd <= 64 products, outputs N <= 50 terms p_j v_j
    // (sum p = 1, |v| <= 4.5), the gradients the same lengths: worst case (hd + N) 2^-24 |v| ~ 3e-5, but
    // these rounding errors have random signs and add as sqrt(n): 2^-24 sqrt(114) 4.5 ~ 3e-6 for the
    // largest elements. 1e-5 is above that, and far below a wrong scale, bias or softmax axis (> 0.1).
    CHECK_WITHIN(max_abs(out, ref), 1e-5);
    out.backward(go);
    CHECK_WITHIN(max_abs(qkv.grad(), gq_ref), 1e-5);
    CHECK(qkv.grad().abs().max().item<double>() > 1e-2);  // the gradient is not trivially small
    if (c.bias) CHECK_WITHIN(max_abs(bias.grad(), gb_ref), 1e-5);

    // Without grad (eval) and in inference mode: the same values, no graph.
    {
      at::NoGradGuard ng;
      at::Tensor o = attention_cpu(qkv, bias, c.heads, scale);
      CHECK(!o.requires_grad());
      CHECK_WITHIN(max_abs(o, ref.detach()), 1e-5);
    }
    {
      c10::InferenceMode im;
      at::Tensor qi = qkv.detach().clone(), bi = c.bias ? bias.detach().clone() : at::Tensor();
      CHECK_WITHIN(max_abs(attention_cpu(qi, bi, c.heads, scale), ref.detach()), 1e-5);
    }
  }
}

MOOD_TEST(beit_attention_cpu_same_result_on_one_thread_and_many) {
  at::Tensor qkv = at::randn({3, 20, 3 * 4 * 8}), bias = at::randn({4, 20, 20});
  const int saved = at::get_num_threads();
  mood::apply_threads_to_this_thread(1);
  at::Tensor one = attention_cpu(qkv, bias, 4, 0.3);
  mood::apply_threads_to_this_thread(3);
  at::Tensor many = attention_cpu(qkv, bias, 4, 0.3);
  mood::apply_threads_to_this_thread(saved);
  CHECK(max_abs(one, many) == 0);  // each (item, head) is computed whole by one thread either way
}

MOOD_TEST(beit_attention_cpu_rejects_what_it_does_not_take) {
  CHECK(!attention_cpu_supported(at::randn({2, 5, 24}, at::kDouble), at::Tensor(), 2));
  CHECK(!attention_cpu_supported(at::randn({2, 5, 24}), at::randn({3, 5, 5}), 2));  // bias heads
  CHECK(!attention_cpu_supported(at::randn({2, 5, 25}), at::Tensor(), 2));          // not 3 * heads * dim
  CHECK(throws_with([] { attention_cpu(at::randn({2, 5, 24}), at::randn({2, 4, 4}), 2, 0.5); },
                    "bias [heads, N, N]"));
}

MOOD_TEST(beit_core_attention_step_matches_exact) {
  // A train step of the model through the native attention core and through the math path.
  BeitImpl m(tiny(true, true, true, false, 0.2));
  perturb(m, 3);
  m.eval();  // no drop path: both steps see the same function
  at::Tensor x = at::randn({2, 3, 32, 32});
  at::Tensor y = at::arange(2, at::kLong);
  auto grads = [&](AttentionMode mode) {
    for (auto& b : m.block_list) b->attn->mode = mode;
    for (auto& p : m.parameters()) p.mutable_grad() = at::Tensor();
    cross_entropy_backward(m, x, y);
    std::vector<at::Tensor> g;
    for (auto& p : m.parameters()) g.push_back(p.grad().defined() ? p.grad().clone() : at::zeros_like(p));
    return g;
  };
  std::vector<at::Tensor> exact = grads(AttentionMode::kExact), fast = grads(AttentionMode::kCore);
  CHECK(exact.size() == fast.size());
  double worst = 0, biggest = 0;
  for (size_t i = 0; i < exact.size(); ++i) {
    worst = std::max(worst, max_abs(exact[i], fast[i]));
    biggest = std::max(biggest, exact[i].abs().max().item<double>());
  }
  CHECK(biggest > 1e-3);
  // float32 gradients through two attention paths: n 2^-24 relative to max(1, |largest|) on the longest
  // reduction in them (the 4C = 192-wide MLP's input gradient: 1.1e-5), as tests/pretrain/step.parity.
  CHECK_WITHIN(worst, 1e-5 * std::max(1.0, biggest));
  // The relative position tables (whose gradient comes from the core's bias gradient) moved.
  CHECK(m.block_list[0]->attn->relative_position_bias_table.grad().abs().max().item<double>() > 0 ||
        m.rel_pos_bias->relative_position_bias_table.grad().abs().max().item<double>() > 0);
}

MOOD_TEST(beit_core_attention_where_it_pays_and_clear_errors) {
  CHECK(attention_cpu_pays(197, 64));   // BEiT at 224 px
  CHECK(attention_cpu_pays(145, 64));
  CHECK(!attention_cpu_pays(65, 64));
  CHECK(!attention_cpu_pays(50, 24));   // the Fashion-MNIST demo's model
  CHECK(!attention_cpu_pays(17, 12));   // beit_test_tiny
  CHECK(parse_attention_mode("core") == AttentionMode::kCore);
  CHECK(attention_mode_name(AttentionMode::kCore) == "core");
  BeitOptions o = tiny();
  o.dtype = at::kDouble;
  o.attention = AttentionMode::kCore;
  BeitImpl m(o);
  m.eval();
  CHECK(throws_with([&] { m.forward(at::randn({1, 3, 32, 32}, at::kDouble)); }, "attention 'core' runs on the CPU in float32"));
  BeitOptions d = tiny();
  d.attn_drop_rate = 0.1;
  d.attention = AttentionMode::kCore;
  BeitImpl md(d);
  md.train();
  CHECK(throws_with([&] { md.forward(at::randn({1, 3, 32, 32})); }, "with attn_drop_rate 0.1"));
}

MOOD_TEST(beit_rel_bias_matters_and_is_oriented) {
  BeitImpl m(tiny());
  m.eval();
  perturb(m, 3);
  at::NoGradGuard ng;
  at::Tensor x = at::randn({1, 3, 32, 32});
  at::Tensor a = m.forward_features(x);
  auto& tab = m.block_list[0]->attn->relative_position_bias_table;
  at::Tensor saved = tab.clone();
  tab.zero_();
  CHECK(max_abs(m.forward_features(x), a) > 1e-3);
  tab.copy_(saved);
  CHECK(max_abs(m.forward_features(x), a) == 0);
}

MOOD_TEST(beit_train_mode_drop_path_is_stochastic) {
  BeitOptions o = tiny();
  o.drop_path_rate = 0.5;
  BeitImpl m(o);
  perturb(m, 5);
  at::NoGradGuard ng;
  at::Tensor x = at::randn({8, 3, 32, 32});
  m.eval();
  at::Tensor e1 = m.forward_features(x), e2 = m.forward_features(x);
  CHECK(max_abs(e1, e2) == 0);
  m.train();
  at::Tensor t1 = m.forward_features(x);
  CHECK(max_abs(t1, e1) > 1e-4);
  CHECK_CLOSE(m.block_list[0]->drop_path, 0.0, 0);
  CHECK_CLOSE(m.block_list[1]->drop_path, 0.5, 1e-12);
}

MOOD_TEST(beit_input_errors_name_expected_and_got) {
  BeitImpl m(tiny());
  m.eval();
  at::NoGradGuard ng;
  CHECK(throws_with([&] { m.forward(at::randn({2, 3, 48, 48})); }, "expected float32[B, 3, 32, 32] on cpu, got float32[2, 3, 48, 48]"));
  CHECK(throws_with([&] { m.forward(at::randn({2, 1, 32, 32})); }, "wrong channel count"));
  CHECK(throws_with([&] { m.forward(at::randn({2, 3, 32, 32}, at::kDouble)); }, "got float64[2, 3, 32, 32]"));
  CHECK(throws_with([&] { m.forward(at::randn({3, 32, 32})); }, "need 4 dimensions"));
  CHECK(throws_with([] { config("beit_huge"); }, "unknown BEiT config 'beit_huge'"));
  BeitOptions bad = tiny();
  bad.img_size = 30;
  CHECK(throws_with([&] { BeitImpl x(bad); }, "not a multiple of patch_size"));
}

MOOD_TEST(beit_float64_model) {
  BeitOptions o = tiny();
  o.dtype = at::kDouble;
  BeitImpl m(o);
  m.eval();
  at::NoGradGuard ng;
  CHECK(m.forward(at::randn({1, 3, 32, 32}, at::kDouble)).scalar_type() == at::kDouble);
}

MOOD_TEST(beit_load_state_dict_roundtrip_and_errors) {
  BeitImpl a(tiny()), b(tiny());
  perturb(a, 11);
  a.eval();
  b.eval();
  std::map<std::string, at::Tensor> sd;
  for (auto& e : a.state_dict_entries()) sd[e.name] = e.tensor.to(e.is_buffer ? at::kLong : at::kHalf).to(e.tensor.scalar_type());
  sd.erase("blocks.0.attn.relative_position_index");
  auto r = b.load_state_dict(sd, true);
  CHECK(r.missing_keys.empty() && r.unexpected_keys.empty());
  at::NoGradGuard ng;
  at::Tensor x = at::randn({1, 3, 32, 32});
  CHECK(max_abs(a.block_list[1]->attn->qkv->weight.to(at::kHalf).to(at::kFloat), b.block_list[1]->attn->qkv->weight) == 0);

  auto sd2 = sd;
  sd2["mask_token"] = at::zeros({1, 1, 48});
  sd2.erase("head.bias");
  r = b.load_state_dict(sd2, false);
  CHECK(r.missing_keys.size() == 1 && r.missing_keys[0] == "head.bias");
  CHECK(r.unexpected_keys.size() == 1 && r.unexpected_keys[0] == "mask_token");
  CHECK(throws_with([&] { b.load_state_dict(sd2, true); }, "Missing key(s): head.bias"));

  auto sd3 = sd;
  sd3["blocks.1.attn.relative_position_bias_table"] = at::zeros({124, 4});
  at::Tensor before = b.cls_token.clone();
  sd3["cls_token"] = at::ones({1, 1, 48});
  CHECK(throws_with([&] { b.load_state_dict(sd3, false); },
                    "size mismatch for blocks.1.attn.relative_position_bias_table: copying a param with shape [124, 4]"));
  CHECK(max_abs(before, b.cls_token) == 0);  // nothing copied on error
}

MOOD_TEST(beit_cross_entropy_backward_gives_grads) {
  BeitOptions o = tiny();
  o.drop_path_rate = 0.1;
  BeitImpl m(o);
  m.eval();
  at::Tensor x = at::randn({4, 3, 32, 32});
  at::Tensor y = at::tensor({0, 1, 2, 3}, at::kLong);
  at::Tensor loss = cross_entropy_backward(m, x, y);
  CHECK(std::isfinite(loss.item<double>()));
  // head init_scale 0.001: weights of std 2e-5 on features of norm ~7 give logits ~1e-4, and
  // |loss - ln 10| <= 2 max |z|: far inside 0.05.
  CHECK_CLOSE(loss.item<double>(), std::log(10.0), 0.05);
  CHECK(m.head->weight.grad().defined());
  CHECK(m.block_list[0]->attn->relative_position_bias_table.grad().defined());
  CHECK(!m.is_training());
  CHECK(!m.block_list[0]->attn->relative_position_index.requires_grad());
}

MOOD_TEST(beit_named_configs) {
  for (auto& n : config_names()) {
    BeitOptions o = config(n);
    o.device = c10::Device(c10::kMeta);
    BeitImpl m(o);
    CHECK(m.state_dict_entries().size() > 10);
  }
  CHECK(config("beit_large_patch16_512").grid() == 32);
  CHECK(config("beit_base_patch16_384").img_size == 384);
}

// The train step runs on an executor worker, a thread that was never configured before: the count
// set there must survive ATen's lazy per-thread init, which otherwise resets it to ATen's default on
// the first parallel op (the step's GELU / softmax / LayerNorm then ran on one core of two). n is
// chosen unlike that default so that the reset cannot pass unnoticed.
MOOD_TEST(beit_step_intra_op_threads_on_a_fresh_thread) {
  const int n = at::intraop_default_num_threads() + 1;
  int before = 0, after = 0;
  std::thread t([&] {
    mood::apply_threads_to_this_thread(n);
    before = at::get_num_threads();
    BeitImpl m(tiny());
    cross_entropy_backward(m, at::randn({2, 3, 32, 32}), at::arange(2, at::kLong));
    // What the step's own parallel ops (compiled into libtorch with OpenMP) saw last.
    after = at::get_num_threads();
  });
  t.join();
  CHECK(before == n);
  CHECK(after == n);
}

int main(int argc, char** argv) { return mood_test::run_all(argc, argv); }
