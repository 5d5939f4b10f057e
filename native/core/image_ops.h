// Image ops: JPEG/PNG decode (libjpeg-turbo, libpng), Pillow-compatible resize, eval transforms,
// registered into the op table.
#pragma once
#include "core/ops.h"

namespace mood {
void register_image_ops(const OpRegistry& add);
}
