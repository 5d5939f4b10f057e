// The nearest-neighbour family of the OOD detector ops: nn_scan (max inner product for cos, the k-th
// smallest distance for knn), exact, with bfloat16 screening where the CPU has it.
#include "core/ood_ops.h"
#include "core/ood_rows.h"
#include "core/parallel.h"

#include <ATen/ATen.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <limits>
#include <string>
#include <type_traits>
#include <vector>

namespace mood {
namespace {

using namespace ood;
using Inputs = std::vector<at::Tensor>;
using Outputs = std::vector<at::Tensor>;

constexpr int64_t kChunkRows = 2048;

// ---- nearest-neighbour scans (cos: max inner product; knn: k-th smallest distance) -------------
//
// For each test row, the k smallest of v_j = a·‖t_j‖² − b·(x·t_j) over all train rows (max inner
// product: a = 0, b = 1, k = 1; squared distance minus ‖x‖²: a = 1, b = 2), scanning tiles of the
// test·trainᵀ product. Each row keeps the values under a threshold (the k-th smallest so far) and
// selects among them at the end, so no N_test x N_train matrix is held and no top-k runs per tile.
//
// Screening (float32 only): the tiles are computed from bfloat16 copies x̃ = x + e_x, t̃ = t + e_t (a
// gemm at twice float32's speed where the CPU has AVX512-BF16). Then
//   |x̃·t̃ − x·t| ≤ ‖e_x‖‖t‖ + ‖x‖‖e_t‖ + ‖e_x‖‖e_t‖            (exact error vectors, measured per row)
//               + γ_D ‖x̃‖‖t̃‖                                  (float32 accumulation over D terms)
// and the bfloat16 output adds at most u/(1−u)·|S̃| (u = 2⁻⁸). So each v_j lies in [ṽ_j − E_j, ṽ_j + E_j]:
// the true k-th smallest is at most U = the k-th smallest upper end, and every j that can be among the
// k smallest has ṽ_j − E_j ≤ U. Those candidates are recomputed exactly (double accumulation of the
// float32 inputs) and the k-th smallest is taken among them: the exact result, only the work screened.

struct RowSel {
  std::vector<double> lo, hi;  // hi == lo without screening
  std::vector<int64_t> j;
  double tau = std::numeric_limits<double>::infinity();  // k-th smallest upper end so far
  size_t cap = 0;
};

double kth_smallest(std::vector<double> vals, int64_t k) {
  std::nth_element(vals.begin(), vals.begin() + (k - 1), vals.end());
  return vals[k - 1];
}

void sel_compact(RowSel& s, int64_t k, bool screen) {
  if (static_cast<int64_t>(s.lo.size()) < k) return;
  s.tau = kth_smallest(screen ? s.hi : s.lo, k);
  size_t w = 0;
  for (size_t i = 0; i < s.lo.size(); ++i)
    if (s.lo[i] <= s.tau) {
      s.lo[w] = s.lo[i];
      if (screen) s.hi[w] = s.hi[i];
      s.j[w] = s.j[i];
      ++w;
    }
  s.lo.resize(w);
  if (screen) s.hi.resize(w);
  s.j.resize(w);
  if (w * 2 > s.cap) s.cap *= 2;  // many values inside the window: grow rather than reselect often
}

bool cpu_has_bf16_dot() {
#if defined(__GNUC__) && (defined(__x86_64__) || defined(__i386__))
  static const bool has = [] {
    __builtin_cpu_init();
    return __builtin_cpu_supports("avx512bf16") != 0;
  }();
  return has;
#else
  return false;
#endif
}

// Per row of float32 x: ‖x‖, and ‖bf16(x) − x‖ (the difference is exact in float32: Sterbenz).
void row_norms_bf16(const at::Tensor& x, const at::Tensor& xs, std::vector<double>& norm, std::vector<double>& err) {
  const int64_t n = x.size(0), d = x.size(1);
  norm.assign(n, 0);
  err.assign(n, 0);
  const float* xp = x.data_ptr<float>();
  const at::BFloat16* sp = xs.data_ptr<at::BFloat16>();
  mood::parallel_for(0, n, 256, [&](int64_t i0, int64_t i1) {
    for (int64_t i = i0; i < i1; ++i) {
      double a = 0, e = 0;
      for (int64_t f = 0; f < d; ++f) {
        const float v = xp[i * d + f];
        const float dv = static_cast<float>(sp[i * d + f]) - v;
        a += static_cast<double>(v) * v;
        e += static_cast<double>(dv) * dv;
      }
      norm[i] = std::sqrt(a);
      err[i] = std::sqrt(e);
    }
  });
}

// Row sums of squares in x's dtype, as x.square().sum(1) computes them, over row chunks.
at::Tensor row_sq_norms(const at::Tensor& x) {
  const int64_t n = x.size(0);
  at::Tensor out = at::empty({n}, x.options());
  for (int64_t s = 0; s < n; s += kChunkRows) {
    const int64_t e = std::min(n, s + kChunkRows);
    out.slice(0, s, e).copy_(x.slice(0, s, e).square().sum(1));
  }
  return out;
}

// ST: element type of the product tiles (T, or BFloat16 when screening).
template <typename T, typename ST>
at::Tensor nn_scan_impl(const at::Tensor& x, const at::Tensor& t, bool knn, int64_t k, int64_t bt, int64_t bn) {
  constexpr bool screen = !std::is_same<T, ST>::value;
  const int64_t nt = x.size(0), nn = t.size(0), d = x.size(1);
  const double a = knn ? 1.0 : 0.0, b = knn ? 2.0 : 1.0;
  at::Tensor tn2 = knn ? row_sq_norms(t) : at::zeros({nn}, t.options());
  const T* tn2p = tn2.data_ptr<T>();
  const double tn2max = knn ? tn2.max().item<double>() : 0.0;
  const T* xp = x.data_ptr<T>();
  const T* tp = t.data_ptr<T>();
  at::Tensor ts = t;
  const double u = std::ldexp(1.0, -8), gamma = static_cast<double>(d) * std::ldexp(1.0, -24) / (1 - static_cast<double>(d) * std::ldexp(1.0, -24));
  const double out_round = u / (1 - u), slack = 1 + 1e-9;
  double tmax = 0, etmax = 0, tsmax = 0;
  if (screen) {
    ts = t.to(at::kBFloat16);
    std::vector<double> tn, te;
    row_norms_bf16(t, ts, tn, te);
    for (int64_t j = 0; j < nn; ++j) {
      tmax = std::max(tmax, tn[j]);
      etmax = std::max(etmax, te[j]);
      tsmax = std::max(tsmax, tn[j] + te[j]);
    }
  }
  at::Tensor out = at::empty({nt}, x.options());
  T* op = out.data_ptr<T>();
  // One block of test rows against all train tiles, then its selection.
  auto block = [&](int64_t r0) {
    const int64_t r1 = std::min(nt, r0 + bt), rows = r1 - r0;
    at::Tensor xb = x.slice(0, r0, r1);
    at::Tensor xs = screen ? xb.to(at::kBFloat16) : xb;
    at::Tensor xn2 = knn ? xb.square().sum(1).contiguous() : at::zeros({rows}, x.options());
    std::vector<double> base(rows, 0.0);  // E_j = b·(base + out_round·|S̃_j|)
    std::vector<double> emax(rows, 0.0);  // ≥ every E_j of the row, plus the float rounding of the hot loop
    if (screen) {
      std::vector<double> xnorm, xerr;
      row_norms_bf16(xb, xs, xnorm, xerr);
      for (int64_t i = 0; i < rows; ++i) {
        base[i] = slack * (xerr[i] * tmax + xnorm[i] * etmax + xerr[i] * etmax + gamma * (xnorm[i] + xerr[i]) * tsmax) + 1e-30;
        const double smax = (xnorm[i] + xerr[i]) * tsmax * (1 + gamma) * (1 + out_round);  // ≥ |S̃_j|
        emax[i] = b * slack * (base[i] + out_round * smax) + 1e-6 * (a * tn2max + b * smax) + 1e-30;
      }
    }
    std::vector<RowSel> sel(rows);
    for (auto& s : sel) s.cap = static_cast<size_t>(std::max<int64_t>(2 * k, k + 64));
    for (int64_t c0 = 0; c0 < nn; c0 += bn) {
      const int64_t c1 = std::min(nn, c0 + bn), cols = c1 - c0;
      at::Tensor S = at::matmul(xs, ts.slice(0, c0, c1).t()).contiguous();
      const ST* sp = S.data_ptr<ST>();
      mood::parallel_for(0, rows, 16, [&](int64_t i0, int64_t i1) {
        for (int64_t i = i0; i < i1; ++i) {
          RowSel& s = sel[i];
          const ST* row = sp + i * cols;
          if constexpr (screen) {
            // Hot loop in float against a per-row threshold that admits every j whose lower end can
            // reach tau (E_j ≤ emax); the exact ends are computed for the few that pass.
            const float af = static_cast<float>(a), bf = static_cast<float>(b);
            auto threshold = [&] { return static_cast<float>(s.tau + emax[i]); };
            float thr = threshold();
            for (int64_t j = 0; j < cols; ++j) {
              const float key = af * static_cast<float>(tn2p[c0 + j]) - bf * static_cast<float>(row[j]);
              if (!(key <= thr)) continue;
              const double sv = static_cast<double>(static_cast<float>(row[j]));
              const double v = a * static_cast<double>(tn2p[c0 + j]) - b * sv;
              const double e = b * slack * (base[i] + out_round * std::abs(sv));
              if (v - e <= s.tau) {
                s.lo.push_back(v - e);
                s.hi.push_back(v + e);
                s.j.push_back(c0 + j);
                if (s.lo.size() >= s.cap) {
                  sel_compact(s, k, true);
                  thr = threshold();
                }
              }
            }
            continue;
          }
          for (int64_t j = 0; j < cols; ++j) {
            // The former torch arithmetic: max_ip −(x·t); knn n2 − (x·t)·2 in T.
            const double v = knn ? static_cast<double>(static_cast<T>(tn2p[c0 + j] - static_cast<T>(row[j]) * static_cast<T>(2)))
                                 : -static_cast<double>(row[j]);
            if (v <= s.tau) {
              s.lo.push_back(v);
              s.j.push_back(c0 + j);
              if (s.lo.size() >= s.cap) sel_compact(s, k, false);
            }
          }
        }
      });
    }
    const T* xn2p = xn2.data_ptr<T>();
    mood::parallel_for(0, rows, 16, [&](int64_t i0, int64_t i1) {
      std::vector<double> exact;
      for (int64_t i = i0; i < i1; ++i) {
        RowSel& s = sel[i];
        double kth;
        if constexpr (screen) {
          const double lim = kth_smallest(s.hi, k);
          const float* xi = xp + (r0 + i) * d;
          exact.clear();
          for (size_t q = 0; q < s.lo.size(); ++q)
            if (s.lo[q] <= lim) {
              const int64_t j = s.j[q];
              exact.push_back(a * static_cast<double>(tn2p[j]) - b * dot_f64acc(xi, tp + j * d, d));
            }
          kth = kth_smallest(exact, k);
        } else {
          kth = kth_smallest(s.lo, k);
        }
        if (knn) {
          const T r = static_cast<T>(kth) + xn2p[i];
          op[r0 + i] = std::sqrt(r < T(0) ? T(0) : r);
        } else {
          op[r0 + i] = static_cast<T>(-kth);
        }
      }
    });
  };
  const int64_t nblocks = (nt + bt - 1) / bt;
  if (screen) {
    // Row blocks in parallel, each thread with its own single-threaded bf16 gemm (libtorch calls
    // inside a share run on that thread alone, see parallel.h): one synchronisation for the whole
    // scan instead of two per tile, which matters on a loaded machine. (The OpenBLAS float path
    // keeps its own threads.)
    mood::parallel_for(0, nblocks, 1, [&](int64_t b0, int64_t b1) {
      for (int64_t q = b0; q < b1; ++q) block(q * bt);
    });
  } else {
    for (int64_t q = 0; q < nblocks; ++q) block(q * bt);
  }
  return out;
}

at::Tensor nn_scan(const at::Tensor& x_in, const at::Tensor& t_in, const OpArgs& a) {
  TORCH_CHECK(x_in.dim() == 2 && t_in.dim() == 2 && x_in.size(1) == t_in.size(1), "nn_scan: test (N x D) and train (M x D) expected, got ",
              x_in.sizes(), " and ", t_in.sizes());
  TORCH_CHECK(x_in.scalar_type() == t_in.scalar_type() && (x_in.scalar_type() == at::kFloat || x_in.scalar_type() == at::kDouble),
              "nn_scan: test and train must both be float32 or both float64");
  TORCH_CHECK(x_in.device().is_cpu() && t_in.device().is_cpu(), "nn_scan: CPU tensors only");
  const std::string mode = a.get_string("mode", "max_ip");
  TORCH_CHECK(mode == "max_ip" || mode == "knn", "nn_scan: mode must be 'max_ip' or 'knn', got '", mode, "'");
  const bool knn = mode == "knn";
  const int64_t k = knn ? a.get_int("k") : 1;
  const int64_t nt = x_in.size(0), nn = t_in.size(0);
  TORCH_CHECK(nn > 0 && nt > 0, "nn_scan: empty test or train set");
  TORCH_CHECK(k >= 1 && k <= nn, "nn_scan: k = ", k, " with ", nn, " train rows");
  const int64_t bt = std::max<int64_t>(1, std::min(nt, a.get_int("row_block", 4096)));
  const int64_t bn = std::max<int64_t>(1, std::min(nn, a.get_int("col_block", nn)));
  const std::string scr = a.get_string("screen", "auto");
  TORCH_CHECK(scr == "auto" || scr == "bf16" || scr == "off", "nn_scan: screen must be 'auto', 'bf16' or 'off', got '", scr, "'");
  const bool f32 = x_in.scalar_type() == at::kFloat;
  // Screening pays for itself on large products only (the bf16 copies and the refinement cost).
  const bool screen = f32 && (scr == "bf16" || (scr == "auto" && cpu_has_bf16_dot() &&
                                                 static_cast<double>(nt) * nn * x_in.size(1) >= 2e9));
  at::Tensor x = x_in.contiguous(), t = t_in.contiguous();
  if (!f32) return nn_scan_impl<double, double>(x, t, knn, k, bt, bn);
  if (screen) return nn_scan_impl<float, at::BFloat16>(x, t, knn, k, bt, bn);
  return nn_scan_impl<float, float>(x, t, knn, k, bt, bn);
}

}  // namespace

void register_ood_neighbour_ops(const OpRegistry& add) {
  const auto H = OpCost::kHeavy;
  add("nn_scan", {2, 2, 1, H, {"mode", "k", "row_block", "col_block", "screen"}}, [](const Inputs& in, const OpArgs& a) -> Outputs { return {nn_scan(in[0], in[1], a)}; });
}

}  // namespace mood
