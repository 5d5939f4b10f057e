#include "core/ood_rows.h"

#include "core/ood_ops.h"
#include "core/parallel.h"

#include <ATen/ATen.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <string>
#include <vector>

namespace mood {
namespace ood {

// Vector kernels below get AVX-512 and AVX2 clones (chosen at load time) where GCC can make them.
#if defined(__GNUC__) && !defined(__clang__) && defined(__x86_64__)
#define MOOD_SIMD_CLONES __attribute__((target_clones("avx512f", "avx2", "default")))
#else
#define MOOD_SIMD_CLONES
#endif

// dst += x (float32 or float64 row into a float64 accumulator).
MOOD_SIMD_CLONES
void add_row_f64(double* dst, const float* x, int64_t d) {
  for (int64_t f = 0; f < d; ++f) dst[f] += static_cast<double>(x[f]);
}
MOOD_SIMD_CLONES
void add_row_f64(double* dst, const double* x, int64_t d) {
  for (int64_t f = 0; f < d; ++f) dst[f] += x[f];
}

// ---- row preparation: cast, normalise, centre -------------------------------------------------
//
// normalize "mood": f / (‖f‖ + eps) (eval_with_features.py); "unit": sklearn's normalize (zero rows stay
// zero); "none": only the cast. Written as plain loops into buffers allocated once: per-chunk torch
// temporaries of this size cost more in fresh pages (page faults) than the arithmetic.

void check_normalize_mode(const char* op, const std::string& mode) {
  TORCH_CHECK(mode == "mood" || mode == "unit" || mode == "none", op, ": normalize must be 'mood', 'unit' or 'none', got '", mode,
              "'");
}

// Σ a_i b_i accumulated in double (8 partial sums): inlined into the SIMD clones below.
template <typename TA>
__attribute__((always_inline)) inline double dot_f64acc_impl(const TA* a, const TA* b, int64_t d) {
  double s[8] = {0, 0, 0, 0, 0, 0, 0, 0};
  int64_t i = 0;
  for (; i + 8 <= d; i += 8)
    for (int q = 0; q < 8; ++q) s[q] += static_cast<double>(a[i + q]) * static_cast<double>(b[i + q]);
  double r = 0;
  for (; i < d; ++i) r += static_cast<double>(a[i]) * static_cast<double>(b[i]);
  return ((s[0] + s[1]) + (s[2] + s[3])) + ((s[4] + s[5]) + (s[6] + s[7])) + r;
}

MOOD_SIMD_CLONES
double dot_f64acc(const float* a, const float* b, int64_t d) { return dot_f64acc_impl(a, b, d); }
MOOD_SIMD_CLONES
double dot_f64acc(const double* a, const double* b, int64_t d) { return dot_f64acc_impl(a, b, d); }

// out = x / div − mean (mean may be null), in TO.
MOOD_SIMD_CLONES
void prep_row(double* out, const float* x, double div, const double* mean, int64_t d) {
  if (mean)
    for (int64_t f = 0; f < d; ++f) out[f] = static_cast<double>(x[f]) / div - mean[f];
  else
    for (int64_t f = 0; f < d; ++f) out[f] = static_cast<double>(x[f]) / div;
}
MOOD_SIMD_CLONES
void prep_row(double* out, const double* x, double div, const double* mean, int64_t d) {
  if (mean)
    for (int64_t f = 0; f < d; ++f) out[f] = x[f] / div - mean[f];
  else
    for (int64_t f = 0; f < d; ++f) out[f] = x[f] / div;
}
void prep_row(float* out, const float* x, double div, const double* mean, int64_t d) {
  const float dv = static_cast<float>(div);
  for (int64_t f = 0; f < d; ++f) out[f] = static_cast<float>(x[f] / dv - (mean ? static_cast<float>(mean[f]) : 0.f));
}
void prep_row(float* out, const double* x, double div, const double* mean, int64_t d) {
  for (int64_t f = 0; f < d; ++f) out[f] = static_cast<float>(x[f] / div - (mean ? mean[f] : 0.0));
}

// Rows [r0, r1) of x prepared into buf (row-major, d columns); rows in parallel unless `serial`.
// Serial where the chunk alternates with an OpenBLAS call: OpenBLAS's pthread workers spin for a
// while after each call, and OpenMP workers started in between would compete with them for the cores.
template <typename TO>
void prep_rows(const at::Tensor& x, int64_t r0, int64_t r1, TO* buf, RowNorm mode, double eps, const double* mean, bool serial) {
  const int64_t d = x.size(1);
  AT_DISPATCH_FLOATING_TYPES(x.scalar_type(), "prep_rows", [&] {
    const scalar_t* xp = x.data_ptr<scalar_t>();
    auto rows = [&](int64_t i0, int64_t i1) {
      for (int64_t i = i0; i < i1; ++i) prep_row(buf + (i - r0) * d, xp + i * d, row_divisor(xp + i * d, d, mode, eps), mean, d);
    };
    if (serial) rows(r0, r1);
    else mood::parallel_for(r0, r1, 64, rows);
  });
}
template void prep_rows<float>(const at::Tensor&, int64_t, int64_t, float*, RowNorm, double, const double*, bool);
template void prep_rows<double>(const at::Tensor&, int64_t, int64_t, double*, RowNorm, double, const double*, bool);

// Mean of the prepared rows (double, summed per fixed chunk so the result does not depend on threads).
std::vector<double> prepared_mean(const at::Tensor& x, RowNorm mode, double eps) {
  const int64_t n = x.size(0), d = x.size(1), nchunks = (n + kPrepRows - 1) / kPrepRows;
  std::vector<double> part(static_cast<size_t>(nchunks * d), 0.0), mean(d, 0.0);
  AT_DISPATCH_FLOATING_TYPES(x.scalar_type(), "prepared_mean", [&] {
    const scalar_t* xp = x.data_ptr<scalar_t>();
    mood::parallel_for(0, nchunks, 1, [&](int64_t q0, int64_t q1) {
      std::vector<double> row(d);
      for (int64_t q = q0; q < q1; ++q)
        for (int64_t i = q * kPrepRows; i < std::min(n, (q + 1) * kPrepRows); ++i) {
          prep_row(row.data(), xp + i * d, row_divisor(xp + i * d, d, mode, eps), nullptr, d);
          add_row_f64(part.data() + q * d, row.data(), d);
        }
    });
  });
  for (int64_t q = 0; q < nchunks; ++q) add_row_f64(mean.data(), part.data() + q * d, d);
  for (auto& m : mean) m /= static_cast<double>(n);
  return mean;
}

}  // namespace ood

namespace {

using namespace ood;
using Inputs = std::vector<at::Tensor>;
using Outputs = std::vector<at::Tensor>;

// Rows normalised into a new tensor of `dtype`.
at::Tensor row_normalize(const at::Tensor& x_in, at::ScalarType dtype, const std::string& mode, double eps) {
  TORCH_CHECK(x_in.dim() == 2, "row_normalize expects a 2-D tensor, got ", x_in.dim(), "-D");
  TORCH_CHECK(dtype == at::kFloat || dtype == at::kDouble, "row_normalize: float32 or float64 output");
  check_normalize_mode("row_normalize", mode);
  at::Tensor x = x_in.contiguous();
  if (x.scalar_type() != at::kFloat && x.scalar_type() != at::kDouble) x = x.to(dtype);
  at::Tensor out = at::empty(x.sizes(), x.options().dtype(dtype));
  if (dtype == at::kDouble) prep_rows(x, 0, x.size(0), out.data_ptr<double>(), row_norm_mode(mode), eps, nullptr);
  else prep_rows(x, 0, x.size(0), out.data_ptr<float>(), row_norm_mode(mode), eps, nullptr);
  return out;
}

}  // namespace

void register_ood_row_ops(const OpRegistry& add) {
  const auto H = OpCost::kHeavy;
  add("row_normalize", {1, 1, 1, H, {"mode", "dtype", "eps"}}, [](const Inputs& in, const OpArgs& a) -> Outputs {
                          return {row_normalize(in[0], parse_dtype(a.get_string("dtype", dtype_name(in[0].scalar_type()))),
                                                a.get_string("mode", "mood"), a.get_double("eps", 1e-10))};
                        });
}

}  // namespace mood
