#include "addon/dvae_wrap.h"

#include <map>
#include <string>

#include "addon/model_wrap.h"
#include "addon/tensor_wrap.h"
#include "core/executor.h"
#include "core/runtime.h"

namespace mood_addon {

namespace dvae = mood::dvae;

namespace {

// The reference's attribute names (dall_e.encoder.Encoder) plus the pooling, float16 flags and ours.
dvae::EncoderOptions parse_options(const Napi::Env& env, const Napi::Value& v) {
  dvae::EncoderOptions o;
  if (v.IsUndefined()) return o;
  if (!v.IsObject()) throw Napi::TypeError::New(env, "dVAE encoder options must be an object");
  Napi::Object obj = v.As<Napi::Object>();
  Napi::Array keys = obj.GetPropertyNames();
  const std::map<std::string, int64_t*> ints = {{"input_channels", &o.input_channels}, {"n_hid", &o.n_hid},
                                                {"n_blk_per_group", &o.n_blk_per_group}, {"group_count", &o.group_count},
                                                {"vocab_size", &o.vocab_size},         {"pool_kernel", &o.pool_kernel},
                                                {"pool_stride", &o.pool_stride},       {"pool_padding", &o.pool_padding},
                                                {"pool_dilation", &o.pool_dilation},   {"seed", &o.seed}};
  for (uint32_t i = 0; i < keys.Length(); ++i) {
    std::string k = keys.Get(i).As<Napi::String>().Utf8Value();
    Napi::Value val = obj.Get(k);
    if (val.IsUndefined()) continue;
    if (ints.count(k)) {
      *ints.at(k) = option_int(env, "dVAE encoder", k, val);
    } else if (k == "pool_ceil_mode") {
      o.pool_ceil_mode = option_bool(env, "dVAE encoder", k, val);
    } else if (k == "float16_convs") {
      if (!val.IsArray()) throw Napi::TypeError::New(env, "dVAE encoder option float16_convs must be an array of conv names");
      Napi::Array a = val.As<Napi::Array>();
      std::vector<std::string> names;
      for (uint32_t j = 0; j < a.Length(); ++j) {
        if (!a.Get(j).IsString()) throw Napi::TypeError::New(env, "dVAE encoder option float16_convs must hold strings");
        names.push_back(a.Get(j).As<Napi::String>().Utf8Value());
      }
      o.float16_convs = names;
    } else if (k == "device") {
      o.device = mood::parse_device(option_str(env, "dVAE encoder", k, val));
    } else if (k == "precision") {
      o.precision = dvae::parse_precision(option_str(env, "dVAE encoder", k, val));
    } else {
      throw Napi::TypeError::New(env, "unknown dVAE encoder option '" + k + "'");
    }
  }
  return o;
}

Napi::Object options_object(const Napi::Env& env, const dvae::EncoderOptions& o) {
  Napi::Object r = Napi::Object::New(env);
  r.Set("input_channels", static_cast<double>(o.input_channels));
  r.Set("n_hid", static_cast<double>(o.n_hid));
  r.Set("n_blk_per_group", static_cast<double>(o.n_blk_per_group));
  r.Set("group_count", static_cast<double>(o.group_count));
  r.Set("vocab_size", static_cast<double>(o.vocab_size));
  r.Set("n_layers", static_cast<double>(o.n_layers()));
  r.Set("post_gain", o.post_gain());
  r.Set("pool_kernel", static_cast<double>(o.pool_kernel));
  r.Set("pool_stride", static_cast<double>(o.pool_stride));
  r.Set("pool_padding", static_cast<double>(o.pool_padding));
  r.Set("pool_dilation", static_cast<double>(o.pool_dilation));
  r.Set("pool_ceil_mode", o.pool_ceil_mode);
  r.Set("device", mood::device_name(o.device));
  r.Set("precision", dvae::precision_name(o.precision));
  return r;
}

bool flag(const Napi::Object& o, const char* k, bool dflt) {
  Napi::Value v = o.Get(k);
  if (v.IsUndefined()) return dflt;
  if (!v.IsBoolean()) throw Napi::TypeError::New(o.Env(), std::string("dVAE forward option ") + k + " must be a boolean");
  return v.As<Napi::Boolean>().Value();
}

}  // namespace

Napi::Function DvaeWrap::Init(Napi::Env env) {
  return DefineClass(env, "NativeDalleEncoder",
                     {
                         InstanceMethod("options", &DvaeWrap::Options),
                         InstanceMethod("stateSpec", &DvaeWrap::StateSpec),
                         InstanceMethod("stateDict", &DvaeWrap::StateDict),
                         InstanceMethod("loadStateDict", &DvaeWrap::LoadStateDict),
                         InstanceMethod("forward", &DvaeWrap::Forward),
                         InstanceMethod("outputSide", &DvaeWrap::OutputSide),
                         InstanceMethod("dispose", &DvaeWrap::Dispose),
                     });
}

DvaeWrap::DvaeWrap(const Napi::CallbackInfo& info) : Napi::ObjectWrap<DvaeWrap>(info) {
  Napi::Env env = info.Env();
  dvae::EncoderOptions o = guarded(env, [&] { return parse_options(env, info[0]); });
  model_ = guarded(env, [&] { return std::make_shared<dvae::EncoderImpl>(o); });
  model_->eval();
}

const std::shared_ptr<dvae::EncoderImpl>& DvaeWrap::model(const Napi::Env& env) const {
  if (!model_) throw Napi::Error::New(env, "dVAE encoder used after dispose()");
  return model_;
}

Napi::Value DvaeWrap::Options(const Napi::CallbackInfo& info) { return options_object(info.Env(), model(info.Env())->options()); }

Napi::Value DvaeWrap::StateSpec(const Napi::CallbackInfo& info) { return state_spec_array(info.Env(), model(info.Env())->state_dict_entries()); }

Napi::Value DvaeWrap::StateDict(const Napi::CallbackInfo& info) { return entries_object(info.Env(), model(info.Env())->state_dict_entries()); }

Napi::Value DvaeWrap::LoadStateDict(const Napi::CallbackInfo& info) {
  auto m = model(info.Env());
  return load_state_dict_call(
      info, "dall_e.encoder.Encoder", "dvae.loadStateDict", m->device(),
      [&m](const std::vector<std::string>& names) { return m->check_keys(names); },
      [m](const std::map<std::string, at::Tensor>& sd) { m->load_state_dict(sd, /*strict=*/false); });
}

Napi::Value DvaeWrap::Forward(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  auto m = model(env);
  mood::PendingPtr input = TensorWrap::PendingOf(env, info[0], "dvae.forward: input");
  Napi::Object o = info[1].IsObject() ? info[1].As<Napi::Object>() : Napi::Object::New(env);
  const bool map = flag(o, "mapPixels", false), logits = flag(o, "logits", true), ids = flag(o, "ids", false);
  if (!logits && !ids) throw Napi::TypeError::New(env, "dvae.forward: ask for logits, ids or both");
  mood::ScheduleOptions so;
  so.op = "dvae.forward";
  so.device = m->device();
  so.allow_inline = false;
  so.num_outputs = static_cast<size_t>(logits) + static_cast<size_t>(ids);
  auto outs = mood::schedule(so, {input}, [m, map, logits, ids](const std::vector<at::Tensor>& in) {
    at::NoGradGuard ng;
    m->check_input(in[0]);
    at::Tensor z = m->forward(map ? dvae::map_pixels(in[0]) : in[0]);
    std::vector<at::Tensor> r;
    if (logits) r.push_back(z);
    if (ids) r.push_back(z.argmax(1));
    return r;
  });
  Napi::Array a = Napi::Array::New(env, 2);
  size_t k = 0;
  a.Set(0u, logits ? Napi::Value(TensorWrap::Wrap(env, outs[k++])) : env.Null());
  a.Set(1u, ids ? Napi::Value(TensorWrap::Wrap(env, outs[k++])) : env.Null());
  return a;
}

Napi::Value DvaeWrap::OutputSide(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (!info[0].IsNumber()) throw Napi::TypeError::New(env, "outputSide: expected an input side");
  return Napi::Number::New(env, static_cast<double>(model(env)->output_side(info[0].As<Napi::Number>().Int64Value())));
}

Napi::Value DvaeWrap::Dispose(const Napi::CallbackInfo& info) {
  model_.reset();  // queued work keeps its own reference
  return info.Env().Undefined();
}

}  // namespace mood_addon
