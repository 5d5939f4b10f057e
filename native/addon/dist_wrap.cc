#include "addon/dist_wrap.h"

#include <cmath>
#include <mutex>
#include <vector>

#include "addon/tensor_wrap.h"
#include "core/executor.h"
#include "core/runtime.h"

namespace mood_addon {

namespace dist = mood::dist;

Napi::FunctionReference* DistWrap::constructor_ = nullptr;

namespace {

// Groups still open when the Node environment goes away are shut down then, so their heartbeat
// thread is joined before static destructors run.
std::mutex live_mu;
std::vector<std::weak_ptr<dist::Group>> live_groups;

void shutdown_live_groups() {
  std::vector<std::weak_ptr<dist::Group>> v;
  {
    std::lock_guard<std::mutex> lock(live_mu);
    v.swap(live_groups);
  }
  for (auto& w : v)
    if (auto g = w.lock()) g->shutdown();
}

int64_t int_field(const Napi::Env& env, const Napi::Object& o, const char* k, int64_t dflt, int64_t lo, int64_t hi) {
  Napi::Value v = o.Get(k);
  if (v.IsUndefined()) return dflt;
  double d = v.IsNumber() ? v.As<Napi::Number>().DoubleValue() : NAN;
  if (!std::isfinite(d) || std::floor(d) != d || d < static_cast<double>(lo) || d > static_cast<double>(hi))
    throw Napi::TypeError::New(env, std::string("distributed option ") + k + " must be an integer in " + std::to_string(lo) + ".." + std::to_string(hi));
  return static_cast<int64_t>(d);
}

std::string str_field(const Napi::Env& env, const Napi::Object& o, const char* k, const std::string& dflt) {
  Napi::Value v = o.Get(k);
  if (v.IsUndefined()) return dflt;
  if (!v.IsString()) throw Napi::TypeError::New(env, std::string("distributed option ") + k + " must be a string");
  return v.As<Napi::String>().Utf8Value();
}

mood::ScheduleOptions sched(const char* op, const c10::Device& d, size_t outputs = 1) {
  mood::ScheduleOptions so;
  so.op = op;
  so.device = d;
  so.allow_inline = false;  // collectives block on the network: never on the JS thread
  so.num_outputs = outputs;
  return so;
}

// The device whose executor runs a collective: the input's, known once it is ready, else the one
// the JS Tensor says it lives on (a string argument), else the group's default device.
c10::Device device_of(const mood::PendingPtr& p, const dist::Group& g, const Napi::Value& hint) {
  if (p->done() && p->ok()) return p->value().device();
  if (hint.IsString()) {
    try {
      return mood::parse_device(hint.As<Napi::String>().Utf8Value());
    } catch (const std::exception& e) {
      throw Napi::TypeError::New(hint.Env(), e.what());
    }
  }
  return g.options().backend == "nccl" ? c10::Device(c10::kCUDA, 0) : c10::Device(c10::kCPU);
}

}  // namespace

class CreateWorker : public Napi::AsyncWorker {
 public:
  CreateWorker(Napi::Env env, dist::GroupOptions o) : Napi::AsyncWorker(env), opts_(std::move(o)), deferred_(Napi::Promise::Deferred::New(env)) {}
  Napi::Promise promise() { return deferred_.Promise(); }

  void Execute() override {
    try {
      group_ = dist::Group::create(opts_);
    } catch (const c10::Error& e) {
      SetError(e.what_without_backtrace());
    } catch (const std::exception& e) {
      SetError(e.what());
    }
  }
  void OnOK() override;
  void OnError(const Napi::Error& e) override { deferred_.Reject(e.Value()); }

 private:
  dist::GroupOptions opts_;
  Napi::Promise::Deferred deferred_;
  std::shared_ptr<dist::Group> group_;
};

void CreateWorker::OnOK() {
  Napi::Env env = Env();
  Napi::Object o = DistWrap::constructor_->New({});
  Napi::ObjectWrap<DistWrap>::Unwrap(o)->group_ = group_;
  {
    std::lock_guard<std::mutex> lock(live_mu);
    live_groups.push_back(group_);
  }
  deferred_.Resolve(o);
}

Napi::Function DistWrap::Init(Napi::Env env) {
  Napi::Function f = DefineClass(env, "NativeProcessGroup",
                                 {
                                     StaticMethod("create", &DistWrap::Create),
                                     StaticMethod("available", &DistWrap::Available),
                                     InstanceMethod("rank", &DistWrap::Rank),
                                     InstanceMethod("worldSize", &DistWrap::WorldSize),
                                     InstanceMethod("allReduce", &DistWrap::AllReduce),
                                     InstanceMethod("broadcast", &DistWrap::Broadcast),
                                     InstanceMethod("allGather", &DistWrap::AllGather),
                                     InstanceMethod("allGatherOrdered", &DistWrap::AllGatherOrdered),
                                     InstanceMethod("broadcastInPlace", &DistWrap::BroadcastInPlace),
                                     InstanceMethod("barrier", &DistWrap::Barrier),
                                     InstanceMethod("createGradientSync", &DistWrap::CreateGradientSync),
                                     InstanceMethod("gradientSyncStats", &DistWrap::GradientSyncStats),
                                     InstanceMethod("releaseGradientSync", &DistWrap::ReleaseGradientSync),
                                     InstanceMethod("shutdown", &DistWrap::Shutdown),
                                 });
  constructor_ = new Napi::FunctionReference(Napi::Persistent(f));
  env.AddCleanupHook([]() { shutdown_live_groups(); });
  return f;
}

DistWrap::DistWrap(const Napi::CallbackInfo& info) : Napi::ObjectWrap<DistWrap>(info) {}

const std::shared_ptr<dist::Group>& DistWrap::group(const Napi::Env& env) const {
  if (!group_) throw Napi::Error::New(env, "process group used after shutdown()");
  return group_;
}

Napi::Value DistWrap::Available(const Napi::CallbackInfo& info) {
  Napi::Object o = Napi::Object::New(info.Env());
  o.Set("gloo", dist::gloo_available());
  o.Set("nccl", dist::nccl_available());
  return o;
}

Napi::Value DistWrap::Create(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (!info[0].IsObject()) throw Napi::TypeError::New(env, "NativeProcessGroup.create: options must be an object");
  Napi::Object o = info[0].As<Napi::Object>();
  dist::GroupOptions g;
  g.rank = static_cast<int>(int_field(env, o, "rank", 0, 0, 1 << 20));
  g.world_size = static_cast<int>(int_field(env, o, "worldSize", 1, 1, 1 << 20));
  g.master_addr = str_field(env, o, "masterAddr", "127.0.0.1");
  g.master_port = static_cast<int>(int_field(env, o, "masterPort", 29500, 1, 65535));
  g.timeout = std::chrono::milliseconds(int_field(env, o, "timeoutMs", 120000, 1, int64_t(1) << 40));
  g.backend = str_field(env, o, "backend", "gloo");
  auto* w = new CreateWorker(env, g);
  Napi::Promise p = w->promise();
  w->Queue();
  return p;
}

Napi::Value DistWrap::Rank(const Napi::CallbackInfo& info) { return Napi::Number::New(info.Env(), group(info.Env())->rank()); }
Napi::Value DistWrap::WorldSize(const Napi::CallbackInfo& info) { return Napi::Number::New(info.Env(), group(info.Env())->world_size()); }

Napi::Value DistWrap::AllReduce(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  auto g = group(env);
  mood::PendingPtr in = TensorWrap::PendingOf(env, info[0], "allReduce: input");
  dist::ReduceOp op;
  try {
    op = dist::parse_reduce_op(info[1].IsString() ? info[1].As<Napi::String>().Utf8Value() : "sum");
  } catch (const std::exception& e) {
    throw Napi::TypeError::New(env, std::string("allReduce: ") + e.what());
  }
  auto out = mood::schedule(sched("dist.allReduce", device_of(in, *g, info[2])), {in},
                            [g, op](const std::vector<at::Tensor>& v) { return std::vector<at::Tensor>{g->all_reduce(v[0], op)}; });
  return TensorWrap::Wrap(env, out[0]);
}

Napi::Value DistWrap::Broadcast(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  auto g = group(env);
  mood::PendingPtr in = TensorWrap::PendingOf(env, info[0], "broadcast: input");
  if (!info[1].IsUndefined() && !info[1].IsNumber()) throw Napi::TypeError::New(env, "broadcast: src must be a rank number");
  const double s = info[1].IsNumber() ? info[1].As<Napi::Number>().DoubleValue() : 0;
  if (std::floor(s) != s || s < 0 || s >= g->world_size())
    throw Napi::RangeError::New(env, "broadcast: src must be a rank in 0.." + std::to_string(g->world_size() - 1));
  const int root = static_cast<int>(s);
  auto out = mood::schedule(sched("dist.broadcast", device_of(in, *g, info[2])), {in},
                            [g, root](const std::vector<at::Tensor>& v) { return std::vector<at::Tensor>{g->broadcast(v[0], root)}; });
  return TensorWrap::Wrap(env, out[0]);
}

Napi::Value DistWrap::AllGather(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  auto g = group(env);
  mood::PendingPtr in = TensorWrap::PendingOf(env, info[0], "allGather: input");
  const size_t n = static_cast<size_t>(g->world_size());
  auto out = mood::schedule(sched("dist.allGather", device_of(in, *g, info[1]), n), {in},
                            [g](const std::vector<at::Tensor>& v) { return g->all_gather(v[0]); });
  Napi::Array a = Napi::Array::New(env, n);
  for (uint32_t i = 0; i < n; ++i) a.Set(i, TensorWrap::Wrap(env, out[i]));
  return a;
}

Napi::Value DistWrap::AllGatherOrdered(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  auto g = group(env);
  mood::PendingPtr in = TensorWrap::PendingOf(env, info[0], "allGatherOrdered: input");
  const double t = info[1].IsNumber() ? info[1].As<Napi::Number>().DoubleValue() : -1;
  if (std::floor(t) != t || t < 0) throw Napi::TypeError::New(env, "allGatherOrdered: total must be a non-negative integer (the dataset length)");
  const int64_t total = static_cast<int64_t>(t);
  auto out = mood::schedule(sched("dist.allGatherOrdered", device_of(in, *g, info[2])), {in}, [g, total](const std::vector<at::Tensor>& v) {
    return std::vector<at::Tensor>{dist::all_gather_interleaved(*g, v[0], total)};
  });
  return TensorWrap::Wrap(env, out[0]);
}

// Overwrites the given tensors (e.g. a model's state-dict entries, which share the parameters'
// storage) with rank src's values, coalesced per dtype: DDP's start-of-training broadcast.
Napi::Value DistWrap::BroadcastInPlace(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  auto g = group(env);
  if (!info[0].IsArray()) throw Napi::TypeError::New(env, "broadcastInPlace: tensors must be an array");
  Napi::Array a = info[0].As<Napi::Array>();
  std::vector<mood::PendingPtr> ins;
  for (uint32_t i = 0; i < a.Length(); ++i) ins.push_back(TensorWrap::PendingOf(env, a.Get(i), ("broadcastInPlace: tensor " + std::to_string(i)).c_str()));
  const double s = info[1].IsNumber() ? info[1].As<Napi::Number>().DoubleValue() : 0;
  if (std::floor(s) != s || s < 0 || s >= g->world_size())
    throw Napi::RangeError::New(env, "broadcastInPlace: src must be a rank in 0.." + std::to_string(g->world_size() - 1));
  const int root = static_cast<int>(s);
  const c10::Device d = ins.empty() ? c10::Device(c10::kCPU) : device_of(ins[0], *g, info[2]);
  auto out = mood::schedule(sched("dist.broadcastInPlace", d), std::move(ins), [g, root](const std::vector<at::Tensor>& v) {
    std::vector<at::Tensor> ts(v);
    g->broadcast_inplace(ts, root);
    return std::vector<at::Tensor>{at::zeros({}, at::kFloat)};
  });
  return TensorWrap::Wrap(env, out[0]);
}

Napi::Value DistWrap::Barrier(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  auto g = group(env);
  const c10::Device d = g->options().backend == "nccl" ? c10::Device(c10::kCUDA, 0) : c10::Device(c10::kCPU);
  auto out = mood::schedule(sched("dist.barrier", d), {}, [g](const std::vector<at::Tensor>&) {
    g->barrier();
    return std::vector<at::Tensor>{at::zeros({}, at::kFloat)};
  });
  return TensorWrap::Wrap(env, out[0]);
}

Napi::Value DistWrap::CreateGradientSync(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  auto g = group(env);
  dist::GradSyncOptions o;
  if (info[0].IsObject()) {
    Napi::Object obj = info[0].As<Napi::Object>();
    o.bucket_bytes = int_field(env, obj, "bucketBytes", o.bucket_bytes, 1, int64_t(1) << 40);
    Napi::Value ov = obj.Get("overlap");
    if (!ov.IsUndefined()) {
      if (!ov.IsBoolean()) throw Napi::TypeError::New(env, "createGradientSync: overlap must be a boolean");
      o.overlap = ov.As<Napi::Boolean>().Value();
    }
  }
  try {
    return Napi::Number::New(env, static_cast<double>(mood::GradientSyncRegistry::instance().add(dist::make_gradient_sync(g, o))));
  } catch (const std::exception& e) {
    throw Napi::Error::New(env, e.what());
  }
}

Napi::Value DistWrap::GradientSyncStats(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (!info[0].IsNumber()) throw Napi::TypeError::New(env, "gradientSyncStats: id must be a number");
  auto s = mood::GradientSyncRegistry::instance().find(static_cast<int64_t>(info[0].As<Napi::Number>().DoubleValue()));
  if (!s) throw Napi::Error::New(env, "gradientSyncStats: no gradient sync with that id");
  dist::GradSyncStats st = dist::gradient_sync_stats(*s);
  Napi::Object o = Napi::Object::New(env);
  o.Set("buckets", static_cast<double>(st.buckets));
  o.Set("launchedDuringBackward", static_cast<double>(st.launched_during_backward));
  o.Set("syncs", static_cast<double>(st.syncs));
  o.Set("waitMs", st.wait_ms);
  return o;
}

Napi::Value DistWrap::ReleaseGradientSync(const Napi::CallbackInfo& info) {
  if (info[0].IsNumber()) mood::GradientSyncRegistry::instance().remove(static_cast<int64_t>(info[0].As<Napi::Number>().DoubleValue()));
  return info.Env().Undefined();
}

Napi::Value DistWrap::Shutdown(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (!group_) return env.Undefined();
  auto g = group_;
  group_.reset();
  // Behind the collectives already queued on the executor, so they finish first.
  const c10::Device d = g->options().backend == "nccl" ? c10::Device(c10::kCUDA, 0) : c10::Device(c10::kCPU);
  auto out = mood::schedule(sched("dist.shutdown", d), {}, [g](const std::vector<at::Tensor>&) {
    g->shutdown();
    return std::vector<at::Tensor>{at::zeros({}, at::kFloat)};
  });
  return TensorWrap::Wrap(env, out[0]);
}

}  // namespace mood_addon
