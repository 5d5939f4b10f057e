#include "core/executor.h"

#include "core/runtime.h"

#include <ATen/Parallel.h>
#include <c10/util/Exception.h>

#include <algorithm>
#include <chrono>
#include <map>
#include <thread>
#include <sstream>

namespace mood {

// ---- Pending ----------------------------------------------------------------

std::shared_ptr<Pending> Pending::ready(at::Tensor t) {
  auto p = std::make_shared<Pending>();
  p->resolve(std::move(t));
  return p;
}

std::shared_ptr<Pending> Pending::failed(std::string message) {
  auto p = std::make_shared<Pending>();
  p->reject(std::move(message));
  return p;
}

void Pending::wait() const {
  if (done()) return;
  std::unique_lock<std::mutex> lock(m_);
  cv_.wait(lock, [&] { return done(); });
}

void Pending::resolve(at::Tensor t) {
  {
    std::lock_guard<std::mutex> lock(m_);
    value_ = std::move(t);
  }
  settle();
}

void Pending::reject(std::string message) {
  {
    std::lock_guard<std::mutex> lock(m_);
    error_ = message.empty() ? std::string("unknown error") : std::move(message);
  }
  settle();
}

void Pending::settle() {
  std::vector<std::function<void()>> cbs;
  {
    std::lock_guard<std::mutex> lock(m_);
    done_.store(true, std::memory_order_release);
    cbs.swap(callbacks_);
  }
  cv_.notify_all();
  for (auto& cb : cbs) cb();
}

void Pending::on_done(std::function<void()> cb) {
  {
    std::lock_guard<std::mutex> lock(m_);
    if (!done()) {
      callbacks_.push_back(std::move(cb));
      return;
    }
  }
  cb();
}

// ---- Executor ---------------------------------------------------------------

Executor& Executor::for_device(const c10::Device& d) {
  static std::mutex m;
  // Executors live for the whole process: their threads may still be finishing work at exit.
  static auto* executors = new std::map<std::string, Executor*>();
  std::lock_guard<std::mutex> lock(m);
  auto key = d.str();
  auto it = executors->find(key);
  if (it == executors->end()) it = executors->emplace(key, new Executor(d)).first;
  return *it->second;
}

Executor::Executor(c10::Device d) : device_(d), worker_([this] { loop(); }) {}

Executor::~Executor() {
  {
    std::lock_guard<std::mutex> lock(m_);
    stop_ = true;
  }
  cv_.notify_all();
  if (worker_.joinable()) worker_.join();
}

void Executor::submit(std::function<void()> task) {
  {
    std::lock_guard<std::mutex> lock(m_);
    queue_.push_back(std::move(task));
    submitted_.fetch_add(1, std::memory_order_release);
  }
  cv_.notify_one();
}

size_t Executor::queued() const {
  std::lock_guard<std::mutex> lock(m_);
  return queue_.size() - head_;
}

void Executor::loop() {
  int applied_generation = -1;
  uint64_t taken = 0;
  for (;;) {
    std::function<void()> task;
    // Callers often submit the next op right after reading a result: a short spin catches it
    // without a futex sleep/wake round trip (tens of microseconds on a VM).
    auto spin_until = std::chrono::steady_clock::now() + std::chrono::microseconds(50);
    for (int i = 0; submitted_.load(std::memory_order_acquire) == taken; ++i) {
      if ((i & 63) == 0 && std::chrono::steady_clock::now() > spin_until) break;
      std::this_thread::yield();
    }
    {
      std::unique_lock<std::mutex> lock(m_);
      cv_.wait(lock, [&] { return stop_ || head_ < queue_.size(); });
      if (stop_ && head_ == queue_.size()) return;
      task = std::move(queue_[head_++]);
      ++taken;
      if (head_ == queue_.size()) {
        queue_.clear();
        head_ = 0;
      }
    }
    int gen = threads_generation();
    if (gen != applied_generation) {
      // OpenMP thread counts are per thread: re-apply the process-wide setting on this worker.
      if (configured_threads() > 0) apply_threads_to_this_thread(configured_threads());
      applied_generation = gen;
    }
    task();
  }
}

// ---- schedule ---------------------------------------------------------------

std::string shape_str(at::IntArrayRef shape) {
  std::ostringstream os;
  os << "[";
  for (size_t i = 0; i < shape.size(); ++i) os << (i ? ", " : "") << shape[i];
  os << "]";
  return os.str();
}

std::string describe(const at::Tensor& t) {
  if (!t.defined()) return "undefined";
  std::ostringstream os;
  os << c10::toString(t.scalar_type()) << shape_str(t.sizes());
  if (!t.device().is_cpu()) os << " " << t.device().str();
  return os.str();
}

namespace {

std::string lower_dtype_names(std::string s) {
  // c10 prints "Float"/"Long"; users think in PyTorch's python names.
  static const std::pair<const char*, const char*> names[] = {
      {"Float[", "float32["}, {"Double[", "float64["}, {"Half[", "float16["}, {"BFloat16[", "bfloat16["},
      {"Long[", "int64["},    {"Int[", "int32["},      {"Short[", "int16["},  {"Char[", "int8["},
      {"Byte[", "uint8["},    {"Bool[", "bool["}};
  for (auto& [from, to] : names) {
    size_t pos = 0;
    std::string f(from);
    while ((pos = s.find(f, pos)) != std::string::npos) {
      bool word_start = pos == 0 || !std::isalnum(static_cast<unsigned char>(s[pos - 1]));
      if (word_start) {
        s.replace(pos, f.size(), to);
        pos += std::string(to).size();
      } else {
        pos += f.size();
      }
    }
  }
  return s;
}

void run_task(const ScheduleOptions& opts, const std::vector<PendingPtr>& inputs, const TaskFn& fn,
              const std::vector<PendingPtr>& outputs) {
  std::vector<at::Tensor> args;
  args.reserve(inputs.size());
  for (size_t i = 0; i < inputs.size(); ++i) {
    inputs[i]->wait();
    if (!inputs[i]->ok()) {
      for (auto& o : outputs) o->reject(inputs[i]->error());  // the first failure explains everything after it
      return;
    }
    args.push_back(inputs[i]->value());
  }
  std::string error;
  try {
    at::NoGradGuard no_grad;
    std::vector<at::Tensor> results = fn(args);
    if (results.size() != outputs.size()) {
      error = "internal error: produced " + std::to_string(results.size()) + " outputs, expected " +
              std::to_string(outputs.size());
    } else {
      for (size_t i = 0; i < outputs.size(); ++i) outputs[i]->resolve(std::move(results[i]));
      return;
    }
  } catch (const c10::Error& e) {
    error = e.what_without_backtrace();
  } catch (const std::exception& e) {
    error = e.what();
  }
  std::ostringstream os;
  os << opts.op << "(";
  for (size_t i = 0; i < args.size(); ++i) os << (i ? ", " : "") << describe(args[i]);
  os << "): " << error;
  std::string msg = lower_dtype_names(os.str());
  for (auto& o : outputs) o->reject(msg);
}

}  // namespace

std::vector<PendingPtr> schedule(const ScheduleOptions& opts, std::vector<PendingPtr> inputs, TaskFn fn) {
  std::vector<PendingPtr> outputs;
  outputs.reserve(opts.num_outputs);
  for (size_t i = 0; i < opts.num_outputs; ++i) outputs.push_back(std::make_shared<Pending>());

  bool inline_ok = opts.allow_inline && opts.device.is_cpu();
  int64_t numel = 0;
  for (auto& in : inputs) {
    if (!inline_ok) break;
    if (!in->done()) {
      inline_ok = false;
    } else if (in->ok()) {
      numel += in->value().numel();
      if (!in->value().device().is_cpu()) inline_ok = false;
    }
  }
  if (inline_ok && numel <= kInlineNumel) {
    run_task(opts, inputs, fn, outputs);
    return outputs;
  }
  Executor::for_device(opts.device).submit([opts, inputs = std::move(inputs), fn = std::move(fn), outputs]() {
    // Only this task still owns its outputs: nobody can observe them, so a pure op need not run.
    if (opts.skip_if_unobserved &&
        std::all_of(outputs.begin(), outputs.end(), [](const PendingPtr& o) { return o.use_count() == 1; })) {
      for (auto& o : outputs) o->reject(opts.op + ": skipped, its result was released before it ran");
      return;
    }
    run_task(opts, inputs, fn, outputs);
  });
  return outputs;
}

}  // namespace mood
