// Process-wide runtime settings: threads, devices, build facts.
#pragma once
#include <string>
#include <vector>

#include <c10/core/Device.h>

namespace mood {

struct ThreadSettings {
  int intra_op = 0;       // at::get_num_threads()
  int blas = -1;          // OpenBLAS threads when OpenBLAS is the BLAS, else -1
  std::string source;     // "MOOD_NUM_THREADS", "default (all cores)", "explicit"
};

// Sets intra-op and BLAS threads together so the two pools never oversubscribe the cores.
// n <= 0 means "all cores" (std::thread::hardware_concurrency()).
ThreadSettings configure_threads(int n, const std::string& source);
ThreadSettings current_threads();
// Bumped by configure_threads. OpenMP thread counts are per thread, so each executor worker
// re-applies the setting (apply_threads_to_this_thread) when this changes.
int threads_generation();
// Sets the calling thread's intra-op thread count (OpenMP builds: that thread's OpenMP setting only;
// other builds: at::set_num_threads).
void apply_threads_to_this_thread(int n);
// The intra-op thread count last configured (what workers apply).
int configured_threads();

// While one is alive, OpenBLAS (when it is the BLAS) runs every call on its calling thread. For
// kernels that issue many small gemms from several intra-op threads at once: entering OpenBLAS's
// pthread pool from two threads made a BEiT attention layer 3-8x slower (measured), while
// single-threaded calls run side by side. Scopes nest and overlap across threads; the last to close
// restores the count (configure_threads' count if it ran meanwhile). Without OpenBLAS: no effect
// (MKL already runs single-threaded inside an OpenMP region).
class BlasSingleThreadScope {
 public:
  BlasSingleThreadScope();
  ~BlasSingleThreadScope();
  BlasSingleThreadScope(const BlasSingleThreadScope&) = delete;
  BlasSingleThreadScope& operator=(const BlasSingleThreadScope&) = delete;
};

// glibc malloc, set once when this library loads: blocks up to 32 MiB come from malloc's heaps
// (not mmap) and freed memory is kept (trimmed only beyond 1 GiB free at the top). Why: a training
// step allocates and frees its activations (the tiny BEiT of issue #18: ~500 MB in blocks of 6-25 MB)
// every step; under glibc's defaults each came from a fresh mmap and was returned on free, so every
// step paid ~100k page faults that the kernel zero-filled: ~0.3 s of system time per step on one
// thread (train step 2.0 -> 1.7 s CPU, measured). RSS stays at the run's peak instead of breathing.
// Also a top pad of one heap (64 MiB): threads other than the main one allocate from glibc's
// per-thread arenas, made of 64 MiB heaps, and a heap whose memory is all free is unmapped whatever
// the trim threshold, unless the top pad says to keep that much. A step's activations span a heap or
// two, so without the pad every step unmapped them and page-faulted them back (mood demo: 2.2 M page
// faults and ~9 s of system time per run; demo MIM step 105 -> 100 ms). The pad is address space,
// not memory: heap pages are only backed when touched.
// Not applied when GLIBC_TUNABLES sets malloc tunables (the process owner decides) or off glibc.
bool apply_malloc_policy();
bool malloc_policy_applied();

// Parses "cpu", "cuda", "cuda:N"; throws std::invalid_argument with a clear message
// (unknown device, CUDA not compiled in / not available, index out of range).
c10::Device parse_device(const std::string& spec);
std::string device_name(const c10::Device& d);

struct BuildInfo {
  std::string torch_version;   // the libtorch this was compiled against
  bool cuda_compiled = false;  // libtorch has CUDA
  bool cuda_available = false; // and a device is present
  int cuda_device_count = 0;
  bool gloo = false;
  bool nccl = false;
  std::string cxx_abi;         // "cxx11" or "pre-cxx11"
  std::string parallel_info;   // at::get_parallel_info()
  std::string blas;            // what the BLAS reports, when it can tell
};
BuildInfo build_info();

}  // namespace mood
