#include "addon/mim_wrap.h"

#include <cmath>
#include <map>
#include <string>

#include "addon/model_wrap.h"
#include "addon/tensor_wrap.h"
#include "core/executor.h"
#include "core/ops.h"
#include "core/runtime.h"

namespace mood_addon {

namespace mim = mood::mim;
namespace beit = mood::beit;

namespace {

Napi::Error error(const Napi::Env& env, const std::string& msg) { return Napi::Error::New(env, msg); }

// The reference constructor's keyword names (VisionTransformerForMaskedImageModeling) plus ours.
mim::MimOptions parse_options(const Napi::Env& env, const Napi::Value& v) {
  mim::MimOptions o;
  o.backbone.num_classes = 0;
  o.backbone.use_mean_pooling = false;
  if (v.IsUndefined()) return o;
  if (!v.IsObject()) throw Napi::TypeError::New(env, "MIM options must be an object");
  Napi::Object obj = v.As<Napi::Object>();
  Napi::Array keys = obj.GetPropertyNames();
  beit::BeitOptions& b = o.backbone;
  const std::map<std::string, int64_t*> ints = {{"img_size", &b.img_size},   {"patch_size", &b.patch_size},
                                                {"in_chans", &b.in_chans},   {"embed_dim", &b.embed_dim},
                                                {"depth", &b.depth},         {"num_heads", &b.num_heads},
                                                {"seed", &b.seed},           {"vocab_size", &o.vocab_size}};
  const std::map<std::string, double*> nums = {{"mlp_ratio", &b.mlp_ratio},           {"init_values", &b.init_values},
                                               {"drop_rate", &b.drop_rate},           {"attn_drop_rate", &b.attn_drop_rate},
                                               {"drop_path_rate", &b.drop_path_rate}, {"layer_norm_eps", &b.layer_norm_eps},
                                               {"init_std", &o.init_std}};
  const std::map<std::string, bool*> bools = {{"qkv_bias", &b.qkv_bias},
                                              {"use_abs_pos_emb", &b.use_abs_pos_emb},
                                              {"use_rel_pos_bias", &b.use_rel_pos_bias},
                                              {"use_shared_rel_pos_bias", &b.use_shared_rel_pos_bias},
                                              {"norm_pix", &o.norm_pix}};
  for (uint32_t i = 0; i < keys.Length(); ++i) {
    std::string k = keys.Get(i).As<Napi::String>().Utf8Value();
    Napi::Value val = obj.Get(k);
    if (val.IsUndefined()) continue;
    if (ints.count(k)) *ints.at(k) = option_int(env, "MIM", k, val);
    else if (nums.count(k)) *nums.at(k) = option_num(env, "MIM", k, val);
    else if (bools.count(k)) *bools.at(k) = option_bool(env, "MIM", k, val);
    else if (k == "target") {
      std::string t = option_str(env, "MIM", k, val);
      if (t == "tokens") o.target = mim::Target::kTokens;
      else if (t == "pixels") o.target = mim::Target::kPixels;
      else throw Napi::TypeError::New(env, "MIM option target must be 'tokens' or 'pixels', got '" + t + "'");
    } else if (k == "device") {
      std::string d = option_str(env, "MIM", k, val);
      b.device = d == "meta" ? c10::Device(c10::kMeta) : mood::parse_device(d);
    } else if (k == "dtype") {
      std::string d = option_str(env, "MIM", k, val);
      if (d != "float32" && d != "float64") throw Napi::TypeError::New(env, "MIM option dtype must be 'float32' or 'float64'");
      b.dtype = mood::parse_dtype(d);
    } else if (k == "attention") {
      b.attention = beit::parse_attention_mode(option_str(env, "MIM", k, val));
    } else if (k == "num_classes" || k == "use_mean_pooling" || k == "init_scale") {
      // Fine-tuning options (a named BEiT config carries them); the MIM model has no head / pooling.
    } else {
      throw Napi::TypeError::New(env, "unknown MIM option '" + k + "'");
    }
  }
  return o;
}

Napi::Object options_object(const Napi::Env& env, const mim::MimOptions& o) {
  const beit::BeitOptions& b = o.backbone;
  Napi::Object r = Napi::Object::New(env);
  r.Set("img_size", static_cast<double>(b.img_size));
  r.Set("patch_size", static_cast<double>(b.patch_size));
  r.Set("in_chans", static_cast<double>(b.in_chans));
  r.Set("embed_dim", static_cast<double>(b.embed_dim));
  r.Set("depth", static_cast<double>(b.depth));
  r.Set("num_heads", static_cast<double>(b.num_heads));
  r.Set("mlp_ratio", b.mlp_ratio);
  r.Set("qkv_bias", b.qkv_bias);
  r.Set("init_values", b.init_values);
  r.Set("use_abs_pos_emb", b.use_abs_pos_emb);
  r.Set("use_rel_pos_bias", b.use_rel_pos_bias);
  r.Set("use_shared_rel_pos_bias", b.use_shared_rel_pos_bias);
  r.Set("drop_rate", b.drop_rate);
  r.Set("attn_drop_rate", b.attn_drop_rate);
  r.Set("drop_path_rate", b.drop_path_rate);
  r.Set("layer_norm_eps", b.layer_norm_eps);
  r.Set("vocab_size", static_cast<double>(o.vocab_size));
  r.Set("target", o.target == mim::Target::kPixels ? "pixels" : "tokens");
  r.Set("norm_pix", o.norm_pix);
  r.Set("init_std", o.init_std);
  r.Set("head_dim", static_cast<double>(o.head_dim()));
  r.Set("device", b.device.is_meta() ? std::string("meta") : mood::device_name(b.device));
  r.Set("dtype", mood::dtype_name(b.dtype));
  r.Set("attention", beit::attention_mode_name(b.attention));
  return r;
}

double opt_num(const Napi::Object& o, const char* k, double dflt) {
  Napi::Value v = o.Get(k);
  if (v.IsUndefined() || v.IsNull()) return dflt;
  if (!v.IsNumber()) throw Napi::TypeError::New(o.Env(), std::string("step option ") + k + " must be a number");
  double d = v.As<Napi::Number>().DoubleValue();
  if (!std::isfinite(d)) throw Napi::TypeError::New(o.Env(), std::string("step option ") + k + " must be finite");
  return d;
}

}  // namespace

Napi::Function MimWrap::Init(Napi::Env env) {
  return DefineClass(env, "NativeMim",
                     {
                         StaticMethod("configNames", &MimWrap::ConfigNames),
                         StaticMethod("config", &MimWrap::Config),
                         InstanceMethod("options", &MimWrap::Options),
                         InstanceMethod("stateSpec", &MimWrap::StateSpec),
                         InstanceMethod("stateDict", &MimWrap::StateDict),
                         InstanceMethod("loadStateDict", &MimWrap::LoadStateDict),
                         InstanceMethod("forward", &MimWrap::Forward),
                         InstanceMethod("lossBackward", &MimWrap::LossBackward),
                         InstanceMethod("grads", &MimWrap::Grads),
                         InstanceMethod("step", &MimWrap::Step),
                         InstanceMethod("moments", &MimWrap::Moments),
                         InstanceMethod("loadMoments", &MimWrap::LoadMoments),
                         InstanceMethod("train", &MimWrap::Train),
                         InstanceMethod("isTraining", &MimWrap::IsTraining),
                         InstanceMethod("dispose", &MimWrap::Dispose),
                     });
}

MimWrap::MimWrap(const Napi::CallbackInfo& info) : Napi::ObjectWrap<MimWrap>(info) {
  Napi::Env env = info.Env();
  mim::MimOptions o = guarded(env, [&] { return parse_options(env, info[0]); });
  model_ = guarded(env, [&] { return std::make_shared<mim::MimImpl>(o); });
  model_->eval();
}

const std::shared_ptr<mim::MimImpl>& MimWrap::model(const Napi::Env& env) const {
  if (!model_) throw error(env, "MIM model used after dispose()");
  return model_;
}

Napi::Value MimWrap::ConfigNames(const Napi::CallbackInfo& info) { return string_array(info.Env(), mim::config_names()); }

Napi::Value MimWrap::Config(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (!info[0].IsString()) throw Napi::TypeError::New(env, "config name must be a string");
  return guarded(env, [&] { return options_object(env, mim::config(info[0].As<Napi::String>().Utf8Value())); });
}

Napi::Value MimWrap::Options(const Napi::CallbackInfo& info) { return options_object(info.Env(), model(info.Env())->options()); }

Napi::Value MimWrap::StateSpec(const Napi::CallbackInfo& info) { return state_spec_array(info.Env(), model(info.Env())->state_dict_entries(true)); }

Napi::Value MimWrap::StateDict(const Napi::CallbackInfo& info) { return entries_object(info.Env(), model(info.Env())->state_dict_entries(true)); }

Napi::Value MimWrap::LoadStateDict(const Napi::CallbackInfo& info) {
  auto m = model(info.Env());
  return load_state_dict_call(
      info, "VisionTransformerForMaskedImageModeling", "mim.loadStateDict", m->param_device(),
      [&m](const std::vector<std::string>& names) { return m->check_keys(names); },
      [m](const std::map<std::string, at::Tensor>& sd) { m->load_state_dict(sd, /*strict=*/false); });
}

Napi::Value MimWrap::Forward(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  auto m = model(env);
  mood::PendingPtr input = TensorWrap::PendingOf(env, info[0], "mim.forward: input");
  mood::PendingPtr mask = TensorWrap::PendingOf(env, info[1], "mim.forward: mask");
  const bool all = info[2].IsBoolean() && info[2].As<Napi::Boolean>().Value();
  mood::ScheduleOptions so;
  so.op = "mim.forward";
  so.device = m->param_device();
  so.allow_inline = false;
  const bool training = training_;
  auto outs = mood::schedule(so, {input, mask}, [m, all, training](const std::vector<at::Tensor>& in) {
    m->train(training);
    at::NoGradGuard ng;
    return std::vector<at::Tensor>{m->forward(in[0], in[1], all)};
  });
  return TensorWrap::Wrap(env, outs[0]);
}

Napi::Value MimWrap::LossBackward(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  auto m = model(env);
  std::vector<mood::PendingPtr> inputs = {TensorWrap::PendingOf(env, info[0], "mim.lossBackward: input"),
                                          TensorWrap::PendingOf(env, info[1], "mim.lossBackward: mask")};
  if (!info[2].IsUndefined() && !info[2].IsNull()) inputs.push_back(TensorWrap::PendingOf(env, info[2], "mim.lossBackward: target"));
  mood::ScheduleOptions so;
  so.op = "mim.lossBackward";
  so.device = m->param_device();
  so.allow_inline = false;
  const bool training = training_;
  auto outs = mood::schedule(so, std::move(inputs), [m, training](const std::vector<at::Tensor>& in) {
    m->train(training);
    at::AutoGradMode g(true);
    for (auto& p : m->parameters()) p.mutable_grad() = at::Tensor();
    mim::LossResult r = mim::mim_loss(*m, in[0], in[1], in.size() > 2 ? in[2] : at::Tensor());
    r.loss.backward();
    at::Tensor acc = r.accuracy.defined() ? r.accuracy.to(at::kFloat).cpu() : at::full({}, NAN, at::kFloat);
    at::Tensor out = at::stack({r.loss.detach().to(at::kFloat).cpu(), acc, at::full({}, static_cast<double>(r.masked), at::kFloat)});
    return std::vector<at::Tensor>{out};
  });
  return TensorWrap::Wrap(env, outs[0]);
}

Napi::Value MimWrap::Grads(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  Napi::Object o = Napi::Object::New(env);
  for (auto& p : model(env)->named_parameters(true)) {
    if (p.value().grad().defined()) o.Set(p.key(), TensorWrap::Wrap(env, mood::Pending::ready(p.value().grad().detach())));
  }
  return o;
}

std::shared_ptr<mim::Trainer> MimWrap::trainer(const Napi::Env& env, const Napi::Value& v) {
  if (!trainer_) trainer_ = make_trainer(env, v);
  // Distributed: {gradSyncId} from lib/dist's createGradientSync, attached once.
  if (v.IsObject()) {
    Napi::Value id = v.As<Napi::Object>().Get("gradSyncId");
    if (id.IsNumber() && id.As<Napi::Number>().DoubleValue() > 0 && !trainer_->has_grad_sync()) {
      auto s = mood::GradientSyncRegistry::instance().find(static_cast<int64_t>(id.As<Napi::Number>().DoubleValue()));
      if (!s) throw error(env, "mim.step: no gradient sync with id " + std::to_string(static_cast<int64_t>(id.As<Napi::Number>().DoubleValue())) + " (released?)");
      guarded(env, [&] {
        trainer_->set_grad_sync(s);
        return 0;
      });
    }
  }
  return trainer_;
}

std::shared_ptr<mim::Trainer> MimWrap::make_trainer(const Napi::Env& env, const Napi::Value& v) {
  double b1 = 0.9, b2 = 0.999, eps = 1e-8;
  if (v.IsObject()) {
    Napi::Object o = v.As<Napi::Object>();
    Napi::Value betas = o.Get("betas");
    if (betas.IsArray()) {
      Napi::Array a = betas.As<Napi::Array>();
      if (a.Length() != 2 || !a.Get(0u).IsNumber() || !a.Get(1u).IsNumber())
        throw Napi::TypeError::New(env, "step option betas must be two numbers");
      b1 = a.Get(0u).As<Napi::Number>().DoubleValue();
      b2 = a.Get(1u).As<Napi::Number>().DoubleValue();
    }
    eps = opt_num(o, "eps", eps);
  }
  auto m = model(env);
  return guarded(env, [&] { return std::make_shared<mim::Trainer>(m, b1, b2, eps); });
}

Napi::Value MimWrap::Step(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  auto m = model(env);
  std::vector<mood::PendingPtr> inputs = {TensorWrap::PendingOf(env, info[0], "mim.step: input"),
                                          TensorWrap::PendingOf(env, info[1], "mim.step: mask")};
  if (!info[2].IsUndefined() && !info[2].IsNull()) inputs.push_back(TensorWrap::PendingOf(env, info[2], "mim.step: target"));
  if (!info[3].IsObject()) throw Napi::TypeError::New(env, "mim.step: options {lr, weightDecay, clipGrad} required");
  Napi::Object o = info[3].As<Napi::Object>();
  mim::StepOptions so_step;
  so_step.lr = opt_num(o, "lr", so_step.lr);
  so_step.weight_decay = opt_num(o, "weightDecay", so_step.weight_decay);
  so_step.clip_grad = opt_num(o, "clipGrad", 0.0);
  so_step.seed = static_cast<int64_t>(opt_num(o, "seed", -1));
  auto t = trainer(env, info[3]);
  mood::ScheduleOptions so;
  so.op = "mim.step";
  so.device = m->param_device();
  so.allow_inline = false;
  auto outs = mood::schedule(so, std::move(inputs), [t, so_step](const std::vector<at::Tensor>& in) {
    mim::StepResult r = t->step(in[0], in[1], in.size() > 2 ? in[2] : at::Tensor(), so_step);
    at::Tensor out = at::tensor({r.loss, r.accuracy, r.grad_norm, static_cast<float>(r.masked)}, at::kFloat);
    return std::vector<at::Tensor>{out};
  });
  return TensorWrap::Wrap(env, outs[0]);
}

Napi::Value MimWrap::Moments(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  auto t = trainer(env, info[0]);
  Napi::Object r = Napi::Object::New(env);
  r.Set("steps", static_cast<double>(t->steps()));
  Napi::Object mo = Napi::Object::New(env);
  for (auto& kv : t->moments()) {
    Napi::Array pair = Napi::Array::New(env, 2);
    pair.Set(0u, TensorWrap::Wrap(env, mood::Pending::ready(kv.second.first)));
    pair.Set(1u, TensorWrap::Wrap(env, mood::Pending::ready(kv.second.second)));
    mo.Set(kv.first, pair);
  }
  r.Set("moments", mo);
  return r;
}

Napi::Value MimWrap::LoadMoments(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  auto m = model(env);
  if (!info[0].IsObject()) throw Napi::TypeError::New(env, "loadMoments: moments must be an object {name: [exp_avg, exp_avg_sq]}");
  if (!info[1].IsNumber()) throw Napi::TypeError::New(env, "loadMoments: steps must be a number");
  const int64_t steps = static_cast<int64_t>(info[1].As<Napi::Number>().DoubleValue());
  auto t = trainer(env, info[2]);
  Napi::Object mo = info[0].As<Napi::Object>();
  Napi::Array keys = mo.GetPropertyNames();
  std::vector<std::string> names;
  std::vector<mood::PendingPtr> inputs;
  for (uint32_t i = 0; i < keys.Length(); ++i) {
    std::string k = keys.Get(i).As<Napi::String>().Utf8Value();
    Napi::Value pair = mo.Get(k);
    if (!pair.IsArray() || pair.As<Napi::Array>().Length() != 2)
      throw Napi::TypeError::New(env, "loadMoments: '" + k + "' must be [exp_avg, exp_avg_sq]");
    names.push_back(k);
    inputs.push_back(TensorWrap::PendingOf(env, pair.As<Napi::Array>().Get(0u), ("loadMoments: exp_avg of '" + k + "'").c_str()));
    inputs.push_back(TensorWrap::PendingOf(env, pair.As<Napi::Array>().Get(1u), ("loadMoments: exp_avg_sq of '" + k + "'").c_str()));
  }
  mood::ScheduleOptions so;
  so.op = "mim.loadMoments";
  so.device = m->param_device();
  so.allow_inline = false;
  auto done = mood::schedule(so, std::move(inputs), [t, names, steps](const std::vector<at::Tensor>& in) {
    std::map<std::string, std::pair<at::Tensor, at::Tensor>> map;
    for (size_t i = 0; i < names.size(); ++i) map[names[i]] = {in[2 * i], in[2 * i + 1]};
    t->load_moments(map, steps);
    return std::vector<at::Tensor>{at::zeros({}, at::kFloat)};
  });
  return TensorWrap::Wrap(env, done[0]);
}

Napi::Value MimWrap::Train(const Napi::CallbackInfo& info) {
  model(info.Env());
  training_ = info[0].IsBoolean() ? info[0].As<Napi::Boolean>().Value() : true;
  return info.Env().Undefined();
}

Napi::Value MimWrap::IsTraining(const Napi::CallbackInfo& info) { return Napi::Boolean::New(info.Env(), training_); }

Napi::Value MimWrap::Dispose(const Napi::CallbackInfo& info) {
  trainer_.reset();
  model_.reset();  // queued work keeps its own reference
  return info.Env().Undefined();
}

}  // namespace mood_addon
