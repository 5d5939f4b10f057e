#include "addon/model_wrap.h"

#include <cmath>
#include <functional>
#include <map>
#include <set>
#include <string>

#include "addon/tensor_wrap.h"
#include "core/executor.h"
#include "core/ops.h"
#include "core/runtime.h"

namespace mood_addon {

namespace beit = mood::beit;

int64_t option_int(const Napi::Env& env, const std::string& what, const std::string& k, const Napi::Value& v) {
  double d = v.IsNumber() ? v.As<Napi::Number>().DoubleValue() : NAN;
  if (!std::isfinite(d) || std::floor(d) != d) throw Napi::TypeError::New(env, what + " option " + k + " must be an integer");
  return static_cast<int64_t>(d);
}

double option_num(const Napi::Env& env, const std::string& what, const std::string& k, const Napi::Value& v) {
  if (v.IsNull()) return 0.0;  // init_values: None
  if (!v.IsNumber()) throw Napi::TypeError::New(env, what + " option " + k + " must be a number");
  return v.As<Napi::Number>().DoubleValue();
}

bool option_bool(const Napi::Env& env, const std::string& what, const std::string& k, const Napi::Value& v) {
  if (!v.IsBoolean()) throw Napi::TypeError::New(env, what + " option " + k + " must be a boolean");
  return v.As<Napi::Boolean>().Value();
}

std::string option_str(const Napi::Env& env, const std::string& what, const std::string& k, const Napi::Value& v) {
  if (!v.IsString()) throw Napi::TypeError::New(env, what + " option " + k + " must be a string");
  return v.As<Napi::String>().Utf8Value();
}

Napi::Array string_array(const Napi::Env& env, const std::vector<std::string>& v) {
  Napi::Array a = Napi::Array::New(env, v.size());
  for (uint32_t i = 0; i < v.size(); ++i) a.Set(i, v[i]);
  return a;
}

Napi::Array state_spec_array(const Napi::Env& env, const std::vector<mood::beit::StateEntry>& entries) {
  Napi::Array a = Napi::Array::New(env, entries.size());
  for (uint32_t i = 0; i < entries.size(); ++i) {
    const auto& e = entries[i];
    Napi::Array row = Napi::Array::New(env, 4);
    row.Set(0u, e.name);
    Napi::Array shape = Napi::Array::New(env, e.tensor.dim());
    for (int64_t d = 0; d < e.tensor.dim(); ++d) shape.Set(static_cast<uint32_t>(d), static_cast<double>(e.tensor.size(d)));
    row.Set(1u, shape);
    row.Set(2u, mood::dtype_name(e.tensor.scalar_type()));
    row.Set(3u, e.is_buffer ? "buffer" : "parameter");
    a.Set(i, row);
  }
  return a;
}

Napi::Object entries_object(const Napi::Env& env, const std::vector<mood::beit::StateEntry>& entries) {
  Napi::Object o = Napi::Object::New(env);
  for (auto& e : entries) o.Set(e.name, TensorWrap::Wrap(env, mood::Pending::ready(e.tensor.detach())));
  return o;
}

Napi::Value load_state_dict_call(const Napi::CallbackInfo& info, const std::string& model_name, const std::string& op, c10::Device device,
                                 const std::function<mood::beit::LoadResult(const std::vector<std::string>&)>& check_keys,
                                 std::function<void(const std::map<std::string, at::Tensor>&)> load) {
  Napi::Env env = info.Env();
  if (!info[0].IsObject()) throw Napi::TypeError::New(env, "loadStateDict: state dict must be an object of tensors");
  bool strict = info[1].IsBoolean() ? info[1].As<Napi::Boolean>().Value() : true;
  TensorWrap::Named sd = TensorWrap::NamedPendingsOf(env, info[0].As<Napi::Object>(), "loadStateDict");
  const std::vector<std::string>& names = sd.names;
  std::vector<mood::PendingPtr>& inputs = sd.pendings;
  beit::LoadResult keys_result = check_keys(names);
  if (strict && (!keys_result.missing_keys.empty() || !keys_result.unexpected_keys.empty())) {
    std::string msg = "Error(s) in loading state_dict for " + model_name + " (strict):";
    auto join = [](const std::vector<std::string>& v) {
      std::string s;
      for (auto& x : v) s += (s.empty() ? "" : ", ") + x;
      return s;
    };
    if (!keys_result.missing_keys.empty()) msg += "\n\tMissing key(s): " + join(keys_result.missing_keys);
    if (!keys_result.unexpected_keys.empty()) msg += "\n\tUnexpected key(s): " + join(keys_result.unexpected_keys);
    throw Napi::Error::New(env, msg);
  }
  mood::ScheduleOptions so;
  so.op = op;
  so.device = device.is_meta() ? c10::Device(c10::kCPU) : device;
  so.allow_inline = false;  // FIFO with the forwards already queued on this model's device
  auto done = mood::schedule(so, std::move(inputs), [load = std::move(load), names](const std::vector<at::Tensor>& in) {
    std::map<std::string, at::Tensor> map;
    for (size_t i = 0; i < names.size(); ++i) map[names[i]] = in[i];
    load(map);
    return std::vector<at::Tensor>{at::zeros({}, at::kFloat)};
  });
  Napi::Object r = Napi::Object::New(env);
  r.Set("missingKeys", string_array(env, keys_result.missing_keys));
  r.Set("unexpectedKeys", string_array(env, keys_result.unexpected_keys));
  r.Set("done", TensorWrap::Wrap(env, done[0]));
  return r;
}

namespace {

const std::set<std::string>& known_option_keys() {
  static const std::set<std::string> k = {
      "img_size",       "patch_size",      "in_chans",        "num_classes",     "embed_dim",
      "depth",          "num_heads",       "mlp_ratio",       "qkv_bias",        "init_values",
      "use_abs_pos_emb", "use_rel_pos_bias", "use_shared_rel_pos_bias", "use_mean_pooling", "drop_rate",
      "attn_drop_rate", "drop_path_rate",  "layer_norm_eps",  "init_scale",      "device",
      "dtype",          "seed",            "attention",       "autocast"};
  return k;
}

beit::BeitOptions parse_options(const Napi::Env& env, const Napi::Value& v) {
  beit::BeitOptions o;
  if (v.IsUndefined()) return o;
  if (!v.IsObject()) throw Napi::TypeError::New(env, "BEiT options must be an object");
  Napi::Object obj = v.As<Napi::Object>();
  Napi::Array keys = obj.GetPropertyNames();
  for (uint32_t i = 0; i < keys.Length(); ++i) {
    std::string k = keys.Get(i).As<Napi::String>().Utf8Value();
    Napi::Value val = obj.Get(k);
    if (val.IsUndefined()) continue;
    if (!known_option_keys().count(k)) throw Napi::TypeError::New(env, "unknown BEiT option '" + k + "'");
    if (k == "img_size") o.img_size = option_int(env, "BEiT", k, val);
    else if (k == "patch_size") o.patch_size = option_int(env, "BEiT", k, val);
    else if (k == "in_chans") o.in_chans = option_int(env, "BEiT", k, val);
    else if (k == "num_classes") o.num_classes = option_int(env, "BEiT", k, val);
    else if (k == "embed_dim") o.embed_dim = option_int(env, "BEiT", k, val);
    else if (k == "depth") o.depth = option_int(env, "BEiT", k, val);
    else if (k == "num_heads") o.num_heads = option_int(env, "BEiT", k, val);
    else if (k == "seed") o.seed = option_int(env, "BEiT", k, val);
    else if (k == "mlp_ratio") o.mlp_ratio = option_num(env, "BEiT", k, val);
    else if (k == "init_values") o.init_values = option_num(env, "BEiT", k, val);
    else if (k == "drop_rate") o.drop_rate = option_num(env, "BEiT", k, val);
    else if (k == "attn_drop_rate") o.attn_drop_rate = option_num(env, "BEiT", k, val);
    else if (k == "drop_path_rate") o.drop_path_rate = option_num(env, "BEiT", k, val);
    else if (k == "layer_norm_eps") o.layer_norm_eps = option_num(env, "BEiT", k, val);
    else if (k == "init_scale") o.init_scale = option_num(env, "BEiT", k, val);
    else if (k == "qkv_bias") o.qkv_bias = option_bool(env, "BEiT", k, val);
    else if (k == "use_abs_pos_emb") o.use_abs_pos_emb = option_bool(env, "BEiT", k, val);
    else if (k == "use_rel_pos_bias") o.use_rel_pos_bias = option_bool(env, "BEiT", k, val);
    else if (k == "use_shared_rel_pos_bias") o.use_shared_rel_pos_bias = option_bool(env, "BEiT", k, val);
    else if (k == "use_mean_pooling") o.use_mean_pooling = option_bool(env, "BEiT", k, val);
    else if (k == "device") {
      std::string d = option_str(env, "BEiT", k, val);
      o.device = d == "meta" ? c10::Device(c10::kMeta) : mood::parse_device(d);
    } else if (k == "dtype") {
      std::string d = option_str(env, "BEiT", k, val);
      if (d != "float32" && d != "float64") throw Napi::TypeError::New(env, "BEiT option dtype must be 'float32' or 'float64'");
      o.dtype = mood::parse_dtype(d);
    } else if (k == "attention") {
      o.attention = beit::parse_attention_mode(option_str(env, "BEiT", k, val));
    } else if (k == "autocast") {
      if (val.IsNull() || (val.IsBoolean() && !val.As<Napi::Boolean>().Value())) {
        o.autocast.reset();
      } else {
        std::string d = option_str(env, "BEiT", k, val);
        if (d != "float16" && d != "bfloat16") throw Napi::TypeError::New(env, "BEiT option autocast must be 'float16', 'bfloat16' or null");
        o.autocast = mood::parse_dtype(d);
      }
    }
  }
  return o;
}

Napi::Object options_object(const Napi::Env& env, const beit::BeitOptions& o) {
  Napi::Object r = Napi::Object::New(env);
  r.Set("img_size", static_cast<double>(o.img_size));
  r.Set("patch_size", static_cast<double>(o.patch_size));
  r.Set("in_chans", static_cast<double>(o.in_chans));
  r.Set("num_classes", static_cast<double>(o.num_classes));
  r.Set("embed_dim", static_cast<double>(o.embed_dim));
  r.Set("depth", static_cast<double>(o.depth));
  r.Set("num_heads", static_cast<double>(o.num_heads));
  r.Set("mlp_ratio", o.mlp_ratio);
  r.Set("qkv_bias", o.qkv_bias);
  r.Set("init_values", o.init_values);
  r.Set("use_abs_pos_emb", o.use_abs_pos_emb);
  r.Set("use_rel_pos_bias", o.use_rel_pos_bias);
  r.Set("use_shared_rel_pos_bias", o.use_shared_rel_pos_bias);
  r.Set("use_mean_pooling", o.use_mean_pooling);
  r.Set("drop_rate", o.drop_rate);
  r.Set("attn_drop_rate", o.attn_drop_rate);
  r.Set("drop_path_rate", o.drop_path_rate);
  r.Set("layer_norm_eps", o.layer_norm_eps);
  r.Set("init_scale", o.init_scale);
  r.Set("device", o.device.is_meta() ? std::string("meta") : mood::device_name(o.device));
  r.Set("dtype", mood::dtype_name(o.dtype));
  r.Set("attention", beit::attention_mode_name(o.attention));
  if (o.autocast) r.Set("autocast", mood::dtype_name(*o.autocast));
  else r.Set("autocast", env.Null());
  return r;
}

bool flag(const Napi::Object& o, const char* k) {
  Napi::Value v = o.Get(k);
  return v.IsBoolean() && v.As<Napi::Boolean>().Value();
}

}  // namespace

Napi::Function ModelWrap::Init(Napi::Env env) {
  return DefineClass(env, "NativeBeit",
                     {
                         StaticMethod("configNames", &ModelWrap::ConfigNames),
                         StaticMethod("config", &ModelWrap::Config),
                         StaticMethod("fusedAttentionAvailable", &ModelWrap::FusedAttentionAvailable),
                         InstanceMethod("options", &ModelWrap::Options),
                         InstanceMethod("stateSpec", &ModelWrap::StateSpec),
                         InstanceMethod("namedParameters", &ModelWrap::NamedParameters),
                         InstanceMethod("stateDict", &ModelWrap::StateDict),
                         InstanceMethod("loadStateDict", &ModelWrap::LoadStateDict),
                         InstanceMethod("forward", &ModelWrap::Forward),
                         InstanceMethod("trainStep", &ModelWrap::TrainStep),
                         InstanceMethod("train", &ModelWrap::Train),
                         InstanceMethod("isTraining", &ModelWrap::IsTraining),
                         InstanceMethod("dispose", &ModelWrap::Dispose),
                     });
}

ModelWrap::ModelWrap(const Napi::CallbackInfo& info) : Napi::ObjectWrap<ModelWrap>(info) {
  Napi::Env env = info.Env();
  beit::BeitOptions o;
  try {
    o = parse_options(env, info[0]);
  } catch (const Napi::Error&) {
    throw;
  } catch (const std::exception& e) {
    throw Napi::Error::New(env, e.what());
  }
  try {
    model_ = std::make_shared<beit::BeitImpl>(o);
  } catch (const c10::Error& e) {
    throw Napi::Error::New(env, e.what_without_backtrace());
  } catch (const std::exception& e) {
    throw Napi::Error::New(env, e.what());
  }
  model_->eval();
  training_ = false;
}

const std::shared_ptr<beit::BeitImpl>& ModelWrap::model(const Napi::Env& env) const {
  if (!model_) throw Napi::Error::New(env, "BEiT model used after dispose()");
  return model_;
}

Napi::Value ModelWrap::ConfigNames(const Napi::CallbackInfo& info) { return string_array(info.Env(), beit::config_names()); }

Napi::Value ModelWrap::Config(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (!info[0].IsString()) throw Napi::TypeError::New(env, "config name must be a string");
  try {
    return options_object(env, beit::config(info[0].As<Napi::String>().Utf8Value()));
  } catch (const std::exception& e) {
    throw Napi::Error::New(env, e.what());
  }
}

Napi::Value ModelWrap::FusedAttentionAvailable(const Napi::CallbackInfo& info) {
  return Napi::Boolean::New(info.Env(), beit::fused_attention_available());
}

Napi::Value ModelWrap::Options(const Napi::CallbackInfo& info) { return options_object(info.Env(), model(info.Env())->options()); }

Napi::Value ModelWrap::StateSpec(const Napi::CallbackInfo& info) { return state_spec_array(info.Env(), model(info.Env())->state_dict_entries(true)); }

Napi::Object ModelWrap::Entries(const Napi::Env& env, bool buffers) const { return entries_object(env, model(env)->state_dict_entries(buffers)); }

Napi::Value ModelWrap::NamedParameters(const Napi::CallbackInfo& info) { return Entries(info.Env(), false); }
Napi::Value ModelWrap::StateDict(const Napi::CallbackInfo& info) { return Entries(info.Env(), true); }

Napi::Value ModelWrap::LoadStateDict(const Napi::CallbackInfo& info) {
  auto m = model(info.Env());
  return load_state_dict_call(
      info, "BEiT", "beit.loadStateDict", m->param_device(), [&m](const std::vector<std::string>& names) { return m->check_keys(names); },
      [m](const std::map<std::string, at::Tensor>& sd) { m->load_state_dict(sd, /*strict=*/false); });
}

Napi::Value ModelWrap::Forward(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  auto m = model(env);
  mood::PendingPtr input = TensorWrap::PendingOf(env, info[0], "forward: input");
  beit::ForwardRequest req;
  if (info[1].IsObject()) {
    Napi::Object o = info[1].As<Napi::Object>();
    req.features = flag(o, "features");
    req.logits = flag(o, "logits");
    req.tokens = flag(o, "tokens");
    req.blocks = flag(o, "blocks");
    req.pooled_prenorm = flag(o, "pooledPrenorm");
  } else {
    req.logits = true;
  }
  const size_t depth = static_cast<size_t>(m->options().depth);
  std::vector<std::string> order;
  if (req.features) order.push_back("features");
  if (req.logits) order.push_back("logits");
  if (req.tokens) order.push_back("tokens");
  if (req.pooled_prenorm) order.push_back("pooledPrenorm");
  if (order.empty() && !req.blocks) throw Napi::Error::New(env, "forward: ask for at least one of features, logits, tokens, blocks, pooledPrenorm");
  mood::ScheduleOptions so;
  so.op = "beit.forward";
  so.device = m->param_device();
  so.allow_inline = false;
  so.num_outputs = order.size() + (req.blocks ? depth : 0);
  const bool training = training_;
  auto outs = mood::schedule(so, {input}, [m, req, training](const std::vector<at::Tensor>& in) {
    m->train(training);
    beit::ForwardResult r = m->run(in[0], req);
    std::vector<at::Tensor> v;
    if (req.features) v.push_back(r.features);
    if (req.logits) v.push_back(r.logits);
    if (req.tokens) v.push_back(r.tokens);
    if (req.pooled_prenorm) v.push_back(r.pooled_prenorm);
    for (auto& b : r.blocks) v.push_back(b);
    return v;
  });
  Napi::Object r = Napi::Object::New(env);
  for (size_t i = 0; i < order.size(); ++i) r.Set(order[i], TensorWrap::Wrap(env, outs[i]));
  if (req.blocks) {
    Napi::Array a = Napi::Array::New(env, depth);
    for (size_t i = 0; i < depth; ++i) a.Set(static_cast<uint32_t>(i), TensorWrap::Wrap(env, outs[order.size() + i]));
    r.Set("blocks", a);
  }
  return r;
}

Napi::Value ModelWrap::TrainStep(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  auto m = model(env);
  mood::PendingPtr input = TensorWrap::PendingOf(env, info[0], "trainStep: input");
  mood::PendingPtr target = TensorWrap::PendingOf(env, info[1], "trainStep: target");
  mood::ScheduleOptions so;
  so.op = "beit.trainStep";
  so.device = m->param_device();
  so.allow_inline = false;
  const bool training = training_;
  auto outs = mood::schedule(so, {input, target}, [m, training](const std::vector<at::Tensor>& in) {
    at::Tensor loss = beit::cross_entropy_backward(*m, in[0], in[1].to(in[0].device()));
    m->train(training);
    return std::vector<at::Tensor>{loss};
  });
  return TensorWrap::Wrap(env, outs[0]);
}

Napi::Value ModelWrap::Train(const Napi::CallbackInfo& info) {
  model(info.Env());
  training_ = info[0].IsBoolean() ? info[0].As<Napi::Boolean>().Value() : true;
  return info.Env().Undefined();
}

Napi::Value ModelWrap::IsTraining(const Napi::CallbackInfo& info) { return Napi::Boolean::New(info.Env(), training_); }

Napi::Value ModelWrap::Dispose(const Napi::CallbackInfo& info) {
  model_.reset();  // queued work keeps its own reference
  return info.Env().Undefined();
}

}  // namespace mood_addon
