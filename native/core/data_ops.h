// Data-pipeline ops (batch augmentation of in-memory uint8 datasets, image decode and resize)
// registered into the op table.
#pragma once
#include "core/ops.h"

namespace mood {
void register_data_ops(const OpRegistry& add);
}
