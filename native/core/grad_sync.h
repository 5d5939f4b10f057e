// Gradient synchronisation hook of the training step, so the train step (train_*) and distributed
// data parallelism (dist_*) stay independent translation units.
//
// The train step calls attach() once with the parameters that receive gradients, then around every
// micro-step's backward: begin_backward(sync) where sync is false on the non-final micro-steps of
// gradient accumulation (no communication), and finish_backward() after backward returns; when
// finish_backward() returns with sync=true, every parameter's .grad() holds the average over ranks.
// An implementation may launch bucketed all-reduces from autograd hooks while backward still runs.
#pragma once

#include <ATen/ATen.h>

#include <cstdint>
#include <memory>
#include <mutex>
#include <string>
#include <unordered_map>
#include <vector>

namespace mood {

class GradientSync {
 public:
  virtual ~GradientSync() = default;
  virtual void attach(const std::vector<at::Tensor>& params) = 0;
  virtual void begin_backward(bool sync) = 0;
  virtual void finish_backward() = 0;
  // Make every rank's parameters/buffers equal to rank 0's (called once before training).
  virtual void broadcast_from_rank0(const std::vector<at::Tensor>& tensors) = 0;
};

// Process-wide registry by id, so JavaScript can hand a sync object made by one wrapper to another
// wrapper as a plain number.
class GradientSyncRegistry {
 public:
  static GradientSyncRegistry& instance() {
    static GradientSyncRegistry r;
    return r;
  }
  int64_t add(std::shared_ptr<GradientSync> s) {
    std::lock_guard<std::mutex> lock(mu_);
    const int64_t id = ++next_;
    map_[id] = std::move(s);
    return id;
  }
  std::shared_ptr<GradientSync> find(int64_t id) {
    std::lock_guard<std::mutex> lock(mu_);
    auto it = map_.find(id);
    return it == map_.end() ? nullptr : it->second;
  }
  void remove(int64_t id) {
    std::lock_guard<std::mutex> lock(mu_);
    map_.erase(id);
  }

 private:
  std::mutex mu_;
  int64_t next_ = 0;
  std::unordered_map<int64_t, std::shared_ptr<GradientSync>> map_;
};

}  // namespace mood
