// The covariance family of the OOD detector ops: Gram matrices (syrk), the centred Gram matrix of the
// prepared rows (np.cov, Ledoit-Wolf's β and trace) and Mahalanobis quadratic forms.
#include "core/ood_ops.h"
#include "core/ood_rows.h"

#include <ATen/ATen.h>

#include <algorithm>
#include <climits>
#include <cstdint>
#include <string>
#include <vector>

// Fortran BLAS syrk, when the BLAS libtorch links (OpenBLAS here) provides it: C = A·Aᵀ in half the
// flops of a gemm, which libtorch does not expose. Weak, so any other BLAS falls back to matmul.
extern "C" {
void ssyrk_(const char* uplo, const char* trans, const int* n, const int* k, const float* alpha, const float* a,
            const int* lda, const float* beta, float* c, const int* ldc) __attribute__((weak));
void dsyrk_(const char* uplo, const char* trans, const int* n, const int* k, const double* alpha, const double* a,
            const int* lda, const double* beta, double* c, const int* ldc) __attribute__((weak));
// B := op(A)·B with A triangular (the Mahalanobis quadratic form through a Cholesky factor).
void dtrmm_(const char* side, const char* uplo, const char* transa, const char* diag, const int* m, const int* n,
            const double* alpha, const double* a, const int* lda, double* b, const int* ldb) __attribute__((weak));
}

namespace mood {
namespace {

using namespace ood;
using Inputs = std::vector<at::Tensor>;
using Outputs = std::vector<at::Tensor>;

// Row-major x (rows x d) times a d x d lower-triangular L in place: column-major that is B := Lᵀ·B
// with A = L's memory read as the upper-triangular Lᵀ (half the flops of a gemm).
void trmm_rows_lower(at::Tensor& c, const at::Tensor& L) {
  const int64_t rows = c.size(0), d = c.size(1);
  if (dtrmm_ && c.scalar_type() == at::kDouble && rows <= INT32_MAX && d <= INT32_MAX) {
    const int m = static_cast<int>(d), n = static_cast<int>(rows);
    const double one = 1.0;
    const char side = 'L', uplo = 'U', trans = 'N', diag = 'N';
    dtrmm_(&side, &uplo, &trans, &diag, &m, &n, &one, L.data_ptr<double>(), &m, c.data_ptr<double>(), &m);
  } else {
    c.copy_(at::matmul(c, L));
  }
}

// acc (+)= cᵀc into the lower column-major (= upper row-major) triangle; beta 0 overwrites.
void syrk_acc(const at::Tensor& c, at::Tensor& acc, bool accumulate) {
  const int64_t n = c.size(0), d = c.size(1);
  const bool f32 = c.scalar_type() == at::kFloat;
  if (((f32 && ssyrk_) || (!f32 && dsyrk_)) && n <= INT32_MAX && d <= INT32_MAX) {
    const int in = static_cast<int>(d), ik = static_cast<int>(n);
    const char uplo = 'L', trans = 'N';
    if (f32) {
      const float one = 1.f, beta = accumulate ? 1.f : 0.f;
      ssyrk_(&uplo, &trans, &in, &ik, &one, c.data_ptr<float>(), &in, &beta, acc.data_ptr<float>(), &in);
    } else {
      const double one = 1.0, beta = accumulate ? 1.0 : 0.0;
      dsyrk_(&uplo, &trans, &in, &ik, &one, c.data_ptr<double>(), &in, &beta, acc.data_ptr<double>(), &in);
    }
  } else if (accumulate) {
    acc.add_(at::matmul(c.t(), c).triu());
  } else {
    acc.copy_(at::matmul(c.t(), c).triu());
  }
}

at::Tensor mirror_upper(const at::Tensor& c) { return c.triu() + c.triu(1).t(); }

// xᵀx for a 2-D x (N x D). Row-major x is column-major xᵀ (D x N, lda D), so syrk with trans 'N'
// gives xᵀx; it fills one triangle, mirrored afterwards.
at::Tensor gram(const at::Tensor& x_in) {
  TORCH_CHECK(x_in.dim() == 2, "gram expects a 2-D tensor, got ", x_in.dim(), "-D");
  const bool f32 = x_in.scalar_type() == at::kFloat, f64 = x_in.scalar_type() == at::kDouble;
  const bool have = (f32 && ssyrk_) || (f64 && dsyrk_);
  const int64_t n = x_in.size(0), d = x_in.size(1);
  if (!have || !x_in.device().is_cpu() || n == 0 || d == 0 || n > INT32_MAX || d > INT32_MAX) return at::matmul(x_in.t(), x_in);
  at::Tensor x = x_in.contiguous();
  at::Tensor c = at::zeros({d, d}, x.options());
  syrk_acc(x, c, false);
  // Column-major lower = row-major upper.
  return mirror_upper(c);
}

// np.cov(x.T, bias=True)·N of the prepared rows, in float64, without an N x D copy: one pass for the
// mean, one filling a chunk buffer with centred rows for syrk. Also Σ_k ‖c_k‖⁴ and Σ c² (Ledoit-Wolf's
// β and trace). Returns the mean (1 x D), the Gram matrix, β and the trace.
std::vector<at::Tensor> centered_gram(const at::Tensor& x_in, at::ScalarType dtype, const std::string& mode, double eps) {
  TORCH_CHECK(x_in.dim() == 2, "centered_gram expects a 2-D tensor, got ", x_in.dim(), "-D");
  TORCH_CHECK(dtype == at::kDouble, "centered_gram: float64 arithmetic only (as np.cov)");
  check_normalize_mode("centered_gram", mode);
  at::Tensor x = x_in.contiguous();
  if (x.scalar_type() != at::kFloat && x.scalar_type() != at::kDouble) x = x.to(at::kDouble);
  const int64_t n = x.size(0), d = x.size(1);
  TORCH_CHECK(n > 0 && d > 0, "centered_gram: empty matrix");
  const RowNorm rm = row_norm_mode(mode);
  std::vector<double> mean = prepared_mean(x, rm, eps);
  auto opts = at::TensorOptions().dtype(at::kDouble);
  at::Tensor acc = at::zeros({d, d}, opts);
  at::Tensor buf = at::empty({std::min(n, kPrepRows), d}, opts);
  double* bp = buf.data_ptr<double>();
  double beta = 0, trace = 0;
  for (int64_t s = 0; s < n; s += kPrepRows) {
    const int64_t e = std::min(n, s + kPrepRows);
    prep_rows(x, s, e, bp, rm, eps, mean.data(), true);
    syrk_acc(buf.slice(0, 0, e - s), acc, s > 0);
    for (int64_t i = 0; i < e - s; ++i) {
      const double rn = sum_sq(bp + i * d, d);
      beta += rn * rn;
      trace += rn;
    }
  }
  at::Tensor mean_t = at::empty({1, d}, opts);
  std::copy(mean.begin(), mean.end(), mean_t.data_ptr<double>());
  return {mean_t, mirror_upper(acc), at::scalar_tensor(beta, opts), at::scalar_tensor(trace, opts)};
}

// (x−μ)ᵀ F (x−μ) per prepared row of x, in float64. `factor`: F is the lower Cholesky factor L of the
// precision (score = ‖(x−μ)L‖², a trmm: half a gemm's flops); else F is the precision itself
// ((x−μ)F·(x−μ), a gemm).
at::Tensor quad_form(const at::Tensor& x_in, const at::Tensor& mu_in, const at::Tensor& F_in, bool factor, const std::string& mode, double eps) {
  TORCH_CHECK(x_in.dim() == 2 && F_in.dim() == 2 && F_in.size(0) == F_in.size(1) && F_in.size(0) == x_in.size(1) &&
                  mu_in.numel() == x_in.size(1),
              "quad_form: x (N x D), mu (1 x D or D) and a D x D matrix expected");
  check_normalize_mode("quad_form", mode);
  auto opts = at::TensorOptions().dtype(at::kDouble);
  at::Tensor x = x_in.contiguous();
  if (x.scalar_type() != at::kFloat && x.scalar_type() != at::kDouble) x = x.to(at::kDouble);
  at::Tensor mu = mu_in.to(at::kDouble).contiguous().reshape({-1});
  at::Tensor F = F_in.to(at::kDouble).contiguous();
  const int64_t n = x.size(0), d = x.size(1);
  at::Tensor out = at::empty({n}, opts);
  double* op = out.data_ptr<double>();
  at::Tensor buf = at::empty({std::min(n, kPrepRows), d}, opts);
  at::Tensor prod = factor ? at::Tensor() : at::empty({std::min(n, kPrepRows), d}, opts);
  double* bp = buf.data_ptr<double>();
  const RowNorm rm = row_norm_mode(mode);
  for (int64_t s = 0; s < n; s += kPrepRows) {
    const int64_t e = std::min(n, s + kPrepRows), rows = e - s;
    prep_rows(x, s, e, bp, rm, eps, mu.data_ptr<double>(), true);
    at::Tensor c = buf.slice(0, 0, rows);
    if (factor) {
      trmm_rows_lower(c, F);
      for (int64_t i = 0; i < rows; ++i) op[s + i] = sum_sq(bp + i * d, d);
    } else {
      at::Tensor pr = prod.slice(0, 0, rows);
      at::mm_out(pr, c, F);
      const double* pp = pr.data_ptr<double>();
      for (int64_t i = 0; i < rows; ++i) op[s + i] = dot_f64acc(pp + i * d, bp + i * d, d);
    }
  }
  return out;
}

}  // namespace

void register_ood_covariance_ops(const OpRegistry& add) {
  const auto H = OpCost::kHeavy;
  add("gram", {1, 1, 1, H}, [](const Inputs& in, const OpArgs&) -> Outputs { return {gram(in[0])}; });
  add("centered_gram", {1, 1, 4, H, {"normalize", "dtype", "eps"}}, [](const Inputs& in, const OpArgs& a) -> Outputs {
                          return centered_gram(in[0], parse_dtype(a.get_string("dtype", dtype_name(in[0].scalar_type()))),
                                               a.get_string("normalize", "none"), a.get_double("eps", 1e-10));
                        });
  add("quad_form", {3, 3, 1, H, {"factor", "normalize", "eps"}}, [](const Inputs& in, const OpArgs& a) -> Outputs {
                      return {quad_form(in[0], in[1], in[2], a.get_bool("factor", false), a.get_string("normalize", "none"),
                                        a.get_double("eps", 1e-10))};
                    });
}

}  // namespace mood
