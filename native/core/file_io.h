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
// first-touch page faults (a trap, an allocation and a zeroing per 4 KiB page); a buffer of at least
// `min_bytes` gets its own anonymous mapping populated in one call, which made a 350 MB checkpoint
// read ~30 % faster here. Smaller ones, or when mapping fails, come from at::empty: malloc reuses
// memory that is already faulted in, which for buffers made over and over is far cheaper (measured:
// 0.5-16 MB fromArray 4-15x faster through malloc, 64 MB 1.2-1.5x slower).
at::Tensor empty_prefaulted(int64_t numel, at::ScalarType dtype, int64_t min_bytes);

// Checkpoint storages: read once per load, in a process that has not freed memory of that size yet
// (malloc would map fresh pages too); 256 KiB keeps the page rounding negligible.
constexpr int64_t kPrefaultStorageBytes = 256 << 10;
// Buffers that may be made repeatedly (copies from JavaScript): only above glibc's largest dynamic
// mmap threshold (32 MiB), where malloc maps fresh pages for every allocation anyway.
constexpr int64_t kPrefaultCopyBytes = int64_t(32) << 20;

}  // namespace mood
