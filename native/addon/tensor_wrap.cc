#include "addon/tensor_wrap.h"

#include "addon/convert.h"
#include "core/ops.h"
#include "core/runtime.h"

#include <stdexcept>
#include <unordered_map>

namespace mood_addon {

namespace {

// One slot per live handle. Touched on the JS thread only.
struct Slot {
  mood::PendingPtr pending;
  // Bytes reported to V8 as external memory, so the GC sees what undisposed tensors hold.
  int64_t reported_bytes = 0;
};
std::unordered_map<int64_t, Slot>* g_slots = nullptr;
int64_t g_next_id = 1;
Napi::FunctionReference* g_handle_class = nullptr;

int64_t add_slot(Napi::Env env, mood::PendingPtr p) {
  Slot s;
  if (p->done() && p->ok() && p->value().defined() && p->value().device().is_cpu()) {
    s.reported_bytes = static_cast<int64_t>(p->value().nbytes());
    if (s.reported_bytes > 0) Napi::MemoryManagement::AdjustExternalMemory(env, s.reported_bytes);
  }
  s.pending = std::move(p);
  int64_t id = g_next_id++;
  g_slots->emplace(id, std::move(s));
  return id;
}

int64_t id_arg(const Napi::Env& env, const Napi::Value& v) {
  if (!v.IsNumber()) throw Napi::TypeError::New(env, "tensor handle id must be a number");
  return v.As<Napi::Number>().Int64Value();
}

const mood::PendingPtr& slot_pending(const Napi::Env& env, int64_t id) {
  auto it = g_slots->find(id);
  if (it == g_slots->end()) throw Napi::Error::New(env, "tensor used after dispose()");
  return it->second.pending;
}

}  // namespace

Napi::Object TensorWrap::Init(Napi::Env env) {
  // The table (like the read notifier below) belongs to the one JS thread that loaded the addon.
  if (g_slots) throw Napi::Error::New(env, "mood-ood's native addon can be loaded by one JS thread per process (load it on the main thread, not in a worker)");
  g_slots = new std::unordered_map<int64_t, Slot>();
  Napi::Object o = Napi::Object::New(env);
  o.Set("setHandleClass", Napi::Function::New(env, SetHandleClass));
  o.Set("fromTypedArray", Napi::Function::New(env, FromTypedArray));
  o.Set("op", Napi::Function::New(env, Op));
  o.Set("isReady", Napi::Function::New(env, IsReady));
  o.Set("meta", Napi::Function::New(env, Meta));
  o.Set("read", Napi::Function::New(env, Read));
  o.Set("whenReady", Napi::Function::New(env, WhenReady));
  o.Set("release", Napi::Function::New(env, Release));
  return o;
}

Napi::Value TensorWrap::SetHandleClass(const Napi::CallbackInfo& info) {
  if (!info[0].IsFunction()) throw Napi::TypeError::New(info.Env(), "setHandleClass: expected a class");
  if (!g_handle_class) g_handle_class = new Napi::FunctionReference();
  *g_handle_class = Napi::Persistent(info[0].As<Napi::Function>());
  return info.Env().Undefined();
}

Napi::Object TensorWrap::Wrap(Napi::Env env, mood::PendingPtr p) {
  if (!g_handle_class) throw Napi::Error::New(env, "internal error: the tensor handle class is not registered");
  int64_t id = add_slot(env, std::move(p));
  return g_handle_class->New({Napi::Number::New(env, static_cast<double>(id))});
}

mood::PendingPtr TensorWrap::PendingOf(const Napi::Env& env, const Napi::Value& v, const char* what) {
  Napi::Value idv = v;
  if (v.IsObject()) idv = v.As<Napi::Object>().Get("id");
  if (!idv.IsNumber()) throw Napi::TypeError::New(env, std::string(what) + " is not a tensor");
  return slot_pending(env, idv.As<Napi::Number>().Int64Value());
}

TensorWrap::Named TensorWrap::NamedPendingsOf(const Napi::Env& env, const Napi::Object& o, const std::string& what) {
  Named r;
  Napi::Array keys = o.GetPropertyNames();
  for (uint32_t i = 0; i < keys.Length(); ++i) {
    std::string k = keys.Get(i).As<Napi::String>().Utf8Value();
    r.pendings.push_back(PendingOf(env, o.Get(k), (what + ": '" + k + "'").c_str()));
    r.names.push_back(std::move(k));
  }
  return r;
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
  return Napi::Number::New(env, static_cast<double>(add_slot(env, p)));
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
    Napi::Value v = arr.Get(i);
    // Bare ids from lib/tensor.ts (the hot path); handle objects from anything else.
    if (v.IsNumber()) {
      inputs.push_back(slot_pending(env, v.As<Napi::Number>().Int64Value()));
    } else {
      std::string what = name + ": input " + std::to_string(i);
      inputs.push_back(PendingOf(env, v, what.c_str()));
    }
  }
  mood::OpArgs args = to_op_args(env, info[2]);
  // The queue is the device of the first input, else the "device" attribute (creation ops).
  c10::Device device(c10::kCPU);
  std::string device_attr = "cpu";
  int64_t numel = 1;
  try {
    args.restrict_to(name, op->attrs);  // an unknown attribute name fails here, at the call
  } catch (const std::invalid_argument& e) {
    throw Napi::TypeError::New(env, e.what());
  }
  try {
    if (inputs.empty()) {
      if (args.takes("device")) device_attr = args.get_string("device", "cpu");
      if (args.takes("shape"))
        for (int64_t s : args.get_ints("shape", {})) numel *= s;
    }
  } catch (const std::invalid_argument& e) {
    throw Napi::TypeError::New(env, "op '" + name + "': " + e.what());
  }
  if (!inputs.empty() && inputs[0]->done() && inputs[0]->ok()) {
    device = inputs[0]->value().device();
  } else if (inputs.empty()) {
    device = device_arg(env, Napi::String::New(env, device_attr));
  } else if (info[3].IsString()) {
    device = device_arg(env, info[3]);  // caller knows the device of a still-pending input
  }
  mood::ScheduleOptions o;
  o.op = name;
  o.device = device;
  o.num_outputs = static_cast<size_t>(op->num_outputs);
  o.skip_if_unobserved = true;  // every op of the table is functional: it only makes its outputs
  // Creation: inline only when the result is small.
  o.allow_inline = op->cost == mood::OpCost::kLight && (!inputs.empty() || numel <= mood::kInlineNumel);
  auto outs = mood::schedule(o, std::move(inputs), [name, args](const std::vector<at::Tensor>& in) {
    return mood::run_op(name, in, args);
  });
  if (outs.size() == 1) return Napi::Number::New(env, static_cast<double>(add_slot(env, outs[0])));
  Napi::Array result = Napi::Array::New(env, outs.size());
  for (uint32_t i = 0; i < outs.size(); ++i) result.Set(i, Napi::Number::New(env, static_cast<double>(add_slot(env, outs[i]))));
  return result;
}

Napi::Value TensorWrap::IsReady(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  return Napi::Boolean::New(env, slot_pending(env, id_arg(env, info[0]))->done());
}

Napi::Value TensorWrap::Meta(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  const mood::PendingPtr p = slot_pending(env, id_arg(env, info[0]));
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
  mood::PendingPtr p = slot_pending(env, id_arg(env, info[0]));
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
  // A ready, readable tensor is returned as its TypedArray at once (lib/native.ts wraps it in a
  // resolved Promise): a native promise costs more than a small op.
  if (p->done() && p->ok()) {
    try {
      return tensor_to_typed_array(env, p->value());
    } catch (const Napi::Error&) {
      // falls through: the promise path rejects with the same error
    }
  }
  return promise_for(env, p, true);
}

Napi::Value TensorWrap::WhenReady(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  return promise_for(env, slot_pending(env, id_arg(env, info[0])), false);
}

Napi::Value TensorWrap::Release(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  auto it = g_slots->find(id_arg(env, info[0]));
  if (it != g_slots->end()) {
    if (it->second.reported_bytes > 0) Napi::MemoryManagement::AdjustExternalMemory(env, -it->second.reported_bytes);
    g_slots->erase(it);
  }
  return env.Undefined();
}

}  // namespace mood_addon
