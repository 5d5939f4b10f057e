// OOD detector kernels as ops of the table (lib/ood/detectors), one file per family:
//   ood_rows.cpp         row preparation (cast, MOOD/unit normalisation, centring): row_normalize
//   ood_covariance.cpp   centred Gram matrices and Mahalanobis quadratic forms: gram, centered_gram, quad_form
//   ood_neighbours.cpp   nearest-neighbour scans (cos, knn): nn_scan
//   ood_kmeans.cpp       k-means (k-means++, Lloyd, scoring): kmeans_prepare, kmeans_plusplus, kmeans_lloyd, kmeans_score
// Whole computations as one op each, so that 50k x 768 features need no N x D temporaries beyond a
// row chunk and no JS round trip per block or per k-means iteration.
#pragma once
#include "core/ops.h"

namespace mood {

void register_ood_row_ops(const OpRegistry& add);
void register_ood_covariance_ops(const OpRegistry& add);
void register_ood_neighbour_ops(const OpRegistry& add);
void register_ood_kmeans_ops(const OpRegistry& add);

// All of them (ops.cpp builds the table with this).
inline void register_ood_ops(const OpRegistry& add) {
  register_ood_row_ops(add);
  register_ood_covariance_ops(add);
  register_ood_neighbour_ops(add);
  register_ood_kmeans_ops(add);
}

}  // namespace mood
