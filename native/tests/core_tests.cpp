// Tests of the op table and the executor, independent of Node.
#include <ATen/ATen.h>
#include <ATen/Parallel.h>

#include <atomic>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <fstream>
#include <future>
#include <mutex>
#include <set>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include "core/executor.h"
#include "core/file_io.h"
#include "core/ops.h"
#include "core/parallel.h"
#include "core/runtime.h"
#include "tests/test_harness.h"

using namespace mood;

MOOD_TEST(ops_add_broadcasts) {
  auto a = at::tensor({1.0f, 2.0f, 3.0f}).reshape({3, 1});
  auto b = at::tensor({10.0f, 20.0f});
  auto r = run_op("add", {a, b}, OpArgs())[0];
  CHECK(r.sizes() == at::IntArrayRef({3, 2}));
  CHECK_CLOSE(r[2][1].item<float>(), 23.0, 0);
}

MOOD_TEST(ops_scalar_keeps_integer_dtype) {
  OpArgs args;
  args.set("other", int64_t(2));
  auto r = run_op("mul", {at::arange(4, at::kLong)}, args)[0];
  CHECK(r.scalar_type() == at::kLong);
  CHECK(r[3].item<int64_t>() == 6);
}

MOOD_TEST(ops_pinv_identity) {
  auto a = at::randn({5, 3}, at::kDouble);
  auto p = run_op("pinv", {a}, OpArgs())[0];
  // float64, 5 x 3 Gaussian (condition number of a few): A P A - A is some ulps of |A| ~ 3 (~1e-15); 1e-12 leaves
  // room for an unlucky condition number of the seeded matrix, and a wrong P misses by O(1).
  CHECK_CLOSE((at::matmul(at::matmul(a, p), a) - a).abs().max().item<double>(), 0.0, 1e-12);
}

MOOD_TEST(ops_cov_matches_definition) {
  auto x = at::randn({4, 50}, at::kDouble);
  OpArgs args;
  args.set("correction", int64_t(0));
  auto c = run_op("cov", {x}, args)[0];
  auto xc = x - x.mean(1, true);
  auto expect = at::matmul(xc, xc.t()) / 50.0;
  CHECK_CLOSE((c - expect).abs().max().item<double>(), 0.0, 1e-12);  // float64 sums of 50: ~50 2^-53 |c| ~ 1e-14
}

MOOD_TEST(ops_gram_equals_matmul) {
  for (auto dt : {at::kFloat, at::kDouble}) {
    auto x = at::randn({300, 37}, dt);
    auto g = run_op("gram", {x}, OpArgs())[0];
    auto expect = at::matmul(x.t(), x);
    CHECK(g.sizes() == expect.sizes());
    // Both sides sum the n = 300 products of each entry, in whatever order and blocking: each is within
    // γ_n (|x|ᵀ|x|)_ij of the exact value (γ_n = n u / (1 - n u), u = 2^-24 or 2^-53), so within twice
    // that of the other. Per entry: a lost or doubled row moves an entry by |x_ki x_kj| ~ 1, far above.
    const double u = std::ldexp(1.0, dt == at::kFloat ? -24 : -53), n = 300;
    at::Tensor xa = x.abs().to(at::kDouble), bound = 2 * (n * u / (1 - n * u)) * at::matmul(xa.t(), xa);
    CHECK_WITHIN(((g - expect).abs().to(at::kDouble) / bound).max().item<double>(), 1.0);
    CHECK_CLOSE((g - g.t()).abs().max().item<double>(), 0.0, 0.0);  // exactly symmetric
  }
}

MOOD_TEST(ops_topk_two_outputs) {
  OpArgs args;
  args.set("k", int64_t(2));
  auto r = run_op("topk", {at::tensor({3.0f, 9.0f, 1.0f, 7.0f})}, args);
  CHECK(r.size() == 2);
  CHECK(r[1][0].item<int64_t>() == 1);
  CHECK(r[1][1].item<int64_t>() == 3);
}

MOOD_TEST(ops_unknown_name_and_bad_arity_throw) {
  bool threw = false;
  try { run_op("nope", {}, OpArgs()); } catch (const std::invalid_argument&) { threw = true; }
  CHECK(threw);
  threw = false;
  try { run_op("matmul", {at::ones({2})}, OpArgs()); } catch (const std::invalid_argument& e) {
    threw = std::string(e.what()).find("expected 2") != std::string::npos;
  }
  CHECK(threw);
}

// The message of the E that `f` throws ("" when it returns; another exception propagates).
template <typename E = std::exception, typename F>
std::string thrown_by(F&& f) {
  try {
    f();
  } catch (const E& e) {
    return e.what();
  }
  return "";
}

MOOD_TEST(ops_reject_unknown_attribute_names) {
  const auto x = at::ones({2, 3});
  OpArgs args;
  args.set("dim", int64_t(1));
  args.set("keepDim", true);
  CHECK(thrown_by<std::invalid_argument>([&] { run_op("sum", {x}, args); }) == "op 'sum': unknown attribute 'keepDim' (it takes 'dim', 'keepdim')");
  OpArgs two;
  two.set("dim", int64_t(0));
  two.set("axis", int64_t(0));
  CHECK(thrown_by<std::invalid_argument>([&] { run_op("matmul", {x, x.t()}, two); }) ==
        "op 'matmul': unknown attributes 'axis', 'dim' (it takes no attributes)");
  // Registered from another file (ood_ops): the same check.
  OpArgs mode;
  mode.set("normalise", std::string("mood"));
  CHECK(thrown_by<std::invalid_argument>([&] { run_op("centered_gram", {x}, mode); }).find("unknown attribute 'normalise' (it takes ") != std::string::npos);
  // Declared names still work, absent ones take their defaults.
  OpArgs ok;
  ok.set("dim", int64_t(1));
  ok.set("keepdim", true);
  CHECK(run_op("sum", {x}, ok)[0].sizes() == at::IntArrayRef({2, 1}));
  CHECK(run_op("sum", {x}, OpArgs())[0].item<float>() == 6.0f);
}

MOOD_TEST(op_args_reading_an_undeclared_name_is_a_logic_error) {
  const std::vector<std::string> accepted = {"dim"};
  OpArgs args;
  args.set("dim", int64_t(2));
  args.restrict_to("demo", accepted);
  CHECK(args.restricted_to(accepted) && args.takes("dim") && !args.takes("keepdim"));
  CHECK(args.get_int("dim") == 2);
  CHECK(thrown_by<std::logic_error>([&] { args.get_bool("keepdim", false); }) ==
        "op 'demo' reads attribute 'keepdim', which its OpInfo::attrs do not declare");
  CHECK(thrown_by<std::logic_error>([&] { args.has("other"); }) == "op 'demo' reads attribute 'other', which its OpInfo::attrs do not declare");
}

MOOD_TEST(schedule_runs_in_order_and_reports_errors_with_shapes) {
  ScheduleOptions o;
  o.op = "matmul";
  o.allow_inline = false;
  auto a = Pending::ready(at::ones({2, 3}));
  auto b = Pending::ready(at::ones({4, 5}));
  auto out = schedule(o, {a, b}, [](const std::vector<at::Tensor>& in) { return run_op("matmul", in, OpArgs()); });
  out[0]->wait();
  CHECK(!out[0]->ok());
  CHECK(out[0]->error().find("matmul(float32[2, 3], float32[4, 5])") != std::string::npos);
  // A task that consumes the failed result fails with the original message.
  o.op = "add";
  auto next = schedule(o, {out[0], a}, [](const std::vector<at::Tensor>& in) { return run_op("add", in, OpArgs()); });
  next[0]->wait();
  CHECK(next[0]->error() == out[0]->error());
}

MOOD_TEST(schedule_chains_pending_inputs) {
  ScheduleOptions o;
  o.op = "add";
  o.allow_inline = false;
  auto x = Pending::ready(at::full({1000, 1000}, 1.0));
  auto cur = x;
  for (int i = 0; i < 20; ++i)
    cur = schedule(o, {cur, x}, [](const std::vector<at::Tensor>& in) { return run_op("add", in, OpArgs()); })[0];
  cur->wait();
  CHECK(cur->ok());
  CHECK_CLOSE(cur->value()[999][999].item<float>(), 21.0, 0);
}

// A pure op whose outputs were all released while it waited in the queue is dropped, not run; one
// whose outputs are still held runs, and ops without the flag always run.
MOOD_TEST(schedule_skips_pure_ops_released_before_they_run) {
  using namespace mood;
  std::promise<void> gate;
  std::shared_future<void> open = gate.get_future().share();
  ScheduleOptions blocker;
  blocker.op = "gate";
  blocker.allow_inline = false;
  auto held_queue = schedule(blocker, {}, [open](const std::vector<at::Tensor>&) {
    open.wait();
    return std::vector<at::Tensor>{at::zeros({1})};
  });
  std::atomic<int> ran_released{0}, ran_kept{0}, ran_plain{0};
  ScheduleOptions pure;
  pure.op = "pure";
  pure.allow_inline = false;
  pure.skip_if_unobserved = true;
  auto count = [](std::atomic<int>& n) {
    return [&n](const std::vector<at::Tensor>&) {
      ++n;
      return std::vector<at::Tensor>{at::ones({2})};
    };
  };
  { auto released = schedule(pure, {}, count(ran_released)); }  // dropped here, before it runs
  auto kept = schedule(pure, {}, count(ran_kept));
  ScheduleOptions plain = pure;
  plain.skip_if_unobserved = false;
  { auto side = schedule(plain, {}, count(ran_plain)); }
  auto last = schedule(plain, {}, [](const std::vector<at::Tensor>&) { return std::vector<at::Tensor>{at::zeros({1})}; });
  gate.set_value();
  last[0]->wait();
  kept[0]->wait();
  CHECK(ran_released.load() == 0);
  CHECK(ran_kept.load() == 1);
  CHECK(ran_plain.load() == 1);
  CHECK(kept[0]->ok() && kept[0]->value().sum().item<float>() == 2.0f);
  held_queue[0]->wait();
}

MOOD_TEST(configure_threads_sets_both_pools) {
  auto s = configure_threads(2, "test");
  CHECK(s.intra_op == 2);
  CHECK(s.blas == -1 || s.blas == 2);
  // The setting is per thread: the executor's worker must pick up each change.
  auto on_worker = [] {
    ScheduleOptions o;
    o.op = "threads";
    o.allow_inline = false;
    auto out = schedule(o, {}, [](const std::vector<at::Tensor>&) {
      return std::vector<at::Tensor>{at::full({1}, at::get_num_threads(), at::kLong)};
    });
    out[0]->wait();
    return out[0]->value().item<int64_t>();
  };
  CHECK(on_worker() == 2);
  configure_threads(1, "test");
  CHECK(at::get_num_threads() == 1);
  CHECK(on_worker() == 1);
  configure_threads(2, "test");
  CHECK(on_worker() == 2);
}

// BlasSingleThreadScope: OpenBLAS on one thread while any scope is open (nested, or open on two
// threads at once), its count back when the last closes, configure_threads' count if that ran meanwhile.
MOOD_TEST(blas_single_thread_scope_nests_overlaps_and_restores) {
  configure_threads(2, "test");
  if (current_threads().blas < 0) return;  // not OpenBLAS: the scope does nothing (nothing to check)
  CHECK(current_threads().blas == 2);
  {
    BlasSingleThreadScope outer;
    CHECK(current_threads().blas == 1);
    std::promise<void> opened, release;
    std::thread other([&] {
      BlasSingleThreadScope in_other;
      opened.set_value();
      release.get_future().wait();
    });
    opened.get_future().wait();
    { BlasSingleThreadScope nested; }
    CHECK(current_threads().blas == 1);  // nested closed, outer and the other thread's still open
    release.set_value();
    other.join();
    CHECK(current_threads().blas == 1);
  }
  CHECK(current_threads().blas == 2);
  {
    BlasSingleThreadScope s;
    configure_threads(3, "test");  // while open: the scope's close applies the new count
  }
  CHECK(current_threads().blas == 3);
  configure_threads(2, "test");
}

// What a parallel loop did: how often each index ran, and on which threads.
struct LoopCoverage {
  explicit LoopCoverage(int64_t n) : hits(n) {}
  void hit(int64_t i) {
    ++hits[i];
    std::lock_guard<std::mutex> g(m);
    ids.insert(std::this_thread::get_id());
  }
  bool each_once() const {
    for (auto& h : hits)
      if (h.load() != 1) return false;
    return true;
  }
  std::vector<std::atomic<int>> hits;
  std::mutex m;
  std::set<std::thread::id> ids;
};

// parallel_items_aten: every item once, on libtorch's intra-op threads (more than one when there are).
MOOD_TEST(parallel_items_aten_covers_every_item_once) {
  configure_threads(2, "test");
  const int64_t n = 37;
  LoopCoverage cover(n);
  mood::parallel_items_aten(n, 1, [&](int64_t q) {
    cover.hit(q);
    std::this_thread::sleep_for(std::chrono::milliseconds(1));  // give the other thread its share
  });
  CHECK(cover.each_once());
  CHECK(cover.ids.size() == 2);
  const std::string msg = thrown_by([&] {
    mood::parallel_items_aten(n, 1, [&](int64_t q) {
      if (q == 5) throw std::runtime_error("item 5");
    });
  });
  CHECK(msg.find("item 5") != std::string::npos);
}

// mood::parallel_for / parallel_items (parallel.h): every index once, on more than one thread when
// configured so (at::parallel_for ran everything on the calling thread in this library), libtorch
// calls inside a share on one thread, nested loops inline, the first exception rethrown.
MOOD_TEST(parallel_loops_cover_everything_once_on_several_threads) {
  configure_threads(2, "test");
  const int64_t n = 100003;
  LoopCoverage cover(n);
  std::atomic<int> inner_threads{0}, nested_calls{0};
  mood::parallel_for(0, n, 64, [&](int64_t b, int64_t e) {
    inner_threads.store(at::get_num_threads());
    const auto self = std::this_thread::get_id();
    mood::parallel_for(0, 4, 1, [&](int64_t, int64_t) {
      if (std::this_thread::get_id() == self) ++nested_calls;
    });
    for (int64_t i = b; i < e; ++i) cover.hit(i);
  });
  CHECK(cover.each_once());
  CHECK(cover.ids.size() == 2);
  CHECK(inner_threads.load() == 1);
  CHECK(nested_calls.load() == 2);  // one inline call per share
  CHECK(at::get_num_threads() == 2);  // the caller's setting is back
  const std::string msg = thrown_by([] {
    mood::parallel_items(50, [](int64_t q) {
      if (q == 7) throw std::runtime_error("item 7");
    });
  });
  CHECK(msg == "item 7");
}

MOOD_TEST(parse_device_errors) {
  bool threw = false;
  try { parse_device("tpu"); } catch (const std::invalid_argument& e) {
    threw = std::string(e.what()).find("unknown device 'tpu'") != std::string::npos;
  }
  CHECK(threw);
  CHECK(parse_device("cpu").is_cpu());
}

int main(int argc, char** argv) { return mood_test::run_all(argc, argv); }

// read_storage puts a large storage in its own populated anonymous mapping: the bytes must land
// exactly where a plain sequential read puts them, at an unaligned offset, for a size that is not a
// whole number of pages, and views of it must outlive the storage handle (the mapping goes with the
// last one); a range past the end of the file is refused before any allocation.
MOOD_TEST(read_storage_large_chunked_read_is_exact) {
  const std::string path = "/tmp/mood_core_tests_read_storage.bin";
  const int64_t offset = 4093, numel = (int64_t(23) << 20) / 8 + 5;  // > 5 chunks of 4 MiB
  at::Tensor want = at::arange(numel, at::kLong) * 7 + 3;
  {
    std::ofstream f(path, std::ios::binary);
    std::string pad(offset, 'x');
    f.write(pad.data(), offset);
    f.write(static_cast<const char*>(want.data_ptr()), numel * 8);
  }
  at::Tensor got = mood::read_storage(path, offset, numel, at::kLong);
  CHECK(got.equal(want));
  at::Tensor tail = got.slice(0, numel - 1000);
  got = at::Tensor();
  CHECK(tail.equal(want.slice(0, numel - 1000)));
  bool threw = false;
  try {
    mood::read_storage(path, offset + 8, numel, at::kLong);
  } catch (const std::runtime_error& e) {
    threw = std::string(e.what()).find("runs past the end of the file") != std::string::npos;
  }
  CHECK(threw);
  std::remove(path.c_str());
}
