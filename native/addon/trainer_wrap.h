// NativeTrainer: the JS handle of one fine-tuning step object (native/core/train_step.*) bound to
// a NativeBeit. Argument checking and conversion only; every step is scheduled on the model
// device's executor, after the model's queued work (FIFO), and returns pending tensors.
#pragma once
#include <napi.h>

#include <memory>
#include <string>
#include <vector>

#include "core/train_step.h"

namespace mood_addon {

class TrainerWrap : public Napi::ObjectWrap<TrainerWrap> {
 public:
  // beit_ctor: the NativeBeit class, to check that the first constructor argument is one.
  static Napi::Function Init(Napi::Env env, Napi::Function beit_ctor);
  explicit TrainerWrap(const Napi::CallbackInfo& info);  // (NativeBeit, config)

  struct Holder {
    std::shared_ptr<mood::train::TrainStep> step;
    std::string error;  // construction failure, reported by every later call
  };

 private:
  Napi::Value Ready(const Napi::CallbackInfo& info);       // NativeTensor settled when built
  Napi::Value Step(const Napi::CallbackInfo& info);        // (images, targets, soft|null, {first,last,lrs,wds,seed}) -> {loss, gradNorm}
  Napi::Value ParamNames(const Napi::CallbackInfo& info);  // optimizer order
  Napi::Value GroupSizes(const Napi::CallbackInfo& info);
  Napi::Value State(const Napi::CallbackInfo& info);       // -> {has: int64[N], steps[], expAvg[], expAvgSq[]}
  Napi::Value SetState(const Napi::CallbackInfo& info);    // (indices[], steps[], expAvg[], expAvgSq[]) -> done tensor
  Napi::Value Grads(const Napi::CallbackInfo& info);       // -> NativeTensor[] in optimizer order
  Napi::Value EmaNames(const Napi::CallbackInfo& info);
  Napi::Value EmaState(const Napi::CallbackInfo& info);    // -> NativeTensor[] in EmaNames order
  Napi::Value SetEma(const Napi::CallbackInfo& info);      // ({name: tensor}) -> done tensor
  Napi::Value Dispose(const Napi::CallbackInfo& info);

  std::shared_ptr<Holder> live(const Napi::Env& env) const;

  std::shared_ptr<Holder> holder_;
  std::vector<std::string> names_;
  std::vector<size_t> group_sizes_;
  std::vector<std::string> ema_names_;
  c10::Device device_{c10::kCPU};
  static Napi::FunctionReference* beit_ctor_;
};

}  // namespace mood_addon
