#include "addon/trainer_wrap.h"

#include <cmath>
#include <map>
#include <set>

#include "addon/model_wrap.h"
#include "addon/tensor_wrap.h"
#include "core/executor.h"

namespace mood_addon {

namespace train = mood::train;

Napi::FunctionReference* TrainerWrap::beit_ctor_ = nullptr;

namespace {

double num(const Napi::Object& o, const char* k, double dflt) {
  Napi::Value v = o.Get(k);
  if (v.IsUndefined() || v.IsNull()) return dflt;
  if (!v.IsNumber() || !std::isfinite(v.As<Napi::Number>().DoubleValue()))
    throw Napi::TypeError::New(o.Env(), std::string("NativeTrainer config.") + k + " must be a finite number");
  return v.As<Napi::Number>().DoubleValue();
}

std::vector<double> numbers(const Napi::Env& env, const Napi::Value& v, const char* what) {
  if (!v.IsArray()) throw Napi::TypeError::New(env, std::string(what) + " must be an array of numbers");
  Napi::Array a = v.As<Napi::Array>();
  std::vector<double> r;
  for (uint32_t i = 0; i < a.Length(); ++i) {
    Napi::Value x = a.Get(i);
    if (!x.IsNumber() || !std::isfinite(x.As<Napi::Number>().DoubleValue()))
      throw Napi::TypeError::New(env, std::string(what) + "[" + std::to_string(i) + "] must be a finite number");
    r.push_back(x.As<Napi::Number>().DoubleValue());
  }
  return r;
}

Napi::Array strings(const Napi::Env& env, const std::vector<std::string>& v) {
  Napi::Array a = Napi::Array::New(env, v.size());
  for (uint32_t i = 0; i < v.size(); ++i) a.Set(i, v[i]);
  return a;
}

}  // namespace

Napi::Function TrainerWrap::Init(Napi::Env env, Napi::Function beit_ctor) {
  beit_ctor_ = new Napi::FunctionReference(Napi::Persistent(beit_ctor));
  return DefineClass(env, "NativeTrainer",
                     {
                         InstanceMethod("ready", &TrainerWrap::Ready),
                         InstanceMethod("step", &TrainerWrap::Step),
                         InstanceMethod("paramNames", &TrainerWrap::ParamNames),
                         InstanceMethod("groupSizes", &TrainerWrap::GroupSizes),
                         InstanceMethod("state", &TrainerWrap::State),
                         InstanceMethod("setState", &TrainerWrap::SetState),
                         InstanceMethod("grads", &TrainerWrap::Grads),
                         InstanceMethod("emaNames", &TrainerWrap::EmaNames),
                         InstanceMethod("emaState", &TrainerWrap::EmaState),
                         InstanceMethod("setEma", &TrainerWrap::SetEma),
                         InstanceMethod("dispose", &TrainerWrap::Dispose),
                     });
}

TrainerWrap::TrainerWrap(const Napi::CallbackInfo& info) : Napi::ObjectWrap<TrainerWrap>(info) {
  Napi::Env env = info.Env();
  if (!info[0].IsObject() || !info[0].As<Napi::Object>().InstanceOf(beit_ctor_->Value()))
    throw Napi::TypeError::New(env, "NativeTrainer: the first argument must be a NativeBeit");
  auto model = Napi::ObjectWrap<ModelWrap>::Unwrap(info[0].As<Napi::Object>())->shared_model();
  if (!model) throw Napi::Error::New(env, "NativeTrainer: BEiT model used after dispose()");
  if (!info[1].IsObject()) throw Napi::TypeError::New(env, "NativeTrainer: config must be an object");
  Napi::Object o = info[1].As<Napi::Object>();
  train::TrainConfig cfg;
  Napi::Value groups = o.Get("groups");
  if (!groups.IsArray()) throw Napi::TypeError::New(env, "NativeTrainer config.groups must be an array of arrays of parameter names");
  std::set<std::string> known;
  for (auto& e : model->state_dict_entries(false)) known.insert(e.name);
  Napi::Array ga = groups.As<Napi::Array>();
  for (uint32_t g = 0; g < ga.Length(); ++g) {
    Napi::Value gv = ga.Get(g);
    if (!gv.IsArray()) throw Napi::TypeError::New(env, "NativeTrainer config.groups[" + std::to_string(g) + "] must be an array of names");
    std::vector<std::string> names;
    Napi::Array na = gv.As<Napi::Array>();
    for (uint32_t i = 0; i < na.Length(); ++i) {
      if (!na.Get(i).IsString()) throw Napi::TypeError::New(env, "NativeTrainer config.groups[" + std::to_string(g) + "] holds a non-string");
      std::string n = na.Get(i).As<Napi::String>().Utf8Value();
      if (!known.count(n)) throw Napi::Error::New(env, "NativeTrainer: param group " + std::to_string(g) + " names '" + n + "', which is not a parameter of the model");
      names.push_back(n);
      names_.push_back(n);
    }
    group_sizes_.push_back(names.size());
    cfg.groups.push_back(std::move(names));
  }
  Napi::Value betas = o.Get("betas");
  if (!betas.IsUndefined()) {
    auto b = numbers(env, betas, "NativeTrainer config.betas");
    if (b.size() != 2) throw Napi::TypeError::New(env, "NativeTrainer config.betas must be [beta1, beta2]");
    cfg.beta1 = b[0];
    cfg.beta2 = b[1];
  }
  cfg.eps = num(o, "eps", cfg.eps);
  cfg.clip_grad = num(o, "clipGrad", 0.0);
  cfg.smoothing = num(o, "smoothing", 0.0);
  cfg.update_freq = static_cast<int64_t>(num(o, "updateFreq", 1));
  cfg.l2_alpha = num(o, "l2Alpha", 0.0);
  cfg.l2_beta = num(o, "l2Beta", 0.0);
  cfg.ema_decay = num(o, "emaDecay", -1.0);
  cfg.grad_sync_id = static_cast<int64_t>(num(o, "gradSyncId", 0));
  if (cfg.update_freq < 1) throw Napi::RangeError::New(env, "NativeTrainer config.updateFreq must be >= 1");
  if (cfg.ema_decay > 0)
    for (auto& e : model->state_dict_entries(true)) ema_names_.push_back(e.name);
  device_ = model->param_device();
  holder_ = std::make_shared<Holder>();
  // Built on the executor: it snapshots parameters (L2-SP reference, EMA) after the loads queued before it.
  mood::ScheduleOptions so;
  so.op = "trainer.init";
  so.device = device_;
  so.allow_inline = false;
  auto h = holder_;
  auto done = mood::schedule(so, {}, [h, model, cfg](const std::vector<at::Tensor>&) {
    try {
      h->step = std::make_shared<train::TrainStep>(model, cfg);
    } catch (const std::exception& e) {
      h->error = e.what();
      throw;
    }
    return std::vector<at::Tensor>{at::zeros({}, at::kFloat)};
  });
  Value().Set("_ready", TensorWrap::Wrap(env, done[0]));
}

std::shared_ptr<TrainerWrap::Holder> TrainerWrap::live(const Napi::Env& env) const {
  if (!holder_) throw Napi::Error::New(env, "NativeTrainer used after dispose()");
  return holder_;
}

Napi::Value TrainerWrap::Ready(const Napi::CallbackInfo& info) { return Value().Get("_ready"); }

static train::TrainStep& step_of(const std::shared_ptr<TrainerWrap::Holder>& h) {
  if (!h->step) throw std::runtime_error("the trainer could not be built: " + h->error);
  return *h->step;
}

Napi::Value TrainerWrap::Step(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  auto h = live(env);
  std::vector<mood::PendingPtr> inputs{TensorWrap::PendingOf(env, info[0], "trainer.step: images"), TensorWrap::PendingOf(env, info[1], "trainer.step: targets")};
  const bool soft = !(info[2].IsUndefined() || info[2].IsNull());
  if (soft) inputs.push_back(TensorWrap::PendingOf(env, info[2], "trainer.step: soft targets"));
  if (!info[3].IsObject()) throw Napi::TypeError::New(env, "trainer.step: options must be an object");
  Napi::Object o = info[3].As<Napi::Object>();
  auto flag = [&](const char* k, bool d) {
    Napi::Value v = o.Get(k);
    return v.IsBoolean() ? v.As<Napi::Boolean>().Value() : d;
  };
  train::MicroStep proto;
  proto.first = flag("first", true);
  proto.last = flag("last", true);
  proto.seed = static_cast<int64_t>(num(o, "seed", -1));
  if (proto.last) {
    proto.lrs = numbers(env, o.Get("lrs"), "trainer.step: lrs");
    proto.wds = numbers(env, o.Get("wds"), "trainer.step: wds");
    if (proto.lrs.size() != group_sizes_.size() || proto.wds.size() != group_sizes_.size())
      throw Napi::RangeError::New(env, "trainer.step: lrs and wds need one value per param group (" + std::to_string(group_sizes_.size()) + ")");
  }
  mood::ScheduleOptions so;
  so.op = "trainer.step";
  so.device = device_;
  so.allow_inline = false;
  so.num_outputs = 2;
  auto outs = mood::schedule(so, std::move(inputs), [h, proto, soft](const std::vector<at::Tensor>& in) {
    train::MicroStep s = proto;
    s.images = in[0];
    s.targets = in[1];
    if (soft) s.soft_targets = in[2];
    train::StepResult r = step_of(h).step(s);
    return std::vector<at::Tensor>{r.loss, r.grad_norm};
  });
  Napi::Object r = Napi::Object::New(env);
  r.Set("loss", TensorWrap::Wrap(env, outs[0]));
  r.Set("gradNorm", TensorWrap::Wrap(env, outs[1]));
  return r;
}

Napi::Value TrainerWrap::ParamNames(const Napi::CallbackInfo& info) { return strings(info.Env(), names_); }

Napi::Value TrainerWrap::GroupSizes(const Napi::CallbackInfo& info) {
  Napi::Array a = Napi::Array::New(info.Env(), group_sizes_.size());
  for (uint32_t i = 0; i < group_sizes_.size(); ++i) a.Set(i, static_cast<double>(group_sizes_[i]));
  return a;
}

Napi::Value TrainerWrap::State(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  auto h = live(env);
  const size_t n = names_.size();
  mood::ScheduleOptions so;
  so.op = "trainer.state";
  so.device = device_;
  so.allow_inline = false;
  so.num_outputs = 1 + 3 * n;
  auto outs = mood::schedule(so, {}, [h, n](const std::vector<at::Tensor>&) {
    train::TrainStep& ts = step_of(h);
    std::vector<at::Tensor> v(1 + 3 * n);
    at::Tensor has = at::zeros({static_cast<int64_t>(n)}, at::kLong);
    for (size_t i = 0; i < n; ++i) {
      auto s = ts.state(i);
      const bool ok = s[0].defined();
      has[static_cast<int64_t>(i)] = ok ? 1 : 0;
      for (int k = 0; k < 3; ++k) v[1 + 3 * i + k] = ok ? s[k] : at::zeros({0}, at::kFloat);
    }
    v[0] = has;
    return v;
  });
  Napi::Object r = Napi::Object::New(env);
  r.Set("has", TensorWrap::Wrap(env, outs[0]));
  Napi::Array steps = Napi::Array::New(env, n), m = Napi::Array::New(env, n), v = Napi::Array::New(env, n);
  for (uint32_t i = 0; i < n; ++i) {
    steps.Set(i, TensorWrap::Wrap(env, outs[1 + 3 * i]));
    m.Set(i, TensorWrap::Wrap(env, outs[2 + 3 * i]));
    v.Set(i, TensorWrap::Wrap(env, outs[3 + 3 * i]));
  }
  r.Set("steps", steps);
  r.Set("expAvg", m);
  r.Set("expAvgSq", v);
  return r;
}

Napi::Value TrainerWrap::SetState(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  auto h = live(env);
  std::vector<double> idx = numbers(env, info[0], "trainer.setState: indices");
  if (!info[1].IsArray() || !info[2].IsArray() || !info[3].IsArray()) throw Napi::TypeError::New(env, "trainer.setState: steps, expAvg, expAvgSq must be arrays of tensors");
  Napi::Array a1 = info[1].As<Napi::Array>(), a2 = info[2].As<Napi::Array>(), a3 = info[3].As<Napi::Array>();
  if (a1.Length() != idx.size() || a2.Length() != idx.size() || a3.Length() != idx.size())
    throw Napi::RangeError::New(env, "trainer.setState: indices, steps, expAvg, expAvgSq must have the same length");
  std::vector<mood::PendingPtr> inputs;
  std::vector<size_t> where;
  for (uint32_t i = 0; i < idx.size(); ++i) {
    if (idx[i] < 0 || idx[i] >= static_cast<double>(names_.size()) || std::floor(idx[i]) != idx[i])
      throw Napi::RangeError::New(env, "trainer.setState: optimizer state index " + std::to_string(idx[i]) + " is outside 0.." + std::to_string(names_.size() - 1));
    where.push_back(static_cast<size_t>(idx[i]));
    inputs.push_back(TensorWrap::PendingOf(env, a1.Get(i), "trainer.setState: step"));
    inputs.push_back(TensorWrap::PendingOf(env, a2.Get(i), "trainer.setState: exp_avg"));
    inputs.push_back(TensorWrap::PendingOf(env, a3.Get(i), "trainer.setState: exp_avg_sq"));
  }
  mood::ScheduleOptions so;
  so.op = "trainer.setState";
  so.device = device_;
  so.allow_inline = false;
  auto done = mood::schedule(so, std::move(inputs), [h, where](const std::vector<at::Tensor>& in) {
    train::TrainStep& ts = step_of(h);
    for (size_t i = 0; i < where.size(); ++i) ts.set_state(where[i], in[3 * i], in[3 * i + 1], in[3 * i + 2]);
    return std::vector<at::Tensor>{at::zeros({}, at::kFloat)};
  });
  return TensorWrap::Wrap(env, done[0]);
}

Napi::Value TrainerWrap::Grads(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  auto h = live(env);
  const size_t n = names_.size();
  mood::ScheduleOptions so;
  so.op = "trainer.grads";
  so.device = device_;
  so.allow_inline = false;
  so.num_outputs = n;
  auto outs = mood::schedule(so, {}, [h](const std::vector<at::Tensor>&) { return step_of(h).grads(); });
  Napi::Array a = Napi::Array::New(env, n);
  for (uint32_t i = 0; i < n; ++i) a.Set(i, TensorWrap::Wrap(env, outs[i]));
  return a;
}

Napi::Value TrainerWrap::EmaNames(const Napi::CallbackInfo& info) { return strings(info.Env(), ema_names_); }

Napi::Value TrainerWrap::EmaState(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  auto h = live(env);
  const size_t n = ema_names_.size();
  Napi::Array a = Napi::Array::New(env, n);
  if (n == 0) return a;
  mood::ScheduleOptions so;
  so.op = "trainer.emaState";
  so.device = device_;
  so.allow_inline = false;
  so.num_outputs = n;
  auto outs = mood::schedule(so, {}, [h](const std::vector<at::Tensor>&) {
    std::vector<at::Tensor> v;
    for (auto& e : step_of(h).ema_state()) v.push_back(e.second);
    return v;
  });
  for (uint32_t i = 0; i < n; ++i) a.Set(i, TensorWrap::Wrap(env, outs[i]));
  return a;
}

Napi::Value TrainerWrap::SetEma(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  auto h = live(env);
  if (!info[0].IsObject()) throw Napi::TypeError::New(env, "trainer.setEma: expected {name: tensor}");
  TensorWrap::Named ema = TensorWrap::NamedPendingsOf(env, info[0].As<Napi::Object>(), "trainer.setEma");
  const std::vector<std::string>& names = ema.names;
  std::vector<mood::PendingPtr>& inputs = ema.pendings;
  mood::ScheduleOptions so;
  so.op = "trainer.setEma";
  so.device = device_;
  so.allow_inline = false;
  auto done = mood::schedule(so, std::move(inputs), [h, names](const std::vector<at::Tensor>& in) {
    train::TrainStep& ts = step_of(h);
    for (size_t i = 0; i < names.size(); ++i) ts.set_ema(names[i], in[i]);
    return std::vector<at::Tensor>{at::zeros({}, at::kFloat)};
  });
  return TensorWrap::Wrap(env, done[0]);
}

Napi::Value TrainerWrap::Dispose(const Napi::CallbackInfo& info) {
  holder_.reset();  // queued steps keep their own reference
  return info.Env().Undefined();
}

}  // namespace mood_addon
