// NativeProcessGroup: the JS handle of one c10d process group (native/core/dist.*). Argument
// checking and conversion only; collectives run on the tensor device's executor (off the JS
// thread, in submission order, so every rank issues them in the same order).
#pragma once
#include <napi.h>

#include <memory>

#include "core/dist.h"

namespace mood_addon {

class DistWrap : public Napi::ObjectWrap<DistWrap> {
 public:
  static Napi::Function Init(Napi::Env env);
  explicit DistWrap(const Napi::CallbackInfo& info);  // internal: made by create()

 private:
  static Napi::Value Create(const Napi::CallbackInfo& info);     // (options) -> Promise<NativeProcessGroup>
  static Napi::Value Available(const Napi::CallbackInfo& info);  // {gloo, nccl}

  Napi::Value Rank(const Napi::CallbackInfo& info);
  Napi::Value WorldSize(const Napi::CallbackInfo& info);
  // The trailing `device` argument ('cpu', 'cuda:1') picks the executor while the input is pending.
  Napi::Value AllReduce(const Napi::CallbackInfo& info);         // (tensor, op, device?) -> tensor
  Napi::Value Broadcast(const Napi::CallbackInfo& info);         // (tensor, src, device?) -> tensor
  Napi::Value AllGather(const Napi::CallbackInfo& info);         // (tensor, device?) -> tensor[] (one per rank)
  Napi::Value AllGatherOrdered(const Napi::CallbackInfo& info);  // (tensor, total, device?) -> tensor
  Napi::Value BroadcastInPlace(const Napi::CallbackInfo& info);  // (tensors[], src, device?) -> scalar tensor when done
  Napi::Value Barrier(const Napi::CallbackInfo& info);           // () -> scalar tensor (await ready())
  Napi::Value CreateGradientSync(const Napi::CallbackInfo& info);  // ({bucketBytes, overlap}) -> id
  Napi::Value GradientSyncStats(const Napi::CallbackInfo& info);   // (id) -> stats
  Napi::Value ReleaseGradientSync(const Napi::CallbackInfo& info); // (id)
  Napi::Value Shutdown(const Napi::CallbackInfo& info);           // Promise<void> once queued work is done

  const std::shared_ptr<mood::dist::Group>& group(const Napi::Env& env) const;
  std::shared_ptr<mood::dist::Group> group_;
  static Napi::FunctionReference* constructor_;
  friend class CreateWorker;
};

}  // namespace mood_addon
