// NativeMim: the JS handle of one masked-image-modeling model (native/core/mim.*) and its AdamW
// trainer. Argument checking and conversion only; tensor work is scheduled on the model's executor.
#pragma once
#include <napi.h>

#include <memory>

#include "core/mim.h"

namespace mood_addon {

class MimWrap : public Napi::ObjectWrap<MimWrap> {
 public:
  static Napi::Function Init(Napi::Env env);
  explicit MimWrap(const Napi::CallbackInfo& info);  // (options object)

 private:
  static Napi::Value ConfigNames(const Napi::CallbackInfo& info);
  static Napi::Value Config(const Napi::CallbackInfo& info);  // (name) -> options object

  Napi::Value Options(const Napi::CallbackInfo& info);
  Napi::Value StateSpec(const Napi::CallbackInfo& info);      // [[name, shape, dtype, kind]]
  Napi::Value StateDict(const Napi::CallbackInfo& info);      // {name: NativeTensor} (+ buffers)
  Napi::Value LoadStateDict(const Napi::CallbackInfo& info);  // ({name: NativeTensor}, strict) -> {missingKeys, unexpectedKeys, done}
  Napi::Value Forward(const Napi::CallbackInfo& info);        // (input, mask, allTokens) -> NativeTensor
  Napi::Value LossBackward(const Napi::CallbackInfo& info);   // (input, mask, target?) -> float32[3] (loss, accuracy, masked); grads kept
  Napi::Value Grads(const Napi::CallbackInfo& info);          // {name: NativeTensor} of the last backward
  Napi::Value Step(const Napi::CallbackInfo& info);           // (input, mask, target?, {lr, weightDecay, clipGrad, betas, eps}) -> float32[4]
  Napi::Value Moments(const Napi::CallbackInfo& info);        // {steps, moments: {name: [exp_avg, exp_avg_sq]}}
  Napi::Value LoadMoments(const Napi::CallbackInfo& info);    // ({name: [exp_avg, exp_avg_sq]}, steps, {betas, eps}) -> done
  Napi::Value Train(const Napi::CallbackInfo& info);
  Napi::Value IsTraining(const Napi::CallbackInfo& info);
  Napi::Value Dispose(const Napi::CallbackInfo& info);

  const std::shared_ptr<mood::mim::MimImpl>& model(const Napi::Env& env) const;
  std::shared_ptr<mood::mim::Trainer> trainer(const Napi::Env& env, const Napi::Value& opts);
  std::shared_ptr<mood::mim::Trainer> make_trainer(const Napi::Env& env, const Napi::Value& opts);

  std::shared_ptr<mood::mim::MimImpl> model_;
  std::shared_ptr<mood::mim::Trainer> trainer_;
  bool training_ = false;
};

}  // namespace mood_addon
