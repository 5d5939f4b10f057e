// Named tensor operations: the vocabulary the TypeScript Tensor API speaks.
// Each op takes tensors plus named attributes and returns one or more tensors.
#pragma once
#include <ATen/ATen.h>

#include <cstdint>
#include <functional>
#include <map>
#include <string>
#include <variant>
#include <vector>

namespace mood {

using ArgValue = std::variant<bool, int64_t, double, std::string, std::vector<int64_t>, std::vector<double>>;

// Attributes of one op call ("dim", "keepdim", "shape", ...). Getters throw std::invalid_argument
// naming the attribute and what was expected.
class OpArgs {
 public:
  void set(std::string name, ArgValue v) { values_[std::move(name)] = std::move(v); }
  bool has(const std::string& name) const { return find(name) != nullptr; }
  // Holds the attributes to the names op `op` takes (its OpInfo::attrs, which must outlive this):
  // throws std::invalid_argument naming the op, each name it does not take and the names it does.
  // Afterwards reading any other name is a std::logic_error: an op that reads an attribute it does
  // not declare would otherwise always see its default, since no caller can pass it.
  void restrict_to(const std::string& op, const std::vector<std::string>& accepted);
  bool restricted_to(const std::vector<std::string>& accepted) const { return accepted_ == &accepted; }
  // Whether `name` may be read: restricted to names that include it, or not restricted.
  bool takes(const std::string& name) const;
  bool get_bool(const std::string& name, bool dflt) const;
  int64_t get_int(const std::string& name) const;
  int64_t get_int(const std::string& name, int64_t dflt) const;
  double get_double(const std::string& name) const;
  double get_double(const std::string& name, double dflt) const;
  std::string get_string(const std::string& name, const std::string& dflt) const;
  std::vector<int64_t> get_ints(const std::string& name) const;
  std::vector<int64_t> get_ints(const std::string& name, std::vector<int64_t> dflt) const;
  // A scalar that keeps its integer-ness (so int tensors + 2 stay int).
  at::Scalar get_scalar(const std::string& name) const;

 private:
  const ArgValue* find(const std::string& name) const;
  std::map<std::string, ArgValue> values_;
  std::string op_;
  const std::vector<std::string>* accepted_ = nullptr;
};

enum class OpCost {
  kLight,  // elementwise / view / reduction: inline on the JS thread when inputs are small
  kHeavy,  // matmul, linalg, sort...: always queued unless inputs are tiny
};

struct OpInfo {
  int min_inputs;
  int max_inputs;   // -1: variadic
  int num_outputs;  // fixed output count
  OpCost cost;
  // The attribute names the op takes; run_op (and the addon's op call) reject any other.
  std::vector<std::string> attrs = {};
};

using OpFn = std::function<std::vector<at::Tensor>(const std::vector<at::Tensor>&, const OpArgs&)>;
// Adds ops from other translation units: each module provides a `register_<module>_ops(OpRegistry)`
// that ops.cpp calls while building the table (explicit calls: a static library drops unreferenced
// objects, so self-registering statics would silently vanish).
using OpRegistry = std::function<void(const std::string& name, OpInfo info, OpFn fn)>;

// Throws std::invalid_argument for an unknown op.
const OpInfo& op_info(const std::string& name);
// Checks the inputs' count and the attribute names (OpArgs::restrict_to) before running the op.
std::vector<at::Tensor> run_op(const std::string& name, const std::vector<at::Tensor>& inputs, const OpArgs& args);
std::vector<std::string> op_names();

at::ScalarType parse_dtype(const std::string& name);  // "float32", "int64", ...; throws on unknown
std::string dtype_name(at::ScalarType t);              // PyTorch's python names

}  // namespace mood
