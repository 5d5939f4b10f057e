#include "core/state_dict.h"

#include <set>
#include <stdexcept>

#include "core/executor.h"
#include "core/ops.h"

namespace mood {

namespace {

bool ends_with(const std::string& s, const std::string& suffix) {
  return s.size() >= suffix.size() && s.compare(s.size() - suffix.size(), suffix.size(), suffix) == 0;
}

bool computed(const std::string& name, const StateRules& rules) {
  for (auto& s : rules.computed_suffixes)
    if (ends_with(name, s)) return true;
  return false;
}

std::string join(const std::vector<std::string>& v) {
  std::string s;
  for (auto& x : v) s += (s.empty() ? "" : ", ") + x;
  return s;
}

void collect(const torch::nn::Module& m, const std::string& prefix, bool buffers, std::vector<StateEntry>& out) {
  for (const auto& p : m.named_parameters(/*recurse=*/false)) out.push_back({prefix + p.key(), p.value(), false});
  if (buffers)
    for (const auto& b : m.named_buffers(/*recurse=*/false)) out.push_back({prefix + b.key(), b.value(), true});
  for (const auto& c : m.named_children()) collect(*c.value(), prefix + c.key() + ".", buffers, out);
}

}  // namespace

std::vector<StateEntry> collect_state(const torch::nn::Module& m, bool include_buffers) {
  std::vector<StateEntry> out;
  collect(m, "", include_buffers, out);
  return out;
}

LoadResult check_state_keys(const std::vector<StateEntry>& entries, const std::vector<std::string>& names, const StateRules& rules) {
  LoadResult r;
  std::set<std::string> given(names.begin(), names.end()), known;
  for (auto& e : entries) {
    known.insert(e.name);
    if (!given.count(e.name) && !computed(e.name, rules)) r.missing_keys.push_back(e.name);
  }
  for (auto& n : names)
    if (!known.count(n)) r.unexpected_keys.push_back(n);
  return r;
}

LoadResult load_state(const std::vector<StateEntry>& entries, const std::map<std::string, at::Tensor>& sd, bool strict, const StateRules& rules) {
  std::vector<std::string> names;
  for (auto& kv : sd) names.push_back(kv.first);
  LoadResult r = check_state_keys(entries, names, rules);
  std::vector<std::string> problems;
  bool meta = false;
  for (auto& e : entries) {
    meta = meta || e.tensor.is_meta();
    auto it = sd.find(e.name);
    if (it == sd.end()) continue;
    const at::Tensor& src = it->second;
    if (!src.defined()) {
      problems.push_back(e.name + ": no tensor");
    } else if (src.sizes() != e.tensor.sizes()) {
      problems.push_back("size mismatch for " + e.name + ": copying a param with shape " + shape_str(src.sizes()) +
                         " from checkpoint, the shape in current model is " + shape_str(e.tensor.sizes()) +
                         (rules.size_hint ? rules.size_hint(e.name) : std::string()));
    } else if (at::isFloatingType(e.tensor.scalar_type()) != at::isFloatingType(src.scalar_type())) {
      problems.push_back("dtype mismatch for " + e.name + ": checkpoint has " + dtype_name(src.scalar_type()) + ", the model has " +
                         dtype_name(e.tensor.scalar_type()));
    }
  }
  if (strict && !r.missing_keys.empty()) problems.push_back("Missing key(s): " + join(r.missing_keys));
  if (strict && !r.unexpected_keys.empty()) problems.push_back("Unexpected key(s): " + join(r.unexpected_keys));
  if (!problems.empty()) {
    std::string msg = "Error(s) in loading state_dict for " + rules.model_name + ":";
    for (auto& p : problems) msg += "\n\t" + p;
    throw std::invalid_argument(msg);
  }
  if (meta) return r;
  at::NoGradGuard ng;
  for (auto& e : entries) {
    auto it = sd.find(e.name);
    if (it != sd.end()) e.tensor.copy_(it->second);
  }
  return r;
}

}  // namespace mood
