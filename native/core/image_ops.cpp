#include "core/image_ops.h"

namespace mood {

void register_image_ops(const OpRegistry& add) { (void)add; }

}  // namespace mood
