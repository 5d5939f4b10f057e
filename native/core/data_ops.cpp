#include "core/data_ops.h"

#include <ATen/ATen.h>
#include <ATen/CPUGeneratorImpl.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <exception>
#include <mutex>
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

void flip_h(img::Planar& p) {
  for (int c = 0; c < p.c; ++c)
    for (int y = 0; y < p.h; ++y) {
      uint8_t* r = p.plane(c) + static_cast<size_t>(y) * p.w;
      std::reverse(r, r + p.w);
    }
}

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
    case Geometry::kEvalResize: {
      // torchvision Resize(int): shorter side -> R, longer side int(R * long / short).
      const int R = cfg.resize_short;
      int oh, ow;
      if (cur->w <= cur->h) {
        ow = R;
        oh = static_cast<int>(static_cast<int64_t>(R) * cur->h / cur->w);
      } else {
        oh = R;
        ow = static_cast<int>(static_cast<int64_t>(R) * cur->w / cur->h);
      }
      img::pil_resize_bicubic(*cur, oh, ow, a);
      if (oh < S || ow < S) throw std::invalid_argument("transform: resized image smaller than the crop");
      // torchvision CenterCrop: int(round((H - S) / 2.0)) with Python's half-to-even round.
      img::crop(a, py_round((oh - S) / 2.0), py_round((ow - S) / 2.0), S, S, b);
      cur = &b;
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
    case Geometry::kTrainRrc: {
      int box[4];
      rrc_box(cur->h, cur->w, plan, box);
      img::crop(*cur, box[0], box[1], box[2], box[3], a);
      img::pil_resize_bicubic(a, S, S, b);
      cur = &b;
      break;
    }
  }
  img::Planar flipped;
  if (plan && plan[kFlip] != 0) {
    flipped = *cur;
    flip_h(flipped);
    cur = &flipped;
  }
  // ToTensor + Normalize: (v / 255 - mean) / std, in float32 like torchvision.
  const size_t n = static_cast<size_t>(S) * S;
  for (int c = 0; c < 3; ++c) {
    const uint8_t* p = cur->plane(cur->c == 1 ? 0 : c);
    float* o = out + c * n;
    const float m = cfg.mean[c], s = cfg.std[c];
    for (size_t i = 0; i < n; ++i) o[i] = (static_cast<float>(p[i]) / 255.0f - m) / s;
  }
  // timm RandomErasing, mode 'pixel': N(0, 1) per pixel and channel inside the box.
  if (plan && plan[kEraseH] > 0) {
    const int t = static_cast<int>(plan[kEraseTop]), l = static_cast<int>(plan[kEraseLeft]);
    const int h = static_cast<int>(plan[kEraseH]), w = static_cast<int>(plan[kEraseW]);
    if (t < 0 || l < 0 || t + h > S || l + w > S) throw std::invalid_argument("transform: erasing box outside the image");
    SplitMix rng{static_cast<uint64_t>(plan[kEraseSeed])};
    for (int c = 0; c < 3; ++c)
      for (int y = t; y < t + h; ++y)
        for (int x = l; x < l + w; x += 2) {
          // Box-Muller: two normals per pair of uniforms.
          double r = std::sqrt(-2.0 * std::log(rng.uniform())), th = 6.283185307179586 * rng.uniform();
          out[c * n + y * S + x] = static_cast<float>(r * std::cos(th));
          if (x + 1 < l + w) out[c * n + y * S + x + 1] = static_cast<float>(r * std::sin(th));
        }
  }
}

namespace {

Geometry parse_geometry(const std::string& g) {
  if (g == "eval_small") return Geometry::kEvalSmall;
  if (g == "eval_resize") return Geometry::kEvalResize;
  if (g == "train_crop") return Geometry::kTrainCrop;
  if (g == "train_rrc") return Geometry::kTrainRrc;
  throw std::invalid_argument("data_batch: unknown geometry '" + g + "' (eval_small, eval_resize, train_crop, train_rrc)");
}

TransformConfig read_config(const OpArgs& a) {
  TransformConfig cfg;
  cfg.geometry = parse_geometry(a.get_string("geometry", "eval_small"));
  cfg.size = static_cast<int>(a.get_int("size"));
  cfg.resize_short = static_cast<int>(a.get_int("resize_short", cfg.size));
  cfg.pad = static_cast<int>(a.get_int("pad", 4));
  for (int c = 0; c < 3; ++c) {
    cfg.mean[c] = static_cast<float>(a.get_double("mean" + std::to_string(c), 0.5));
    cfg.std[c] = static_cast<float>(a.get_double("std" + std::to_string(c), 0.5));
    if (!(cfg.std[c] > 0)) throw std::invalid_argument("data_batch: std must be positive");
  }
  if (cfg.size <= 0 || cfg.size > 4096) throw std::invalid_argument("data_batch: 'size' must be in 1..4096");
  if (cfg.geometry == Geometry::kEvalResize && cfg.resize_short < cfg.size)
    throw std::invalid_argument("data_batch: 'resize_short' must be >= 'size'");
  return cfg;
}

// Runs fn(i) for i in [0, n) on `workers` threads; rethrows the first error.
template <typename F>
void parallel_samples(int64_t n, int workers, F fn) {
  workers = static_cast<int>(std::max<int64_t>(1, std::min<int64_t>(workers, n)));
  if (workers == 1) {
    for (int64_t i = 0; i < n; ++i) fn(i);
    return;
  }
  std::exception_ptr err;
  std::mutex mu;
  std::vector<std::thread> pool;
  for (int t = 0; t < workers; ++t)
    pool.emplace_back([&, t] {
      try {
        for (int64_t i = t; i < n; i += workers) fn(i);
      } catch (...) {
        std::lock_guard<std::mutex> g(mu);
        if (!err) err = std::current_exception();
      }
    });
  for (auto& th : pool) th.join();
  if (err) std::rethrow_exception(err);
}

int default_workers(const OpArgs& a) {
  int64_t w = a.get_int("workers", 0);
  if (w <= 0) w = std::max(1u, std::thread::hardware_concurrency());
  return static_cast<int>(w);
}

}  // namespace
}  // namespace data

void register_data_ops(const OpRegistry& add) {
  using namespace data;
  // data_batch(pixels uint8 [N,C,H,W], indices int [B], plan float64 [B, kPlanCols]?) -> float32 [B,3,S,S]
  add("data_batch", {2, 3, 1, OpCost::kHeavy}, [](const std::vector<at::Tensor>& in, const OpArgs& a) -> std::vector<at::Tensor> {
    at::Tensor px = in[0];
    if (px.scalar_type() != at::kByte || px.dim() != 4 || (px.size(1) != 1 && px.size(1) != 3))
      throw std::invalid_argument("data_batch: pixels must be uint8 [N, 1|3, H, W]");
    px = px.contiguous();
    at::Tensor idx = in[1].to(at::kLong).contiguous();
    if (idx.dim() != 1) throw std::invalid_argument("data_batch: indices must be 1-D");
    const int64_t B = idx.size(0), N = px.size(0);
    const TransformConfig cfg = read_config(a);
    const bool train = cfg.geometry == Geometry::kTrainCrop || cfg.geometry == Geometry::kTrainRrc;
    at::Tensor plan;
    if (in.size() == 3) {
      plan = in[2].to(at::kDouble).contiguous();
      if (plan.dim() != 2 || plan.size(0) != B || plan.size(1) != kPlanCols)
        throw std::invalid_argument("data_batch: plan must be float64 [B, " + std::to_string(kPlanCols) + "]");
    } else if (train) {
      throw std::invalid_argument("data_batch: training geometries need a plan");
    }
    const int64_t* ix = idx.data_ptr<int64_t>();
    for (int64_t i = 0; i < B; ++i)
      if (ix[i] < 0 || ix[i] >= N)
        throw std::out_of_range("data_batch: index " + std::to_string(ix[i]) + " outside the dataset of " + std::to_string(N));
    const int C = static_cast<int>(px.size(1)), H = static_cast<int>(px.size(2)), W = static_cast<int>(px.size(3));
    const int S = cfg.size;
    at::Tensor out = at::empty({B, 3, S, S}, at::kFloat);
    float* o = out.data_ptr<float>();
    const uint8_t* base = px.data_ptr<uint8_t>();
    const double* pl = plan.defined() ? plan.data_ptr<double>() : nullptr;
    const size_t img_bytes = static_cast<size_t>(C) * H * W;
    parallel_samples(B, default_workers(a), [&](int64_t i) {
      img::Planar src;
      src.c = C, src.h = H, src.w = W;
      src.px.assign(base + ix[i] * img_bytes, base + (ix[i] + 1) * img_bytes);
      transform_sample(src, cfg, pl ? pl + i * kPlanCols : nullptr, o + i * 3 * static_cast<int64_t>(S) * S);
    });
    return {out};
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

  // torch.randperm(n, generator=torch.Generator().manual_seed(seed)), as DistributedSampler draws it.
  add("data_randperm", {0, 0, 1, OpCost::kLight}, [](const std::vector<at::Tensor>&, const OpArgs& a) -> std::vector<at::Tensor> {
    int64_t n = a.get_int("n");
    if (n < 0) throw std::invalid_argument("data_randperm: n must be >= 0");
    auto gen = at::make_generator<at::CPUGeneratorImpl>(static_cast<uint64_t>(a.get_int("seed", 0)));
    return {at::randperm(n, gen, at::TensorOptions().dtype(at::kLong))};
  });

  // rrc_box for tests: plan float64 [kPlanCols] + height/width -> int64 [4] (top, left, h, w).
  add("data_rrc_box", {1, 1, 1, OpCost::kLight}, [](const std::vector<at::Tensor>& in, const OpArgs& a) -> std::vector<at::Tensor> {
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
