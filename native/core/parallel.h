// Parallel loops for the kernels written in this library.
//
// Why not at::parallel_for: with libtorch's OpenMP backend it is a header template whose `#pragma omp`
// only takes effect in code compiled with -fopenmp. This library is not (a PyTorch wheel's libtorch
// carries its own renamed libgomp; linking the system one would add a second OpenMP runtime, and our
// thread settings would steer the wrong one), so there it silently ran every loop on the calling
// thread. These loops use plain threads, as many as configure_threads set.
//
// parallel_items_aten is the exception: it runs on libtorch's own intra-op threads (through
// TensorIterator::for_each, compiled inside libtorch with its OpenMP), for many short calls per
// second where starting threads per call would cost more than the work.
#pragma once
#include <ATen/Parallel.h>
#include <ATen/TensorIterator.h>
#include <ATen/core/grad_mode.h>
#include <c10/core/InferenceMode.h>

#include <algorithm>
#include <atomic>
#include <cstdint>
#include <exception>
#include <mutex>
#include <thread>
#include <utility>
#include <vector>

#include "core/runtime.h"

namespace mood {
namespace parallel_detail {

// Set on a thread while it runs a share of a loop: a nested loop then runs inline, as OpenMP's
// nested regions do by default.
inline thread_local bool t_in_share = false;

// While a thread runs a share, libtorch calls made inside it (a gemm per row block, say) run on
// that thread alone, as they would inside an OpenMP region: n shares x n intra-op threads would
// oversubscribe the cores.
class ShareScope {
 public:
  ShareScope() : saved_(at::get_num_threads()) {
    t_in_share = true;
    if (saved_ != 1) apply_threads_to_this_thread(1);
  }
  ~ShareScope() {
    t_in_share = false;
    if (saved_ != 1) apply_threads_to_this_thread(saved_);
  }
  ShareScope(const ShareScope&) = delete;
  ShareScope& operator=(const ShareScope&) = delete;

 private:
  int saved_;
};

// body(t) on threads t = 0 .. nth-1 (0 is the caller), each inside a ShareScope; the first
// exception is rethrown once every thread has finished, and `stop` is called so that the others can
// cut their work short.
template <typename Body, typename Stop>
void run_shares(int64_t nth, Body&& body, Stop&& stop) {
  std::exception_ptr err;
  std::mutex err_m;
  auto work = [&](int64_t t) {
    ShareScope scope;
    try {
      body(t);
    } catch (...) {
      std::lock_guard<std::mutex> g(err_m);
      if (!err) err = std::current_exception();
      stop();
    }
  };
  std::vector<std::thread> pool;
  pool.reserve(static_cast<size_t>(nth - 1));
  for (int64_t t = 1; t < nth; ++t) pool.emplace_back(work, t);
  work(0);
  for (auto& th : pool) th.join();
  if (err) std::rethrow_exception(err);
}

}  // namespace parallel_detail

// Threads a loop may use: the configured count (configure_threads), else libtorch's.
inline int parallel_threads() {
  const int configured = configured_threads();
  return std::max(1, configured > 0 ? configured : at::get_num_threads());
}

// f(q) for every q in [0, items) on at most `threads` threads, handed out one at a time (for items
// of uneven cost). The first exception stops the hand-out and is rethrown here once every thread has
// finished.
template <typename F>
void parallel_items_on(int64_t threads, int64_t items, F&& f) {
  if (items <= 0) return;
  const int64_t nth = std::min<int64_t>(items, std::max<int64_t>(1, threads));
  if (nth <= 1 || parallel_detail::t_in_share) {
    for (int64_t q = 0; q < items; ++q) f(q);
    return;
  }
  std::atomic<int64_t> next{0};
  parallel_detail::run_shares(
      nth, [&](int64_t) { for (int64_t q; (q = next.fetch_add(1)) < items;) f(q); }, [&] { next.store(items); });
}

// parallel_items_on with the configured thread count.
template <typename F>
void parallel_items(int64_t items, F&& f) {
  parallel_items_on(parallel_threads(), items, std::forward<F>(f));
}

// f(b, e) over [begin, end) cut into one contiguous range per thread (thread t gets range t), none
// shorter than `grain` (at::parallel_for's contract: f must handle any sub-range).
template <typename F>
void parallel_for(int64_t begin, int64_t end, int64_t grain, F&& f) {
  const int64_t n = end - begin;
  if (n <= 0) return;
  const int64_t g = std::max<int64_t>(1, grain);
  const int64_t parts = std::min<int64_t>(parallel_threads(), (n + g - 1) / g);
  if (parts <= 1 || parallel_detail::t_in_share) {
    f(begin, end);
    return;
  }
  const int64_t chunk = (n + parts - 1) / parts;
  parallel_detail::run_shares(
      parts,
      [&](int64_t t) {
        const int64_t b = begin + t * chunk, e = std::min(end, b + chunk);
        if (b < e) f(b, e);
      },
      [] {});
}

// libtorch's intra-op worker threads start with grad mode on and outside inference mode. A task of
// parallel_items_aten that calls ATen ops holds one: the caller's inference mode (out= writes into
// inference tensors need it) and no grad mode (its operands are detached; nothing is recorded).
class AtenTaskState {
 public:
  explicit AtenTaskState(bool inference) : inference_(inference) {}

 private:
  c10::InferenceMode inference_;
  at::NoGradGuard no_grad_;
};

// f(q) for every q in [0, items) on libtorch's intra-op threads (at most at::get_num_threads()),
// in contiguous runs of at least `grain` items. Inside, libtorch ops run on the calling thread, as in
// any ATen parallel region. The first exception is rethrown here (at::parallel_for's contract).
// Worker threads have libtorch's default thread-local state (grad mode on, no inference mode):
// callers that touch tensors there set what they need.
template <typename F>
void parallel_items_aten(int64_t items, int64_t grain, F&& f) {
  if (items <= 0) return;
  // A byte per item, only to give for_each a 1-D range to cut; its pointer offsets are the items.
  at::Tensor range = at::empty({items}, at::TensorOptions().dtype(at::kByte));
  at::TensorIterator iter = at::TensorIteratorConfig()
                                .add_output(range)
                                .resize_outputs(false)
                                .declare_static_shape({items})
                                .check_all_same_dtype(false)
                                .build();
  const char* base = static_cast<const char*>(range.data_ptr());
  iter.for_each(
      [&](char** data, const int64_t* /*strides*/, int64_t size0, int64_t size1) {
        const int64_t first = data[0] - base;
        for (int64_t q = first; q < first + size0 * size1; ++q) f(q);
      },
      std::max<int64_t>(1, grain));
}

}  // namespace mood
