// The ISA-independent half of every op: argument checks, the split into rows,
// chunks and column blocks, threading, and the combination of partial results.
#ifndef SOFTKIT_SRC_DRIVER_H
#define SOFTKIT_SRC_DRIVER_H

#include <cstddef>
#include <cstdint>

#include "softkit/softkit.h"

namespace softkit {

enum class normalize { softmax, log_softmax };

softkit_status run_softmax(normalize kind, const float *x, float *y, std::size_t outer, std::size_t n,
                           std::size_t inner);
softkit_status run_logsumexp(const float *x, float *out, std::size_t outer, std::size_t n, std::size_t inner);
softkit_status run_cross_entropy(const float *logits, const int64_t *targets, std::size_t outer,
                                 std::size_t classes, std::size_t inner, const softkit_cross_entropy_options *opts,
                                 float *loss);

// driver_backward.cpp
softkit_status run_cross_entropy_backward(const float *logits, const int64_t *targets, std::size_t outer,
                                          std::size_t classes, std::size_t inner,
                                          const softkit_cross_entropy_options *opts, const float *dloss,
                                          float *dlogits);
softkit_status run_cross_entropy_probs(const float *logits, const float *target_probs, std::size_t outer,
                                       std::size_t classes, std::size_t inner,
                                       const softkit_cross_entropy_options *opts, float *loss);
softkit_status run_softmax_backward(normalize kind, const float *y, const float *dy, float *dx, std::size_t outer,
                                    std::size_t n, std::size_t inner);

}  // namespace softkit

#endif  // SOFTKIT_SRC_DRIVER_H
