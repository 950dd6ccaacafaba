// Runtime choice of the kernel implementation.
#ifndef SOFTKIT_SRC_DISPATCH_H
#define SOFTKIT_SRC_DISPATCH_H

#include "kernels.h"

namespace softkit {

// The table of an ISA if this build has it and this CPU and OS can run it, else nullptr.
const kernel_table *kernels_for(softkit_isa isa);

// The table in use: chosen at first call as the best supported ISA, capped by the
// environment variable SOFTKIT_ISA; replaced by set_active_isa. Thread-safe.
const kernel_table *active_kernels();
softkit_status set_active_isa(softkit_isa isa);

}  // namespace softkit

#endif  // SOFTKIT_SRC_DISPATCH_H
