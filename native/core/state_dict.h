#pragma once
// The state-dict contract of torch.nn.Module, shared by the native modules (BEiT, the MIM model, the
// DALL-E encoder): tensors under dotted names, the missing / unexpected key check, and a loader that
// reports every problem of a checkpoint at once, in torch's wording, before it copies anything.

#include <ATen/ATen.h>
#include <torch/nn/module.h>

#include <functional>
#include <map>
#include <string>
#include <vector>

namespace mood {

struct LoadResult {
  std::vector<std::string> missing_keys;
  std::vector<std::string> unexpected_keys;
};

struct StateEntry {
  std::string name;
  at::Tensor tensor;
  bool is_buffer;
};

// How one module type loads: its name in messages (torch's class name), the entries it may lack in a
// checkpoint because it computes them itself (by name suffix), and a hint for a size mismatch.
struct StateRules {
  std::string model_name;
  std::vector<std::string> computed_suffixes;
  std::function<std::string(const std::string& name)> size_hint;
};

// m's parameters (and buffers) and its children's under dotted names, in registration order.
std::vector<StateEntry> collect_state(const torch::nn::Module& m, bool include_buffers);

// The missing / unexpected part of load_state_dict from the names alone (no tensors needed).
LoadResult check_state_keys(const std::vector<StateEntry>& entries, const std::vector<std::string>& names, const StateRules& rules);

// torch's load_state_dict: a size, dtype-kind or missing-tensor problem throws std::invalid_argument
// listing all of them; strict also throws on missing / unexpected keys. Copies (no grad) unless the
// entries live on the meta device (a model built for its shapes only).
LoadResult load_state(const std::vector<StateEntry>& entries, const std::map<std::string, at::Tensor>& sd, bool strict, const StateRules& rules);

}  // namespace mood
