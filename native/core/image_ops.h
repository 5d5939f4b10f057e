// Image ops: Pillow-compatible resampling and (later) JPEG/PNG decode, registered into the op table.
// Images inside native code are planar uint8 (C x H x W), the layout of CIFAR pickles and of the
// batch tensor, so every pass runs over contiguous rows.
#pragma once
#include "core/ops.h"

#include <cstdint>
#include <string>
#include <vector>

namespace mood {
void register_image_ops(const OpRegistry& add);

namespace img {

// A planar uint8 image.
struct Planar {
  int c = 0, h = 0, w = 0;
  std::vector<uint8_t> px;  // c*h*w
  uint8_t* plane(int ch) { return px.data() + static_cast<size_t>(ch) * h * w; }
  const uint8_t* plane(int ch) const { return px.data() + static_cast<size_t>(ch) * h * w; }
};

// Pillow's Image.resize(..., BICUBIC) on 8-bit channels, bit for bit: separable convolution whose
// support grows with the downscale factor (Keys cubic a = -0.5), 22-bit fixed-point coefficients,
// horizontal pass rounded to uint8 before the vertical pass. Each plane is resized independently.
void pil_resize_bicubic(const Planar& in, int out_h, int out_w, Planar& out);

// Copies rows [top, top+h) x cols [left, left+w) (inside the image).
void crop(const Planar& in, int top, int left, int h, int w, Planar& out);

// Outcome of decoding one file.
enum class DecodeStatus : int32_t {
  kOk = 0,
  kTruncated = 1,    // decoded as far as the data went (rest black), like PIL's LOAD_TRUNCATED_IMAGES
  kCorrupt = 2,      // not decodable
  kUnreadable = 3,   // missing / unreadable file
  kUnsupported = 4,  // not JPEG or PNG
};

// Decodes JPEG (libjpeg-turbo) or PNG (libpng) bytes the way PIL's open(...).convert('RGB') sees them:
// grey stays 1 plane (replicated later), palette -> RGB, alpha dropped, CMYK -> RGB with PIL's formula.
// On failure returns the status and sets `message`.
// `min_short` > 0 (opt-in fast path, not PIL-exact): JPEGs are decoded at the smallest DCT scale n/8
// whose shorter side is still >= min_short.
DecodeStatus decode_image(const uint8_t* data, size_t size, Planar& out, std::string& message, int min_short = 0);

}  // namespace img
}  // namespace mood
