#include "addon/tensor_wrap.h"

#include "addon/convert.h"
#include "core/ops.h"
#include "core/runtime.h"

namespace mood_addon {

Napi::FunctionReference* TensorWrap::constructor_ = nullptr;

Napi::Function TensorWrap::Init(Napi::Env env) {
  Napi::Function f = DefineClass(env, "NativeTensor",
                                 {
                                     StaticMethod("fromTypedArray", &TensorWrap::FromTypedArray),
                                     StaticMethod("op", &TensorWrap::Op),
                                     InstanceMethod("isReady", &TensorWrap::IsReady),
                                     InstanceMethod("meta", &TensorWrap::Meta),
                                     InstanceMethod("read", &TensorWrap::Read),
                                     InstanceMethod("whenReady", &TensorWrap::WhenReady),
                                     InstanceMethod("dispose", &TensorWrap::Dispose),
                                     InstanceMethod("isDisposed", &TensorWrap::IsDisposed),
                                 });
  constructor_ = new Napi::FunctionReference(Napi::Persistent(f));
  return f;
}

TensorWrap::TensorWrap(const Napi::CallbackInfo& info) : Napi::ObjectWrap<TensorWrap>(info) {}

Napi::Object TensorWrap::Wrap(Napi::Env env, mood::PendingPtr p) {
  Napi::Object o = constructor_->New({});
  TensorWrap* w = Napi::ObjectWrap<TensorWrap>::Unwrap(o);
  if (p->done() && p->ok() && p->value().defined() && p->value().device().is_cpu()) {
    w->reported_bytes_ = static_cast<int64_t>(p->value().nbytes());
    if (w->reported_bytes_ > 0) Napi::MemoryManagement::AdjustExternalMemory(env, w->reported_bytes_);
  }
  w->pending_ = std::move(p);
  return o;
}

void TensorWrap::release(Napi::Env env) {
  pending_.reset();
  if (reported_bytes_ > 0) Napi::MemoryManagement::AdjustExternalMemory(env, -reported_bytes_);
  reported_bytes_ = 0;
}

void TensorWrap::Finalize(Napi::Env env) { release(env); }

mood::PendingPtr TensorWrap::PendingOf(const Napi::Env& env, const Napi::Value& v, const char* what) {
  if (!v.IsObject() || !v.As<Napi::Object>().InstanceOf(constructor_->Value()))
    throw Napi::TypeError::New(env, std::string(what) + " is not a tensor");
  return Napi::ObjectWrap<TensorWrap>::Unwrap(v.As<Napi::Object>())->pending(env);
}

const mood::PendingPtr& TensorWrap::pending(const Napi::Env& env) const {
  if (!pending_) throw Napi::Error::New(env, "tensor used after dispose()");
  return pending_;
}

static c10::Device device_arg(const Napi::Env& env, const Napi::Value& v) {
  if (v.IsUndefined() || v.IsNull()) return c10::Device(c10::kCPU);
  if (!v.IsString()) throw Napi::TypeError::New(env, "device must be a string like 'cpu' or 'cuda:0'");
  try {
    return mood::parse_device(v.As<Napi::String>().Utf8Value());
  } catch (const std::exception& e) {
    throw Napi::Error::New(env, e.what());
  }
}

Napi::Value TensorWrap::FromTypedArray(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (!info[0].IsTypedArray()) throw Napi::TypeError::New(env, "data must be a TypedArray");
  if (!info[2].IsString()) throw Napi::TypeError::New(env, "dtype must be a string");
  at::ScalarType dtype;
  try {
    dtype = mood::parse_dtype(info[2].As<Napi::String>().Utf8Value());
  } catch (const std::exception& e) {
    throw Napi::TypeError::New(env, e.what());
  }
  c10::Device device = device_arg(env, info[3]);
  at::Tensor t = typed_array_to_tensor(env, info[0].As<Napi::TypedArray>(), to_shape(env, info[1], "shape"), dtype);
  mood::PendingPtr p = mood::Pending::ready(t);
  if (!device.is_cpu()) {
    mood::ScheduleOptions o;
    o.op = "to";
    o.device = device;
    p = mood::schedule(o, {p}, [device](const std::vector<at::Tensor>& in) {
          return std::vector<at::Tensor>{in[0].to(device)};
        })[0];
  }
  return Wrap(env, p);
}

Napi::Value TensorWrap::Op(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (!info[0].IsString()) throw Napi::TypeError::New(env, "op name must be a string");
  std::string name = info[0].As<Napi::String>().Utf8Value();
  const mood::OpInfo* op;
  try {
    op = &mood::op_info(name);
  } catch (const std::exception& e) {
    throw Napi::Error::New(env, e.what());
  }
  if (!info[1].IsArray()) throw Napi::TypeError::New(env, name + ": inputs must be an array of tensors");
  Napi::Array arr = info[1].As<Napi::Array>();
  std::vector<mood::PendingPtr> inputs;
  inputs.reserve(arr.Length());
  for (uint32_t i = 0; i < arr.Length(); ++i) {
    std::string what = name + ": input " + std::to_string(i);
    inputs.push_back(PendingOf(env, arr.Get(i), what.c_str()));
  }
  mood::OpArgs args = to_op_args(env, info[2]);
  // The queue is the device of the first input, else the "device" attribute (creation ops).
  c10::Device device(c10::kCPU);
  if (!inputs.empty() && inputs[0]->done() && inputs[0]->ok()) {
    device = inputs[0]->value().device();
  } else if (inputs.empty()) {
    std::string spec = args.get_string("device", "cpu");
    device = device_arg(env, Napi::String::New(env, spec));
  } else if (info[3].IsString()) {
    device = device_arg(env, info[3]);  // caller knows the device of a still-pending input
  }
  mood::ScheduleOptions o;
  o.op = name;
  o.device = device;
  o.num_outputs = static_cast<size_t>(op->num_outputs);
  if (inputs.empty()) {
    // Creation: inline only when the result is small.
    int64_t numel = 1;
    for (int64_t s : args.get_ints("shape", {})) numel *= s;
    o.allow_inline = op->cost == mood::OpCost::kLight && numel <= mood::kInlineNumel;
  } else {
    o.allow_inline = op->cost == mood::OpCost::kLight;
  }
  auto outs = mood::schedule(o, std::move(inputs), [name, args](const std::vector<at::Tensor>& in) {
    return mood::run_op(name, in, args);
  });
  Napi::Array result = Napi::Array::New(env, outs.size());
  for (uint32_t i = 0; i < outs.size(); ++i) result.Set(i, Wrap(env, outs[i]));
  return result;
}

Napi::Value TensorWrap::IsReady(const Napi::CallbackInfo& info) {
  return Napi::Boolean::New(info.Env(), pending(info.Env())->done());
}

Napi::Value TensorWrap::Meta(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  const mood::PendingPtr& p = pending(env);
  p->wait();
  if (!p->ok()) throw Napi::Error::New(env, p->error());
  const at::Tensor& t = p->value();
  Napi::Object o = Napi::Object::New(env);
  o.Set("dtype", mood::dtype_name(t.scalar_type()));
  Napi::Array shape = Napi::Array::New(env, t.dim());
  for (int64_t i = 0; i < t.dim(); ++i) shape.Set(static_cast<uint32_t>(i), Napi::Number::New(env, static_cast<double>(t.size(i))));
  o.Set("shape", shape);
  o.Set("device", mood::device_name(t.device()));
  return o;
}

namespace {

// Settles a JS promise when a Pending settles on some worker thread.
struct Waiter {
  Napi::Promise::Deferred deferred;
  mood::PendingPtr pending;
  bool read;  // resolve with the data (true) or with undefined (false)
};

// One thread-safe function for every read: creating one per read costs a uv handle and a loop turn.
// It holds the event loop open only while some read is outstanding.
struct Notifier {
  Napi::ThreadSafeFunction tsfn;
  int outstanding = 0;  // touched on the JS thread only
};
Notifier* g_notifier = nullptr;

void settle(Napi::Env env, Napi::Promise::Deferred& d, const mood::PendingPtr& p, bool read) {
  if (!p->ok()) {
    d.Reject(Napi::Error::New(env, p->error()).Value());
    return;
  }
  if (!read) {
    d.Resolve(env.Undefined());
    return;
  }
  try {
    d.Resolve(tensor_to_typed_array(env, p->value()));
  } catch (const Napi::Error& e) {
    d.Reject(e.Value());
  }
}

Napi::Value promise_for(const Napi::Env& env, mood::PendingPtr p, bool read) {
  auto deferred = Napi::Promise::Deferred::New(env);
  if (p->done()) {
    settle(env, deferred, p, read);
    return deferred.Promise();
  }
  if (!g_notifier) {
    g_notifier = new Notifier();
    g_notifier->tsfn = Napi::ThreadSafeFunction::New(env, Napi::Function::New(env, [](const Napi::CallbackInfo&) {}),
                                                     "mood.tensor.read", 0, 1);
    g_notifier->tsfn.Unref(env);
  }
  if (g_notifier->outstanding++ == 0) g_notifier->tsfn.Ref(env);
  auto* w = new Waiter{deferred, p, read};
  p->on_done([w] {
    g_notifier->tsfn.NonBlockingCall([w](Napi::Env env, Napi::Function) {
      settle(env, w->deferred, w->pending, w->read);
      delete w;
      if (--g_notifier->outstanding == 0) g_notifier->tsfn.Unref(env);
    });
  });
  return deferred.Promise();
}

}  // namespace

Napi::Value TensorWrap::Read(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  mood::PendingPtr p = pending(env);
  bool direct = p->done() && (!p->ok() || (p->value().device().is_cpu() && p->value().is_contiguous()));
  if (!direct) {
    // Bring the values to a contiguous CPU tensor on the tensor's own queue first.
    mood::ScheduleOptions o;
    o.op = "read";
    o.device = p->done() && p->ok() ? p->value().device() : c10::Device(c10::kCPU);
    p = mood::schedule(o, {p}, [](const std::vector<at::Tensor>& in) {
          return std::vector<at::Tensor>{in[0].to(at::kCPU).contiguous()};
        })[0];
  }
  return promise_for(env, p, true);
}

Napi::Value TensorWrap::WhenReady(const Napi::CallbackInfo& info) { return promise_for(info.Env(), pending(info.Env()), false); }

Napi::Value TensorWrap::Dispose(const Napi::CallbackInfo& info) {
  release(info.Env());
  return info.Env().Undefined();
}

Napi::Value TensorWrap::IsDisposed(const Napi::CallbackInfo& info) { return Napi::Boolean::New(info.Env(), !pending_); }

}  // namespace mood_addon
