#include "addon/convert.h"

#include "core/file_io.h"

#include <cmath>
#include <cstring>

namespace mood_addon {

namespace {
bool is_integral(double d) { return std::isfinite(d) && std::floor(d) == d && std::fabs(d) < 9007199254740992.0; }
}

mood::OpArgs to_op_args(const Napi::Env& env, const Napi::Value& v) {
  mood::OpArgs args;
  if (v.IsUndefined() || v.IsNull()) return args;
  if (!v.IsObject()) throw Napi::TypeError::New(env, "op attributes must be an object");
  Napi::Object o = v.As<Napi::Object>();
  Napi::Array keys = o.GetPropertyNames();
  for (uint32_t i = 0; i < keys.Length(); ++i) {
    std::string k = keys.Get(i).As<Napi::String>().Utf8Value();
    Napi::Value val = o.Get(k);
    if (val.IsUndefined()) continue;
    if (val.IsBoolean()) {
      args.set(k, val.As<Napi::Boolean>().Value());
    } else if (val.IsNumber()) {
      double d = val.As<Napi::Number>().DoubleValue();
      if (is_integral(d)) args.set(k, static_cast<int64_t>(d));
      else args.set(k, d);
    } else if (val.IsBigInt()) {
      bool lossless = false;
      args.set(k, static_cast<int64_t>(val.As<Napi::BigInt>().Int64Value(&lossless)));
    } else if (val.IsString()) {
      args.set(k, val.As<Napi::String>().Utf8Value());
    } else if (val.IsArray()) {
      Napi::Array a = val.As<Napi::Array>();
      std::vector<double> ds;
      bool all_int = true;
      for (uint32_t j = 0; j < a.Length(); ++j) {
        Napi::Value e = a.Get(j);
        if (!e.IsNumber()) throw Napi::TypeError::New(env, "op attribute '" + k + "' must be an array of numbers");
        double d = e.As<Napi::Number>().DoubleValue();
        all_int = all_int && is_integral(d);
        ds.push_back(d);
      }
      if (all_int) {
        std::vector<int64_t> is(ds.begin(), ds.end());
        args.set(k, is);
      } else {
        args.set(k, ds);
      }
    } else {
      throw Napi::TypeError::New(env, "op attribute '" + k + "' has an unsupported type");
    }
  }
  return args;
}

std::vector<int64_t> to_shape(const Napi::Env& env, const Napi::Value& v, const char* what) {
  if (!v.IsArray()) throw Napi::TypeError::New(env, std::string(what) + " must be an array of non-negative integers");
  Napi::Array a = v.As<Napi::Array>();
  std::vector<int64_t> shape;
  for (uint32_t i = 0; i < a.Length(); ++i) {
    Napi::Value e = a.Get(i);
    double d = e.IsNumber() ? e.As<Napi::Number>().DoubleValue() : -1;
    if (!is_integral(d) || d < 0)
      throw Napi::TypeError::New(env, std::string(what) + "[" + std::to_string(i) + "] must be a non-negative integer");
    shape.push_back(static_cast<int64_t>(d));
  }
  return shape;
}

Napi::Value tensor_to_typed_array(const Napi::Env& env, const at::Tensor& t) {
  size_t n = static_cast<size_t>(t.numel());
  size_t bytes = n * t.element_size();
  Napi::ArrayBuffer buf = Napi::ArrayBuffer::New(env, bytes);
  if (bytes) std::memcpy(buf.Data(), t.data_ptr(), bytes);
  switch (t.scalar_type()) {
    case at::kFloat: return Napi::Float32Array::New(env, n, buf, 0);
    case at::kDouble: return Napi::Float64Array::New(env, n, buf, 0);
    case at::kInt: return Napi::Int32Array::New(env, n, buf, 0);
    case at::kLong: return Napi::BigInt64Array::New(env, n, buf, 0);
    case at::kShort: return Napi::Int16Array::New(env, n, buf, 0);
    case at::kChar: return Napi::Int8Array::New(env, n, buf, 0);
    case at::kByte:
    case at::kBool: return Napi::Uint8Array::New(env, n, buf, 0);
    case at::kHalf:
    case at::kBFloat16: return Napi::Uint16Array::New(env, n, buf, 0);
    default: throw Napi::TypeError::New(env, "cannot read a tensor of dtype " + mood::dtype_name(t.scalar_type()));
  }
}

at::Tensor typed_array_to_tensor(const Napi::Env& env, const Napi::TypedArray& arr, const std::vector<int64_t>& shape,
                                 at::ScalarType dtype) {
  napi_typedarray_type kind = arr.TypedArrayType();
  napi_typedarray_type want;
  const char* want_name;
  switch (dtype) {
    case at::kFloat: want = napi_float32_array; want_name = "Float32Array"; break;
    case at::kDouble: want = napi_float64_array; want_name = "Float64Array"; break;
    case at::kInt: want = napi_int32_array; want_name = "Int32Array"; break;
    case at::kLong: want = napi_bigint64_array; want_name = "BigInt64Array"; break;
    case at::kShort: want = napi_int16_array; want_name = "Int16Array"; break;
    case at::kChar: want = napi_int8_array; want_name = "Int8Array"; break;
    case at::kByte:
    case at::kBool: want = napi_uint8_array; want_name = "Uint8Array"; break;
    case at::kHalf:
    case at::kBFloat16: want = napi_uint16_array; want_name = "Uint16Array (raw bits)"; break;
    default: throw Napi::TypeError::New(env, "unsupported dtype " + mood::dtype_name(dtype));
  }
  // Uint8ClampedArray is as good as Uint8Array for bytes.
  if (kind != want && !(want == napi_uint8_array && kind == napi_uint8_clamped_array))
    throw Napi::TypeError::New(env, std::string("dtype ") + mood::dtype_name(dtype) + " needs a " + want_name);
  int64_t numel = 1;
  for (int64_t s : shape) numel *= s;
  if (static_cast<int64_t>(arr.ElementLength()) != numel) {
    std::string s = "[";
    for (size_t i = 0; i < shape.size(); ++i) s += (i ? ", " : "") + std::to_string(shape[i]);
    s += "]";
    throw Napi::RangeError::New(env, "shape " + s + " needs " + std::to_string(numel) + " elements, the array has " +
                                         std::to_string(arr.ElementLength()));
  }
  // Filled in full below: a very large buffer comes with its pages already present (empty_prefaulted).
  at::Tensor t = mood::empty_prefaulted(numel, dtype, mood::kPrefaultCopyBytes).view(shape);
  size_t bytes = static_cast<size_t>(numel) * t.element_size();
  if (bytes) {
    const uint8_t* src = static_cast<const uint8_t*>(arr.ArrayBuffer().Data()) + arr.ByteOffset();
    if (dtype == at::kBool) {
      // Any non-zero byte is true (a raw copy would create invalid bool values).
      bool* dst = t.data_ptr<bool>();
      for (int64_t i = 0; i < numel; ++i) dst[i] = src[i] != 0;
    } else {
      std::memcpy(t.data_ptr(), src, bytes);
    }
  }
  return t;
}

}  // namespace mood_addon
