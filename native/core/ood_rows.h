// Row preparation shared by the OOD detector kernels (ood_covariance, ood_neighbours, ood_kmeans):
// cast, MOOD / unit normalisation and centring of feature rows, and the double-accumulated dot
// products they are measured with.
#pragma once
#include <ATen/ATen.h>

#include <cmath>
#include <cstdint>
#include <string>
#include <vector>

namespace mood {
namespace ood {

// Rows prepared per chunk (the centred Gram and quadratic forms, k-means' data).
constexpr int64_t kPrepRows = 4096;

// Throws naming `op` unless mode is 'mood', 'unit' or 'none'.
void check_normalize_mode(const char* op, const std::string& mode);

enum class RowNorm { kNone, kMood, kUnit };

inline RowNorm row_norm_mode(const std::string& mode) { return mode == "mood" ? RowNorm::kMood : mode == "unit" ? RowNorm::kUnit : RowNorm::kNone; }

// dst += x (float32 or float64 row into a float64 accumulator).
void add_row_f64(double* dst, const float* x, int64_t d);
void add_row_f64(double* dst, const double* x, int64_t d);

// Σ a_i b_i accumulated in double (8 partial sums, SIMD clones).
double dot_f64acc(const float* a, const float* b, int64_t d);
double dot_f64acc(const double* a, const double* b, int64_t d);
inline double sum_sq(const float* x, int64_t d) { return dot_f64acc(x, x, d); }
inline double sum_sq(const double* x, int64_t d) { return dot_f64acc(x, x, d); }

// The divisor of a row under `mode` (1 for none).
template <typename TI>
double row_divisor(const TI* x, int64_t d, RowNorm mode, double eps) {
  if (mode == RowNorm::kNone) return 1.0;
  const double nrm = std::sqrt(sum_sq(x, d));
  return mode == RowNorm::kMood ? nrm + eps : (nrm == 0 ? 1.0 : nrm);
}

// out = x / div − mean (mean may be null), in the output's type.
void prep_row(double* out, const float* x, double div, const double* mean, int64_t d);
void prep_row(double* out, const double* x, double div, const double* mean, int64_t d);
void prep_row(float* out, const float* x, double div, const double* mean, int64_t d);
void prep_row(float* out, const double* x, double div, const double* mean, int64_t d);

// Rows [r0, r1) of x prepared into buf (row-major, d columns); rows in parallel unless `serial`.
// TO: float or double.
template <typename TO>
void prep_rows(const at::Tensor& x, int64_t r0, int64_t r1, TO* buf, RowNorm mode, double eps, const double* mean, bool serial = false);
extern template void prep_rows<float>(const at::Tensor&, int64_t, int64_t, float*, RowNorm, double, const double*, bool);
extern template void prep_rows<double>(const at::Tensor&, int64_t, int64_t, double*, RowNorm, double, const double*, bool);

// Mean of the prepared rows (double, summed per fixed chunk so the result does not depend on threads).
std::vector<double> prepared_mean(const at::Tensor& x, RowNorm mode, double eps);

}  // namespace ood
}  // namespace mood
