// JS handles of (possibly still pending) native tensors.
//
// A handle is an instance of a small JS class (lib/native.ts) holding a numeric id; the native side
// keeps id -> Pending in a table. Creating an ObjectWrap per op result cost ~1.5 us (a JS constructor
// call from C++ plus a weak reference with a native finalizer), more than a small op itself, so the hot
// path (`op`) returns bare ids and JS builds the handle; lifetime is JS's FinalizationRegistry plus
// explicit release().
#pragma once
#include <napi.h>

#include <string>
#include <vector>

#include "core/executor.h"

namespace mood_addon {

class TensorWrap {
 public:
  // The NativeTensor namespace object: static functions over handle ids.
  static Napi::Object Init(Napi::Env env);
  // A new JS handle object for p (for other wrappers that return tensors).
  static Napi::Object Wrap(Napi::Env env, mood::PendingPtr p);
  // The tensor behind a JS handle object or a bare id; throws a TypeError naming `what` otherwise.
  static mood::PendingPtr PendingOf(const Napi::Env& env, const Napi::Value& v, const char* what);
  // The tensors of a {name: tensor} object (state dicts, EMA state), in property order; errors name
  // `what` and the key.
  struct Named {
    std::vector<std::string> names;
    std::vector<mood::PendingPtr> pendings;
  };
  static Named NamedPendingsOf(const Napi::Env& env, const Napi::Object& o, const std::string& what);

 private:
  static Napi::Value SetHandleClass(const Napi::CallbackInfo& info);  // (class with constructor(id))
  static Napi::Value FromTypedArray(const Napi::CallbackInfo& info);  // (array, shape, dtype, device?) -> id
  static Napi::Value Op(const Napi::CallbackInfo& info);              // (name, inputs[], attrs?, device?) -> id | id[]
  static Napi::Value IsReady(const Napi::CallbackInfo& info);         // (id) settled (ok or failed)?
  static Napi::Value Meta(const Napi::CallbackInfo& info);            // (id) waits; {dtype, shape, device} or throws
  static Napi::Value Read(const Napi::CallbackInfo& info);            // (id) Promise<TypedArray>
  static Napi::Value WhenReady(const Napi::CallbackInfo& info);       // (id) Promise<void>, rejects with the op's error
  static Napi::Value Release(const Napi::CallbackInfo& info);         // (id) frees the slot (idempotent)
};

}  // namespace mood_addon
