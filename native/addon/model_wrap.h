// NativeBeit: the JS handle of one BEiT module (native/core/beit.*). Argument checking and
// conversion only; every tensor computation is scheduled on the model device's executor.
#pragma once
#include <napi.h>

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "core/beit.h"

namespace mood_addon {

// Option-value checks shared by the BEiT (NativeBeit) and MIM (NativeMim) option parsers; `what`
// names the options in messages ("BEiT option k must be ..."). option_num reads null as 0 (init_values: None).
int64_t option_int(const Napi::Env& env, const std::string& what, const std::string& k, const Napi::Value& v);
double option_num(const Napi::Env& env, const std::string& what, const std::string& k, const Napi::Value& v);
bool option_bool(const Napi::Env& env, const std::string& what, const std::string& k, const Napi::Value& v);
std::string option_str(const Napi::Env& env, const std::string& what, const std::string& k, const Napi::Value& v);
Napi::Array string_array(const Napi::Env& env, const std::vector<std::string>& v);

// Runs f, turning libtorch / standard exceptions into JS errors with their message (no backtrace).
template <typename F>
auto guarded(const Napi::Env& env, F&& f) -> decltype(f()) {
  try {
    return f();
  } catch (const Napi::Error&) {
    throw;
  } catch (const c10::Error& e) {
    throw Napi::Error::New(env, e.what_without_backtrace());
  } catch (const std::exception& e) {
    throw Napi::Error::New(env, e.what());
  }
}

// State-dict plumbing shared by NativeBeit and NativeMim: stateSpec rows [[name, shape, dtype, kind]],
// {name: NativeTensor} objects, and loadStateDict(sd, strict = true) -> {missingKeys, unexpectedKeys,
// done}: checks the keys (strict: throws naming `model_name`), then loads on `device`'s executor.
Napi::Array state_spec_array(const Napi::Env& env, const std::vector<mood::beit::StateEntry>& entries);
Napi::Object entries_object(const Napi::Env& env, const std::vector<mood::beit::StateEntry>& entries);
Napi::Value load_state_dict_call(const Napi::CallbackInfo& info, const std::string& model_name, const std::string& op, c10::Device device,
                                 const std::function<mood::beit::LoadResult(const std::vector<std::string>&)>& check_keys,
                                 std::function<void(const std::map<std::string, at::Tensor>&)> load);

class ModelWrap : public Napi::ObjectWrap<ModelWrap> {
 public:
  static Napi::Function Init(Napi::Env env);
  explicit ModelWrap(const Napi::CallbackInfo& info);  // (options object)
  // The module (null after dispose()), for wrappers that schedule work on it (NativeTrainer).
  std::shared_ptr<mood::beit::BeitImpl> shared_model() const { return model_; }

 private:
  static Napi::Value ConfigNames(const Napi::CallbackInfo& info);
  static Napi::Value Config(const Napi::CallbackInfo& info);  // (name) -> options object
  static Napi::Value FusedAttentionAvailable(const Napi::CallbackInfo& info);

  Napi::Value Options(const Napi::CallbackInfo& info);
  Napi::Value StateSpec(const Napi::CallbackInfo& info);        // [[name, shape, dtype, kind]]
  Napi::Value NamedParameters(const Napi::CallbackInfo& info);  // {name: NativeTensor}
  Napi::Value StateDict(const Napi::CallbackInfo& info);        // {name: NativeTensor} (+ buffers)
  Napi::Value LoadStateDict(const Napi::CallbackInfo& info);    // ({name: NativeTensor}, strict) -> {missingKeys, unexpectedKeys, done}
  Napi::Value Forward(const Napi::CallbackInfo& info);          // (input, {features, logits, tokens, blocks, pooledPrenorm})
  Napi::Value TrainStep(const Napi::CallbackInfo& info);        // (input, int64 targets) -> loss
  Napi::Value Train(const Napi::CallbackInfo& info);            // (mode = true)
  Napi::Value IsTraining(const Napi::CallbackInfo& info);
  Napi::Value Dispose(const Napi::CallbackInfo& info);

  const std::shared_ptr<mood::beit::BeitImpl>& model(const Napi::Env& env) const;
  Napi::Object Entries(const Napi::Env& env, bool buffers) const;

  std::shared_ptr<mood::beit::BeitImpl> model_;
  bool training_ = false;
};

}  // namespace mood_addon
