#include "core/data_ops.h"

#include "core/parallel.h"

#include <ATen/ATen.h>
#include <ATen/CPUGeneratorImpl.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <optional>
#include <stdexcept>
#include <string>
#include <thread>

namespace mood {
namespace data {
namespace {

// Counter-based normal noise for pixel-mode random erasing: seeded per sample from the plan.
struct SplitMix {
  uint64_t s;
  uint64_t next() {
    uint64_t z = (s += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
  }
  double uniform() { return ((next() >> 11) + 0.5) * (1.0 / 9007199254740992.0); }  // (0, 1)
};

// Python's round(): half to even (the default FE_TONEAREST mode of nearbyint).
inline int py_round(double x) { return static_cast<int>(std::nearbyint(x)); }

}  // namespace

void rrc_box(int img_h, int img_w, const double* plan, int box[4]) {
  const double area = static_cast<double>(img_h) * img_w;
  const double s0 = plan[kRrcScaleMin], s1 = plan[kRrcScaleMax];
  const double lr0 = std::log(plan[kRrcRatioMin]), lr1 = std::log(plan[kRrcRatioMax]);
  for (int attempt = 0; attempt < 10; ++attempt) {
    const double* u = plan + kRrcUniforms + 4 * attempt;
    double target = (s0 + (s1 - s0) * u[0]) * area;
    double aspect = std::exp(lr0 + (lr1 - lr0) * u[1]);
    int w = py_round(std::sqrt(target * aspect));
    int h = py_round(std::sqrt(target / aspect));
    if (w <= img_w && h <= img_h && w > 0 && h > 0) {
      // random.randint(0, n) with a uniform draw: floor(u * (n + 1)).
      int top = std::min(img_h - h, static_cast<int>(std::floor(u[2] * (img_h - h + 1))));
      int left = std::min(img_w - w, static_cast<int>(std::floor(u[3] * (img_w - w + 1))));
      box[0] = top, box[1] = left, box[2] = h, box[3] = w;
      return;
    }
  }
  // Fallback: central crop at the nearest allowed ratio.
  double in_ratio = static_cast<double>(img_w) / img_h;
  double rmin = plan[kRrcRatioMin], rmax = plan[kRrcRatioMax];
  int w = img_w, h = img_h;
  if (in_ratio < rmin) {
    h = py_round(w / rmin);
  } else if (in_ratio > rmax) {
    w = py_round(h * rmax);
  }
  box[0] = (img_h - h) / 2, box[1] = (img_w - w) / 2, box[2] = h, box[3] = w;
}


// ---- RandAugment (PIL semantics) --------------------------------------------

namespace {

void lut_apply(img::Planar& im, const uint8_t lut[3][256]) {
  const size_t n = static_cast<size_t>(im.h) * im.w;
  for (int c = 0; c < 3; ++c) {
    uint8_t* p = im.plane(c);
    for (size_t i = 0; i < n; ++i) p[i] = lut[c][p[i]];
  }
}

// Image.blend(degenerate, im, alpha): float arithmetic, truncation (clamped outside [0, 1]).
void blend(const img::Planar& deg, img::Planar& im, double factor) {
  const float alpha = static_cast<float>(factor);
  if (alpha == 1.0f) return;
  const size_t n = im.px.size();
  uint8_t* o = im.px.data();
  const uint8_t* d = deg.px.data();
  if (alpha == 0.0f) {
    std::memcpy(o, d, n);
    return;
  }
  const bool inside = alpha >= 0 && alpha <= 1.0f;
  for (size_t i = 0; i < n; ++i) {
    float t = static_cast<float>(static_cast<int>(d[i])) + alpha * static_cast<float>(static_cast<int>(o[i]) - static_cast<int>(d[i]));
    if (inside) o[i] = static_cast<uint8_t>(t);
    else o[i] = t <= 0.0f ? 0 : t >= 255.0f ? 255 : static_cast<uint8_t>(t);
  }
}

// PIL convert('L'): ITU-R 601-2 luma in 16-bit fixed point.
inline uint8_t luma(uint8_t r, uint8_t g, uint8_t b) { return static_cast<uint8_t>((r * 19595 + g * 38470 + b * 7471 + 0x8000) >> 16); }

inline int pil_floor(double v) { return v < 0.0 ? static_cast<int>(std::floor(v)) : static_cast<int>(v); }

// The three channels of a pixel as doubles, (R, G) and (B, unused) in two SSE2 registers (GCC/Clang
// vector extension): the channels go through the interpolation together. Each lane runs exactly the
// scalar operations in the same order, so results are unchanged (no FMA on the baseline target).
typedef double Double2 __attribute__((vector_size(16)));
struct Rgbd {
  Double2 rg, bx;
};
inline Rgbd operator+(Rgbd x, Rgbd y) { return {x.rg + y.rg, x.bx + y.bx}; }
inline Rgbd operator-(Rgbd x, Rgbd y) { return {x.rg - y.rg, x.bx - y.bx}; }
inline Rgbd operator-(Rgbd x) { return {-x.rg, -x.bx}; }
inline Rgbd operator*(double d, Rgbd x) { return {d * x.rg, d * x.bx}; }

// Image.transform(size, AFFINE, a, resample) with the fill colour: Geometry.c's generic transform,
// whose filters (bilinear_filter32RGB, bicubic_filter32RGB) are `Filter` here: it gets the source as
// doubles, the integer and fractional input position, and returns the pixel as doubles.
template <class Filter>
void affine_filtered(img::Planar& im, const double a[6], const uint8_t fill[3], Filter filter) {
  const int W = im.w, H = im.h;
  const size_t n = static_cast<size_t>(W) * H;
  // Converted once per pixel instead of once per tap (up to 16 taps per output pixel).
  thread_local std::vector<Rgbd> src;
  src.resize(n);
  for (size_t i = 0; i < n; ++i)
    src[i] = Rgbd{Double2{static_cast<double>(im.plane(0)[i]), static_cast<double>(im.plane(1)[i])}, Double2{static_cast<double>(im.plane(2)[i]), 0.0}};
  uint8_t* o0 = im.plane(0);
  uint8_t* o1 = im.plane(1);
  uint8_t* o2 = im.plane(2);
  for (int y = 0; y < H; ++y)
    for (int x = 0; x < W; ++x) {
      const double xo = x + 0.5, yo = y + 0.5;
      double xin = a[0] * xo + a[1] * yo + a[2];
      double yin = a[3] * xo + a[4] * yo + a[5];
      const size_t o = static_cast<size_t>(y) * W + x;
      if (xin < 0.0 || xin >= W || yin < 0.0 || yin >= H) {
        o0[o] = fill[0], o1[o] = fill[1], o2[o] = fill[2];
        continue;
      }
      xin -= 0.5;
      yin -= 0.5;
      const int ix = pil_floor(xin), iy = pil_floor(yin);
      uint8_t px[3];
      filter(src.data(), W, H, ix, iy, xin - ix, yin - iy, px);
      o0[o] = px[0], o1[o] = px[1], o2[o] = px[2];
    }
}

inline int clip_index(int v, int n) { return v < 0 ? 0 : v >= n ? n - 1 : v; }

// bicubic_filter32RGB: 4 x 4 taps from (ix - 1, iy - 1), rows past the edge repeat the last valid
// one, values clipped to [0, 255] then truncated.
struct BicubicFilter {
  void operator()(const Rgbd* src, int W, int H, int ix, int iy, double dx, double dy, uint8_t out[3]) const {
    auto cubic = [](Rgbd v1, Rgbd v2, Rgbd v3, Rgbd v4, double d) {
      Rgbd p1 = v2, p2 = -v1 + v3, p3 = 2.0 * (v1 - v2) + v3 - v4, p4 = -v1 + v2 - v3 + v4;
      return p1 + d * (p2 + d * (p3 + d * p4));
    };
    ix--;
    iy--;
    const int x0 = clip_index(ix, W), x1 = clip_index(ix + 1, W), x2 = clip_index(ix + 2, W), x3 = clip_index(ix + 3, W);
    auto row = [&](int yy) {
      const Rgbd* r = src + static_cast<size_t>(yy) * W;
      return cubic(r[x0], r[x1], r[x2], r[x3], dx);
    };
    const Rgbd v1 = row(clip_index(iy, H));
    const Rgbd v2 = (iy + 1 >= 0 && iy + 1 < H) ? row(iy + 1) : v1;
    const Rgbd v3 = (iy + 2 >= 0 && iy + 2 < H) ? row(iy + 2) : v2;
    const Rgbd v4 = (iy + 3 >= 0 && iy + 3 < H) ? row(iy + 3) : v3;
    const Rgbd v = cubic(v1, v2, v3, v4, dy);
    auto clip = [](double t) -> uint8_t { return t <= 0.0 ? 0 : t >= 255.0 ? 255 : static_cast<uint8_t>(t); };
    out[0] = clip(v.rg[0]), out[1] = clip(v.rg[1]), out[2] = clip(v.bx[0]);
  }
};

// bilinear_filter32RGB: 2 x 2 taps from (ix, iy), a row past the edge repeats the first, truncated
// (a convex combination needs no clipping).
struct BilinearFilter {
  void operator()(const Rgbd* src, int W, int H, int ix, int iy, double dx, double dy, uint8_t out[3]) const {
    auto lerp = [](Rgbd a, Rgbd b, double d) { return a + d * (b - a); };
    const int x0 = clip_index(ix, W), x1 = clip_index(ix + 1, W);
    auto row = [&](int yy) {
      const Rgbd* r = src + static_cast<size_t>(yy) * W;
      return lerp(r[x0], r[x1], dx);
    };
    const Rgbd v1 = row(clip_index(iy, H));
    const Rgbd v2 = (iy + 1 >= 0 && iy + 1 < H) ? row(iy + 1) : v1;
    const Rgbd v = lerp(v1, v2, dy);
    out[0] = static_cast<uint8_t>(v.rg[0]), out[1] = static_cast<uint8_t>(v.rg[1]), out[2] = static_cast<uint8_t>(v.bx[0]);
  }
};

void affine(img::Planar& im, const double a[6], const uint8_t fill[3], int resample) {
  if (resample == kBicubic) affine_filtered(im, a, fill, BicubicFilter{});
  else if (resample == kBilinear) affine_filtered(im, a, fill, BilinearFilter{});
  else throw std::invalid_argument("pixel_op: resample must be 2 (bilinear) or 3 (bicubic), got " + std::to_string(resample));
}

// Python's round(x, 15), as Image.rotate rounds its matrix.
inline double round15(double x) { return std::nearbyint(x * 1e15) / 1e15; }

}  // namespace

void pixel_op(img::Planar& im, int op, double arg, const uint8_t fill[3], int resample) {
  if (im.c != 3) throw std::invalid_argument("pixel_op: expects an RGB image");
  const size_t n = static_cast<size_t>(im.h) * im.w;
  uint8_t lut[3][256];
  switch (op) {
    case kAutoContrast:
      for (int c = 0; c < 3; ++c) {
        int hist[256] = {0};
        const uint8_t* p = im.plane(c);
        for (size_t i = 0; i < n; ++i) hist[p[i]]++;
        int lo = 0, hi = 255;
        while (lo < 256 && hist[lo] == 0) ++lo;
        while (hi >= 0 && hist[hi] == 0) --hi;
        for (int i = 0; i < 256; ++i) {
          if (hi <= lo) {
            lut[c][i] = static_cast<uint8_t>(i);
          } else {
            double scale = 255.0 / (hi - lo), offset = -lo * scale;
            int v = static_cast<int>(i * scale + offset);
            lut[c][i] = static_cast<uint8_t>(v < 0 ? 0 : v > 255 ? 255 : v);
          }
        }
      }
      lut_apply(im, lut);
      break;
    case kEqualize:
      for (int c = 0; c < 3; ++c) {
        int64_t hist[256] = {0};
        const uint8_t* p = im.plane(c);
        for (size_t i = 0; i < n; ++i) hist[p[i]]++;
        int64_t total = 0, last = 0;
        int nonzero = 0;
        for (int i = 0; i < 256; ++i)
          if (hist[i]) total += hist[i], last = hist[i], ++nonzero;
        int64_t step = nonzero <= 1 ? 0 : (total - last) / 255;
        if (step == 0) {
          for (int i = 0; i < 256; ++i) lut[c][i] = static_cast<uint8_t>(i);
        } else {
          int64_t acc = step / 2;
          for (int i = 0; i < 256; ++i) {
            int64_t v = acc / step;
            lut[c][i] = static_cast<uint8_t>(v > 255 ? 255 : v);
            acc += hist[i];
          }
        }
      }
      lut_apply(im, lut);
      break;
    case kInvert:
      for (auto& v : im.px) v = static_cast<uint8_t>(255 - v);
      break;
    case kPosterize: {
      int bits = static_cast<int>(arg);
      if (bits >= 8) break;
      uint8_t mask = static_cast<uint8_t>(~((1 << (8 - std::max(bits, 0))) - 1));
      for (auto& v : im.px) v &= mask;
      break;
    }
    case kSolarize: {
      int t = static_cast<int>(arg);
      for (auto& v : im.px) v = v < t ? v : static_cast<uint8_t>(255 - v);
      break;
    }
    case kSolarizeAdd: {
      int add = static_cast<int>(arg);
      for (auto& v : im.px) v = v < 128 ? static_cast<uint8_t>(std::min(255, v + add)) : v;
      break;
    }
    case kColor: {
      img::Planar deg = im;
      for (size_t i = 0; i < n; ++i) {
        uint8_t l = luma(im.plane(0)[i], im.plane(1)[i], im.plane(2)[i]);
        deg.plane(0)[i] = deg.plane(1)[i] = deg.plane(2)[i] = l;
      }
      blend(deg, im, arg);
      break;
    }
    case kContrast: {
      int64_t hist[256] = {0};
      for (size_t i = 0; i < n; ++i) hist[luma(im.plane(0)[i], im.plane(1)[i], im.plane(2)[i])]++;
      double sum = 0;
      for (int i = 0; i < 256; ++i) sum += static_cast<double>(i) * hist[i];
      const int mean = static_cast<int>(sum / static_cast<double>(n) + 0.5);
      img::Planar deg = im;
      std::fill(deg.px.begin(), deg.px.end(), static_cast<uint8_t>(mean));
      blend(deg, im, arg);
      break;
    }
    case kBrightness: {
      img::Planar deg = im;
      std::fill(deg.px.begin(), deg.px.end(), 0);
      blend(deg, im, arg);
      break;
    }
    case kSharpness: {
      // ImageFilter.SMOOTH (3x3, weights 1 1 1 / 1 5 1 / 1 1 1, scale 13) in float; borders copied.
      img::Planar deg = im;
      const float k1 = 1.0f / 13.0f, k5 = 5.0f / 13.0f;
      const int W = im.w, H = im.h;
      for (int c = 0; c < 3; ++c) {
        const uint8_t* P = im.plane(c);
        uint8_t* D = deg.plane(c);
        for (int y = 1; y < H - 1; ++y)
          for (int x = 1; x < W - 1; ++x) {
            const uint8_t* up = P + static_cast<size_t>(y - 1) * W + x;
            const uint8_t* md = P + static_cast<size_t>(y) * W + x;
            const uint8_t* dn = P + static_cast<size_t>(y + 1) * W + x;
            float ss = 0.0f;
            ss += static_cast<float>(dn[-1]) * k1 + static_cast<float>(dn[0]) * k1 + static_cast<float>(dn[1]) * k1;
            ss += static_cast<float>(md[-1]) * k1 + static_cast<float>(md[0]) * k5 + static_cast<float>(md[1]) * k1;
            ss += static_cast<float>(up[-1]) * k1 + static_cast<float>(up[0]) * k1 + static_cast<float>(up[1]) * k1;
            D[static_cast<size_t>(y) * W + x] = ss <= 0.0f ? 0 : ss >= 255.0f ? 255 : static_cast<uint8_t>(ss + 0.5f);
          }
      }
      blend(deg, im, arg);
      break;
    }
    case kRotate: {
      double angle = std::fmod(arg, 360.0);
      if (angle < 0) angle += 360.0;  // Python's %
      if (angle == 0.0) break;
      const double w = im.w, h = im.h, cx = w / 2.0, cy = h / 2.0;
      const double r = -angle * M_PI / 180.0;
      double m[6] = {round15(std::cos(r)), round15(std::sin(r)), 0.0, round15(-std::sin(r)), round15(std::cos(r)), 0.0};
      m[2] = m[0] * (-cx) + m[1] * (-cy) + m[2] + cx;
      m[5] = m[3] * (-cx) + m[4] * (-cy) + m[5] + cy;
      affine(im, m, fill, resample);
      break;
    }
    case kShearX: {
      double m[6] = {1, arg, 0, 0, 1, 0};
      affine(im, m, fill, resample);
      break;
    }
    case kShearY: {
      double m[6] = {1, 0, 0, arg, 1, 0};
      affine(im, m, fill, resample);
      break;
    }
    case kTranslateXRel: {
      double m[6] = {1, 0, arg * im.w, 0, 1, 0};
      affine(im, m, fill, resample);
      break;
    }
    case kTranslateYRel: {
      double m[6] = {1, 0, 0, 0, 1, arg * im.h};
      affine(im, m, fill, resample);
      break;
    }
    default:
      throw std::invalid_argument("pixel_op: unknown op " + std::to_string(op));
  }
}

namespace {

// The resize + crop of the eval_resize and train_rrc geometries for an h x w image, as one windowed
// resize: only the outputs the crop keeps are computed (same bytes as resize-then-crop).
img::WindowResize resize_window(const TransformConfig& cfg, const double* plan, int h, int w) {
  const int S = cfg.size;
  if (cfg.geometry == Geometry::kEvalResize) {
    // torchvision Resize(int): shorter side -> R, longer side int(R * long / short).
    const int R = cfg.resize_short;
    int oh, ow;
    if (w <= h) {
      ow = R;
      oh = static_cast<int>(static_cast<int64_t>(R) * h / w);
    } else {
      oh = R;
      ow = static_cast<int>(static_cast<int64_t>(R) * w / h);
    }
    if (oh <= 0 || ow <= 0) throw std::invalid_argument("resize: output size must be positive");
    if (oh < S || ow < S) throw std::invalid_argument("transform: resized image smaller than the crop");
    // torchvision CenterCrop: int(round((H - S) / 2.0)) with Python's half-to-even round.
    return img::WindowResize(0, 0, h, w, oh, ow, py_round((oh - S) / 2.0), py_round((ow - S) / 2.0), S, S);
  }
  int box[4];
  rrc_box(h, w, plan, box);
  return img::WindowResize(box[0], box[1], box[2], box[3], S, S, 0, 0, S, S);
}

// The S x S uint8 image after the geometry step (reused per thread: no allocation per sample).
img::Planar& geometry_buffer(int c, int S) {
  thread_local img::Planar g;
  g.c = c, g.h = S, g.w = S;
  g.px.resize(static_cast<size_t>(c) * S * S);
  return g;
}

// Everything after the geometry: flip, RandAugment, ToTensor + Normalize, random erasing.
void finish_sample(const img::Planar& geo, const TransformConfig& cfg, const double* plan, float* out);

}  // namespace

void transform_sample(const img::Planar& src, const TransformConfig& cfg, const double* plan, float* out) {
  if (src.c != 1 && src.c != 3) throw std::invalid_argument("transform: images must have 1 or 3 channels, got " + std::to_string(src.c));
  const int S = cfg.size;
  img::Planar a, b;
  const img::Planar* cur = &src;
  switch (cfg.geometry) {
    case Geometry::kEvalSmall:
      if (cur->h != S || cur->w != S) {
        img::pil_resize_bicubic(*cur, S, S, a);
        cur = &a;
      }
      break;
    case Geometry::kEvalResize:
    case Geometry::kTrainRrc: {
      const img::WindowResize wr = resize_window(cfg, plan, src.h, src.w);
      img::Planar& g = geometry_buffer(src.c, S);
      wr.run(img::PixelView::of(src), g.px.data());
      cur = &g;
      break;
    }
    case Geometry::kTrainCrop: {
      if (cur->h != S || cur->w != S) {
        img::pil_resize_bicubic(*cur, S, S, a);
        cur = &a;
      }
      // Zero padding then an S x S crop at (cy, cx) of the padded image, done as one copy.
      const int P = cfg.pad, cy = static_cast<int>(plan[kCropY]), cx = static_cast<int>(plan[kCropX]);
      if (cy < 0 || cx < 0 || cy > 2 * P || cx > 2 * P) throw std::invalid_argument("transform: crop offset outside the padded image");
      b.c = cur->c, b.h = S, b.w = S;
      b.px.assign(static_cast<size_t>(b.c) * S * S, 0);
      for (int c = 0; c < b.c; ++c)
        for (int y = 0; y < S; ++y) {
          int sy = y + cy - P;
          if (sy < 0 || sy >= cur->h) continue;
          for (int x = 0; x < S; ++x) {
            int sx = x + cx - P;
            if (sx >= 0 && sx < cur->w) b.plane(c)[y * S + x] = cur->plane(c)[sy * cur->w + sx];
          }
        }
      cur = &b;
      break;
    }
  }
  finish_sample(*cur, cfg, plan, out);
}

bool transform_encoded(const uint8_t* data, size_t size, const TransformConfig& cfg, const double* plan, float* out, int min_short) {
  if (cfg.geometry != Geometry::kEvalResize && cfg.geometry != Geometry::kTrainRrc) return false;
  struct Picker : img::RegionPicker {
    const TransformConfig& cfg;
    const double* plan;
    std::optional<img::WindowResize> wr;
    Picker(const TransformConfig& c, const double* p) : cfg(c), plan(p) {}
    bool pick(int h, int w, int rect[4]) override {
      try {
        wr.emplace(resize_window(cfg, plan, h, w));
      } catch (const std::exception&) {
        return false;  // the full path reports it
      }
      rect[0] = wr->src_y0(), rect[1] = wr->src_y1(), rect[2] = wr->src_x0(), rect[3] = wr->src_x1();
      return true;
    }
  } picker(cfg, plan);
  thread_local std::vector<uint8_t> buf;
  img::PixelView view;
  if (!img::decode_jpeg_region(data, size, picker, buf, view, min_short)) return false;
  img::Planar& g = geometry_buffer(view.c, cfg.size);
  picker.wr->run(view, g.px.data());
  finish_sample(g, cfg, plan, out);
  return true;
}

namespace {

void finish_sample(const img::Planar& geo, const TransformConfig& cfg, const double* plan, float* out) {
  const int S = cfg.size;
  const img::Planar* cur = &geo;
  // The flip is folded into the next copy (into the pixel-op buffer, or the normalisation).
  bool flip = plan && plan[kFlip] != 0;
  const int W = cur->w;
  const int nra = plan ? static_cast<int>(plan[kOpCount]) : 0;
  if (nra > 0) {
    if (nra > kMaxOps) throw std::invalid_argument("transform: too many pixel ops in the plan");
    thread_local img::Planar ra;
    ra.c = 3, ra.h = cur->h, ra.w = W;
    ra.px.resize(static_cast<size_t>(3) * ra.h * W);
    for (int c = 0; c < 3; ++c)
      for (int y = 0; y < ra.h; ++y) {
        const uint8_t* r = cur->plane(cur->c == 1 ? 0 : c) + static_cast<size_t>(y) * W;
        uint8_t* d = ra.plane(c) + static_cast<size_t>(y) * W;
        if (flip) std::reverse_copy(r, r + W, d);
        else std::memcpy(d, r, W);
      }
    flip = false;
    for (int k = 0; k < nra; ++k) {
      const double* slot = plan + kOps + kOpStride * k;
      const int op = static_cast<int>(slot[0]);
      if (op >= 0) pixel_op(ra, op, slot[1], cfg.fill, static_cast<int>(slot[2]));
    }
    cur = &ra;
  }
  // ToTensor + Normalize: (v / 255 - mean) / std, in float32 like torchvision; computed once per
  // byte value (same float operations, so the same results) and looked up.
  const size_t n = static_cast<size_t>(S) * S;
  for (int c = 0; c < 3; ++c) {
    const uint8_t* p = cur->plane(cur->c == 1 ? 0 : c);
    float* o = out + c * n;
    const float m = cfg.mean[c], s = cfg.std[c];
    float lut[256];
    for (int v = 0; v < 256; ++v) lut[v] = (static_cast<float>(v) / 255.0f - m) / s;
    if (!flip) {
      for (size_t i = 0; i < n; ++i) o[i] = lut[p[i]];
      continue;
    }
    for (int y = 0; y < S; ++y) {
      const uint8_t* r = p + static_cast<size_t>(y) * W;
      float* d = o + static_cast<size_t>(y) * S;
      for (int x = 0; x < S; ++x) d[x] = lut[r[W - 1 - x]];
    }
  }
  // timm RandomErasing: each planned box gets N(0, 1) noise per pixel and channel ('pixel'), one
  // N(0, 1) value per channel ('rand') or zeros ('const').
  const int boxes = plan ? static_cast<int>(plan[kEraseCount]) : 0;
  if (boxes > kMaxErase) throw std::invalid_argument("transform: too many erasing boxes in the plan");
  for (int b = 0; b < boxes; ++b) {
    const double* box = plan + kErase + kEraseStride * b;
    const int t = static_cast<int>(box[0]), l = static_cast<int>(box[1]);
    const int h = static_cast<int>(box[2]), w = static_cast<int>(box[3]);
    if (t < 0 || l < 0 || h <= 0 || w <= 0 || t + h > S || l + w > S) throw std::invalid_argument("transform: erasing box outside the image");
    SplitMix rng{static_cast<uint64_t>(box[4])};
    // Box-Muller: two normals per pair of uniforms.
    auto normal_pair = [&rng](float& a, float& b2) {
      double r = std::sqrt(-2.0 * std::log(rng.uniform())), th = 6.283185307179586 * rng.uniform();
      a = static_cast<float>(r * std::cos(th));
      b2 = static_cast<float>(r * std::sin(th));
    };
    float colour[4] = {0.0f, 0.0f, 0.0f, 0.0f};
    if (cfg.erase_mode == EraseMode::kRand) normal_pair(colour[0], colour[1]), normal_pair(colour[2], colour[3]);
    for (int c = 0; c < 3; ++c)
      for (int y = t; y < t + h; ++y) {
        float* row = out + c * n + static_cast<size_t>(y) * S;
        if (cfg.erase_mode != EraseMode::kPixel) {
          std::fill(row + l, row + l + w, colour[c]);
          continue;
        }
        for (int x = l; x < l + w; x += 2) {
          float second;
          normal_pair(row[x], second);
          if (x + 1 < l + w) row[x + 1] = second;
        }
      }
  }
}

Geometry parse_geometry(const std::string& g, const std::string& op) {
  if (g == "eval_small") return Geometry::kEvalSmall;
  if (g == "eval_resize") return Geometry::kEvalResize;
  if (g == "train_crop") return Geometry::kTrainCrop;
  if (g == "train_rrc") return Geometry::kTrainRrc;
  throw std::invalid_argument(op + ": unknown geometry '" + g + "' (eval_small, eval_resize, train_crop, train_rrc)");
}


int default_workers(const OpArgs& a) {
  int64_t w = a.get_int("workers", 0);
  if (w <= 0) w = std::max(1u, std::thread::hardware_concurrency());
  return static_cast<int>(w);
}

// The checked inputs of an in-memory batch op: pixels uint8 [N, C, H, W] (C = 1 or 3), indices [B]
// into it, and an optional float64 plan [B, cols] (required when `need_plan`).
struct PixelBatch {
  at::Tensor px, idx, plan;
  int64_t B = 0, N = 0;
  int C = 0, H = 0, W = 0;
  size_t img_bytes() const { return static_cast<size_t>(C) * H * W; }
  // Sample i as a planar image (a copy of its row).
  void sample(int64_t i, img::Planar& src) const {
    const uint8_t* base = px.data_ptr<uint8_t>() + idx.data_ptr<int64_t>()[i] * img_bytes();
    src.c = C, src.h = H, src.w = W;
    src.px.assign(base, base + img_bytes());
  }
  const double* plan_row(int64_t i, int cols) const { return plan.defined() ? plan.data_ptr<double>() + i * cols : nullptr; }
};

PixelBatch pixel_batch(const std::vector<at::Tensor>& in, const char* op, int cols, bool need_plan) {
  PixelBatch b;
  b.px = in[0];
  if (b.px.scalar_type() != at::kByte || b.px.dim() != 4 || (b.px.size(1) != 1 && b.px.size(1) != 3))
    throw std::invalid_argument(std::string(op) + ": pixels must be uint8 [N, 1|3, H, W]");
  b.px = b.px.contiguous();
  b.idx = in[1].to(at::kLong).contiguous();
  if (b.idx.dim() != 1) throw std::invalid_argument(std::string(op) + ": indices must be 1-D");
  b.B = b.idx.size(0), b.N = b.px.size(0);
  if (in.size() == 3) {
    b.plan = in[2].to(at::kDouble).contiguous();
    if (b.plan.dim() != 2 || b.plan.size(0) != b.B || b.plan.size(1) != cols)
      throw std::invalid_argument(std::string(op) + ": plan must be float64 [B, " + std::to_string(cols) + "]");
  } else if (need_plan) {
    throw std::invalid_argument(std::string(op) + ": training geometries need a plan");
  }
  const int64_t* ix = b.idx.data_ptr<int64_t>();
  for (int64_t i = 0; i < b.B; ++i)
    if (ix[i] < 0 || ix[i] >= b.N)
      throw std::out_of_range(std::string(op) + ": index " + std::to_string(ix[i]) + " outside the dataset of " + std::to_string(b.N));
  b.C = static_cast<int>(b.px.size(1)), b.H = static_cast<int>(b.px.size(2)), b.W = static_cast<int>(b.px.size(3));
  return b;
}

}  // namespace

TransformConfig read_transform_config(const OpArgs& a, const std::string& op, const char* default_geometry) {
  TransformConfig cfg;
  cfg.geometry = parse_geometry(a.get_string("geometry", default_geometry), op);
  cfg.size = static_cast<int>(a.get_int("size"));
  cfg.resize_short = static_cast<int>(a.get_int("resize_short", cfg.size));
  cfg.pad = static_cast<int>(a.get_int("pad", 4));
  for (int c = 0; c < 3; ++c) {
    cfg.mean[c] = static_cast<float>(a.get_double("mean" + std::to_string(c), 0.5));
    cfg.std[c] = static_cast<float>(a.get_double("std" + std::to_string(c), 0.5));
    if (!(cfg.std[c] > 0)) throw std::invalid_argument(op + ": std must be positive");
    cfg.fill[c] = static_cast<uint8_t>(std::min<int64_t>(255, std::max<int64_t>(0, a.get_int("fill" + std::to_string(c), 128))));
  }
  const std::string mode = a.get_string("erase_mode", "pixel");
  if (mode == "pixel") cfg.erase_mode = EraseMode::kPixel;
  else if (mode == "rand") cfg.erase_mode = EraseMode::kRand;
  else if (mode == "const") cfg.erase_mode = EraseMode::kConst;
  else throw std::invalid_argument(op + ": unknown erase_mode '" + mode + "' (pixel, rand, const)");
  if (cfg.size <= 0 || cfg.size > 4096) throw std::invalid_argument(op + ": 'size' must be in 1..4096");
  if (cfg.geometry == Geometry::kEvalResize && cfg.resize_short < cfg.size)
    throw std::invalid_argument(op + ": 'resize_short' must be >= 'size'");
  return cfg;
}

BeitViewsConfig read_beit_config(const OpArgs& a) {
  BeitViewsConfig cfg;
  cfg.size = static_cast<int>(a.get_int("size"));
  cfg.second_size = static_cast<int>(a.get_int("second_size"));
  if (cfg.size <= 0 || cfg.size > 4096 || cfg.second_size <= 0 || cfg.second_size > 4096)
    throw std::invalid_argument("BEiT views: 'size' and 'second_size' must be in 1..4096");
  const std::string interp = a.get_string("interpolation", "bicubic");
  cfg.random_filter = interp == "random";
  cfg.filter = cfg.random_filter ? img::Filter::kBicubic : img::parse_filter(interp);
  cfg.second_filter = img::parse_filter(a.get_string("second_interpolation", "lanczos"));
  for (int c = 0; c < 3; ++c) {
    cfg.mean[c] = static_cast<float>(a.get_double("mean" + std::to_string(c), 0.5));
    cfg.std[c] = static_cast<float>(a.get_double("std" + std::to_string(c), 0.5));
    if (!(cfg.std[c] > 0)) throw std::invalid_argument("BEiT views: std must be positive");
  }
  return cfg;
}

void beit_views(const img::Planar& src, const BeitViewsConfig& cfg, const double* plan, float* patches, float* tokens) {
  if (src.c != 1 && src.c != 3) throw std::invalid_argument("BEiT views: images must have 1 or 3 channels, got " + std::to_string(src.c));
  if (!plan) throw std::invalid_argument("BEiT views: a plan row is required");
  // An RGB copy (grey replicated, PIL convert('RGB')) that the jitter and flip change in place.
  thread_local img::Planar im;
  const size_t n = static_cast<size_t>(src.h) * src.w;
  im.c = 3, im.h = src.h, im.w = src.w;
  im.px.resize(3 * n);
  for (int c = 0; c < 3; ++c) std::memcpy(im.plane(c), src.plane(src.c == 1 ? 0 : c), n);
  // ColorJitter(b, c, s): torchvision runs its ops in the order randperm(4) drew, each a PIL
  // ImageEnhance (Brightness, Contrast, Color) with its factor; hue (3) is off in the reference.
  static const int kJitterOps[3] = {kBrightness, kContrast, kColor};
  static const uint8_t kNoFill[3] = {0, 0, 0};
  for (int k = 0; k < 4; ++k) {
    const int id = static_cast<int>(plan[kBeitOrder + k]);
    if (id < 0 || id > 3) throw std::invalid_argument("BEiT views: jitter order must be a permutation of 0..3");
    if (id == 3 || plan[kBeitJitter + id] < 0) continue;
    pixel_op(im, kJitterOps[id], plan[kBeitJitter + id], kNoFill);
  }
  // RandomHorizontalFlip on the whole image (before the crop, as the reference composes it).
  if (plan[kFlip] != 0)
    for (int c = 0; c < 3; ++c)
      for (int y = 0; y < im.h; ++y) std::reverse(im.plane(c) + static_cast<size_t>(y) * im.w, im.plane(c) + static_cast<size_t>(y + 1) * im.w);
  // RandomResizedCropAndInterpolationWithTwoPic: one box (timm's get_params), two resized crops.
  int box[4];
  rrc_box(im.h, im.w, plan, box);
  const img::Filter first = cfg.random_filter ? (plan[kBeitInterp] != 0 ? img::Filter::kBicubic : img::Filter::kBilinear) : cfg.filter;
  auto view = [&](int S, img::Filter f, const float (&lut)[3][256], float* out) {
    img::Planar& g = geometry_buffer(3, S);
    img::WindowResize(box[0], box[1], box[2], box[3], S, S, 0, 0, S, S, f).run(img::PixelView::of(im), g.px.data());
    const size_t m = static_cast<size_t>(S) * S;
    for (int c = 0; c < 3; ++c)
      for (size_t i = 0; i < m; ++i) out[c * m + i] = lut[c][g.plane(c)[i]];
  };
  // Normalize: (x - mean) / std; map_pixels: (1 - 2 * 0.1) * x + 0.1 (dall_e), both in float32.
  float norm[3][256], mapped[3][256];
  for (int c = 0; c < 3; ++c)
    for (int v = 0; v < 256; ++v) {
      const float x = static_cast<float>(v) / 255.0f;
      norm[c][v] = (x - cfg.mean[c]) / cfg.std[c];
      mapped[c][v] = x * static_cast<float>(1.0 - 2.0 * 0.1) + static_cast<float>(0.1);
    }
  view(cfg.size, first, norm, patches);
  view(cfg.second_size, cfg.second_filter, mapped, tokens);
}

}  // namespace data

void register_data_ops(const OpRegistry& add) {
  using namespace data;
  // data_batch(pixels uint8 [N,C,H,W], indices int [B], plan float64 [B, kPlanCols]?) -> float32 [B,3,S,S]
  // Takes image_batch's transform attributes (lib/data/plan.ts nativeAttrs); fast_decode concerns
  // decoding only, so decoded pixels accept and ignore it.
  add("data_batch", {2, 3, 1, OpCost::kHeavy, {"geometry", "size", "resize_short", "pad", "mean0", "mean1", "mean2", "std0", "std1", "std2", "fill0", "fill1", "fill2", "erase_mode", "fast_decode", "workers"}}, [](const std::vector<at::Tensor>& in, const OpArgs& a) -> std::vector<at::Tensor> {
    const TransformConfig cfg = read_transform_config(a, "data_batch", "eval_small");
    const bool train = cfg.geometry == Geometry::kTrainCrop || cfg.geometry == Geometry::kTrainRrc;
    const PixelBatch pb = pixel_batch(in, "data_batch", kPlanCols, train);
    const int S = cfg.size;
    at::Tensor out = at::empty({pb.B, 3, S, S}, at::kFloat);
    float* o = out.data_ptr<float>();
    parallel_items_on(default_workers(a), pb.B, [&](int64_t i) {
      img::Planar src;
      pb.sample(i, src);
      transform_sample(src, cfg, pb.plan_row(i, kPlanCols), o + i * 3 * static_cast<int64_t>(S) * S);
    });
    return {out};
  });

  // data_beit_batch(pixels uint8 [N,C,H,W], indices int [B], plan float64 [B, kBeitPlanCols]) ->
  // patches float32 [B,3,S,S] (normalised), tokens float32 [B,3,S2,S2] (map_pixels): beit_views per sample.
  add("data_beit_batch", {3, 3, 2, OpCost::kHeavy, {"size", "second_size", "interpolation", "second_interpolation", "mean0", "mean1", "mean2", "std0", "std1", "std2", "workers"}}, [](const std::vector<at::Tensor>& in, const OpArgs& a) -> std::vector<at::Tensor> {
    const BeitViewsConfig cfg = read_beit_config(a);
    const PixelBatch pb = pixel_batch(in, "data_beit_batch", kBeitPlanCols, true);
    const int64_t S = cfg.size, S2 = cfg.second_size;
    at::Tensor patches = at::empty({pb.B, 3, S, S}, at::kFloat), tokens = at::empty({pb.B, 3, S2, S2}, at::kFloat);
    float* p = patches.data_ptr<float>();
    float* t = tokens.data_ptr<float>();
    parallel_items_on(default_workers(a), pb.B, [&](int64_t i) {
      img::Planar src;
      pb.sample(i, src);
      beit_views(src, cfg, pb.plan_row(i, kBeitPlanCols), p + i * 3 * S * S, t + i * 3 * S2 * S2);
    });
    return {patches, tokens};
  });

  // data_mix(images float32 [B,3,S,S], params float64 [B, 7]) -> mixed copy. Row i: partner j, kind
  // (0 keep, 1 blend, 2 paste box), lam, yl, yh, xl, xh. Partners read the un-mixed batch (timm's x_orig).
  add("data_mix", {2, 2, 1, OpCost::kHeavy}, [](const std::vector<at::Tensor>& in, const OpArgs&) -> std::vector<at::Tensor> {
    at::Tensor x = in[0].contiguous();
    if (x.scalar_type() != at::kFloat || x.dim() != 4) throw std::invalid_argument("data_mix: images must be float32 [B, C, H, W]");
    at::Tensor p = in[1].to(at::kDouble).contiguous();
    const int64_t B = x.size(0), C = x.size(1), H = x.size(2), W = x.size(3);
    if (p.dim() != 2 || p.size(0) != B || p.size(1) != 7) throw std::invalid_argument("data_mix: params must be float64 [B, 7]");
    at::Tensor out = x.clone();
    const float* src = x.data_ptr<float>();
    float* dst = out.data_ptr<float>();
    const double* pp = p.data_ptr<double>();
    const int64_t img = C * H * W;
    for (int64_t i = 0; i < B; ++i) {
      const double* r = pp + i * 7;
      const int64_t j = static_cast<int64_t>(r[0]);
      const int kind = static_cast<int>(r[1]);
      if (kind == 0) continue;
      if (j < 0 || j >= B) throw std::out_of_range("data_mix: partner index outside the batch");
      const float* a = src + i * img;
      const float* b = src + j * img;
      float* o = dst + i * img;
      if (kind == 1) {
        // x * lam + x_j * (1 - lam), both factors rounded to float32 like torch's scalar mul.
        const float l = static_cast<float>(r[2]), l1 = static_cast<float>(1.0 - r[2]);
        for (int64_t k = 0; k < img; ++k) o[k] = a[k] * l + b[k] * l1;
      } else {
        const int64_t yl = static_cast<int64_t>(r[3]), yh = static_cast<int64_t>(r[4]);
        const int64_t xl = static_cast<int64_t>(r[5]), xh = static_cast<int64_t>(r[6]);
        if (yl < 0 || xl < 0 || yh > H || xh > W) throw std::out_of_range("data_mix: cutmix box outside the image");
        for (int64_t c = 0; c < C; ++c)
          for (int64_t y = yl; y < yh; ++y)
            for (int64_t xx = xl; xx < xh; ++xx) o[c * H * W + y * W + xx] = b[c * H * W + y * W + xx];
      }
    }
    return {out};
  });

  // data_ra_op(uint8 [3,H,W]) with attrs op, arg, resample, fill -> one pixel op (tests compare it with PIL).
  add("data_ra_op", {1, 1, 1, OpCost::kHeavy, {"op", "arg", "resample", "fill0", "fill1", "fill2"}}, [](const std::vector<at::Tensor>& in, const OpArgs& a) -> std::vector<at::Tensor> {
    at::Tensor x = in[0].contiguous();
    if (x.scalar_type() != at::kByte || x.dim() != 3 || x.size(0) != 3) throw std::invalid_argument("data_ra_op: expected uint8 [3, H, W]");
    img::Planar p;
    p.c = 3, p.h = static_cast<int>(x.size(1)), p.w = static_cast<int>(x.size(2));
    p.px.assign(x.data_ptr<uint8_t>(), x.data_ptr<uint8_t>() + x.numel());
    const uint8_t fill[3] = {static_cast<uint8_t>(a.get_int("fill0", 128)), static_cast<uint8_t>(a.get_int("fill1", 128)), static_cast<uint8_t>(a.get_int("fill2", 128))};
    pixel_op(p, static_cast<int>(a.get_int("op")), a.get_double("arg", 0.0), fill, static_cast<int>(a.get_int("resample", kBicubic)));
    at::Tensor out = at::empty({3, p.h, p.w}, at::kByte);
    std::memcpy(out.data_ptr<uint8_t>(), p.px.data(), p.px.size());
    return {out};
  });

  // torch.randperm(n, generator=torch.Generator().manual_seed(seed)), as DistributedSampler draws it.
  add("data_randperm", {0, 0, 1, OpCost::kLight, {"n", "seed"}}, [](const std::vector<at::Tensor>&, const OpArgs& a) -> std::vector<at::Tensor> {
    int64_t n = a.get_int("n");
    if (n < 0) throw std::invalid_argument("data_randperm: n must be >= 0");
    auto gen = at::make_generator<at::CPUGeneratorImpl>(static_cast<uint64_t>(a.get_int("seed", 0)));
    return {at::randperm(n, gen, at::TensorOptions().dtype(at::kLong))};
  });

  // rrc_box for tests: plan float64 [kPlanCols] + height/width -> int64 [4] (top, left, h, w).
  add("data_rrc_box", {1, 1, 1, OpCost::kLight, {"height", "width"}}, [](const std::vector<at::Tensor>& in, const OpArgs& a) -> std::vector<at::Tensor> {
    at::Tensor p = in[0].to(at::kDouble).contiguous();
    if (p.numel() != kPlanCols) throw std::invalid_argument("data_rrc_box: plan must have " + std::to_string(kPlanCols) + " values");
    int box[4];
    rrc_box(static_cast<int>(a.get_int("height")), static_cast<int>(a.get_int("width")), p.data_ptr<double>(), box);
    at::Tensor out = at::empty({4}, at::kLong);
    for (int i = 0; i < 4; ++i) out.data_ptr<int64_t>()[i] = box[i];
    return {out};
  });
}

}  // namespace mood
