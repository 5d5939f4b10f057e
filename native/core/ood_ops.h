// OOD detector kernels as ops of the table (lib/ood/detectors): row preparation (cast, MOOD/unit
// normalisation, centring), centred Gram matrices and Mahalanobis quadratic forms, nearest-neighbour
// scans (cos, knn), k-means (k-means++, Lloyd, scoring).
#pragma once
#include "core/ops.h"

namespace mood {
void register_ood_ops(const OpRegistry& add);
}  // namespace mood
