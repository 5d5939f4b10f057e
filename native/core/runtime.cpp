#include "core/runtime.h"

#include <ATen/Config.h>
#include <ATen/Parallel.h>
#include <ATen/Context.h>
#include <torch/cuda.h>
#include <torch/version.h>

#include <atomic>
#include <cstdlib>
#include <cstring>
#include <mutex>
#include <stdexcept>
#include <thread>

#if defined(__GLIBC__)
#include <malloc.h>
#endif

// OpenBLAS keeps its own thread pool that at::set_num_threads does not govern. Weak symbols let us
// steer it when present without linking to it (libtorch may use another BLAS).
extern "C" {
void openblas_set_num_threads(int) __attribute__((weak));
int openblas_get_num_threads(void) __attribute__((weak));
char* openblas_get_config(void) __attribute__((weak));
// libgomp, which an OpenMP build of libtorch links: the per-thread intra-op count.
void omp_set_num_threads(int) __attribute__((weak));
}

namespace mood {
namespace {
ThreadSettings g_threads;
std::atomic<int> g_generation{0};
std::atomic<int> g_configured{0};
}

int configured_threads() { return g_configured.load(std::memory_order_acquire); }

bool apply_malloc_policy() {
#if defined(__GLIBC__)
  // Whoever set glibc's malloc tunables for the process decides.
  const char* tunables = std::getenv("GLIBC_TUNABLES");
  if (tunables && std::strstr(tunables, "glibc.malloc.")) return false;
  return mallopt(M_MMAP_THRESHOLD, 32 << 20) == 1 && mallopt(M_TRIM_THRESHOLD, 1 << 30) == 1 && mallopt(M_TOP_PAD, 64 << 20) == 1;
#else
  return false;
#endif
}

namespace {
// At load, before any tensor: whatever hosts this library (the addon, the C++ tests).
const bool g_malloc_policy = apply_malloc_policy();
}  // namespace

bool malloc_policy_applied() { return g_malloc_policy; }

int threads_generation() { return g_generation.load(std::memory_order_acquire); }

void apply_threads_to_this_thread(int n) {
#if AT_PARALLEL_OPENMP
  // With OpenMP, ATen's intra-op count is this thread's OpenMP setting, so setting that alone is
  // enough, and cheap. at::set_num_threads would also rebuild the caffe2 pthreadpool (12-30 ms on a
  // 2-core VM, measured), and once called it makes every new thread that reaches a parallel region
  // call it again (ATen's lazy per-thread init): the first op on each executor worker and each
  // decode worker paid that. Threads we don't configure get ATen's default on their first parallel
  // op: OMP_NUM_THREADS, which lib/native.ts seeds (MOOD_NUM_THREADS, else all cores) when unset.
  if (omp_set_num_threads) {
    // ATen initialises a thread's count lazily, at its first parallel query (get_num_threads,
    // parallel_for), to intraop_default_num_threads() (physical cores: 1 on a 2-vCPU VM) unless
    // at::set_num_threads ran somewhere. Done after our setting, that init silently overwrote it:
    // every executor worker ran its intra-op work on one thread (measured: elementwise ops, and the
    // BEiT train step's GELU / softmax / LayerNorm / reductions, on 1 of 2 cores). Let it run first.
    (void)at::get_num_threads();
    omp_set_num_threads(n);
    return;
  }
#endif
  at::set_num_threads(n);
}

ThreadSettings configure_threads(int n, const std::string& source) {
  if (n <= 0) {
    unsigned hc = std::thread::hardware_concurrency();
    n = hc == 0 ? 1 : static_cast<int>(hc);
  }
  apply_threads_to_this_thread(n);
  g_configured.store(n, std::memory_order_release);
  if (openblas_set_num_threads) openblas_set_num_threads(n);
  g_threads.source = source;
  g_generation.fetch_add(1, std::memory_order_acq_rel);
  return current_threads();
}

namespace {
std::mutex g_blas_scope_mutex;
int g_blas_scopes = 0;      // open BlasSingleThreadScopes, all threads
int g_blas_saved = -1;      // OpenBLAS's count when the first opened
int g_blas_generation = 0;  // threads_generation() then
}  // namespace

BlasSingleThreadScope::BlasSingleThreadScope() {
  if (!openblas_set_num_threads || !openblas_get_num_threads) return;
  std::lock_guard<std::mutex> lock(g_blas_scope_mutex);
  if (g_blas_scopes++ == 0) {
    g_blas_saved = openblas_get_num_threads();
    g_blas_generation = threads_generation();
    if (g_blas_saved != 1) openblas_set_num_threads(1);
  }
}

BlasSingleThreadScope::~BlasSingleThreadScope() {
  if (!openblas_set_num_threads || !openblas_get_num_threads) return;
  std::lock_guard<std::mutex> lock(g_blas_scope_mutex);
  if (--g_blas_scopes == 0) {
    const int restore = threads_generation() != g_blas_generation ? configured_threads() : g_blas_saved;
    if (restore > 1) openblas_set_num_threads(restore);
  }
}

ThreadSettings current_threads() {
  ThreadSettings s = g_threads;
  s.intra_op = at::get_num_threads();
  s.blas = openblas_get_num_threads ? openblas_get_num_threads() : -1;
  return s;
}

c10::Device parse_device(const std::string& spec) {
  if (spec == "cpu") return c10::Device(c10::kCPU);
  if (spec.rfind("cuda", 0) == 0) {
    int index = 0;
    if (spec.size() > 4) {
      if (spec[4] != ':' || spec.size() == 5) throw std::invalid_argument("unknown device '" + spec + "': expected 'cpu', 'cuda' or 'cuda:N'");
      for (size_t i = 5; i < spec.size(); ++i)
        if (spec[i] < '0' || spec[i] > '9') throw std::invalid_argument("unknown device '" + spec + "': expected 'cpu', 'cuda' or 'cuda:N'");
      index = std::stoi(spec.substr(5));
    }
    if (!torch::cuda::is_available()) {
      throw std::invalid_argument("device '" + spec + "' requested but CUDA is not available (libtorch " +
                                  std::string(TORCH_VERSION) + " " +
                                  (at::hasCUDA() ? "has CUDA but no GPU is visible" : "was built without CUDA") + ")");
    }
    int count = static_cast<int>(torch::cuda::device_count());
    if (index >= count) throw std::invalid_argument("device '" + spec + "' out of range: " + std::to_string(count) + " CUDA device(s)");
    return c10::Device(c10::kCUDA, static_cast<c10::DeviceIndex>(index));
  }
  throw std::invalid_argument("unknown device '" + spec + "': expected 'cpu', 'cuda' or 'cuda:N'");
}

std::string device_name(const c10::Device& d) {
  if (d.is_cpu()) return "cpu";
  return d.str();
}

BuildInfo build_info() {
  BuildInfo b;
  b.torch_version = MOOD_TORCH_VERSION_STRING;
  b.cuda_compiled = at::hasCUDA();
  b.cuda_available = torch::cuda::is_available();
  b.cuda_device_count = b.cuda_available ? static_cast<int>(torch::cuda::device_count()) : 0;
#if defined(USE_C10D_GLOO) || defined(MOOD_HAVE_GLOO_HEADERS)
  b.gloo = true;
#endif
#if defined(USE_C10D_NCCL) || defined(MOOD_HAVE_NCCL)
  b.nccl = b.cuda_compiled;
#endif
#if defined(_GLIBCXX_USE_CXX11_ABI) && _GLIBCXX_USE_CXX11_ABI
  b.cxx_abi = "cxx11";
#else
  b.cxx_abi = "pre-cxx11";
#endif
  b.parallel_info = at::get_parallel_info();
  if (openblas_get_config) b.blas = std::string("OpenBLAS ") + openblas_get_config();
  return b;
}

}  // namespace mood
