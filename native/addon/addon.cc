// Module entry: runtime facts, thread settings, and the NativeTensor class.
#include <napi.h>

#include "addon/dist_wrap.h"
#include "addon/dvae_wrap.h"
#include "addon/mim_wrap.h"
#include "addon/model_wrap.h"
#include "addon/tensor_wrap.h"
#include "addon/trainer_wrap.h"
#include "core/ops.h"
#include "core/runtime.h"

namespace mood_addon {
namespace {

Napi::Value BuildInfo(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  mood::BuildInfo b = mood::build_info();
  Napi::Object o = Napi::Object::New(env);
  o.Set("torchVersion", b.torch_version);
  o.Set("cudaCompiled", b.cuda_compiled);
  o.Set("cudaAvailable", b.cuda_available);
  o.Set("cudaDeviceCount", b.cuda_device_count);
  o.Set("gloo", b.gloo);
  o.Set("nccl", b.nccl);
  o.Set("cxxAbi", b.cxx_abi);
  o.Set("parallelInfo", b.parallel_info);
  o.Set("blas", b.blas);
  o.Set("napiVersion", NAPI_VERSION);
  return o;
}

Napi::Value ThreadsObject(const Napi::Env& env, const mood::ThreadSettings& s) {
  Napi::Object o = Napi::Object::New(env);
  o.Set("intraOp", s.intra_op);
  o.Set("blas", s.blas);
  o.Set("source", s.source);
  return o;
}

Napi::Value ConfigureThreads(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (!info[0].IsNumber()) throw Napi::TypeError::New(env, "threads must be a number");
  std::string source = info[1].IsString() ? info[1].As<Napi::String>().Utf8Value() : "explicit";
  return ThreadsObject(env, mood::configure_threads(info[0].As<Napi::Number>().Int32Value(), source));
}

Napi::Value Threads(const Napi::CallbackInfo& info) { return ThreadsObject(info.Env(), mood::current_threads()); }

Napi::Value OpNames(const Napi::CallbackInfo& info) {
  auto names = mood::op_names();
  Napi::Array a = Napi::Array::New(info.Env(), names.size());
  for (uint32_t i = 0; i < names.size(); ++i) a.Set(i, names[i]);
  return a;
}

}  // namespace

Napi::Object Init(Napi::Env env, Napi::Object exports) {
  exports.Set("buildInfo", Napi::Function::New(env, BuildInfo));
  exports.Set("configureThreads", Napi::Function::New(env, ConfigureThreads));
  exports.Set("threads", Napi::Function::New(env, Threads));
  exports.Set("opNames", Napi::Function::New(env, OpNames));
  exports.Set("NativeTensor", TensorWrap::Init(env));
  exports.Set("NativeBeit", ModelWrap::Init(env));
  exports.Set("NativeMim", MimWrap::Init(env));
  exports.Set("NativeDalleEncoder", DvaeWrap::Init(env));
  exports.Set("NativeProcessGroup", DistWrap::Init(env));
  exports.Set("NativeTrainer", TrainerWrap::Init(env, exports.Get("NativeBeit").As<Napi::Function>()));
  return exports;
}

}  // namespace mood_addon

static Napi::Object InitModule(Napi::Env env, Napi::Object exports) { return mood_addon::Init(env, exports); }

NODE_API_MODULE(mood_native, InitModule)
