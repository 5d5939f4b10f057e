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

// An uninitialised 1-D CPU tensor of `numel` x `dtype` for a buffer about to be filled in full (file
// reads, copies from JavaScript) whose pages are already present. Filling fresh memory is bound by
// first-touch page faults (a trap, an allocation and a zeroing per 4 KiB page); a large buffer gets
// its own anonymous mapping populated in one call, which made a 350 MB checkpoint read ~30 % faster
// here. Small ones, or when mapping fails, come from at::empty.
at::Tensor empty_prefaulted(int64_t numel, at::ScalarType dtype);

}  // namespace mood
