// Asynchronous execution of tensor work: one FIFO worker per device, results as Pending slots.
#pragma once
#include <ATen/ATen.h>

#include <atomic>
#include <condition_variable>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

namespace mood {

// The eventual value of one tensor produced by a scheduled task (or an error naming the op).
class Pending {
 public:
  static std::shared_ptr<Pending> ready(at::Tensor t);
  static std::shared_ptr<Pending> failed(std::string message);

  bool done() const { return done_.load(std::memory_order_acquire); }
  void wait() const;
  // Valid after done(): the tensor (undefined when failed) and the error ("" when ok).
  const at::Tensor& value() const { return value_; }
  const std::string& error() const { return error_; }
  bool ok() const { return error_.empty(); }

  void resolve(at::Tensor t);
  void reject(std::string message);
  // Runs cb once the slot is settled: now (on this thread) if it already is, else on the settling thread.
  void on_done(std::function<void()> cb);

 private:
  void settle();
  mutable std::mutex m_;
  mutable std::condition_variable cv_;
  std::atomic<bool> done_{false};
  at::Tensor value_;
  std::string error_;
  std::vector<std::function<void()>> callbacks_;
};
using PendingPtr = std::shared_ptr<Pending>;

// A single worker thread per device: tasks run in submission order.
class Executor {
 public:
  static Executor& for_device(const c10::Device& d);
  void submit(std::function<void()> task);
  size_t queued() const;
  ~Executor();

 private:
  explicit Executor(c10::Device d);
  void loop();
  c10::Device device_;
  mutable std::mutex m_;
  std::condition_variable cv_;
  std::vector<std::function<void()>> queue_;
  size_t head_ = 0;
  std::atomic<uint64_t> submitted_{0};
  bool stop_ = false;
  std::thread worker_;
};

using TaskFn = std::function<std::vector<at::Tensor>(const std::vector<at::Tensor>&)>;

struct ScheduleOptions {
  std::string op;            // for error messages
  c10::Device device{c10::kCPU};
  size_t num_outputs = 1;
  // Work so small that a thread hop costs more than the op itself runs on the caller's thread.
  bool allow_inline = true;
  // A pure op (no side effects): when it reaches the front of the queue and nothing holds any of its
  // outputs any more (all released before it ran), it is dropped instead of run. Loaders queue work
  // speculatively (checkpoint storages read while the pickle is still being parsed) and release what
  // turns out not to be wanted; this keeps that from costing more than what already ran.
  bool skip_if_unobserved = false;
};

// Runs fn once every input is ready; each output slot gets one tensor. Errors (including failed
// inputs) reject every output with a message naming the op and the input shapes/dtypes.
std::vector<PendingPtr> schedule(const ScheduleOptions& opts, std::vector<PendingPtr> inputs, TaskFn fn);

// Total elements under which a CPU op with ready inputs runs inline.
constexpr int64_t kInlineNumel = 1 << 14;

std::string describe(const at::Tensor& t);  // "float32[2, 3] cpu"
std::string shape_str(at::IntArrayRef shape);  // "[2, 3]"

}  // namespace mood
