// JS <-> core conversions shared by the addon's wrappers.
#pragma once
#include <napi.h>

#include "core/ops.h"

namespace mood_addon {

// A plain JS object of op attributes -> OpArgs (numbers keep integer-ness; arrays of numbers).
mood::OpArgs to_op_args(const Napi::Env& env, const Napi::Value& v);

// A contiguous CPU tensor -> a new TypedArray holding a copy of its bytes
// (float16/bfloat16 as Uint16Array bits, int64 as BigInt64Array, bool as Uint8Array).
Napi::Value tensor_to_typed_array(const Napi::Env& env, const at::Tensor& t);

// Copies a TypedArray into a new CPU tensor of `dtype` and `shape`; throws a JS TypeError/RangeError
// when the array kind does not fit the dtype or the length does not fit the shape.
at::Tensor typed_array_to_tensor(const Napi::Env& env, const Napi::TypedArray& arr, const std::vector<int64_t>& shape,
                                 at::ScalarType dtype);

std::vector<int64_t> to_shape(const Napi::Env& env, const Napi::Value& v, const char* what);

}  // namespace mood_addon
