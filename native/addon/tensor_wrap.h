// The JS handle of one (possibly still pending) native tensor.
#pragma once
#include <napi.h>

#include "core/executor.h"

namespace mood_addon {

class TensorWrap : public Napi::ObjectWrap<TensorWrap> {
 public:
  static Napi::Function Init(Napi::Env env);
  static Napi::Object Wrap(Napi::Env env, mood::PendingPtr p);
  static mood::PendingPtr PendingOf(const Napi::Env& env, const Napi::Value& v, const char* what);

  explicit TensorWrap(const Napi::CallbackInfo& info);
  void Finalize(Napi::Env env) override;

 private:
  static Napi::Value FromTypedArray(const Napi::CallbackInfo& info);  // (array, shape, dtype, device?)
  static Napi::Value Op(const Napi::CallbackInfo& info);              // (name, inputs[], attrs?, device?)

  Napi::Value IsReady(const Napi::CallbackInfo& info);   // settled (ok or failed)?
  Napi::Value Meta(const Napi::CallbackInfo& info);      // waits; {dtype, shape, device} or throws the op's error
  Napi::Value Read(const Napi::CallbackInfo& info);      // Promise<TypedArray>
  Napi::Value WhenReady(const Napi::CallbackInfo& info); // Promise<void>, rejects with the op's error
  Napi::Value Dispose(const Napi::CallbackInfo& info);
  Napi::Value IsDisposed(const Napi::CallbackInfo& info);

  const mood::PendingPtr& pending(const Napi::Env& env) const;
  void release(Napi::Env env);
  mood::PendingPtr pending_;
  // Bytes reported to V8 as external memory, so the GC sees what undisposed tensors hold.
  int64_t reported_bytes_ = 0;
  static Napi::FunctionReference* constructor_;
};

}  // namespace mood_addon
