// Image ops: Pillow-compatible resampling and (later) JPEG/PNG decode, registered into the op table.
// Images inside native code are planar uint8 (C x H x W), the layout of CIFAR pickles and of the
// batch tensor, so every pass runs over contiguous rows.
#pragma once
#include "core/ops.h"

#include <cstddef>
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

// Pillow's resampling filters (Resample.c): kernel and support (bilinear 1, hamming 1, bicubic 2 with
// Keys a = -0.5, lanczos 3: sinc(x) * sinc(x / 3)).
enum class Filter { kBicubic, kBilinear, kHamming, kLanczos };
// "bicubic", "bilinear", "hamming", "lanczos" (torchvision / timm interpolation names); throws otherwise.
Filter parse_filter(const std::string& name);

// Pillow's Image.resize(..., BICUBIC) on 8-bit channels, bit for bit: separable convolution whose
// support grows with the downscale factor (Keys cubic a = -0.5), 22-bit fixed-point coefficients,
// horizontal pass rounded to uint8 before the vertical pass. Each plane is resized independently.
void pil_resize_bicubic(const Planar& in, int out_h, int out_w, Planar& out);
// The same with any of Pillow's filters (Image.resize(..., LANCZOS) etc.), bit for bit.
void pil_resize(const Planar& in, int out_h, int out_w, Planar& out, Filter filter);

// Pixels of a rectangle of a (virtual) image: rows [y0, y0 + h), columns [x0, x0 + w); sample
// (ch, y, x) is at p[ch * ch_stride + (y - y0) * row_stride + (x - x0) * px_stride]. Covers planar
// images and interleaved decoder output (e.g. RGBX rows) without a copy.
struct PixelView {
  const uint8_t* p = nullptr;
  int c = 0, y0 = 0, x0 = 0, h = 0, w = 0;
  ptrdiff_t ch_stride = 0, row_stride = 0, px_stride = 0;
  static PixelView of(const Planar& im) {
    return {im.px.data(), im.c, 0, 0, im.h, im.w, static_cast<ptrdiff_t>(im.h) * im.w, im.w, 1};
  }
};

// One axis of a Pillow resize, for the kept outputs only (every output's taps are normalised
// on their own, so a subset is computed exactly as Pillow computes it).
struct ResizeAxis {
  int ksize = 0;
  std::vector<int> start, count;  // per kept output: first source index (box-relative), tap count
  std::vector<int32_t> k;         // ksize fixed-point taps per kept output
  int lo = 0, hi = 0;             // source indices [lo, hi) read by the kept outputs
};

// pil_resize (bicubic unless told) of the box (top, left, bh, bw) to oh x ow, followed by a crop to the window
// rows [ky, ky + kh) x columns [kx, kx + kw) — computed without the discarded outputs and reading
// only the source rectangle src_*() (a center crop after a resize costs only what it keeps).
struct WindowResize {
  ResizeAxis ax, ay;
  int top = 0, left = 0;
  WindowResize(int top, int left, int bh, int bw, int oh, int ow, int ky, int kx, int kh, int kw, Filter filter = Filter::kBicubic);
  int src_y0() const { return top + ay.lo; }
  int src_y1() const { return top + ay.hi; }
  int src_x0() const { return left + ax.lo; }
  int src_x1() const { return left + ax.hi; }
  int out_h() const { return static_cast<int>(ay.start.size()); }
  int out_w() const { return static_cast<int>(ax.start.size()); }
  // Writes src.c planes of out_h() x out_w() to `out`; `src` must cover the source rectangle.
  void run(const PixelView& src, uint8_t* out) const;
};


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
// `min_short` > 0 (opt-in fast path, not PIL-exact): JPEGs are decoded at the smallest DCT scale of
// 1/8, 1/4, 1/2 whose shorter side is still >= min_short (full size when none is).
DecodeStatus decode_image(const uint8_t* data, size_t size, Planar& out, std::string& message, int min_short = 0);

// Partial JPEG decoding for transforms that keep only part of the image (center crop, random
// resized crop): reads the header, asks `pick(height, width, rect)` for the rows [rect[0], rect[1])
// and columns [rect[2], rect[3]) it needs (false: take the full path), and decodes just those (libjpeg-turbo's skip/crop, plus one
// iMCU of context on each side so the upsampled pixels equal a full decode's). `view` then points
// into `buf` (RGBX or grey rows). Returns false, with nothing to use, when the file must take the full
// decode_image path instead: not a baseline/progressive RGB or grey JPEG, no EOI at the end of the
// data (possibly truncated: only the full path can tell), any decoder error, or a build without
// libjpeg-turbo.
struct RegionPicker {
  virtual bool pick(int height, int width, int rect[4]) = 0;
  virtual ~RegionPicker() = default;
};
// `min_short` > 0: the opt-in reduced-DCT scale of decode_image, chosen first; `pick` then plans on
// the scaled image.
bool decode_jpeg_region(const uint8_t* data, size_t size, RegionPicker& picker, std::vector<uint8_t>& buf, PixelView& view, int min_short = 0);

}  // namespace img
}  // namespace mood
