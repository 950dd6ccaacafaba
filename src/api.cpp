// The exported C API: thin wrappers over the dispatcher and the driver. Nothing
// C++ (no exception, no STL type) crosses this boundary.
#include <omp.h>

#include <atomic>

#include "dispatch.h"
#include "driver.h"
#include "driver_common.h"
#include "softkit/softkit.h"
#include "threading.h"

#define SOFTKIT_STR2(x) #x
#define SOFTKIT_STR(x) SOFTKIT_STR2(x)

namespace softkit {
namespace {
std::atomic<int> g_threads{0};  // 0: OpenMP's default
}  // namespace

int configured_threads() {
  const int n = g_threads.load(std::memory_order_relaxed);
  return n > 0 ? n : omp_get_max_threads();
}

void configure_threads(int n) { g_threads.store(n > 0 ? n : 0, std::memory_order_relaxed); }

}  // namespace softkit

extern "C" {

SOFTKIT_API const char *softkit_version(void) {
  return SOFTKIT_STR(SOFTKIT_VERSION_MAJOR) "." SOFTKIT_STR(SOFTKIT_VERSION_MINOR) "." SOFTKIT_STR(
      SOFTKIT_VERSION_PATCH);
}

SOFTKIT_API const char *softkit_status_string(softkit_status status) {
  switch (softkit::enum_value(status)) {
    case SOFTKIT_OK:
      return "ok";
    case SOFTKIT_ERROR_NULL_POINTER:
      return "a pointer needed for the work is NULL";
    case SOFTKIT_ERROR_INVALID_ARGUMENT:
      return "invalid argument (option out of range, classes == 0, or overlapping buffers)";
    case SOFTKIT_ERROR_TARGET_OUT_OF_RANGE:
      return "a target is outside [0, classes) and is not ignore_index";
    case SOFTKIT_ERROR_SIZE_OVERFLOW:
      return "the tensor size overflows size_t";
    case SOFTKIT_ERROR_UNSUPPORTED_ISA:
      return "the ISA is unknown, or this CPU or build does not support it";
  }
  return "unknown softkit status";
}

SOFTKIT_API softkit_isa softkit_get_isa(void) { return softkit::active_kernels()->isa; }

SOFTKIT_API softkit_status softkit_set_isa(softkit_isa isa) {
  const int value = softkit::enum_value(isa);
  if (value < SOFTKIT_ISA_SCALAR || value > SOFTKIT_ISA_NEON) return SOFTKIT_ERROR_UNSUPPORTED_ISA;
  return softkit::set_active_isa(static_cast<softkit_isa>(value));
}

SOFTKIT_API const char *softkit_isa_name(softkit_isa isa) {
  switch (softkit::enum_value(isa)) {
    case SOFTKIT_ISA_SCALAR:
      return "scalar";
    case SOFTKIT_ISA_AVX2:
      return "avx2";
    case SOFTKIT_ISA_AVX512:
      return "avx512";
    case SOFTKIT_ISA_NEON:
      return "neon";
  }
  return "unknown";
}

SOFTKIT_API void softkit_set_num_threads(int n) { softkit::configure_threads(n); }

SOFTKIT_API int softkit_get_num_threads(void) { return softkit::configured_threads(); }

SOFTKIT_API softkit_status softkit_softmax_f32(const float *x, float *y, size_t outer, size_t n, size_t inner) {
  return softkit::run_softmax(softkit::normalize::softmax, x, y, outer, n, inner);
}

SOFTKIT_API softkit_status softkit_log_softmax_f32(const float *x, float *y, size_t outer, size_t n, size_t inner) {
  return softkit::run_softmax(softkit::normalize::log_softmax, x, y, outer, n, inner);
}

SOFTKIT_API softkit_status softkit_logsumexp_f32(const float *x, float *out, size_t outer, size_t n, size_t inner) {
  return softkit::run_logsumexp(x, out, outer, n, inner);
}

SOFTKIT_API softkit_status softkit_cross_entropy_f32(const float *logits, const int64_t *targets, size_t outer,
                                                     size_t classes, size_t inner,
                                                     const softkit_cross_entropy_options *opts, float *loss) {
  return softkit::run_cross_entropy(logits, targets, outer, classes, inner, opts, loss);
}

SOFTKIT_API softkit_status softkit_cross_entropy_backward_f32(const float *logits, const int64_t *targets,
                                                              size_t outer, size_t classes, size_t inner,
                                                              const softkit_cross_entropy_options *opts,
                                                              const float *dloss, float *dlogits) {
  return softkit::run_cross_entropy_backward(logits, targets, outer, classes, inner, opts, dloss, dlogits);
}

SOFTKIT_API softkit_status softkit_cross_entropy_probs_f32(const float *logits, const float *target_probs,
                                                           size_t outer, size_t classes, size_t inner,
                                                           const softkit_cross_entropy_options *opts, float *loss) {
  return softkit::run_cross_entropy_probs(logits, target_probs, outer, classes, inner, opts, loss);
}

SOFTKIT_API softkit_status softkit_softmax_backward_f32(const float *y, const float *dy, float *dx, size_t outer,
                                                        size_t n, size_t inner) {
  return softkit::run_softmax_backward(softkit::normalize::softmax, y, dy, dx, outer, n, inner);
}

SOFTKIT_API softkit_status softkit_log_softmax_backward_f32(const float *y, const float *dy, float *dx,
                                                            size_t outer, size_t n, size_t inner) {
  return softkit::run_softmax_backward(softkit::normalize::log_softmax, y, dy, dx, outer, n, inner);
}

}  // extern "C"
