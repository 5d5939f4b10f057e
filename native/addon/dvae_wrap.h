// NativeDalleEncoder: the JS handle of one DALL-E dVAE encoder (native/core/dvae.*). Argument checking
// and conversion only; the convolutions run on the encoder device's executor.
#pragma once
#include <napi.h>

#include <memory>

#include "core/dvae.h"

namespace mood_addon {

class DvaeWrap : public Napi::ObjectWrap<DvaeWrap> {
 public:
  static Napi::Function Init(Napi::Env env);
  explicit DvaeWrap(const Napi::CallbackInfo& info);  // (options object)

 private:
  Napi::Value Options(const Napi::CallbackInfo& info);
  Napi::Value StateSpec(const Napi::CallbackInfo& info);      // [[name, shape, dtype, 'parameter']]
  Napi::Value StateDict(const Napi::CallbackInfo& info);      // {name: NativeTensor}
  Napi::Value LoadStateDict(const Napi::CallbackInfo& info);  // ({name: NativeTensor}, strict) -> {missingKeys, unexpectedKeys, done}
  // (x float32 [N, C, H, W], {mapPixels, logits, ids}) -> [logits float32 | null, ids int64 | null]
  Napi::Value Forward(const Napi::CallbackInfo& info);
  Napi::Value OutputSide(const Napi::CallbackInfo& info);     // (input side) -> token grid side
  Napi::Value Dispose(const Napi::CallbackInfo& info);

  const std::shared_ptr<mood::dvae::EncoderImpl>& model(const Napi::Env& env) const;
  std::shared_ptr<mood::dvae::EncoderImpl> model_;
};

}  // namespace mood_addon
