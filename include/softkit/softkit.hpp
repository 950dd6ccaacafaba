// Header-only C++17 wrapper over the softkit C API: shapes and a dim instead of
// [outer, n, inner], exceptions instead of status codes. Nothing here is part
// of the library's ABI; it compiles into the caller.
//
//   std::vector<float> y(x.size());
//   softkit::softmax(x.data(), y.data(), {batch, heads, seq, seq}, -1);
#ifndef SOFTKIT_SOFTKIT_HPP
#define SOFTKIT_SOFTKIT_HPP

#include <cstddef>
#include <cstdint>
#include <initializer_list>
#include <stdexcept>
#include <string>
#include <vector>

#include "softkit/softkit.h"

namespace softkit {

// Thrown on any status other than SOFTKIT_OK; status() tells which.
class error : public std::runtime_error {
 public:
  explicit error(softkit_status status)
      : std::runtime_error(std::string("softkit: ") + softkit_status_string(status)), status_(status) {}
  softkit_status status() const noexcept { return status_; }

 private:
  softkit_status status_;
};

inline void check(softkit_status status) {
  if (status != SOFTKIT_OK) throw error(status);
}

// A contiguous shape split around one dim: [outer, n, inner].
struct split {
  std::size_t outer = 1, n = 1, inner = 1;
};

// dim may be negative (counted from the end), as in PyTorch.
inline split split_at(const std::vector<std::size_t> &shape, std::ptrdiff_t dim) {
  const auto rank = static_cast<std::ptrdiff_t>(shape.size());
  if (dim < 0) dim += rank;
  if (dim < 0 || dim >= rank) throw error(SOFTKIT_ERROR_INVALID_ARGUMENT);
  split s;
  for (std::ptrdiff_t i = 0; i < rank; ++i) {
    std::size_t &part = i < dim ? s.outer : i == dim ? s.n : s.inner;
    if (shape[i] != 0 && part > static_cast<std::size_t>(-1) / shape[i]) throw error(SOFTKIT_ERROR_SIZE_OVERFLOW);
    part *= shape[i];
  }
  return s;
}

inline void softmax(const float *x, float *y, const std::vector<std::size_t> &shape, std::ptrdiff_t dim = -1) {
  const split s = split_at(shape, dim);
  check(softkit_softmax_f32(x, y, s.outer, s.n, s.inner));
}

inline void log_softmax(const float *x, float *y, const std::vector<std::size_t> &shape, std::ptrdiff_t dim = -1) {
  const split s = split_at(shape, dim);
  check(softkit_log_softmax_f32(x, y, s.outer, s.n, s.inner));
}

// out holds the shape without dim.
inline void logsumexp(const float *x, float *out, const std::vector<std::size_t> &shape, std::ptrdiff_t dim = -1) {
  const split s = split_at(shape, dim);
  check(softkit_logsumexp_f32(x, out, s.outer, s.n, s.inner));
}

// Vector conveniences: return a new vector.
inline std::vector<float> softmax(const std::vector<float> &x, const std::vector<std::size_t> &shape,
                                  std::ptrdiff_t dim = -1) {
  std::vector<float> y(x.size());
  softmax(x.data(), y.data(), shape, dim);
  return y;
}

inline std::vector<float> log_softmax(const std::vector<float> &x, const std::vector<std::size_t> &shape,
                                      std::ptrdiff_t dim = -1) {
  std::vector<float> y(x.size());
  log_softmax(x.data(), y.data(), shape, dim);
  return y;
}

inline std::vector<float> logsumexp(const std::vector<float> &x, const std::vector<std::size_t> &shape,
                                    std::ptrdiff_t dim = -1) {
  const split s = split_at(shape, dim);
  std::vector<float> out(s.outer * s.inner);
  check(softkit_logsumexp_f32(x.data(), out.data(), s.outer, s.n, s.inner));
  return out;
}

// PyTorch's cross_entropy: logits (N, C) or (N, C, d1, ...), class dim 1;
// targets (N) or (N, d1, ...). Returns 1 value for MEAN and SUM, N * d1 * ... for NONE.
inline std::vector<float> cross_entropy(const float *logits, const std::int64_t *targets,
                                        const std::vector<std::size_t> &logits_shape,
                                        const softkit_cross_entropy_options &opts = softkit_cross_entropy_options_default()) {
  if (logits_shape.size() < 2) throw error(SOFTKIT_ERROR_INVALID_ARGUMENT);
  const split s = split_at(logits_shape, 1);
  std::vector<float> loss(opts.reduction == SOFTKIT_REDUCTION_NONE ? s.outer * s.inner : 1);
  check(softkit_cross_entropy_f32(logits, targets, s.outer, s.n, s.inner, &opts, loss.data()));
  return loss;
}

// The gradient of cross_entropy(...) with respect to the logits, for the
// upstream gradient dloss (1 value for MEAN and SUM, one per sample for NONE).
inline void cross_entropy_backward(const float *logits, const std::int64_t *targets,
                                   const std::vector<std::size_t> &logits_shape, const float *dloss, float *dlogits,
                                   const softkit_cross_entropy_options &opts = softkit_cross_entropy_options_default()) {
  if (logits_shape.size() < 2) throw error(SOFTKIT_ERROR_INVALID_ARGUMENT);
  const split s = split_at(logits_shape, 1);
  check(softkit_cross_entropy_backward_f32(logits, targets, s.outer, s.n, s.inner, &opts, dloss, dlogits));
}

// cross_entropy with class-probability targets of the logits' shape.
inline std::vector<float> cross_entropy_probs(const float *logits, const float *target_probs,
                                              const std::vector<std::size_t> &logits_shape,
                                              const softkit_cross_entropy_options &opts =
                                                  softkit_cross_entropy_options_default()) {
  if (logits_shape.size() < 2) throw error(SOFTKIT_ERROR_INVALID_ARGUMENT);
  const split s = split_at(logits_shape, 1);
  std::vector<float> loss(opts.reduction == SOFTKIT_REDUCTION_NONE ? s.outer * s.inner : 1);
  check(softkit_cross_entropy_probs_f32(logits, target_probs, s.outer, s.n, s.inner, &opts, loss.data()));
  return loss;
}

// dx from the forward output y and its gradient dy.
inline void softmax_backward(const float *y, const float *dy, float *dx, const std::vector<std::size_t> &shape,
                             std::ptrdiff_t dim = -1) {
  const split s = split_at(shape, dim);
  check(softkit_softmax_backward_f32(y, dy, dx, s.outer, s.n, s.inner));
}

inline void log_softmax_backward(const float *y, const float *dy, float *dx, const std::vector<std::size_t> &shape,
                                 std::ptrdiff_t dim = -1) {
  const split s = split_at(shape, dim);
  check(softkit_log_softmax_backward_f32(y, dy, dx, s.outer, s.n, s.inner));
}

inline float cross_entropy_mean(const std::vector<float> &logits, const std::vector<std::int64_t> &targets,
                                std::size_t classes) {
  if (classes == 0 || logits.size() != targets.size() * classes) throw error(SOFTKIT_ERROR_INVALID_ARGUMENT);
  return cross_entropy(logits.data(), targets.data(), {targets.size(), classes})[0];
}

// Switches the process to one ISA (e.g. in tests) and restores the previous one on scope exit.
class scoped_isa {
 public:
  explicit scoped_isa(softkit_isa isa) : previous_(softkit_get_isa()) { check(softkit_set_isa(isa)); }
  ~scoped_isa() { softkit_set_isa(previous_); }
  scoped_isa(const scoped_isa &) = delete;
  scoped_isa &operator=(const scoped_isa &) = delete;

 private:
  softkit_isa previous_;
};

}  // namespace softkit

#endif  // SOFTKIT_SOFTKIT_HPP
