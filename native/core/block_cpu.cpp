#include "core/block_cpu.h"

#include <c10/core/InferenceMode.h>
#include <torch/csrc/autograd/custom_function.h>

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <iterator>
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

// ---- row kernels ------------------------------------------------------------------------------
// Sums keep 16 independent lanes (a vectorisable order without -ffast-math), then add the lanes.

inline float lane_sum(const float* x, int64_t n) {
  float acc[16] = {0};
  int64_t i = 0;
  for (; i + 16 <= n; i += 16)
    for (int l = 0; l < 16; ++l) acc[l] += x[i + l];
  float s = 0;
  for (; i < n; ++i) s += x[i];
  for (int l = 0; l < 16; ++l) s += acc[l];
  return s;
}

inline float lane_dot(const float* x, const float* y, int64_t n) {
  float acc[16] = {0};
  int64_t i = 0;
  for (; i + 16 <= n; i += 16)
    for (int l = 0; l < 16; ++l) acc[l] += x[i + l] * y[i + l];
  float s = 0;
  for (; i < n; ++i) s += x[i] * y[i];
  for (int l = 0; l < 16; ++l) s += acc[l];
  return s;
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
    float s1[16] = {0}, s2[16] = {0};
    int64_t c = 0;
    for (; c + 16 <= C; c += 16)
      for (int l = 0; l < 16; ++l) {
        const float g = d[c + l] * w[c + l];
        s1[l] += g;
        s2[l] += g * xhat[c + l];
      }
    float m1 = 0, m2 = 0;
    for (; c < C; ++c) {
      const float g = d[c] * w[c];
      m1 += g;
      m2 += g * xhat[c];
    }
    for (int l = 0; l < 16; ++l) {
      m1 += s1[l];
      m2 += s2[l];
    }
    m1 *= inv_c;
    m2 *= inv_c;
    float* o = dx + r * C;
    for (c = 0; c < C; ++c) o[c] += rs * (d[c] * w[c] - m1 - xhat[c] * m2);
    if (dw)
      for (c = 0; c < C; ++c) dw[c] += d[c] * xhat[c];
    if (db)
      for (c = 0; c < C; ++c) db[c] += d[c];
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

at::Tensor rows_view(float* p, int64_t rows, int64_t cols) {
  return at::from_blob(p, {rows, cols}, at::TensorOptions().dtype(at::kFloat));
}

// softmax over the last dimension of `rows` rows of `cols`, in place (libtorch's kernel).
void softmax_rows(float* s, int64_t rows, int64_t cols) {
  at::Tensor t = rows_view(s, rows, cols);
  at::_softmax_out(t, t, 1, false);
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
      // s = bias + scale * q k^T: the bias enters as C (beta 1), the scale as alpha.
      if (w.bias) std::memcpy(s, w.bias + h * NN, sizeof(float) * NN);
      sgemm(GemmSize::kSmall, false, true, g.N, g.N, g.d, g.scale, q, C3, q + C, C3, w.bias ? 1.f : 0.f, s, g.N);
    }
  softmax_rows(probs, n * g.H * g.N, g.N);
  float* ao = saved_or_scratch(sv, &Saved::ao, slot * g.N * C, R * C, ar);
  for (int64_t i = 0; i < n; ++i)
    for (int64_t h = 0; h < g.H; ++h)
      sgemm(GemmSize::kSmall, false, false, g.N, g.d, g.N, 1.f, probs + (i * g.H + h) * NN, g.N,
            qkv + i * g.N * C3 + 2 * C + h * g.d, C3, 0.f, ao + i * g.N * C + h * g.d, C);
  float* a = saved_or_scratch(sv, &Saved::a, slot * g.N * C, R * C, ar);
  sgemm(GemmSize::kLarge, false, false, R, C, C, 1.f, ao, C, w.projt, C, 0.f, a, C);  // bias: in branch_join
  return a;
}

void gelu_rows(const float* h, float* out, int64_t R, int64_t F) {
  at::Tensor o = rows_view(out, R, F);
  at::gelu_out(o, rows_view(const_cast<float*>(h), R, F));
}

// The MLP branch for one group: LayerNorm, fc1, GELU, fc2. Returns m (fc2's output before its bias).
float* mlp_branch(const Geometry& g, const Weights& w, const float* yin, int64_t n, int64_t slot, Saved* sv, Arena& ar) {
  const int64_t R = n * g.N, C = g.C, F = g.F;
  float* h = saved_or_scratch(sv, &Saved::h, slot * g.N * F, R * F, ar);
  norm_linear_forward(yin, R, C, F, w.fc1t, w.ln2w, w.ln2b, w.eps2, saved_or_scratch(sv, &Saved::mean2, slot * g.N, R, ar),
                      saved_or_scratch(sv, &Saved::rstd2, slot * g.N, R, ar), h, ar);
  add_row_vector(h, R, F, F, w.fc1b);
  float* act = ar.take(R * F);
  gelu_rows(h, act, R, F);
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

// Backward of a branch's last projection and its join (y = base + gamma * (in W^T + bias), drop
// path): the gradients of gamma, bias and W (when wanted), and returns d(in) = d(in W^T) W.
float* branch_out_backward(const float* dy, const float* a, const float* in, int64_t R, int64_t C, int64_t K, const float* W,
                           const float* bias, const float* gamma, bool drop_path, float keep, float* dW, float* dbias,
                           float* dgamma, Arena& ar) {
  float* da = ar.take(R * C);
  branch_grad(dy, a, bias, R, C, gamma, drop_path, keep, da, dgamma);
  if (dbias) add_column_sums(da, R, C, C, dbias);
  if (dW) sgemm(GemmSize::kLarge, true, false, C, K, R, 1.f, da, C, in, K, 1.f, dW, K);
  float* din = ar.take(R * K);
  sgemm(GemmSize::kLarge, false, false, R, K, C, 1.f, da, C, W, K, 0.f, din, K);
  return din;
}

// The MLP branch's backward for one group: adds its contribution to dy1 (rows `dy1`, gathered).
void mlp_branch_backward(const Geometry& g, const Weights& w, const Paths& p, const Saved& sv, const float* dy,
                         const float* y1in, float* dy1, int64_t n, int64_t slot, const Grads& gr, Arena& ar) {
  const int64_t R = n * g.N, C = g.C, F = g.F;
  const float* h = sv.h + slot * g.N * F;
  float* act = ar.take(R * F);
  if (gr.fc2w) gelu_rows(h, act, R, F);  // GELU(h) again, in cache, instead of saving it
  float* dact = branch_out_backward(dy, sv.m + slot * g.N * C, act, R, C, F, w.fc2w, w.fc2b, w.g2, p.mask2 != nullptr,
                                    p.keep2, gr.fc2w, gr.fc2b, gr.g2, ar);
  float* dh = act;
  {
    at::Tensor o = rows_view(dh, R, F);
    at::gelu_backward_out(o, rows_view(dact, R, F), rows_view(const_cast<float*>(h), R, F));
  }
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
  const float* dao = branch_out_backward(dx, sv.a + slot * g.N * C, sv.ao + slot * g.N * C, R, C, C, w.projw, w.projb, w.g1,
                                         p.mask1 != nullptr, p.keep1, gr.projw, gr.projb, gr.g1, ar);
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
  {
    // dS = P * (dP - rowsum(dP * P)), libtorch's kernel over every row of the group.
    at::Tensor out = rows_view(ds, n * g.H * g.N, g.N);
    at::_softmax_backward_data_out(out, rows_view(dp, n * g.H * g.N, g.N), rows_view(const_cast<float*>(probs), n * g.H * g.N, g.N), 1, at::kFloat);
  }
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
