// C++ tests of the fine-tuning step (native/core/train_step.*) without Node: accumulation equals one
// big batch, a non-finite loss changes nothing, AdamW's first step equals its closed form, optimizer
// state round-trips with shape checks, the GradientSync hook sees sync only on the final micro-step.
#include <ATen/ATen.h>

#include <cmath>
#include <memory>
#include <string>
#include <vector>

#include "core/beit.h"
#include "core/grad_sync.h"
#include "core/train_step.h"
#include "test_harness.h"

using mood::beit::BeitImpl;
using mood::beit::BeitOptions;
using mood::train::MicroStep;
using mood::train::TrainConfig;
using mood::train::TrainStep;

namespace {

std::shared_ptr<BeitImpl> micro(int64_t seed) {
  BeitOptions o = mood::beit::config("beit_test_micro");
  o.num_classes = 3;
  o.dtype = at::kDouble;
  o.seed = seed;
  o.init_values = 0.1;
  o.use_rel_pos_bias = true;
  o.attention = mood::beit::AttentionMode::kExact;
  return std::make_shared<BeitImpl>(o);
}

TrainConfig all_in_one_group(BeitImpl& m) {
  TrainConfig c;
  c.groups.emplace_back();
  for (auto& e : m.state_dict_entries(false)) c.groups[0].push_back(e.name);
  return c;
}

double max_diff(BeitImpl& a, BeitImpl& b) {
  auto ea = a.state_dict_entries(false), eb = b.state_dict_entries(false);
  double m = 0;
  for (size_t i = 0; i < ea.size(); ++i) m = std::max(m, (ea[i].tensor - eb[i].tensor).abs().max().item<double>());
  return m;
}

struct CountingSync : mood::GradientSync {
  std::vector<bool> begins;
  int finishes = 0;
  size_t attached = 0;
  void attach(const std::vector<at::Tensor>& p) override { attached = p.size(); }
  void begin_backward(bool sync) override { begins.push_back(sync); }
  void finish_backward() override { ++finishes; }
  void broadcast_from_rank0(const std::vector<at::Tensor>&) override {}
};

}  // namespace

MOOD_TEST(train_step_accumulation_equals_full_batch) {
  auto a = micro(1), b = micro(1);
  at::manual_seed(0);
  at::Tensor x = at::randn({8, 3, 16, 16}, at::kDouble);
  at::Tensor y = at::tensor({0, 1, 2, 0, 1, 2, 0, 1}, at::kLong);
  TrainConfig ca = all_in_one_group(*a), cb = all_in_one_group(*b);
  ca.update_freq = 1;
  cb.update_freq = 2;
  ca.clip_grad = cb.clip_grad = 0.5;
  TrainStep sa(a, ca), sb(b, cb);
  for (int it = 0; it < 3; ++it) {
    MicroStep s;
    s.lrs = {1e-3};
    s.wds = {0.05};
    s.images = x;
    s.targets = y;
    auto ra = sa.step(s);
    MicroStep h1 = s, h2 = s;
    h1.images = x.slice(0, 0, 4);
    h1.targets = y.slice(0, 0, 4);
    h1.last = false;
    h2.images = x.slice(0, 4, 8);
    h2.targets = y.slice(0, 4, 8);
    h2.first = false;
    sb.step(h1);
    auto rb = sb.step(h2);
    // float64 sums over the 8 rows in two groupings: ~n 2^-53 relative (1e-15 on a norm ~ 1); a
    // wrong loss scale (1/update_freq) doubles the norm.
    CHECK_WITHIN(std::abs(ra.grad_norm.item<double>() - rb.grad_norm.item<double>()), 1e-10);
  }
  // Weights after 3 AdamW steps (|p| < 1): a few float64 ulps per step (3 * 2 * 2^-52 = 1.3e-15), with
  // room for the update's gain lr / eps = 1e5 on any gradient near eps (a ~1e-17 gradient difference
  // there moves p by ~1e-12 at most); a lost micro-batch changes the update by ~lr = 1e-3.
  CHECK_WITHIN(max_diff(*a, *b), 1e-12);
}

MOOD_TEST(train_step_nonfinite_loss_changes_nothing) {
  auto m = micro(2), ref = micro(2);
  TrainStep st(m, all_in_one_group(*m));
  MicroStep s;
  s.images = at::full({2, 3, 16, 16}, NAN, at::kDouble);
  s.targets = at::tensor({0, 1}, at::kLong);
  s.lrs = {1e-2};
  s.wds = {0.1};
  auto r = st.step(s);
  CHECK(!r.finite);
  CHECK(std::isnan(r.loss.item<double>()));
  CHECK(max_diff(*m, *ref) == 0.0);
  CHECK(!st.state(0)[0].defined());
}

MOOD_TEST(train_step_first_adamw_update_closed_form) {
  // After one step from zero moments: p' = p(1 - lr wd) - lr * g / (|g| + eps) elementwise.
  auto m = micro(3);
  auto before = m->state_dict_entries(false);
  std::vector<at::Tensor> p0;
  for (auto& e : before) p0.push_back(e.tensor.detach().clone());
  TrainConfig c = all_in_one_group(*m);
  TrainStep st(m, c);
  MicroStep s;
  at::manual_seed(1);
  s.images = at::randn({4, 3, 16, 16}, at::kDouble);
  s.targets = at::tensor({0, 1, 2, 1}, at::kLong);
  const double lr = 1e-2, wd = 0.1;
  s.lrs = {lr};
  s.wds = {wd};
  st.step(s);
  auto g = st.grads();
  auto after = m->state_dict_entries(false);
  double worst = 0;
  for (size_t i = 0; i < after.size(); ++i) {
    at::Tensor expect = p0[i] * (1 - lr * wd) - lr * g[i] / (g[i].abs() + c.eps);
    worst = std::max(worst, (after[i].tensor - expect).abs().max().item<double>());
  }
  // The formula evaluated in float64 in another order: a few ulps of |p| < 1 (~1e-16); a wrong decay
  // (lr wd |p| = 1e-3 |p|) or update is far above 1e-12.
  CHECK_WITHIN(worst, 1e-12);
  auto s0 = st.state(0);
  CHECK(s0[0].item<double>() == 1.0);
}

MOOD_TEST(train_step_state_roundtrip_and_errors) {
  auto m = micro(4);
  TrainStep st(m, all_in_one_group(*m));
  at::Tensor p = m->state_dict_entries(false)[0].tensor;
  st.set_state(0, at::full({}, 7.0), at::ones_like(p), at::ones_like(p) * 2);
  auto s = st.state(0);
  CHECK(s[0].item<double>() == 7.0);
  CHECK(s[2].sum().item<double>() == 2.0 * p.numel());
  bool threw = false;
  try {
    st.set_state(0, at::full({}, 1.0), at::ones({p.numel() + 1}, at::kDouble), at::ones_like(p));
  } catch (const std::invalid_argument& e) {
    threw = std::string(e.what()).find("do not match the parameter") != std::string::npos;
  }
  CHECK(threw);
  threw = false;
  TrainConfig bad;
  bad.groups = {{"blocks.0.nope.weight"}};
  try {
    TrainStep x(m, bad);
  } catch (const std::invalid_argument& e) {
    threw = std::string(e.what()).find("'blocks.0.nope.weight', which is not a parameter") != std::string::npos;
  }
  CHECK(threw);
}

MOOD_TEST(train_step_grad_sync_only_on_final_micro_step) {
  auto m = micro(5);
  auto sync = std::make_shared<CountingSync>();
  const int64_t id = mood::GradientSyncRegistry::instance().add(sync);
  TrainConfig c = all_in_one_group(*m);
  c.update_freq = 3;
  c.grad_sync_id = id;
  TrainStep st(m, c);
  CHECK(sync->attached == c.groups[0].size());
  for (int k = 0; k < 3; ++k) {
    MicroStep s;
    s.images = at::randn({2, 3, 16, 16}, at::kDouble);
    s.targets = at::tensor({0, 2}, at::kLong);
    s.first = k == 0;
    s.last = k == 2;
    s.lrs = {1e-3};
    s.wds = {0.0};
    st.step(s);
  }
  CHECK((sync->begins == std::vector<bool>{false, false, true}));
  CHECK(sync->finishes == 3);
  mood::GradientSyncRegistry::instance().remove(id);
}

int main(int argc, char** argv) { return mood_test::run_all(argc, argv); }
