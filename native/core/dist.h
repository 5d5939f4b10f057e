// Distributed data parallelism over c10d (the engine PyTorch itself uses): TCPStore rendezvous,
// ProcessGroupGloo on CPU (always, when the c10d/Gloo headers were found at build time) and
// ProcessGroupNCCL for CUDA tensors (when the libtorch was built with it: USE_C10D_NCCL), plain
// collectives, and a GradientSync (grad_sync.h) that all-reduces gradients in buckets launched
// from autograd hooks while backward still runs, like DDP's Reducer.
//
// Everything here blocks the calling thread; the addon schedules it off the JS thread.
#pragma once

#include <ATen/ATen.h>

#include <chrono>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "core/grad_sync.h"

namespace mood {
namespace dist {

struct GroupOptions {
  int rank = 0;
  int world_size = 1;
  std::string master_addr = "127.0.0.1";
  int master_port = 29500;
  // Bounds every wait: reaching the master, the other ranks arriving, each collective.
  std::chrono::milliseconds timeout{std::chrono::seconds(120)};
  // "gloo" or "nccl" ("nccl" needs a libtorch with USE_C10D_NCCL and CUDA tensors).
  std::string backend = "gloo";
};

enum class ReduceOp { Sum, Avg, Max, Min };
ReduceOp parse_reduce_op(const std::string& name);  // "sum" | "avg" | "max" | "min"

bool gloo_available();
bool nccl_available();

class Group {
 public:
  // Joins the group: rank 0 hosts the TCPStore on master_port; every rank checks that all agree
  // on the world size and that no rank is taken twice, then the backend connects its full mesh.
  // Errors name the cause (port in use, unreachable master, world-size mismatch, missing ranks).
  static std::shared_ptr<Group> create(const GroupOptions& opts);
  virtual ~Group() = default;

  virtual int rank() const = 0;
  virtual int world_size() const = 0;
  virtual const GroupOptions& options() const = 0;

  // New tensors; the inputs are not modified.
  virtual at::Tensor all_reduce(const at::Tensor& t, ReduceOp op) = 0;
  virtual at::Tensor broadcast(const at::Tensor& t, int src) = 0;
  // One tensor per rank, in rank order. Ranks may contribute different sizes along dim 0.
  virtual std::vector<at::Tensor> all_gather(const at::Tensor& t) = 0;
  virtual void barrier() = 0;

  // In-place, for the gradient sync: launches an all-reduce (sum) of t and returns a waiter.
  struct Pending {
    virtual ~Pending() = default;
    virtual void wait() = 0;  // throws a message naming the lost rank when one is gone
  };
  virtual std::unique_ptr<Pending> all_reduce_async(at::Tensor& t) = 0;
  // In-place broadcast of several tensors from src (coalesced per dtype).
  virtual void broadcast_inplace(std::vector<at::Tensor>& ts, int src) = 0;

  // Leaves the group (stops the heartbeat; later collectives fail). Idempotent.
  virtual void shutdown() = 0;
};

// Distributed evaluation: rank r holds dataset rows r, r+W, r+2W, ... (DistributedSampler without
// shuffling, tail padded by wrapping around). Gathers every rank's rows and returns them in dataset
// order, the padding dropped: exactly `total` rows.
at::Tensor all_gather_interleaved(Group& g, const at::Tensor& t, int64_t total);

struct GradSyncOptions {
  // DDP's default bucket cap; the first bucket (last layers, ready first) uses the same cap.
  int64_t bucket_bytes = 25 * 1024 * 1024;
  // false: launch every bucket only in finish_backward (no overlap), to measure what overlap hides.
  bool overlap = true;
};

// Averages gradients across the group (see grad_sync.h for the call protocol).
std::shared_ptr<GradientSync> make_gradient_sync(std::shared_ptr<Group> group, const GradSyncOptions& opts = {});

// Statistics of the last synchronised backward, for benchmarks and tests: how many buckets, how
// many were launched from hooks while backward still ran, and the time finish_backward waited.
struct GradSyncStats {
  int64_t buckets = 0;
  int64_t launched_during_backward = 0;
  int64_t syncs = 0;  // synchronised backwards so far
  double wait_ms = 0;
};
GradSyncStats gradient_sync_stats(const GradientSync& s);

}  // namespace dist
}  // namespace mood
