#include "core/image_ops.h"

#include <cmath>
#include <cstring>
#include <stdexcept>
#include <string>

namespace mood {
namespace img {
namespace {

// Pillow's bicubic kernel (Keys, a = -0.5), support 2.
double bicubic(double x) {
  constexpr double a = -0.5;
  if (x < 0) x = -x;
  if (x < 1) return ((a + 2) * x - (a + 3)) * x * x + 1;
  if (x < 2) return (((x - 5) * x + 8) * x - 4) * a;
  return 0;
}

constexpr int kPrecisionBits = 32 - 8 - 2;

// Per output pixel: first source index, tap count, and fixed-point taps (ksize per output).
struct Coeffs {
  int ksize = 0;
  std::vector<int> start, count;
  std::vector<int32_t> k;
};

// Same arithmetic as Pillow's precompute_coeffs + normalize_coeffs_8bpc (box = whole axis).
Coeffs precompute(int in_size, int out_size) {
  Coeffs c;
  double scale = static_cast<double>(in_size) / out_size;
  double filterscale = scale < 1.0 ? 1.0 : scale;
  double support = 2.0 * filterscale;
  c.ksize = static_cast<int>(std::ceil(support)) * 2 + 1;
  c.start.resize(out_size);
  c.count.resize(out_size);
  c.k.assign(static_cast<size_t>(out_size) * c.ksize, 0);
  std::vector<double> w(c.ksize);
  for (int xx = 0; xx < out_size; ++xx) {
    double center = (xx + 0.5) * scale;
    double ss = 1.0 / filterscale;
    int xmin = static_cast<int>(center - support + 0.5);
    if (xmin < 0) xmin = 0;
    int xmax = static_cast<int>(center + support + 0.5);
    if (xmax > in_size) xmax = in_size;
    xmax -= xmin;
    double ww = 0;
    for (int x = 0; x < xmax; ++x) {
      w[x] = bicubic((x + xmin - center + 0.5) * ss);
      ww += w[x];
    }
    int32_t* k = &c.k[static_cast<size_t>(xx) * c.ksize];
    for (int x = 0; x < xmax; ++x) {
      double v = ww != 0.0 ? w[x] / ww : w[x];
      k[x] = v < 0 ? static_cast<int32_t>(-0.5 + v * (1 << kPrecisionBits)) : static_cast<int32_t>(0.5 + v * (1 << kPrecisionBits));
    }
    c.start[xx] = xmin;
    c.count[xx] = xmax;
  }
  return c;
}

inline uint8_t clip8(int32_t v) {
  v >>= kPrecisionBits;
  return static_cast<uint8_t>(v < 0 ? 0 : v > 255 ? 255 : v);
}

}  // namespace

void pil_resize_bicubic(const Planar& in, int out_h, int out_w, Planar& out) {
  if (out_h <= 0 || out_w <= 0) throw std::invalid_argument("resize: output size must be positive");
  if (in.h <= 0 || in.w <= 0) throw std::invalid_argument("resize: empty input image");
  out.c = in.c;
  out.h = out_h;
  out.w = out_w;
  out.px.resize(static_cast<size_t>(in.c) * out_h * out_w);
  const bool need_h = out_w != in.w, need_v = out_h != in.h;
  if (!need_h && !need_v) {
    std::memcpy(out.px.data(), in.px.data(), out.px.size());
    return;
  }
  Coeffs ch, cv;
  if (need_h) ch = precompute(in.w, out_w);
  if (need_v) cv = precompute(in.h, out_h);
  // Horizontal pass only over the source rows the vertical pass reads (as Pillow does).
  int y_first = 0, y_last = in.h;
  if (need_v) {
    y_first = cv.start[0];
    y_last = cv.start[out_h - 1] + cv.count[out_h - 1];
  }
  const int th = need_h ? y_last - y_first : in.h;
  std::vector<uint8_t> tmp;
  for (int p = 0; p < in.c; ++p) {
    const uint8_t* src = in.plane(p);
    const uint8_t* mid = src;
    int mid_w = in.w, row0 = 0;
    if (need_h) {
      tmp.resize(static_cast<size_t>(th) * out_w);
      for (int y = 0; y < th; ++y) {
        const uint8_t* row = src + static_cast<size_t>(y + y_first) * in.w;
        uint8_t* o = tmp.data() + static_cast<size_t>(y) * out_w;
        for (int xx = 0; xx < out_w; ++xx) {
          const int32_t* k = &ch.k[static_cast<size_t>(xx) * ch.ksize];
          const uint8_t* s = row + ch.start[xx];
          int32_t acc = 1 << (kPrecisionBits - 1);
          for (int x = 0, n = ch.count[xx]; x < n; ++x) acc += s[x] * k[x];
          o[xx] = clip8(acc);
        }
      }
      mid = tmp.data();
      mid_w = out_w;
      row0 = y_first;
    }
    uint8_t* dst = out.plane(p);
    if (!need_v) {
      std::memcpy(dst, mid, static_cast<size_t>(out_h) * out_w);
      continue;
    }
    for (int yy = 0; yy < out_h; ++yy) {
      const int32_t* k = &cv.k[static_cast<size_t>(yy) * cv.ksize];
      const int y0 = cv.start[yy] - row0, n = cv.count[yy];
      uint8_t* o = dst + static_cast<size_t>(yy) * out_w;
      for (int xx = 0; xx < mid_w; ++xx) {
        int32_t acc = 1 << (kPrecisionBits - 1);
        const uint8_t* s = mid + static_cast<size_t>(y0) * mid_w + xx;
        for (int y = 0; y < n; ++y) acc += s[static_cast<size_t>(y) * mid_w] * k[y];
        o[xx] = clip8(acc);
      }
    }
  }
}

void crop(const Planar& in, int top, int left, int h, int w, Planar& out) {
  if (top < 0 || left < 0 || h <= 0 || w <= 0 || top + h > in.h || left + w > in.w)
    throw std::invalid_argument("crop box (" + std::to_string(top) + ", " + std::to_string(left) + ", " + std::to_string(h) + ", " +
                                std::to_string(w) + ") outside a " + std::to_string(in.h) + "x" + std::to_string(in.w) + " image");
  out.c = in.c;
  out.h = h;
  out.w = w;
  out.px.resize(static_cast<size_t>(in.c) * h * w);
  for (int p = 0; p < in.c; ++p)
    for (int y = 0; y < h; ++y)
      std::memcpy(out.plane(p) + static_cast<size_t>(y) * w, in.plane(p) + static_cast<size_t>(y + top) * in.w + left, w);
}

}  // namespace img

void register_image_ops(const OpRegistry& add) {
  // image_resize: uint8 [C,H,W] -> uint8 [C,oh,ow], Pillow bicubic (tests and previews).
  add("image_resize", {1, 1, 1, OpCost::kHeavy}, [](const std::vector<at::Tensor>& in, const OpArgs& a) -> std::vector<at::Tensor> {
    at::Tensor x = in[0].contiguous();
    if (x.scalar_type() != at::kByte || x.dim() != 3) throw std::invalid_argument("image_resize: expected a uint8 [C, H, W] tensor");
    auto size = a.get_ints("size");
    if (size.size() != 2) throw std::invalid_argument("image_resize: 'size' must be [height, width]");
    img::Planar p;
    p.c = static_cast<int>(x.size(0));
    p.h = static_cast<int>(x.size(1));
    p.w = static_cast<int>(x.size(2));
    p.px.assign(x.data_ptr<uint8_t>(), x.data_ptr<uint8_t>() + x.numel());
    img::Planar o;
    img::pil_resize_bicubic(p, static_cast<int>(size[0]), static_cast<int>(size[1]), o);
    at::Tensor out = at::empty({o.c, o.h, o.w}, at::kByte);
    std::memcpy(out.data_ptr<uint8_t>(), o.px.data(), o.px.size());
    return {out};
  });
}

}  // namespace mood
