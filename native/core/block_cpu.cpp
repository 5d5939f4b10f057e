#include "core/block_cpu.h"

#include <c10/core/InferenceMode.h>
#include <torch/csrc/autograd/custom_function.h>

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <iterator>
#include <limits>
#include <memory>
#include <vector>

#include "core/gemm.h"
#include "core/parallel.h"
#include "core/runtime.h"

// Row kernels in clones for AVX-512 / AVX2+FMA / baseline x86-64, picked at load time: the library
// is built for any x86-64 CPU.
#if defined(__GNUC__) && !defined(__clang__) && defined(__x86_64__) && __GNUC__ >= 12
#define MOOD_ROW_KERNEL __attribute__((target_clones("arch=x86-64-v4", "arch=x86-64-v3", "default")))
#else
#define MOOD_ROW_KERNEL
#endif

namespace mood {
namespace beit {
namespace {

// ---- row kernels ----
// Reductions keep independent lanes (4 x 16: vectorisable without -ffast-math, and four chains
// hide the add latency) and fold them as a tree.

// Forced inline: called out of line they were compiled once, for baseline x86-64 (SSE, 4 lanes),
// not in each row kernel's AVX2 / AVX-512 clone (perf: lane_sum / lane_dot / lane_max took 3.5 %
// of the tiny BEiT's eval forward at ~1 cycle per element).
#if defined(__GNUC__)
#define MOOD_INLINE inline __attribute__((always_inline))
#else
#define MOOD_INLINE inline
#endif

// combine over value(0..n-1), starting from init.
template <typename Value, typename Combine>
MOOD_INLINE float lane_reduce(int64_t n, float init, Value value, Combine combine) {
  float acc[64];
  for (int l = 0; l < 64; ++l) acc[l] = init;
  int64_t i = 0;
  for (; i + 64 <= n; i += 64)
    for (int l = 0; l < 64; ++l) acc[l] = combine(acc[l], value(i + l));
  for (int l = 0; l < 16; ++l) acc[l] = combine(combine(acc[l], acc[l + 16]), combine(acc[l + 32], acc[l + 48]));
  for (; i + 16 <= n; i += 16)
    for (int l = 0; l < 16; ++l) acc[l] = combine(acc[l], value(i + l));
  for (int w = 8; w >= 1; w /= 2)
    for (int l = 0; l < w; ++l) acc[l] = combine(acc[l], acc[l + w]);
  float r = acc[0];
  for (; i < n; ++i) r = combine(r, value(i));
  return r;
}

struct Plus {
  MOOD_INLINE float operator()(float a, float b) const { return a + b; }
};
struct Larger {
  MOOD_INLINE float operator()(float a, float b) const { return std::max(a, b); }
};

MOOD_INLINE float lane_sum(const float* x, int64_t n) {
  return lane_reduce(n, 0.f, [&](int64_t i) { return x[i]; }, Plus());
}

MOOD_INLINE float lane_dot(const float* x, const float* y, int64_t n) {
  return lane_reduce(n, 0.f, [&](int64_t i) { return x[i] * y[i]; }, Plus());
}

MOOD_INLINE float lane_max(const float* x, int64_t n) {
  return lane_reduce(n, -std::numeric_limits<float>::infinity(), [&](int64_t i) { return x[i]; }, Larger());
}

// LayerNorm over the C columns of R rows: out = (x - mean) * rstd * w + b, with the statistics of
// each row kept (rstd = 1 / sqrt(biased variance + eps), as torch.nn.LayerNorm).
MOOD_ROW_KERNEL void ln_forward(const float* x, int64_t R, int64_t C, const float* w, const float* b, float eps, float* out,
                                float* mean, float* rstd) {
  const float inv_c = 1.f / static_cast<float>(C);
  for (int64_t r = 0; r < R; ++r) {
    const float* xr = x + r * C;
    float* o = out + r * C;
    const float mu = lane_sum(xr, C) * inv_c;
    for (int64_t c = 0; c < C; ++c) o[c] = xr[c] - mu;
    const float rs = 1.f / std::sqrt(lane_dot(o, o, C) * inv_c + eps);
    for (int64_t c = 0; c < C; ++c) o[c] = o[c] * rs * w[c] + b[c];
    mean[r] = mu;
    rstd[r] = rs;
  }
}

// The LayerNorm output again from its input and statistics (for the weight gradient of the layer
// it feeds).
MOOD_ROW_KERNEL void ln_apply(const float* x, int64_t R, int64_t C, const float* mean, const float* rstd, const float* w,
                              const float* b, float* out) {
  for (int64_t r = 0; r < R; ++r) {
    const float* xr = x + r * C;
    float* o = out + r * C;
    const float mu = mean[r], rs = rstd[r];
    for (int64_t c = 0; c < C; ++c) o[c] = (xr[c] - mu) * rs * w[c] + b[c];
  }
}

// LayerNorm backward: dx += rstd * (g - mean(g) - xhat * mean(g * xhat)) with g = dout * w and
// xhat = (x - mean) * rstd; dw += dout * xhat, db += dout summed over rows (when given).
// `scratch` holds C floats.
MOOD_ROW_KERNEL void ln_backward(const float* dout, const float* x, int64_t R, int64_t C, const float* mean,
                                 const float* rstd, const float* w, float* dx, float* dw, float* db, float* scratch) {
  const float inv_c = 1.f / static_cast<float>(C);
  float* xhat = scratch;
  for (int64_t r = 0; r < R; ++r) {
    const float* d = dout + r * C;
    const float* xr = x + r * C;
    const float mu = mean[r], rs = rstd[r];
    for (int64_t c = 0; c < C; ++c) xhat[c] = (xr[c] - mu) * rs;
    const float m1 = lane_reduce(C, 0.f, [&](int64_t c) { return d[c] * w[c]; }, Plus()) * inv_c;
    const float m2 = lane_reduce(C, 0.f, [&](int64_t c) { return d[c] * w[c] * xhat[c]; }, Plus()) * inv_c;
    float* o = dx + r * C;
    for (int64_t c = 0; c < C; ++c) o[c] += rs * (d[c] * w[c] - m1 - xhat[c] * m2);
    if (dw)
      for (int64_t c = 0; c < C; ++c) dw[c] += d[c] * xhat[c];
    if (db)
      for (int64_t c = 0; c < C; ++c) db[c] += d[c];
  }
}

// y[r, 0:n] += v for R rows of stride ld.
MOOD_ROW_KERNEL void add_row_vector(float* y, int64_t R, int64_t n, int64_t ld, const float* v) {
  for (int64_t r = 0; r < R; ++r) {
    float* yr = y + r * ld;
    for (int64_t c = 0; c < n; ++c) yr[c] += v[c];
  }
}

// acc[0:n] += column sums of R rows of stride ld.
MOOD_ROW_KERNEL void add_column_sums(const float* d, int64_t R, int64_t n, int64_t ld, float* acc) {
  for (int64_t r = 0; r < R; ++r) {
    const float* dr = d + r * ld;
    for (int64_t c = 0; c < n; ++c) acc[c] += dr[c];
  }
}

// acc += a (n floats).
MOOD_ROW_KERNEL void add_into(float* acc, const float* a, int64_t n) {
  for (int64_t i = 0; i < n; ++i) acc[i] += a[i];
}

// A residual branch joining the stream, as the module computes it: y = base + t with
// t = gamma * (a + bias), a the branch's last projection before its bias; with drop path (the
// sample kept) t.div(keep) * 1 (timm's drop_path; dropped samples never get here). y may alias base.
MOOD_ROW_KERNEL void branch_join(float* y, const float* base, const float* a, int64_t R, int64_t C, const float* bias,
                                 const float* gamma, bool drop_path, float keep) {
  for (int64_t r = 0; r < R; ++r) {
    float* yr = y + r * C;
    const float* br = base + r * C;
    const float* ar = a + r * C;
    if (gamma && drop_path) {
      for (int64_t c = 0; c < C; ++c) yr[c] = br[c] + (gamma[c] * (ar[c] + bias[c])) / keep;
    } else if (gamma) {
      for (int64_t c = 0; c < C; ++c) yr[c] = br[c] + gamma[c] * (ar[c] + bias[c]);
    } else if (drop_path) {
      for (int64_t c = 0; c < C; ++c) yr[c] = br[c] + (ar[c] + bias[c]) / keep;
    } else {
      for (int64_t c = 0; c < C; ++c) yr[c] = br[c] + (ar[c] + bias[c]);
    }
  }
}

// Backward of branch_join for the branch: dt = dy (/ keep with drop path), da = dt * gamma (the
// gradient of a + bias), dgamma += dt * (a + bias) summed over rows (when given).
MOOD_ROW_KERNEL void branch_grad(const float* dy, const float* a, const float* bias, int64_t R, int64_t C,
                                 const float* gamma, bool drop_path, float keep, float* da, float* dgamma) {
  for (int64_t r = 0; r < R; ++r) {
    const float* d = dy + r * C;
    const float* ar = a + r * C;
    float* o = da + r * C;
    for (int64_t c = 0; c < C; ++c) {
      const float dt = drop_path ? d[c] / keep : d[c];
      o[c] = gamma ? dt * gamma[c] : dt;
      if (dgamma) dgamma[c] += dt * (ar[c] + bias[c]);
    }
  }
}

// ---- exp, GELU and softmax --------------------------------------------------------------------
// Branch-free, so that the clones vectorise them (libtorch's own kernels on a group's rows cost
// 0.62 ns per element for GELU, 0.87 for its backward and 1.8 for a 65-wide softmax, measured on
// Zen 4; these: 0.55 for GELU and its backward together with the bias add, 0.3-0.4 for softmax).

inline float float_from_bits(int32_t i) {
  float f;
  std::memcpy(&f, &i, sizeof f);
  return f;
}

// e^x, relative error within 1 ulp (measured max 6.4e-8 on [-10, 10]): x = n ln2 + r with
// |r| <= ln2 / 2 (Cody-Waite split of ln2), e^r by its degree-7 Taylor polynomial (truncation
// < 1e-8), times 2^n built in the exponent bits. Inputs below -87.3 give e^-87.3 (~1e-38) instead
// of a denormal or 0: far below anything they are added to here.
inline float exp_approx(float x) {
  x = std::min(std::max(x, -87.33654f), 88.72283f);
  const float n = (x * 1.44269504f + 12582912.f) - 12582912.f;  // round(x / ln2): 1.5 * 2^23 trick
  float r = x - n * 0.693145752f;
  r = r - n * 1.42860677e-06f;
  float p = 1.f / 5040.f;
  p = p * r + 1.f / 720.f;
  p = p * r + 1.f / 120.f;
  p = p * r + 1.f / 24.f;
  p = p * r + 1.f / 6.f;
  p = p * r + 0.5f;
  p = p * r + 1.f;
  p = p * r + 1.f;
  return p * float_from_bits((static_cast<int32_t>(n) + 127) << 23);
}

// The standard normal CDF and density at x (erf form, as torch's exact GELU): Phi(x) = (1 +
// erf(x / sqrt 2)) / 2 with erf by Abramowitz & Stegun 7.1.26 (absolute error < 1.5e-7, the formula
// libtorch's vectorised erf uses), whose exp(-x^2 / 2) also gives the density.
inline void normal_cdf_pdf(float x, float& cdf, float& pdf) {
  const float z = std::fabs(x) * 0.70710678f;
  const float t = 1.f / (1.f + 0.3275911f * z);
  float q = 1.061405429f;
  q = q * t - 1.453152027f;
  q = q * t + 1.421413741f;
  q = q * t - 0.284496736f;
  q = q * t + 0.254829592f;
  const float e = exp_approx(-z * z);
  const float erf_abs = 1.f - q * t * e;
  cdf = 0.5f * (1.f + (x < 0.f ? -erf_abs : erf_abs));
  pdf = 0.39894228f * e;
}

// h += bias (kept: the backward's input), act = GELU(h) = h Phi(h), over R rows of F.
MOOD_ROW_KERNEL void gelu_bias_forward(float* h, int64_t R, int64_t F, const float* bias, float* act) {
  for (int64_t r = 0; r < R; ++r) {
    float* hr = h + r * F;
    float* ar = act + r * F;
    for (int64_t c = 0; c < F; ++c) {
      const float x = hr[c] + bias[c];
      float cdf, pdf;
      normal_cdf_pdf(x, cdf, pdf);
      hr[c] = x;
      ar[c] = x * cdf;
    }
  }
}

// GELU's backward from its input h: dh = dact * (Phi(h) + h phi(h)) (dh may alias dact), and
// GELU(h) again into act when given (for the next layer's weight gradient).
MOOD_ROW_KERNEL void gelu_backward(const float* h, const float* dact, int64_t n, float* act, float* dh) {
  for (int64_t i = 0; i < n; ++i) {
    const float x = h[i];
    float cdf, pdf;
    normal_cdf_pdf(x, cdf, pdf);
    if (act) act[i] = x * cdf;
    dh[i] = dact[i] * (cdf + x * pdf);
  }
}

// Softmax of each of `rows` rows of n after adding `bias` (rows x n, or none), in place:
// p = e^(s - max) / sum.
MOOD_ROW_KERNEL void softmax_bias(float* s, int64_t rows, int64_t n, const float* bias) {
  for (int64_t r = 0; r < rows; ++r) {
    float* sr = s + r * n;
    if (bias)
      for (int64_t c = 0; c < n; ++c) sr[c] += bias[r * n + c];
    const float mx = lane_max(sr, n);
    for (int64_t c = 0; c < n; ++c) sr[c] = exp_approx(sr[c] - mx);
    const float inv = 1.f / lane_sum(sr, n);
    for (int64_t c = 0; c < n; ++c) sr[c] *= inv;
  }
}

// Softmax backward per row: ds = p * (dp - sum(dp * p)).
MOOD_ROW_KERNEL void softmax_backward(const float* dp, const float* p, int64_t rows, int64_t n, float* ds) {
  for (int64_t r = 0; r < rows; ++r) {
    const float* d = dp + r * n;
    const float* pr = p + r * n;
    const float dot = lane_dot(d, pr, n);
    float* o = ds + r * n;
    for (int64_t c = 0; c < n; ++c) o[c] = pr[c] * (d[c] - dot);
  }
}

// ---- geometry, weights, buffers ---------------------------------------------------------------

struct Geometry {
  int64_t B, N, C, H, d, F;
  float scale;
  // Samples per row block: ~256 rows (a 65-token model: 3 samples, 195 rows) keep a block's
  // activations (qkv 3C, MLP hidden F, a few C-wide rows) within a core's L2 for C up to ~200.
  // (Eval of the tiny BEiT on one thread, 65-1040 rows: within 5 %, best near 195.)
  int64_t per_block() const { return std::max<int64_t>(1, kRows / N); }
  static constexpr int64_t kRows = 256;
};

const float* ptr_or_null(const at::Tensor& t) { return t.defined() && t.numel() > 0 ? t.data_ptr<float>() : nullptr; }

struct Weights {
  const float *ln1w, *ln1b, *qkvw, *qb, *vb, *projw, *projb, *g1, *ln2w, *ln2b, *fc1w, *fc1b, *fc2w, *fc2b, *g2, *bias;
  float eps1, eps2;
  // The forward's weights transposed ([in, out]): x W^T as a no-transpose gemm ran 10-15 % faster
  // in dnnl on this block's shapes (measured on Zen 4, rows 130-520). Set by the forward only.
  const float *qkvt = nullptr, *projt = nullptr, *fc1t = nullptr, *fc2t = nullptr;
};

// Transposed copies of the four projection weights, owning what Weights' *t pointers see.
struct TransposedWeights {
  at::Tensor qkv, proj, fc1, fc2;
  explicit TransposedWeights(const BlockCpuParams& p)
      : qkv(p.qkv_w.t().contiguous()), proj(p.proj_w.t().contiguous()), fc1(p.fc1_w.t().contiguous()), fc2(p.fc2_w.t().contiguous()) {}
  void point(Weights& w) const {
    w.qkvt = qkv.data_ptr<float>();
    w.projt = proj.data_ptr<float>();
    w.fc1t = fc1.data_ptr<float>();
    w.fc2t = fc2.data_ptr<float>();
  }
};

// The branches' drop path: per-sample masks (null: every sample kept, no scaling).
struct Paths {
  const float *mask1 = nullptr, *mask2 = nullptr;
  float keep1 = 1.f, keep2 = 1.f;
};

// What the backward reads, in compact row order: branch-1 buffers hold the samples branch 1 kept,
// branch-2 buffers those branch 2 kept (slot = rank among the kept samples); y1 holds every sample.
struct Saved {
  float *qkv, *probs, *ao, *a, *mean1, *rstd1;
  float* y1;
  float *h, *m, *mean2, *rstd2;
};

// Per-thread scratch that outlives calls (the intra-op threads persist): no allocation per block.
class Arena {
 public:
  float* take(int64_t n) {
    const int64_t aligned = (n + 15) / 16 * 16;
    if (used_ + aligned > cap_) throw std::logic_error("block_cpu: scratch arena overflow");
    float* p = base_ + used_;
    used_ += aligned;
    return p;
  }
  void reset(int64_t floats) {
    used_ = 0;
    if (floats <= cap_) return;
    mem_.reset(static_cast<float*>(std::aligned_alloc(64, static_cast<size_t>(floats) * sizeof(float))));
    if (!mem_) throw std::bad_alloc();
    base_ = mem_.get();
    cap_ = floats;
  }

 private:
  struct Free {
    void operator()(float* p) const { std::free(p); }
  };
  std::unique_ptr<float, Free> mem_;
  float* base_ = nullptr;
  int64_t cap_ = 0, used_ = 0;
};

Arena& thread_arena() {
  thread_local Arena a;
  return a;
}

// Floats of scratch one thread needs for a group: the most of the four passes over it (forward
// branch 1 / 2, backward branch 2 / 1), plus the padding of up to 32 take()s.
int64_t arena_floats(const Geometry& g) {
  const int64_t n = g.per_block(), R = n * g.N, RC = R * g.C, RF = R * g.F, P = n * g.H * g.N * g.N;
  const int64_t passes[] = {7 * RC + P + 2 * R, 3 * RC + 2 * RF + 2 * R, 6 * RC + 2 * RF + g.C, 9 * RC + 2 * P + g.C};
  return *std::max_element(std::begin(passes), std::end(passes)) + 32 * 16;
}

// The kept samples of [s0, s1) in groups of at most `per` for f(samples, count, first_slot); slots
// count kept samples from `slot0`.
template <typename F>
void for_groups(int64_t s0, int64_t s1, const float* mask, int64_t per, int64_t slot0, std::vector<int64_t>& buf, F&& f) {
  buf.clear();
  int64_t slot = slot0;
  for (int64_t s = s0; s < s1; ++s) {
    if (mask && mask[s] == 0.f) continue;
    buf.push_back(s);
    if (static_cast<int64_t>(buf.size()) == per) {
      f(buf.data(), per, slot);
      slot += per;
      buf.clear();
    }
  }
  if (!buf.empty()) f(buf.data(), static_cast<int64_t>(buf.size()), slot);
}

bool consecutive(const int64_t* s, int64_t n) { return s[n - 1] - s[0] == n - 1; }

// The rows of samples s[0..n) of a [B * N, C] buffer: a pointer into it when they are consecutive,
// else a copy in `scratch`.
const float* gather(const float* full, const int64_t* s, int64_t n, int64_t rows_per, int64_t C, float* scratch) {
  if (consecutive(s, n)) return full + s[0] * rows_per * C;
  for (int64_t i = 0; i < n; ++i) std::memcpy(scratch + i * rows_per * C, full + s[i] * rows_per * C, sizeof(float) * rows_per * C);
  return scratch;
}

// Writes rows gathered by gather() back (no-op when they were read in place).
void scatter(float* full, const int64_t* s, int64_t n, int64_t rows_per, int64_t C, const float* rows) {
  if (consecutive(s, n)) return;
  for (int64_t i = 0; i < n; ++i) std::memcpy(full + s[i] * rows_per * C, rows + i * rows_per * C, sizeof(float) * rows_per * C);
}

// ---- forward ----------------------------------------------------------------------------------

// Where a group's intermediate goes: its slot in a saved buffer when training, else scratch.
float* saved_or_scratch(Saved* sv, float* Saved::*buf, int64_t offset, int64_t n, Arena& ar) {
  return sv ? sv->*buf + offset : ar.take(n);
}

// out = LayerNorm(x) W^T (Wt = W^T, [C, O]; the layer's bias is the caller's), the LayerNorm's
// statistics kept in mean / rstd.
void norm_linear_forward(const float* x, int64_t R, int64_t C, int64_t O, const float* Wt, const float* lnw, const float* lnb,
                         float eps, float* mean, float* rstd, float* out, Arena& ar) {
  float* xn = ar.take(R * C);
  ln_forward(x, R, C, lnw, lnb, eps, xn, mean, rstd);
  sgemm(GemmSize::kLarge, false, false, R, O, C, 1.f, xn, C, Wt, O, 0.f, out, O);
}

// The attention branch for one group of samples: LayerNorm, qkv, attention, projection. Writes
// qkv / probs / ao / a (to `sv` slots when training, else scratch) and returns a (the projection
// before its bias).
float* attention_branch(const Geometry& g, const Weights& w, const float* xin, int64_t n, int64_t slot, Saved* sv, Arena& ar) {
  const int64_t R = n * g.N, C = g.C, C3 = 3 * g.C, NN = g.N * g.N;
  float* qkv = saved_or_scratch(sv, &Saved::qkv, slot * g.N * C3, R * C3, ar);
  norm_linear_forward(xin, R, C, C3, w.qkvt, w.ln1w, w.ln1b, w.eps1, saved_or_scratch(sv, &Saved::mean1, slot * g.N, R, ar),
                      saved_or_scratch(sv, &Saved::rstd1, slot * g.N, R, ar), qkv, ar);
  if (w.qb) {
    add_row_vector(qkv, R, C, C3, w.qb);
    add_row_vector(qkv + 2 * C, R, C, C3, w.vb);
  }
  float* probs = saved_or_scratch(sv, &Saved::probs, slot * g.H * NN, n * g.H * NN, ar);
  for (int64_t i = 0; i < n; ++i)
    for (int64_t h = 0; h < g.H; ++h) {
      const float* q = qkv + i * g.N * C3 + h * g.d;
      float* s = probs + (i * g.H + h) * NN;
      sgemm(GemmSize::kSmall, false, true, g.N, g.N, g.d, g.scale, q, C3, q + C, C3, 0.f, s, g.N);  // scale q k^T
      softmax_bias(s, g.N, g.N, w.bias ? w.bias + h * NN : nullptr);
    }
  float* ao = saved_or_scratch(sv, &Saved::ao, slot * g.N * C, R * C, ar);
  for (int64_t i = 0; i < n; ++i)
    for (int64_t h = 0; h < g.H; ++h)
      sgemm(GemmSize::kSmall, false, false, g.N, g.d, g.N, 1.f, probs + (i * g.H + h) * NN, g.N,
            qkv + i * g.N * C3 + 2 * C + h * g.d, C3, 0.f, ao + i * g.N * C + h * g.d, C);
  float* a = saved_or_scratch(sv, &Saved::a, slot * g.N * C, R * C, ar);
  sgemm(GemmSize::kLarge, false, false, R, C, C, 1.f, ao, C, w.projt, C, 0.f, a, C);  // bias: in branch_join
  return a;
}

// The MLP branch for one group: LayerNorm, fc1, GELU, fc2. Returns m (fc2's output before its bias).
float* mlp_branch(const Geometry& g, const Weights& w, const float* yin, int64_t n, int64_t slot, Saved* sv, Arena& ar) {
  const int64_t R = n * g.N, C = g.C, F = g.F;
  float* h = saved_or_scratch(sv, &Saved::h, slot * g.N * F, R * F, ar);
  norm_linear_forward(yin, R, C, F, w.fc1t, w.ln2w, w.ln2b, w.eps2, saved_or_scratch(sv, &Saved::mean2, slot * g.N, R, ar),
                      saved_or_scratch(sv, &Saved::rstd2, slot * g.N, R, ar), h, ar);
  float* act = ar.take(R * F);
  gelu_bias_forward(h, R, F, w.fc1b, act);
  float* m = saved_or_scratch(sv, &Saved::m, slot * g.N * C, R * C, ar);
  sgemm(GemmSize::kLarge, false, false, R, C, F, 1.f, act, F, w.fc2t, C, 0.f, m, C);  // bias: in branch_join
  return m;
}

// out = in + branch(in) for the samples of [s0, s1) that `mask` keeps (the others: out = in), a
// group of samples at a time; branch(rows, n, slot) returns the branch's projection before its bias.
template <typename Branch>
void residual_branch(const Geometry& g, const float* in, float* out, const float* mask, float keep, const float* bias,
                     const float* gamma, int64_t s0, int64_t s1, int64_t slot0, Arena& ar, Branch&& branch) {
  const int64_t rows = g.N * g.C;  // floats per sample
  if (mask && out != in)
    for (int64_t s = s0; s < s1; ++s)
      if (mask[s] == 0.f) std::memcpy(out + s * rows, in + s * rows, sizeof(float) * rows);
  std::vector<int64_t> grp;
  grp.reserve(static_cast<size_t>(g.per_block()));
  for_groups(s0, s1, mask, g.per_block(), slot0, grp, [&](const int64_t* s, int64_t n, int64_t slot) {
    ar.reset(arena_floats(g));
    const float* a = branch(gather(in, s, n, g.N, g.C, ar.take(n * rows)), n, slot);
    for (int64_t i = 0; i < n; ++i)
      branch_join(out + s[i] * rows, in + s[i] * rows, a + i * rows, g.N, g.C, bias, gamma, mask != nullptr, keep);
  });
}

// One thread's samples [s0, s1) through the block: y = y1 + branch2(y1), y1 = x + branch1(x).
// Eval: y1 lives in y. slot1 / slot2: the compact slots of the range's first kept samples.
void forward_range(const Geometry& g, const Weights& w, const Paths& p, const float* x, float* y, Saved* sv, int64_t s0,
                   int64_t s1, int64_t slot1, int64_t slot2) {
  Arena& ar = thread_arena();
  float* y1 = sv ? sv->y1 : y;
  residual_branch(g, x, y1, p.mask1, p.keep1, w.projb, w.g1, s0, s1, slot1, ar,
                  [&](const float* in, int64_t n, int64_t slot) { return attention_branch(g, w, in, n, slot, sv, ar); });
  residual_branch(g, y1, y, p.mask2, p.keep2, w.fc2b, w.g2, s0, s1, slot2, ar,
                  [&](const float* in, int64_t n, int64_t slot) { return mlp_branch(g, w, in, n, slot, sv, ar); });
}

// Eval with mean pooling, the model's last block: only the mean of its output over tokens 1..N-1
// is wanted, and mean_t(y1 + gamma * (GELU(h_t) W^T + b)) = mean_t(y1) + gamma * (mean_t(GELU(h_t)) W^T
// + b): fc2 runs on one row per sample instead of N (a sixth of the tiny BEiT's forward gemms).
void pooled_range(const Geometry& g, const Weights& w, const float* x, float* y1, float* pooled, int64_t s0, int64_t s1) {
  Arena& ar = thread_arena();
  residual_branch(g, x, y1, nullptr, 1.f, w.projb, w.g1, s0, s1, 0, ar,
                  [&](const float* in, int64_t n, int64_t slot) { return attention_branch(g, w, in, n, slot, nullptr, ar); });
  const int64_t rows = g.N * g.C, C = g.C, F = g.F, T = g.N - 1;
  std::vector<int64_t> grp;
  for_groups(s0, s1, nullptr, g.per_block(), 0, grp, [&](const int64_t* s, int64_t n, int64_t) {
    ar.reset(arena_floats(g));
    const int64_t R = n * g.N;
    const float* yin = y1 + s[0] * rows;  // no drop path: groups are consecutive samples
    float* h = ar.take(R * F);
    norm_linear_forward(yin, R, C, F, w.fc1t, w.ln2w, w.ln2b, w.eps2, ar.take(R), ar.take(R), h, ar);
    float* act = ar.take(R * F);
    gelu_bias_forward(h, R, F, w.fc1b, act);
    float* mean_act = ar.take(n * F);
    float* mean_y1 = ar.take(n * C);
    for (int64_t i = 0; i < n; ++i) {
      std::fill(mean_act + i * F, mean_act + (i + 1) * F, 0.f);
      std::fill(mean_y1 + i * C, mean_y1 + (i + 1) * C, 0.f);
      add_column_sums(act + (i * g.N + 1) * F, T, F, F, mean_act + i * F);
      add_column_sums(yin + (i * g.N + 1) * C, T, C, C, mean_y1 + i * C);
    }
    for (int64_t j = 0; j < n * F; ++j) mean_act[j] /= static_cast<float>(T);
    for (int64_t j = 0; j < n * C; ++j) mean_y1[j] /= static_cast<float>(T);
    float* m = ar.take(n * C);
    sgemm(GemmSize::kLarge, false, false, n, C, F, 1.f, mean_act, F, w.fc2t, C, 0.f, m, C);
    for (int64_t i = 0; i < n; ++i) branch_join(pooled + s[i] * C, mean_y1 + i * C, m + i * C, 1, C, w.fc2b, w.g2, false, 1.f);
  });
}

// ---- backward ---------------------------------------------------------------------------------

// One thread's gradient sums (null where no gradient is wanted), laid out like the parameters.
struct Grads {
  float *ln1w = nullptr, *ln1b = nullptr, *qkvw = nullptr, *qb = nullptr, *vb = nullptr, *bias = nullptr, *projw = nullptr,
        *projb = nullptr, *g1 = nullptr, *ln2w = nullptr, *ln2b = nullptr, *fc1w = nullptr, *fc1b = nullptr,
        *fc2w = nullptr, *fc2b = nullptr, *g2 = nullptr;
};

// Backward through out = LayerNorm(x) W^T (W [O, C]; the layer's bias is the caller's): dW +=
// dout^T LayerNorm(x) (recomputed from x and the saved statistics; when wanted), dx += the
// LayerNorm's backward of dout W.
void norm_linear_backward(const float* dout, int64_t R, int64_t C, int64_t O, const float* W, const float* x,
                          const float* mean, const float* rstd, const float* lnw, const float* lnb, float* dW, float* dx,
                          float* dlnw, float* dlnb, Arena& ar) {
  if (dW) {
    float* xn = ar.take(R * C);
    ln_apply(x, R, C, mean, rstd, lnw, lnb, xn);
    sgemm(GemmSize::kLarge, true, false, O, C, R, 1.f, dout, O, xn, C, 1.f, dW, C);
  }
  float* dxn = ar.take(R * C);
  sgemm(GemmSize::kLarge, false, false, R, C, O, 1.f, dout, O, W, C, 0.f, dxn, C);
  ln_backward(dxn, x, R, C, mean, rstd, lnw, dx, dlnw, dlnb, ar.take(C));
}

// Backward of a branch's join (y = base + gamma * (a + bias), drop path) for the branch: returns
// d(a + bias) and adds the gradients of gamma and bias (when wanted).
float* branch_join_backward(const float* dy, const float* a, int64_t R, int64_t C, const float* bias, const float* gamma,
                            bool drop_path, float keep, float* dbias, float* dgamma, Arena& ar) {
  float* da = ar.take(R * C);
  branch_grad(dy, a, bias, R, C, gamma, drop_path, keep, da, dgamma);
  if (dbias) add_column_sums(da, R, C, C, dbias);
  return da;
}

// The MLP branch's backward for one group: adds its contribution to dy1 (rows `dy1`, gathered).
void mlp_branch_backward(const Geometry& g, const Weights& w, const Paths& p, const Saved& sv, const float* dy,
                         const float* y1in, float* dy1, int64_t n, int64_t slot, const Grads& gr, Arena& ar) {
  const int64_t R = n * g.N, C = g.C, F = g.F;
  const float* h = sv.h + slot * g.N * F;
  // dact first (it needs only the saved m), then GELU(h) again (in cache, instead of saving it) for
  // fc2's weight gradient, in the same pass as GELU's backward.
  const float* da = branch_join_backward(dy, sv.m + slot * g.N * C, R, C, w.fc2b, w.g2, p.mask2 != nullptr, p.keep2, gr.fc2b,
                                        gr.g2, ar);
  float* dh = ar.take(R * F);
  sgemm(GemmSize::kLarge, false, false, R, F, C, 1.f, da, C, w.fc2w, F, 0.f, dh, F);  // dact
  float* act = gr.fc2w ? ar.take(R * F) : nullptr;
  gelu_backward(h, dh, R * F, act, dh);
  if (gr.fc2w) sgemm(GemmSize::kLarge, true, false, C, F, R, 1.f, da, C, act, F, 1.f, gr.fc2w, F);
  if (gr.fc1b) add_column_sums(dh, R, F, F, gr.fc1b);
  norm_linear_backward(dh, R, C, F, w.fc1w, y1in, sv.mean2 + slot * g.N, sv.rstd2 + slot * g.N, w.ln2w, w.ln2b, gr.fc1w,
                       dy1, gr.ln2w, gr.ln2b, ar);
}

// The attention branch's backward for one group: adds its contribution to dx (rows `dx`, gathered,
// holding dy1 on entry).
void attention_branch_backward(const Geometry& g, const Weights& w, const Paths& p, const Saved& sv, const float* xin,
                               float* dx, int64_t n, int64_t slot, const Grads& gr, Arena& ar) {
  const int64_t R = n * g.N, C = g.C, C3 = 3 * g.C, NN = g.N * g.N;
  const float* qkv = sv.qkv + slot * g.N * C3;
  const float* probs = sv.probs + slot * g.H * NN;
  const float* ao = sv.ao + slot * g.N * C;
  const float* da = branch_join_backward(dx, sv.a + slot * g.N * C, R, C, w.projb, w.g1, p.mask1 != nullptr, p.keep1, gr.projb,
                                        gr.g1, ar);
  if (gr.projw) sgemm(GemmSize::kLarge, true, false, C, C, R, 1.f, da, C, ao, C, 1.f, gr.projw, C);
  float* dao = ar.take(R * C);
  sgemm(GemmSize::kLarge, false, false, R, C, C, 1.f, da, C, w.projw, C, 0.f, dao, C);
  float* dqkv = ar.take(R * C3);
  float* dp = ar.take(n * g.H * NN);
  float* ds = ar.take(n * g.H * NN);
  for (int64_t i = 0; i < n; ++i)
    for (int64_t h = 0; h < g.H; ++h) {
      const float* dout = dao + i * g.N * C + h * g.d;
      const float* v = qkv + i * g.N * C3 + 2 * C + h * g.d;
      const float* pr = probs + (i * g.H + h) * NN;
      sgemm(GemmSize::kSmall, false, true, g.N, g.N, g.d, 1.f, dout, C, v, C3, 0.f, dp + (i * g.H + h) * NN, g.N);  // dP = dO V^T
      sgemm(GemmSize::kSmall, true, false, g.N, g.d, g.N, 1.f, pr, g.N, dout, C, 0.f, dqkv + i * g.N * C3 + 2 * C + h * g.d, C3);  // dV = P^T dO
    }
  softmax_backward(dp, probs, n * g.H * g.N, g.N, ds);
  for (int64_t i = 0; i < n; ++i)
    for (int64_t h = 0; h < g.H; ++h) {
      const float* s = ds + (i * g.H + h) * NN;
      const float* q = qkv + i * g.N * C3 + h * g.d;
      if (gr.bias) add_into(gr.bias + h * NN, s, NN);
      sgemm(GemmSize::kSmall, false, false, g.N, g.d, g.N, g.scale, s, g.N, q + C, C3, 0.f, dqkv + i * g.N * C3 + h * g.d, C3);  // dQ = scale dS K
      sgemm(GemmSize::kSmall, true, false, g.N, g.d, g.N, g.scale, s, g.N, q, C3, 0.f, dqkv + i * g.N * C3 + C + h * g.d, C3);   // dK = scale dS^T Q
    }
  if (gr.qb) add_column_sums(dqkv, R, C, C3, gr.qb);
  if (gr.vb) add_column_sums(dqkv + 2 * C, R, C, C3, gr.vb);
  norm_linear_backward(dqkv, R, C, C3, w.qkvw, xin, sv.mean1 + slot * g.N, sv.rstd1 + slot * g.N, w.ln1w, w.ln1b, gr.qkvw, dx,
                       gr.ln1w, gr.ln1b, ar);
}

// One thread's samples back through the block: dx = dy1 + (branch 1)'(dy1), dy1 = dy + (branch 2)'(dy).
void backward_range(const Geometry& g, const Weights& w, const Paths& p, const Saved& sv, const float* x, const float* dy,
                    float* dx, const Grads& gr, int64_t s0, int64_t s1, int64_t slot1, int64_t slot2) {
  Arena& ar = thread_arena();
  const int64_t rows = g.N * g.C;
  std::memcpy(dx + s0 * rows, dy + s0 * rows, sizeof(float) * rows * (s1 - s0));  // dy1 starts as dy
  std::vector<int64_t> grp;
  grp.reserve(static_cast<size_t>(g.per_block()));
  for_groups(s0, s1, p.mask2, g.per_block(), slot2, grp, [&](const int64_t* s, int64_t n, int64_t slot) {
    ar.reset(arena_floats(g));
    const float* dyin = gather(dy, s, n, g.N, g.C, ar.take(n * rows));
    const float* y1in = gather(sv.y1, s, n, g.N, g.C, ar.take(n * rows));
    float* dy1 = const_cast<float*>(gather(dx, s, n, g.N, g.C, ar.take(n * rows)));
    mlp_branch_backward(g, w, p, sv, dyin, y1in, dy1, n, slot, gr, ar);
    scatter(dx, s, n, g.N, g.C, dy1);
  });
  for_groups(s0, s1, p.mask1, g.per_block(), slot1, grp, [&](const int64_t* s, int64_t n, int64_t slot) {
    ar.reset(arena_floats(g));
    const float* xin = gather(x, s, n, g.N, g.C, ar.take(n * rows));
    float* d = const_cast<float*>(gather(dx, s, n, g.N, g.C, ar.take(n * rows)));
    attention_branch_backward(g, w, p, sv, xin, d, n, slot, gr, ar);
    scatter(dx, s, n, g.N, g.C, d);
  });
}

// ---- threads ----------------------------------------------------------------------------------

// Contiguous sample ranges, one per thread, and where each range's kept samples start in the
// compact buffers of each branch.
struct Split {
  std::vector<int64_t> begin, slot1, slot2;  // size T + 1
  int64_t threads() const { return static_cast<int64_t>(begin.size()) - 1; }
  int64_t kept1() const { return slot1.back(); }
  int64_t kept2() const { return slot2.back(); }
};

Split split_batch(int64_t B, int64_t T, const Paths& p) {
  T = std::max<int64_t>(1, std::min(T, B));
  Split sp;
  sp.begin.resize(T + 1);
  sp.slot1.assign(T + 1, 0);
  sp.slot2.assign(T + 1, 0);
  for (int64_t t = 0; t <= T; ++t) sp.begin[t] = B * t / T;
  for (int64_t t = 0; t < T; ++t) {
    int64_t k1 = 0, k2 = 0;
    for (int64_t s = sp.begin[t]; s < sp.begin[t + 1]; ++s) {
      k1 += !p.mask1 || p.mask1[s] != 0.f;
      k2 += !p.mask2 || p.mask2[s] != 0.f;
    }
    sp.slot1[t + 1] = sp.slot1[t] + k1;
    sp.slot2[t + 1] = sp.slot2[t] + k2;
  }
  return sp;
}

// f(t) for every thread's range on libtorch's intra-op threads, each gemm single-threaded.
template <typename F>
void run_ranges(const Split& sp, F&& f) {
  const bool inference = c10::InferenceMode::is_enabled();
  BlasSingleThreadScope blas;
  parallel_items_aten(sp.threads(), 1, [&](int64_t t) {
    AtenTaskState state(inference);
    f(t);
  });
}

Geometry geometry_of(const at::Tensor& x, const BlockCpuParams& p, int64_t heads, double scale) {
  Geometry g;
  g.B = x.size(0);
  g.N = x.size(1);
  g.C = x.size(2);
  g.H = heads;
  g.d = g.C / heads;
  g.F = p.fc1_w.size(0);
  g.scale = static_cast<float>(scale);
  return g;
}

Weights weights_of(const BlockCpuParams& p, const at::Tensor& bias) {
  return {p.norm1_w.data_ptr<float>(), p.norm1_b.data_ptr<float>(), p.qkv_w.data_ptr<float>(), ptr_or_null(p.q_bias),
          ptr_or_null(p.v_bias),       p.proj_w.data_ptr<float>(),  p.proj_b.data_ptr<float>(), ptr_or_null(p.gamma_1),
          p.norm2_w.data_ptr<float>(), p.norm2_b.data_ptr<float>(), p.fc1_w.data_ptr<float>(),  p.fc1_b.data_ptr<float>(),
          p.fc2_w.data_ptr<float>(),   p.fc2_b.data_ptr<float>(),   ptr_or_null(p.gamma_2),     ptr_or_null(bias),
          static_cast<float>(p.eps1),  static_cast<float>(p.eps2)};
}

Paths paths_of(const at::Tensor& mask1, double keep1, const at::Tensor& mask2, double keep2) {
  Paths p;
  p.mask1 = ptr_or_null(mask1);
  p.mask2 = ptr_or_null(mask2);
  p.keep1 = static_cast<float>(keep1);
  p.keep2 = static_cast<float>(keep2);
  return p;
}

std::vector<at::Tensor> param_list(const BlockCpuParams& p) {
  return {p.norm1_w, p.norm1_b, p.qkv_w, p.q_bias, p.v_bias, p.proj_w, p.proj_b, p.gamma_1,
          p.norm2_w, p.norm2_b, p.fc1_w, p.fc1_b, p.fc2_w, p.fc2_b, p.gamma_2};
}
constexpr int kParams = 15;

BlockCpuParams params_from(const std::vector<at::Tensor>& v, double eps1, double eps2) {
  BlockCpuParams p;
  p.norm1_w = v[0], p.norm1_b = v[1], p.qkv_w = v[2], p.q_bias = v[3], p.v_bias = v[4], p.proj_w = v[5], p.proj_b = v[6];
  p.gamma_1 = v[7], p.norm2_w = v[8], p.norm2_b = v[9], p.fc1_w = v[10], p.fc1_b = v[11], p.fc2_w = v[12], p.fc2_b = v[13];
  p.gamma_2 = v[14];
  p.eps1 = eps1;
  p.eps2 = eps2;
  return p;
}

// No autograd: the output only (y1 lives in y; with drop path too, samples a branch dropped keep
// their rows).
at::Tensor forward_only(const at::Tensor& x, const BlockCpuParams& prm, const at::Tensor& bias, int64_t heads, double scale,
                        const Paths& p) {
  const Geometry g = geometry_of(x, prm, heads, scale);
  Weights w = weights_of(prm, bias);
  const TransposedWeights wt(prm);
  wt.point(w);
  at::Tensor y = at::empty_like(x);
  Split sp = split_batch(g.B, at::get_num_threads(), p);
  const float* xp = x.data_ptr<float>();
  float* yp = y.data_ptr<float>();
  run_ranges(sp, [&](int64_t t) { forward_range(g, w, p, xp, yp, nullptr, sp.begin[t], sp.begin[t + 1], 0, 0); });
  return y;
}

struct BlockCpuFunction : public torch::autograd::Function<BlockCpuFunction> {
  static at::Tensor forward(torch::autograd::AutogradContext* ctx, const at::Tensor& x, at::TensorList params,
                            const at::Tensor& bias, const at::Tensor& mask1, const at::Tensor& mask2, int64_t heads,
                            double scale, double keep1, double keep2, double eps1, double eps2) {
    const at::Tensor xd = x.detach();
    std::vector<at::Tensor> pv;
    for (const auto& t : params) pv.push_back(t.detach());
    const BlockCpuParams prm = params_from(pv, eps1, eps2);
    const at::Tensor bd = bias.numel() > 0 ? bias.detach() : at::Tensor();
    const Paths p = paths_of(mask1, keep1, mask2, keep2);
    const Geometry g = geometry_of(xd, prm, heads, scale);
    Weights w = weights_of(prm, bd);
    const TransposedWeights wt(prm);
    wt.point(w);
    const Split sp = split_batch(g.B, at::get_num_threads(), p);
    const auto f = xd.options();
    const int64_t K1 = sp.kept1() * g.N, K2 = sp.kept2() * g.N;
    at::Tensor qkv = at::empty({K1, 3 * g.C}, f), probs = at::empty({sp.kept1(), g.H, g.N, g.N}, f),
               ao = at::empty({K1, g.C}, f), a = at::empty({K1, g.C}, f), st1 = at::empty({2, K1}, f),
               y1 = at::empty_like(xd), h = at::empty({K2, g.F}, f), m = at::empty({K2, g.C}, f), st2 = at::empty({2, K2}, f);
    Saved sv{qkv.data_ptr<float>(), probs.data_ptr<float>(), ao.data_ptr<float>(), a.data_ptr<float>(), st1.data_ptr<float>(),
             st1.data_ptr<float>() + K1, y1.data_ptr<float>(), h.data_ptr<float>(), m.data_ptr<float>(),
             st2.data_ptr<float>(), st2.data_ptr<float>() + K2};
    at::Tensor y = at::empty_like(xd);
    const float* xp = xd.data_ptr<float>();
    float* yp = y.data_ptr<float>();
    run_ranges(sp, [&](int64_t t) { forward_range(g, w, p, xp, yp, &sv, sp.begin[t], sp.begin[t + 1], sp.slot1[t], sp.slot2[t]); });

    std::vector<at::Tensor> keep{x};
    for (const auto& t : params) keep.push_back(t);
    keep.push_back(bias);
    ctx->save_for_backward(keep);
    for (auto& kv : std::vector<std::pair<const char*, at::Tensor>>{{"qkv", qkv}, {"probs", probs}, {"ao", ao}, {"a", a}, {"st1", st1}, {"y1", y1},
                                                                    {"h", h}, {"m", m}, {"st2", st2}, {"mask1", mask1}, {"mask2", mask2}})
      ctx->saved_data[kv.first] = kv.second;
    ctx->saved_data["heads"] = heads;
    ctx->saved_data["scale"] = scale;
    ctx->saved_data["keep1"] = keep1;
    ctx->saved_data["keep2"] = keep2;
    ctx->saved_data["eps1"] = eps1;
    ctx->saved_data["eps2"] = eps2;
    return y;
  }

  static torch::autograd::variable_list backward(torch::autograd::AutogradContext* ctx, torch::autograd::variable_list grads) {
    const auto saved = ctx->get_saved_variables();
    const at::Tensor x = saved[0].detach();
    std::vector<at::Tensor> pv;
    for (int i = 0; i < kParams; ++i) pv.push_back(saved[1 + i].detach());
    const at::Tensor bias = saved[1 + kParams].detach();
    auto T = [&](const char* k) { return ctx->saved_data[k].toTensor(); };
    const at::Tensor mask1 = T("mask1"), mask2 = T("mask2"), st1 = T("st1"), st2 = T("st2");
    const int64_t heads = ctx->saved_data["heads"].toInt();
    const BlockCpuParams prm = params_from(pv, ctx->saved_data["eps1"].toDouble(), ctx->saved_data["eps2"].toDouble());
    const at::Tensor bd = bias.numel() > 0 ? bias : at::Tensor();
    const Paths p = paths_of(mask1, ctx->saved_data["keep1"].toDouble(), mask2, ctx->saved_data["keep2"].toDouble());
    const Geometry g = geometry_of(x, prm, heads, ctx->saved_data["scale"].toDouble());
    const Weights w = weights_of(prm, bd);
    const Split sp = split_batch(g.B, at::get_num_threads(), p);
    const int64_t K1 = sp.kept1() * g.N, K2 = sp.kept2() * g.N;
    const Saved sv{T("qkv").data_ptr<float>(), T("probs").data_ptr<float>(), T("ao").data_ptr<float>(), T("a").data_ptr<float>(),
                   st1.data_ptr<float>(), st1.data_ptr<float>() + K1, T("y1").data_ptr<float>(), T("h").data_ptr<float>(),
                   T("m").data_ptr<float>(), st2.data_ptr<float>(), st2.data_ptr<float>() + K2};

    // Which gradients are wanted: inputs are x, the 15 parameters, bias, then masks and scalars.
    std::vector<at::Tensor> pl = param_list(prm);
    pl.push_back(bd);
    const int n = kParams + 1;
    std::vector<bool> want(n);
    for (int i = 0; i < n; ++i) want[i] = pl[i].defined() && pl[i].numel() > 0 && ctx->needs_input_grad(1 + i);
    // Thread 0 sums into the gradients themselves, the others into their own zeroed buffers.
    const int64_t Tn = sp.threads();
    std::vector<at::Tensor> out(n);
    std::vector<std::vector<at::Tensor>> extra(Tn > 1 ? Tn - 1 : 0, std::vector<at::Tensor>(n));
    for (int i = 0; i < n; ++i) {
      if (!want[i]) continue;
      out[i] = at::zeros_like(pl[i], at::MemoryFormat::Contiguous);
      for (auto& e : extra) e[i] = at::zeros_like(pl[i], at::MemoryFormat::Contiguous);
    }
    auto grads_of = [&](int64_t t) {
      const std::vector<at::Tensor>& v = t == 0 ? out : extra[t - 1];
      auto q = [&](int i) { return v[i].defined() ? v[i].data_ptr<float>() : nullptr; };
      Grads r;
      r.ln1w = q(0), r.ln1b = q(1), r.qkvw = q(2), r.qb = q(3), r.vb = q(4), r.projw = q(5), r.projb = q(6), r.g1 = q(7);
      r.ln2w = q(8), r.ln2b = q(9), r.fc1w = q(10), r.fc1b = q(11), r.fc2w = q(12), r.fc2b = q(13), r.g2 = q(14), r.bias = q(15);
      return r;
    };
    const at::Tensor dy = grads[0].detach().contiguous();
    at::Tensor dx = at::empty_like(x);
    const float* xp = x.data_ptr<float>();
    const float* dyp = dy.data_ptr<float>();
    float* dxp = dx.data_ptr<float>();
    run_ranges(sp, [&](int64_t t) {
      backward_range(g, w, p, sv, xp, dyp, dxp, grads_of(t), sp.begin[t], sp.begin[t + 1], sp.slot1[t], sp.slot2[t]);
    });
    for (int i = 0; i < n; ++i)
      for (auto& e : extra)
        if (e[i].defined()) out[i].add_(e[i]);

    torch::autograd::variable_list r;
    r.push_back(ctx->needs_input_grad(0) ? dx : at::Tensor());
    for (int i = 0; i < n; ++i) r.push_back(out[i]);
    for (int i = 0; i < 2 + 6; ++i) r.emplace_back();  // masks, heads, scale, keeps, eps
    return r;
  }
};

}  // namespace

bool block_cpu_supported(const at::Tensor& x, const BlockCpuParams& p, const at::Tensor& bias, int64_t heads) {
  auto f32 = [](const at::Tensor& t) { return t.defined() && t.device().is_cpu() && t.scalar_type() == at::kFloat; };
  if (!f32(x) || x.dim() != 3 || heads <= 0) return false;
  const int64_t N = x.size(1), C = x.size(2);
  if (x.size(0) == 0 || N == 0 || C % heads != 0) return false;
  auto vec = [&](const at::Tensor& t, int64_t n) { return f32(t) && t.dim() == 1 && t.size(0) == n; };
  auto mat = [&](const at::Tensor& t, int64_t r, int64_t c) { return f32(t) && t.dim() == 2 && t.size(0) == r && t.size(1) == c; };
  auto opt = [&](const at::Tensor& t, int64_t n) { return !t.defined() || vec(t, n); };
  if (!f32(p.fc1_w) || p.fc1_w.dim() != 2) return false;
  const int64_t F = p.fc1_w.size(0);
  if (!(vec(p.norm1_w, C) && vec(p.norm1_b, C) && mat(p.qkv_w, 3 * C, C) && opt(p.q_bias, C) && opt(p.v_bias, C) &&
        p.q_bias.defined() == p.v_bias.defined() && mat(p.proj_w, C, C) && vec(p.proj_b, C) && opt(p.gamma_1, C) &&
        vec(p.norm2_w, C) && vec(p.norm2_b, C) && mat(p.fc1_w, F, C) && vec(p.fc1_b, F) && mat(p.fc2_w, C, F) &&
        vec(p.fc2_b, C) && opt(p.gamma_2, C) && p.gamma_1.defined() == p.gamma_2.defined()))
    return false;
  return !bias.defined() || (f32(bias) && bias.dim() == 3 && bias.size(0) == heads && bias.size(1) == N && bias.size(2) == N);
}

at::Tensor block_cpu_mean_pooled(const at::Tensor& x, const BlockCpuParams& prm, const at::Tensor& bias, int64_t heads,
                                 double scale) {
  TORCH_CHECK(block_cpu_supported(x, prm, bias, heads) && x.size(1) > 1,
              "block_cpu_mean_pooled: expected CPU float32 x [B, N > 1, C], the block's parameters and bias [heads, N, N] or none");
  TORCH_CHECK(!at::GradMode::is_enabled() || !x.requires_grad(), "block_cpu_mean_pooled: no autograd (eval only)");
  const at::Tensor xc = x.contiguous();
  std::vector<at::Tensor> pv;
  for (auto& t : param_list(prm)) pv.push_back(t.defined() ? t.detach().contiguous() : at::empty({0}, x.options()));
  const BlockCpuParams p = params_from(pv, prm.eps1, prm.eps2);
  const at::Tensor bc = bias.defined() ? bias.detach().contiguous() : at::Tensor();
  const Geometry g = geometry_of(xc, p, heads, scale);
  Weights w = weights_of(p, bc);
  const TransposedWeights wt(p);
  wt.point(w);
  at::Tensor y1 = at::empty_like(xc), pooled = at::empty({g.B, g.C}, xc.options());
  const Split sp = split_batch(g.B, at::get_num_threads(), Paths{});
  const float* xp = xc.data_ptr<float>();
  run_ranges(sp, [&](int64_t t) { pooled_range(g, w, xp, y1.data_ptr<float>(), pooled.data_ptr<float>(), sp.begin[t], sp.begin[t + 1]); });
  return pooled;
}

at::Tensor block_cpu(const at::Tensor& x, const BlockCpuParams& prm, const at::Tensor& bias, int64_t heads, double scale,
                     const DropPathDraw& path1, const DropPathDraw& path2) {
  TORCH_CHECK(block_cpu_supported(x, prm, bias, heads),
              "block_cpu: expected CPU float32 x [B, N, C], the block's parameters and bias [heads, N, N] or none; got x ",
              x.defined() ? x.toString() : std::string("undefined"), " ", x.defined() ? x.sizes() : at::IntArrayRef{});
  auto flat = [&](const DropPathDraw& d) {
    return d.mask.defined() ? d.mask.reshape({-1}).to(at::kFloat).contiguous() : at::empty({0}, x.options());
  };
  const at::Tensor m1 = flat(path1), m2 = flat(path2);
  TORCH_CHECK(m1.numel() == 0 || m1.numel() == x.size(0), "block_cpu: drop path mask needs one value per sample");
  TORCH_CHECK(m2.numel() == 0 || m2.numel() == x.size(0), "block_cpu: drop path mask needs one value per sample");
  const at::Tensor xc = x.contiguous();
  std::vector<at::Tensor> pv;
  for (auto& t : param_list(prm)) pv.push_back(t.defined() ? t.contiguous() : at::empty({0}, x.options()));
  const at::Tensor bc = bias.defined() ? bias.contiguous() : at::empty({0}, x.options());
  bool grad = at::GradMode::is_enabled() && (xc.requires_grad() || bc.requires_grad());
  for (auto& t : pv) grad = grad || (at::GradMode::is_enabled() && t.requires_grad());
  if (!grad) {
    const BlockCpuParams p = params_from(pv, prm.eps1, prm.eps2);
    return forward_only(xc, p, bc.numel() > 0 ? bc : at::Tensor(), heads, scale, paths_of(m1, path1.keep, m2, path2.keep));
  }
  return BlockCpuFunction::apply(xc, at::TensorList(pv), bc, m1, m2, heads, scale, path1.keep, path2.keep, prm.eps1, prm.eps2);
}

}  // namespace beit
}  // namespace mood
