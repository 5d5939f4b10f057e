// Reading tensor bytes straight from files (checkpoint storages are stored uncompressed).
#pragma once
#include <ATen/ATen.h>

#include <cstdint>
#include <string>

namespace mood {

// Reads `numel` elements of `dtype` at `byte_offset` of `path` into a new 1-D CPU tensor, with
// positional reads (no whole-file buffer). Throws std::runtime_error naming the file and range
// when the file is shorter than offset + numel * element size.
at::Tensor read_storage(const std::string& path, int64_t byte_offset, int64_t numel, at::ScalarType dtype);

}  // namespace mood
