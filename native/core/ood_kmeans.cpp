// The k-means family of the OOD detector ops: data preparation, k-means++ (sklearn's, with the
// caller's draws), Lloyd iterations with bounds, and the kmeans detector's score.
#include "core/ood_ops.h"
#include "core/ood_rows.h"
#include "core/parallel.h"

#include <ATen/ATen.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <limits>
#include <string>
#include <type_traits>
#include <vector>

namespace mood {
namespace {

using namespace ood;
using Inputs = std::vector<at::Tensor>;
using Outputs = std::vector<at::Tensor>;

// ---- k-means (k-means++ and Lloyd) -------------------------------------------------------------
//
// x·cᵀ for few centres by a register-tiled kernel instead of a gemm: OpenBLAS packs all of x for
// every narrow product (50k x 768 by 10 centres took ~150 ms, 5x a pass over x). Float32 data
// accumulates in float32, float64 in float64. Every dot product is summed the same way whatever
// tile it falls in (vector lanes over d, a scalar tail, the lanes reduced pairwise), so a row's
// distances do not depend on the rows or centres it is batched with: the bounds' shortcuts, the
// joint passes of several initialisations and a brute-force E-step all give the same labels.

// out[r * ldo + j] = xr[r] · c_j for an R x K tile (c: K rows of length d), in lanes of VB bytes.
template <int VB, typename T, int R, int K>
__attribute__((always_inline)) inline void km_dot_tile(const T* const* xr, const T* c, int64_t d, T* out, int64_t ldo) {
  constexpr int L = VB / sizeof(T);
  typedef T V __attribute__((vector_size(VB)));
  V acc[R][K];
  for (int r = 0; r < R; ++r)
    for (int j = 0; j < K; ++j) acc[r][j] = V{};
  int64_t i = 0;
  for (; i + L <= d; i += L) {
    V xv[R];
    for (int r = 0; r < R; ++r) std::memcpy(&xv[r], xr[r] + i, sizeof(V));
    for (int j = 0; j < K; ++j) {
      V cv;
      std::memcpy(&cv, c + j * d + i, sizeof(V));
      for (int r = 0; r < R; ++r) acc[r][j] += xv[r] * cv;
    }
  }
  for (int r = 0; r < R; ++r)
    for (int j = 0; j < K; ++j) {
      T tail = 0;
      for (int64_t f = i; f < d; ++f) tail += xr[r][f] * c[j * d + f];
      T s[L];
      std::memcpy(s, &acc[r][j], sizeof(V));
      for (int w = L / 2; w >= 1; w /= 2)
        for (int q = 0; q < w; ++q) s[q] += s[q + w];
      out[r * ldo + j] = s[0] + tail;
    }
}

// R rows against all k centres: tiles of K centres, then one tile of the k % K left.
template <int VB, typename T, int R, int K>
__attribute__((always_inline)) inline void km_dot_rows(const T* const* xr, const T* c, int64_t k, int64_t d, T* out, int64_t ldo) {
  int64_t j = 0;
  for (; j + K <= k; j += K) km_dot_tile<VB, T, R, K>(xr, c + j * d, d, out + j, ldo);
  if constexpr (K > 1) {
    if (k - j == K - 1) km_dot_tile<VB, T, R, K - 1>(xr, c + j * d, d, out + j, ldo);
    else if (k > j) km_dot_rows<VB, T, R, K - 1>(xr, c + j * d, k - j, d, out + j, ldo);
  }
}

template <int VB, typename T, int R, int K>
__attribute__((always_inline)) inline void km_dots_impl(const T* const* rows, int64_t nr, const T* c, int64_t k, int64_t d, T* out, int64_t ldo) {
  int64_t r = 0;
  for (; r + R <= nr; r += R) km_dot_rows<VB, T, R, K>(rows + r, c, k, d, out + r * ldo, ldo);
  for (; r < nr; ++r) km_dot_rows<VB, T, 1, K>(rows + r, c, k, d, out + r * ldo, ldo);
}

// Lanes and tile sizes per instruction set: 64-byte lanes and 4 x 5 accumulators fill 20 of
// AVX-512's 32 registers; AVX2 has 16 of 32 bytes (2 x 5 of them), SSE 16 of 16 bytes. The lane
// width sets the summation order: one kernel per process (km_dots), so one order per fit.
#if defined(__GNUC__) && !defined(__clang__) && defined(__x86_64__)
__attribute__((target("avx512f"))) void km_dots_avx512(const float* const* rows, int64_t nr, const float* c, int64_t k, int64_t d, float* out, int64_t ldo) {
  km_dots_impl<64, float, 4, 5>(rows, nr, c, k, d, out, ldo);
}
__attribute__((target("avx512f"))) void km_dots_avx512(const double* const* rows, int64_t nr, const double* c, int64_t k, int64_t d, double* out, int64_t ldo) {
  km_dots_impl<64, double, 4, 5>(rows, nr, c, k, d, out, ldo);
}
__attribute__((target("avx2,fma"))) void km_dots_avx2(const float* const* rows, int64_t nr, const float* c, int64_t k, int64_t d, float* out, int64_t ldo) {
  km_dots_impl<32, float, 2, 5>(rows, nr, c, k, d, out, ldo);
}
__attribute__((target("avx2,fma"))) void km_dots_avx2(const double* const* rows, int64_t nr, const double* c, int64_t k, int64_t d, double* out, int64_t ldo) {
  km_dots_impl<32, double, 2, 5>(rows, nr, c, k, d, out, ldo);
}
int km_isa() {
  static const int isa = __builtin_cpu_supports("avx512f") ? 2 : (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma")) ? 1 : 0;
  return isa;
}
#endif

// rows[r] · c_j into out[r * ldo + j] (r < nr, j < k; c: k x d): one kernel per process, so every
// dot product of a fit is computed by the same code.
template <typename T>
void km_dots(const T* const* rows, int64_t nr, const T* c, int64_t k, int64_t d, T* out, int64_t ldo) {
#if defined(__GNUC__) && !defined(__clang__) && defined(__x86_64__)
  if (km_isa() == 2) return km_dots_avx512(rows, nr, c, k, d, out, ldo);
  if (km_isa() == 1) return km_dots_avx2(rows, nr, c, k, d, out, ldo);
#endif
  km_dots_impl<16, T, 2, 2>(rows, nr, c, k, d, out, ldo);
}

// The squared distance (‖x‖² + ‖c‖²) − 2x·c in T, clamped at 0 (the arithmetic of the former torch code).
template <typename T>
inline T km_sq_dist(T xn2, T cn2, T ip) {
  const T v = (xn2 + cn2) - ip * static_cast<T>(2);
  return v < T(0) ? T(0) : v;
}

// Row blocks of a k-means pass: per-block partial results are reduced in block order, so results do
// not depend on the thread count; sub-blocks of kKmSub rows stay in cache while every run in the
// pass reads them.
constexpr int64_t kKmBlock = 1024, kKmSub = 64;

// Bytes k-means may hold besides x (per-block centre sums, k-means++ distances of the runs side by
// side): the op attribute `budget` (tests), else max(256 MB, half of x).
double km_budget(const OpArgs& a, int64_t n, int64_t d, int64_t elem) {
  const double b = a.get_double("budget", 0.0);
  if (b > 0) return b;
  return std::max(256.0 * (1 << 20), 0.5 * static_cast<double>(n) * static_cast<double>(d) * static_cast<double>(elem));
}

// f(b, i0, i1) for every block b of `block` rows.
template <typename F>
void km_blocks(int64_t n, int64_t block, F&& f) {
  parallel_items((n + block - 1) / block, [&](int64_t b) { f(b, b * block, std::min(n, (b + 1) * block)); });
}

// sklearn's _kmeans_plusplus with the caller's uniform draws (u[0] picks the first centre, then
// `trials` per further centre), so the JS generator's sequence is kept; `runs` initialisations side
// by side (draws one run after the other), each step's candidates of all runs in one pass over x.
// Returns the chosen row ids (runs x k).
template <typename T>
at::Tensor kmeans_pp_impl(const at::Tensor& x, const at::Tensor& xn2_t, int64_t k, int64_t runs, const at::Tensor& u_t) {
  const int64_t n = x.size(0), d = x.size(1);
  const int64_t trials = 2 + static_cast<int64_t>(std::floor(std::log(static_cast<double>(k))));
  const int64_t per = 1 + (k - 1) * trials;
  TORCH_CHECK(u_t.numel() == runs * per, "kmeans_plusplus: expected ", runs * per, " uniform draws (", runs, " x ", per, "), got ", u_t.numel());
  at::Tensor ud = u_t.to(at::kDouble).contiguous();
  const double* u = ud.data_ptr<double>();
  const T* xp = x.data_ptr<T>();
  const T* xn2 = xn2_t.data_ptr<T>();
  // Squared distances of every row to the rows `cids` of x, into dist (n x cids.size(), double).
  std::vector<double> dist;
  std::vector<T> cbuf;
  auto dists_to = [&](const std::vector<int64_t>& cids) {
    const int64_t m = static_cast<int64_t>(cids.size());
    cbuf.resize(static_cast<size_t>(m * d));
    for (int64_t j = 0; j < m; ++j) std::copy(xp + cids[j] * d, xp + (cids[j] + 1) * d, cbuf.begin() + j * d);
    dist.resize(static_cast<size_t>(n * m));
    km_blocks(n, kKmBlock, [&](int64_t, int64_t i0, int64_t i1) {
      std::vector<const T*> rows(static_cast<size_t>(i1 - i0));
      std::vector<T> ip(static_cast<size_t>((i1 - i0) * m));
      for (int64_t i = i0; i < i1; ++i) rows[i - i0] = xp + i * d;
      km_dots(rows.data(), i1 - i0, cbuf.data(), m, d, ip.data(), m);
      for (int64_t i = i0; i < i1; ++i)
        for (int64_t j = 0; j < m; ++j) dist[i * m + j] = static_cast<double>(km_sq_dist(xn2[i], xn2[cids[j]], ip[(i - i0) * m + j]));
    });
  };
  std::vector<std::vector<int64_t>> ids(runs);
  std::vector<int64_t> cids;
  for (int64_t r = 0; r < runs; ++r) {
    ids[r].push_back(std::min(n - 1, static_cast<int64_t>(std::floor(u[r * per] * static_cast<double>(n)))));
    cids.push_back(ids[r][0]);
  }
  dists_to(cids);
  std::vector<double> closest(static_cast<size_t>(runs * n)), pot(runs, 0.0), cum(n);
  for (int64_t r = 0; r < runs; ++r)
    for (int64_t i = 0; i < n; ++i) pot[r] += closest[r * n + i] = dist[i * runs + r];
  for (int64_t c = 1; c < k; ++c) {
    cids.clear();
    for (int64_t r = 0; r < runs; ++r) {
      double acc = 0;
      for (int64_t i = 0; i < n; ++i) cum[i] = acc += closest[r * n + i];
      for (int64_t t = 0; t < trials; ++t) {
        const double v = u[r * per + 1 + (c - 1) * trials + t] * pot[r];
        // np.searchsorted(cum, v) (side='left'): first i with cum[i] >= v.
        const int64_t lo = std::lower_bound(cum.begin(), cum.end(), v) - cum.begin();
        cids.push_back(std::min(lo, n - 1));
      }
    }
    dists_to(cids);
    const int64_t m = runs * trials;
    for (int64_t r = 0; r < runs; ++r) {
      double* cl = closest.data() + r * n;
      int64_t best = -1;
      double best_pot = std::numeric_limits<double>::infinity();
      for (int64_t l = 0; l < trials; ++l) {
        double p = 0;
        for (int64_t i = 0; i < n; ++i) p += std::min(cl[i], dist[i * m + r * trials + l]);
        if (p < best_pot) {
          best_pot = p;
          best = l;
        }
      }
      for (int64_t i = 0; i < n; ++i) cl[i] = std::min(cl[i], dist[i * m + r * trials + best]);
      pot[r] = best_pot;
      ids[r].push_back(cids[r * trials + best]);
    }
  }
  at::Tensor out = at::empty({runs, k}, at::TensorOptions().dtype(at::kLong));
  for (int64_t r = 0; r < runs; ++r) std::copy(ids[r].begin(), ids[r].end(), out.data_ptr<int64_t>() + r * k);
  return out;
}

// One initialisation's Lloyd run (state between the joint passes).
template <typename T>
struct KmRun {
  enum Mode { kFull, kBounds, kFinal, kDone };
  Mode mode = kFull;
  std::vector<T> centres, cn2;
  std::vector<int64_t> labels, prev, cnt;
  std::vector<T> d2;
  std::vector<double> upper, lower, last, sums, move, half;
  int64_t far = 0, it = 0;
  double second_move = 0, cn2max = 0, inertia = 0;
  bool one_dot = true;  // try the own centre's distance before all k (pays once most rows settle)
  bool bounded = false;  // the bounds hold (after the first E-step)
  // Per block: centre sums and counts (kFull) or their changes by the rows that changed cluster
  // (kBounds, `nmoved` of them); Σ d2 (kFinal); rows recomputed in full (kBounds).
  std::vector<double> part, partin;
  std::vector<int64_t> partc, nfull, nmoved;
};

// One E-step of every run in `live` in one pass over x. kFull / kFinal: all k distances of every
// row (kFull also sums the rows per centre, kFinal only Σ d2 for the inertia). kBounds: Hamerly's
// bounds settle what they can, the rest gets all k distances and the rows that change cluster move
// their sums. The bounds are kept on the exact distances: a computed squared distance is within
// E = err·(‖x‖² + max‖c‖²) of the exact one (see kmeans_lloyd_impl), so the upper bound starts at
// √(d̃² + E) and the lower at √(d̃² − E); a row keeps its label only when the bounds U (own centre)
// and L (every other) guarantee that the computed distances order the same way, L² − U² > 2E, so
// near-ties are recomputed and the labels are the brute-force ones.
template <typename T>
void km_pass(const T* xp, const T* xn2, int64_t n, int64_t d, int64_t kc, int64_t block, double err, const std::vector<KmRun<T>*>& live) {
  const int64_t nblocks = (n + block - 1) / block;
  for (KmRun<T>* r : live) {
    r->part.resize(static_cast<size_t>(nblocks * kc * d));
    r->partc.resize(static_cast<size_t>(nblocks * kc));
    if (r->mode == KmRun<T>::kFinal) r->partin.assign(nblocks, 0.0);
    r->nfull.assign(nblocks, 0);
    r->nmoved.assign(nblocks, 0);
  }
  km_blocks(n, block, [&](int64_t b, int64_t b0, int64_t b1) {
    std::vector<const T*> rows(kKmSub);
    std::vector<T> ip(static_cast<size_t>(kKmSub * kc));
    std::vector<int64_t> idx(kKmSub);
    for (KmRun<T>* r : live) {
      if (r->mode == KmRun<T>::kFull) {
        std::fill_n(r->part.begin() + b * kc * d, kc * d, 0.0);
        std::fill_n(r->partc.begin() + b * kc, kc, 0);
      }
    }
    for (int64_t s0 = b0; s0 < b1; s0 += kKmSub) {
      const int64_t s1 = std::min(b1, s0 + kKmSub);
      for (KmRun<T>* r : live) {
        const T* cp = r->centres.data();
        const T* cn2 = r->cn2.data();
        int64_t m = 0;
        // kFinal after an E-step: the bounds settle the label, the own centre's distance (the value
        // the brute-force E-step would compute: same kernel and summation) is the row's inertia.
        const bool final = r->mode == KmRun<T>::kFinal;
        if (r->mode == KmRun<T>::kFull || (final && !r->bounded)) {
          for (int64_t i = s0; i < s1; ++i) idx[m++] = i;
        } else {
          for (int64_t i = s0; i < s1; ++i) {
            const int64_t a = r->labels[i];
            double& up = r->upper[i];
            double& lo = r->lower[i];
            up += r->move[a];
            lo -= a == r->far ? r->second_move : r->move[r->far];
            const double e = err * (static_cast<double>(xn2[i]) + r->cn2max);
            // Every other centre is at least max(L, ‖c_a − c_j‖ − U) away (triangle inequality).
            auto settled = [&] {
              const double lb = std::max(lo, 2 * r->half[a] - up);
              return lb > up && (lb - up) * (lb + up) > 2 * e;
            };
            if (!final && settled()) continue;
            if (r->one_dot || final) {
              const T* xi = xp + i * d;
              T v;
              km_dots(&xi, 1, cp + a * d, 1, d, &v, 1);
              const T da = km_sq_dist(xn2[i], cn2[a], v);
              up = std::sqrt(static_cast<double>(da) + e);
              if (settled()) {
                if (final) r->partin[b] += static_cast<double>(da);
                continue;
              }
            }
            idx[m++] = i;
          }
          r->nfull[b] += m;
        }
        if (m == 0) continue;
        for (int64_t q = 0; q < m; ++q) rows[q] = xp + idx[q] * d;
        km_dots(rows.data(), m, cp, kc, d, ip.data(), kc);
        for (int64_t q = 0; q < m; ++q) {
          const int64_t i = idx[q];
          const T* v = ip.data() + q * kc;
          // Nearest centre (first minimum) and the second-nearest distance.
          T best = std::numeric_limits<T>::infinity(), second = best;
          int64_t arg = 0;
          for (int64_t j = 0; j < kc; ++j) {
            const T dj = km_sq_dist(xn2[i], cn2[j], v[j]);
            if (dj < best) {
              second = best;
              best = dj;
              arg = j;
            } else if (dj < second) {
              second = dj;
            }
          }
          if (r->mode == KmRun<T>::kFinal) {
            r->partin[b] += static_cast<double>(best);
            continue;
          }
          const int64_t old = r->labels[i];
          const double e = err * (static_cast<double>(xn2[i]) + r->cn2max);
          r->labels[i] = arg;
          r->d2[i] = best;
          r->upper[i] = std::sqrt(static_cast<double>(best) + e);
          r->lower[i] = std::sqrt(std::max(0.0, static_cast<double>(second) - e));
          double* ps = r->part.data() + b * kc * d;
          int64_t* pc = r->partc.data() + b * kc;
          if (r->mode == KmRun<T>::kFull) {
            add_row_f64(ps + arg * d, xp + i * d, d);
            pc[arg] += 1;
          } else if (arg != old) {
            // The block's changes of the centre sums, zeroed at its first move.
            if (r->nmoved[b]++ == 0) {
              std::fill_n(ps, kc * d, 0.0);
              std::fill_n(pc, kc, 0);
            }
            const T* xi = xp + i * d;
            double* from = ps + old * d;
            double* to = ps + arg * d;
            for (int64_t f = 0; f < d; ++f) {
              from[f] -= static_cast<double>(xi[f]);
              to[f] += static_cast<double>(xi[f]);
            }
            pc[old] -= 1;
            pc[arg] += 1;
          }
        }
      }
    }
  });
}

// sklearn's lloyd loop from given initial centres, `runs` initialisations side by side (one pass
// over x per iteration serves every run not yet converged; each follows exactly its own
// trajectory): the labels of each E-step are those of the brute-force E-step (nearest centre, first
// minimum, squared distances as above), the centre sums are kept in double, empty clusters are
// relocated to the farthest points, and a run stops on unchanged labels (strict convergence) or
// when its squared centre shift is <= `tol` (absolute); a last brute-force E-step gives the inertia
// of its final centres. After a run's first E-step Hamerly's bounds (see km_pass) settle the rows
// they can; its centre sums then follow the rows that change cluster.
//
// The error of a computed squared distance (xn2 + ‖c‖²) − 2x·c: a product passes m = d/L + log2 L +
// min(L − 1, d) + 2 roundings at most (itself unless fused, its lane of L, the pairwise reduction, the
// tail, the final add; the largest m over the kernels' lane widths), so 2x·c and ‖c‖² are off
// by γ_m(‖x‖² + ‖c‖²) and γ_m‖c‖²; the caller's xn2 by up to γ_d‖x‖² (a plain sum of squares); the
// additions by 2u. err = (2m + d + 8)u bounds the sum relative to ‖x‖² + ‖c‖², with slack for the
// double arithmetic of the bounds.
template <typename T>
std::vector<at::Tensor> kmeans_lloyd_impl(const at::Tensor& x, const at::Tensor& xn2_t, const at::Tensor& init, int64_t max_iter, double tol, bool bounds, double budget) {
  const int64_t n = x.size(0), d = x.size(1), runs = init.size(0), kc = init.size(1);
  const T* xp = x.data_ptr<T>();
  const T* xn2 = xn2_t.data_ptr<T>();
  at::Tensor init_c = init.contiguous();
  // Blocks of kKmBlock rows, or fewer, larger ones where the runs' per-block centre sums
  // (nblocks x runs x K x D doubles) would exceed the budget (large K on many rows).
  const int64_t max_blocks = std::max<int64_t>(1, static_cast<int64_t>(budget / (8.0 * static_cast<double>(runs * kc * d))));
  int64_t block = kKmBlock;
  if ((n + block - 1) / block > max_blocks) block = ((n + max_blocks - 1) / max_blocks + kKmSub - 1) / kKmSub * kKmSub;
  const int64_t nblocks = (n + block - 1) / block;
  std::vector<KmRun<T>> state(runs);
  for (int64_t r = 0; r < runs; ++r) {
    KmRun<T>& s = state[r];
    s.centres.assign(init_c.data_ptr<T>() + r * kc * d, init_c.data_ptr<T>() + (r + 1) * kc * d);
    s.labels.assign(n, 0);
    s.d2.assign(n, T(0));
    s.upper.assign(n, 0.0);
    s.lower.assign(n, 0.0);
    s.sums.assign(static_cast<size_t>(kc * d), 0.0);
    s.cnt.assign(kc, 0);
    if (max_iter <= 0) s.mode = KmRun<T>::kFinal;
  }
  // ‖c‖² by the same kernel as the dot products.
  auto centre_norms = [&](KmRun<T>& s) {
    s.cn2.resize(kc);
    for (int64_t j = 0; j < kc; ++j) {
      const T* cj = s.centres.data() + j * d;
      km_dots(&cj, 1, cj, 1, d, &s.cn2[j], 1);
    }
  };
  auto sums_from_parts = [&](KmRun<T>& s) {
    std::fill(s.sums.begin(), s.sums.end(), 0.0);
    std::fill(s.cnt.begin(), s.cnt.end(), 0);
    for (int64_t b = 0; b < nblocks; ++b) {
      add_row_f64(s.sums.data(), s.part.data() + b * kc * d, kc * d);
      for (int64_t c = 0; c < kc; ++c) s.cnt[c] += s.partc[b * kc + c];
    }
  };
  const double unit = std::is_same<T, float>::value ? std::ldexp(1.0, -24) : std::ldexp(1.0, -53);
  // The most rounded steps on one product's way into a dot product, over the kernels' lane widths.
  int64_t m = 0;
  for (int64_t bytes : {16, 32, 64}) {
    const int64_t L = bytes / static_cast<int64_t>(sizeof(T));
    int64_t lg = 0;
    while ((int64_t{1} << lg) < L) ++lg;
    m = std::max(m, d / L + lg + std::min(L - 1, d) + 2);
  }
  const double err = static_cast<double>(2 * m + d + 8) * unit + std::ldexp(1.0, -46);
  std::vector<KmRun<T>*> live;
  for (;;) {
    live.clear();
    for (KmRun<T>& s : state)
      if (s.mode != KmRun<T>::kDone) live.push_back(&s);
    if (live.empty()) break;
    for (KmRun<T>* s : live) {
      centre_norms(*s);
      s->cn2max = static_cast<double>(*std::max_element(s->cn2.begin(), s->cn2.end()));
      if (s->mode == KmRun<T>::kFull) s->prev = s->labels;
      if (s->mode != KmRun<T>::kBounds && !(s->mode == KmRun<T>::kFinal && s->bounded)) continue;
      // Centre movement since the last E-step and half the distance to each centre's nearest other.
      const T* cp = s->centres.data();
      s->move.assign(kc, 0.0);
      s->half.assign(kc, std::numeric_limits<double>::infinity());
      s->far = 0;
      for (int64_t c = 0; c < kc; ++c) {
        double m = 0;
        for (int64_t f = 0; f < d; ++f) {
          const double df = static_cast<double>(cp[c * d + f]) - s->last[c * d + f];
          m += df * df;
        }
        s->move[c] = std::sqrt(m);
        if (s->move[c] > s->move[s->far]) s->far = c;
      }
      s->second_move = 0;
      for (int64_t c = 0; c < kc; ++c)
        if (c != s->far) s->second_move = std::max(s->second_move, s->move[c]);
      for (int64_t a = 0; a < kc; ++a)
        for (int64_t b = a + 1; b < kc; ++b) {
          double m = 0;
          for (int64_t f = 0; f < d; ++f) {
            const double df = static_cast<double>(cp[a * d + f]) - static_cast<double>(cp[b * d + f]);
            m += df * df;
          }
          s->half[a] = std::min(s->half[a], 0.5 * std::sqrt(m));
          s->half[b] = std::min(s->half[b], 0.5 * std::sqrt(m));
        }
    }
    km_pass(xp, xn2, n, d, kc, block, err, live);
    for (KmRun<T>* s : live) {
      if (s->mode == KmRun<T>::kFinal) {
        for (int64_t b = 0; b < nblocks; ++b) s->inertia += s->partin[b];
        s->mode = KmRun<T>::kDone;
        continue;
      }
      bool changed;
      if (s->mode == KmRun<T>::kFull) {
        sums_from_parts(*s);
        changed = s->it == 0 || s->labels != s->prev;
      } else {
        // The blocks' changes of the sums by the rows that changed cluster, in block order.
        int64_t recomputed = 0;
        changed = false;
        for (int64_t b = 0; b < nblocks; ++b) {
          recomputed += s->nfull[b];
          if (s->nmoved[b] == 0) continue;
          changed = true;
          add_row_f64(s->sums.data(), s->part.data() + b * kc * d, kc * d);
          for (int64_t c = 0; c < kc; ++c) s->cnt[c] += s->partc[b * kc + c];
        }
        s->one_dot = 2 * recomputed < n;
      }
      const T* cp = s->centres.data();
      s->last.assign(cp, cp + kc * d);
      s->mode = bounds ? KmRun<T>::kBounds : KmRun<T>::kFull;
      s->bounded = bounds;
      std::vector<int64_t> empty;
      for (int64_t c = 0; c < kc; ++c)
        if (s->cnt[c] == 0) empty.push_back(c);
      if (!empty.empty()) {
        // sklearn's _relocate_empty_clusters: the farthest points become the empty clusters' centres.
        // Needs every row's exact distance: a brute-force E-step first (the same labels).
        s->mode = KmRun<T>::kFull;
        km_pass(xp, xn2, n, d, kc, block, err, std::vector<KmRun<T>*>{s});
        sums_from_parts(*s);
        std::vector<int64_t> order(n);
        for (int64_t i = 0; i < n; ++i) order[i] = i;
        std::stable_sort(order.begin(), order.end(), [&](int64_t p, int64_t q) { return s->d2[p] > s->d2[q]; });
        for (size_t e = 0; e < empty.size() && e < order.size(); ++e) {
          const int64_t c = empty[e], i = order[e], old = s->labels[i];
          const T* xi = xp + i * d;
          for (int64_t f = 0; f < d; ++f) {
            s->sums[old * d + f] -= static_cast<double>(xi[f]);
            s->sums[c * d + f] = static_cast<double>(xi[f]);
          }
          s->cnt[old] -= 1;
          s->cnt[c] = 1;
        }
        // the sums no longer follow the labels: the next E-step recomputes both (kFull stays)
      }
      std::vector<T> next(static_cast<size_t>(kc * d));
      double shift = 0;
      for (int64_t c = 0; c < kc; ++c)
        for (int64_t f = 0; f < d; ++f) {
          next[c * d + f] = static_cast<T>(s->sums[c * d + f] / static_cast<double>(s->cnt[c]));
          const double df = static_cast<double>(next[c * d + f]) - static_cast<double>(cp[c * d + f]);
          shift += df * df;
        }
      s->centres.swap(next);
      ++s->it;
      if (!changed || shift <= tol || s->it >= max_iter) s->mode = KmRun<T>::kFinal;
    }
  }
  at::Tensor centres = at::empty({runs, kc, d}, x.options());
  at::Tensor inertia = at::empty({runs}, at::TensorOptions().dtype(at::kDouble));
  at::Tensor iters = at::empty({runs}, at::TensorOptions().dtype(at::kLong));
  for (int64_t r = 0; r < runs; ++r) {
    std::copy(state[r].centres.begin(), state[r].centres.end(), centres.data_ptr<T>() + r * kc * d);
    inertia.data_ptr<double>()[r] = state[r].inertia;
    iters.data_ptr<int64_t>()[r] = state[r].it;
  }
  return {centres, inertia, iters};
}

// k-means' data in two passes: the rows normalised (`normalize`, as row_normalize) and centred on
// their mean (sklearn centres the data for precision) in x's dtype, their squared norms (summed in
// double), the mean (1 x D, as subtracted) and sklearn's tolerance scale, the mean over features of
// the (biased) variance: Σ‖x_i − μ‖² / (N·D) less the squared column means of the centred rows
// (zero up to rounding). Row blocks are summed in order, so nothing depends on the thread count.
std::vector<at::Tensor> kmeans_prepare(const at::Tensor& x_in, const OpArgs& a) {
  TORCH_CHECK(x_in.dim() == 2 && x_in.size(0) >= 1 && (x_in.scalar_type() == at::kFloat || x_in.scalar_type() == at::kDouble),
              "kmeans_prepare: x must be a non-empty float32 or float64 N x D matrix");
  const std::string mode = a.get_string("normalize", "none");
  check_normalize_mode("kmeans_prepare", mode);
  const RowNorm rn = row_norm_mode(mode);
  const double eps = a.get_double("eps", 1e-10);
  at::Tensor x = x_in.contiguous();
  const int64_t n = x.size(0), d = x.size(1), nchunks = (n + kPrepRows - 1) / kPrepRows;
  // The mean from prepared_mean over row chunks in parallel, combined in chunk order.
  std::vector<double> cmean(static_cast<size_t>(nchunks * d)), mean(d, 0.0);
  parallel_items(nchunks, [&](int64_t q) {
    const int64_t r0 = q * kPrepRows, len = std::min(n, r0 + kPrepRows) - r0;
    const std::vector<double> m = prepared_mean(x.narrow(0, r0, len), rn, eps);
    for (int64_t f = 0; f < d; ++f) cmean[q * d + f] = m[f] * static_cast<double>(len);
  });
  for (int64_t q = 0; q < nchunks; ++q) add_row_f64(mean.data(), cmean.data() + q * d, d);
  for (auto& m : mean) m /= static_cast<double>(n);
  at::Tensor xc = at::empty({n, d}, x.options()), xn2 = at::empty({n}, x.options());
  std::vector<double> colsum(static_cast<size_t>(nchunks * d), 0.0), sq(nchunks, 0.0);
  AT_DISPATCH_FLOATING_TYPES(x.scalar_type(), "kmeans_prepare", [&] {
    const scalar_t* xp = x.data_ptr<scalar_t>();
    scalar_t* out = xc.data_ptr<scalar_t>();
    scalar_t* n2 = xn2.data_ptr<scalar_t>();
    parallel_items(nchunks, [&](int64_t q) {
      for (int64_t i = q * kPrepRows; i < std::min(n, (q + 1) * kPrepRows); ++i) {
        scalar_t* row = out + i * d;
        prep_row(row, xp + i * d, row_divisor(xp + i * d, d, rn, eps), mean.data(), d);
        const double s2 = sum_sq(row, d);
        n2[i] = static_cast<scalar_t>(s2);
        sq[q] += s2;
        add_row_f64(colsum.data() + q * d, row, d);
      }
    });
  });
  double total = 0, m2 = 0;
  for (int64_t q = 0; q < nchunks; ++q) {
    total += sq[q];
    if (q > 0) add_row_f64(colsum.data(), colsum.data() + q * d, d);
  }
  for (int64_t f = 0; f < d; ++f) m2 += (colsum[f] / static_cast<double>(n)) * (colsum[f] / static_cast<double>(n));
  at::Tensor mean_t = at::tensor(mean, at::TensorOptions().dtype(at::kDouble)).to(x.scalar_type()).reshape({1, d});
  const double var = total / (static_cast<double>(n) * static_cast<double>(d)) - m2 / static_cast<double>(d);
  return {xc, xn2, mean_t, at::scalar_tensor(var, at::TensorOptions().dtype(at::kDouble))};
}

// The kmeans detector's score: the distance of each row (normalised first under `normalize`, as
// row_normalize does) to its nearest centre, √min_j ((‖x‖² + ‖c_j‖²) − 2x·c_j clamped at 0), in x's
// dtype; ‖x‖² summed in double, the dot products by the k-means kernel, rows in parallel blocks.
at::Tensor kmeans_score(const at::Tensor& x_in, const at::Tensor& c_in, const OpArgs& a) {
  TORCH_CHECK(x_in.dim() == 2 && c_in.dim() == 2 && c_in.size(1) == x_in.size(1) && c_in.size(0) >= 1,
              "kmeans_score: x (N x D) and centres (K x D, K >= 1) expected");
  TORCH_CHECK(x_in.scalar_type() == c_in.scalar_type() && (x_in.scalar_type() == at::kFloat || x_in.scalar_type() == at::kDouble),
              "kmeans_score: x and centres must share one float dtype (float32 or float64)");
  const std::string mode = a.get_string("normalize", "none");
  check_normalize_mode("kmeans_score", mode);
  const RowNorm rn = row_norm_mode(mode);
  const double eps = a.get_double("eps", 1e-10);
  at::Tensor x = x_in.contiguous(), c = c_in.contiguous();
  const int64_t n = x.size(0), d = x.size(1), kc = c.size(0);
  at::Tensor out = at::empty({n}, x.options());
  AT_DISPATCH_FLOATING_TYPES(x.scalar_type(), "kmeans_score", [&] {
    using T = scalar_t;
    const T* xp = x.data_ptr<T>();
    const T* cp = c.data_ptr<T>();
    T* op = out.data_ptr<T>();
    std::vector<T> cn2(kc);
    for (int64_t j = 0; j < kc; ++j) {
      const T* cj = cp + j * d;
      km_dots(&cj, 1, cj, 1, d, &cn2[j], 1);
    }
    km_blocks(n, kKmBlock, [&](int64_t, int64_t i0, int64_t i1) {
      std::vector<T> buf(static_cast<size_t>(kKmSub * d)), ip(static_cast<size_t>(kKmSub * kc)), xn2(kKmSub);
      std::vector<const T*> rows(kKmSub);
      for (int64_t s0 = i0; s0 < i1; s0 += kKmSub) {
        const int64_t m = std::min(i1, s0 + kKmSub) - s0;
        for (int64_t q = 0; q < m; ++q) {
          const T* xi = xp + (s0 + q) * d;
          T* row = buf.data() + q * d;
          prep_row(row, xi, row_divisor(xi, d, rn, eps), nullptr, d);
          xn2[q] = static_cast<T>(sum_sq(row, d));
          rows[q] = row;
        }
        km_dots(rows.data(), m, cp, kc, d, ip.data(), kc);
        for (int64_t q = 0; q < m; ++q) {
          T best = std::numeric_limits<T>::infinity();
          for (int64_t j = 0; j < kc; ++j) best = std::min(best, km_sq_dist(xn2[q], cn2[j], ip[q * kc + j]));
          op[s0 + q] = std::sqrt(best);
        }
      }
    });
  });
  return out;
}

// init: K x D (one run: centres K x D, scalar inertia and iteration count) or R x K x D (R runs side
// by side: R x K x D, R, R).
std::vector<at::Tensor> kmeans_lloyd(const at::Tensor& x_in, const at::Tensor& xn2, const at::Tensor& init, const OpArgs& a) {
  TORCH_CHECK(x_in.dim() == 2 && (init.dim() == 2 || init.dim() == 3) && init.size(-1) == x_in.size(1) && xn2.dim() == 1 &&
                  xn2.size(0) == x_in.size(0),
              "kmeans_lloyd: x (N x D), squared row norms (N) and initial centres (K x D, or R x K x D for R runs) expected");
  TORCH_CHECK(x_in.scalar_type() == init.scalar_type() && x_in.scalar_type() == xn2.scalar_type() &&
                  (x_in.scalar_type() == at::kFloat || x_in.scalar_type() == at::kDouble),
              "kmeans_lloyd: x, norms and centres must share one float dtype");
  TORCH_CHECK(init.size(-2) >= 1 && init.size(-2) <= x_in.size(0), "kmeans_lloyd: 1 <= K <= N");
  TORCH_CHECK(init.dim() == 2 || init.size(0) >= 1, "kmeans_lloyd: no initial centres (R = 0)");
  const int64_t max_iter = a.get_int("max_iter", 300);
  const double tol = a.get_double("tol", 0.0);
  // bounds: false makes every E-step brute force (the reference the bounds are tested against).
  const bool bounds = a.get_bool("bounds", true);
  at::Tensor x = x_in.contiguous(), n2 = xn2.contiguous();
  const double budget = km_budget(a, x.size(0), x.size(1), x.element_size());
  const bool one = init.dim() == 2;
  at::Tensor i3 = one ? init.unsqueeze(0) : init;
  std::vector<at::Tensor> out = x.scalar_type() == at::kFloat ? kmeans_lloyd_impl<float>(x, n2, i3, max_iter, tol, bounds, budget)
                                                              : kmeans_lloyd_impl<double>(x, n2, i3, max_iter, tol, bounds, budget);
  if (one)
    for (auto& t : out) t = t.select(0, 0).clone();
  return out;
}

// k: centres per run; runs (default 1): initialisations side by side, u holding runs x (1 + (k − 1)
// trials) draws; returns k ids for one run, runs x k otherwise.
at::Tensor kmeans_plusplus(const at::Tensor& x_in, const at::Tensor& xn2, const at::Tensor& u, const OpArgs& a) {
  TORCH_CHECK(x_in.dim() == 2 && xn2.dim() == 1 && xn2.size(0) == x_in.size(0), "kmeans_plusplus: x (N x D) and squared row norms (N) expected");
  TORCH_CHECK(x_in.scalar_type() == xn2.scalar_type() && (x_in.scalar_type() == at::kFloat || x_in.scalar_type() == at::kDouble),
              "kmeans_plusplus: x and norms must share one float dtype");
  const int64_t k = a.get_int("k");
  TORCH_CHECK(k >= 1 && k <= x_in.size(0), "kmeans_plusplus: 1 <= k <= N, got k = ", k);
  const bool one = !a.has("runs");
  const int64_t runs = a.get_int("runs", 1);
  TORCH_CHECK(runs >= 1, "kmeans_plusplus: runs must be >= 1, got ", runs);
  at::Tensor x = x_in.contiguous(), n2 = xn2.contiguous();
  const int64_t trials = 2 + static_cast<int64_t>(std::floor(std::log(static_cast<double>(k)))), per = 1 + (k - 1) * trials;
  TORCH_CHECK(u.numel() == runs * per, "kmeans_plusplus: expected ", runs * per, " uniform draws (", runs, " x ", per, "), got ", u.numel());
  // Runs side by side as far as their distances (n x trials doubles each) fit the budget.
  const int64_t n = x.size(0);
  const int64_t group = std::max<int64_t>(1, static_cast<int64_t>(km_budget(a, n, x.size(1), x.element_size()) / (8.0 * static_cast<double>(n * (trials + 1)))));
  at::Tensor uf = u.reshape({-1});
  std::vector<at::Tensor> parts;
  for (int64_t r0 = 0; r0 < runs; r0 += group) {
    const int64_t g = std::min(group, runs - r0);
    at::Tensor ug = uf.narrow(0, r0 * per, g * per);
    parts.push_back(x.scalar_type() == at::kFloat ? kmeans_pp_impl<float>(x, n2, k, g, ug) : kmeans_pp_impl<double>(x, n2, k, g, ug));
  }
  at::Tensor ids = at::cat(parts, 0);
  return one ? ids.select(0, 0).clone() : ids;
}

}  // namespace

void register_ood_kmeans_ops(const OpRegistry& add) {
  const auto H = OpCost::kHeavy;
  add("kmeans_score", {2, 2, 1, H, {"normalize", "eps"}}, [](const Inputs& in, const OpArgs& a) -> Outputs { return {kmeans_score(in[0], in[1], a)}; });
  add("kmeans_prepare", {1, 1, 4, H, {"normalize", "eps"}}, [](const Inputs& in, const OpArgs& a) -> Outputs { return kmeans_prepare(in[0], a); });
  add("kmeans_plusplus", {3, 3, 1, H, {"k", "runs", "budget"}}, [](const Inputs& in, const OpArgs& a) -> Outputs { return {kmeans_plusplus(in[0], in[1], in[2], a)}; });
  add("kmeans_lloyd", {3, 3, 3, H, {"max_iter", "tol", "bounds", "budget"}}, [](const Inputs& in, const OpArgs& a) -> Outputs { return kmeans_lloyd(in[0], in[1], in[2], a); });
}

}  // namespace mood
