// Long double reference of softkit's four ops on an [outer, n, inner] tensor,
// with PyTorch 1.13's IEEE special-value semantics:
//  - softmax / log_softmax: a row holding NaN or +inf, or made only of -inf, is all NaN;
//  - logsumexp: NaN if the row holds NaN, else +inf if it holds +inf, else -inf if
//    it is all -inf or empty, else max + log(sum(exp(x - max)));
//  - cross_entropy: torch.nn.functional.cross_entropy (weights, ignore_index,
//    label smoothing; MEAN divides by the count, or the weight sum, of the
//    non-ignored samples).
// Everything is computed in long double (see ref::ld): max-subtracted, expl, logl,
// long double sums.
#ifndef SOFTKIT_TESTS_REFERENCE_HPP
#define SOFTKIT_TESTS_REFERENCE_HPP

#include <cfloat>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <limits>
#include <vector>

#include "softkit/softkit.h"

namespace ref {

// long double where it is the x87 64-bit-mantissa type (x86: hardware, fast).
// Where long double is a software IEEE quad (AArch64), often run under QEMU,
// its expl/logl are far too slow for the sweeps; double is used there (its
// 2^-53 is still 2^-29 below the float ulps the bounds are counted in).
// -DSOFTKIT_TEST_REF_LONG_DOUBLE=1 forces long double.
#if LDBL_MANT_DIG == 64 || (defined(SOFTKIT_TEST_REF_LONG_DOUBLE) && SOFTKIT_TEST_REF_LONG_DOUBLE)
using ld = long double;
#else
using ld = double;
#endif

inline ld ld_nan() { return std::numeric_limits<ld>::quiet_NaN(); }
inline ld ld_inf() { return std::numeric_limits<ld>::infinity(); }

// Statistics of one row (one (outer, inner) pair) along n.
struct RowStats {
  ld max = -std::numeric_limits<ld>::infinity();  // over the non-NaN values
  ld sum = 0;                                     // sum exp(x - max); only when finite()
  bool has_nan = false;
  bool has_pinf = false;
  bool all_ninf = true;  // true for n == 0 too
  // A normal row: no NaN, no +inf, at least one finite value.
  bool finite() const { return !has_nan && !has_pinf && !all_ninf; }
  ld log_sum() const { return std::log(sum); }
};

inline RowStats row_stats(const float *x, std::size_t n, std::size_t stride) {
  RowStats s;
  for (std::size_t k = 0; k < n; ++k) {
    const float v = x[k * stride];
    if (std::isnan(v)) {
      s.has_nan = true;
      s.all_ninf = false;
      continue;
    }
    if (v == std::numeric_limits<float>::infinity()) s.has_pinf = true;
    if (v != -std::numeric_limits<float>::infinity()) s.all_ninf = false;
    if ((ld)v > s.max) s.max = v;
  }
  if (s.finite()) {
    ld sum = 0;
    for (std::size_t k = 0; k < n; ++k) sum += std::exp((ld)x[k * stride] - s.max);
    s.sum = sum;
  }
  return s;
}

// Stats of every (o, i) row, indexed o * inner + i.
inline std::vector<RowStats> stats(const float *x, std::size_t outer, std::size_t n, std::size_t inner) {
  std::vector<RowStats> out(outer * inner);
  for (std::size_t o = 0; o < outer; ++o)
    for (std::size_t i = 0; i < inner; ++i) out[o * inner + i] = row_stats(x + o * n * inner + i, n, inner);
  return out;
}

inline std::vector<ld> softmax(const float *x, std::size_t outer, std::size_t n, std::size_t inner,
                               const std::vector<RowStats> &st) {
  std::vector<ld> y(outer * n * inner);
  for (std::size_t o = 0; o < outer; ++o)
    for (std::size_t i = 0; i < inner; ++i) {
      const RowStats &s = st[o * inner + i];
      for (std::size_t k = 0; k < n; ++k) {
        const std::size_t idx = (o * n + k) * inner + i;
        y[idx] = s.finite() ? std::exp((ld)x[idx] - s.max) / s.sum : ld_nan();
      }
    }
  return y;
}

inline std::vector<ld> log_softmax(const float *x, std::size_t outer, std::size_t n, std::size_t inner,
                                   const std::vector<RowStats> &st) {
  std::vector<ld> y(outer * n * inner);
  for (std::size_t o = 0; o < outer; ++o)
    for (std::size_t i = 0; i < inner; ++i) {
      const RowStats &s = st[o * inner + i];
      const ld ls = s.finite() ? s.log_sum() : 0;
      for (std::size_t k = 0; k < n; ++k) {
        const std::size_t idx = (o * n + k) * inner + i;
        y[idx] = s.finite() ? ((ld)x[idx] - s.max) - ls : ld_nan();
      }
    }
  return y;
}

inline ld logsumexp_of(const RowStats &s) {
  if (s.has_nan) return ld_nan();
  if (s.has_pinf) return ld_inf();
  if (s.all_ninf) return -ld_inf();
  return s.max + s.log_sum();
}

inline std::vector<ld> logsumexp(const float *x, std::size_t outer, std::size_t n, std::size_t inner,
                                 const std::vector<RowStats> &st) {
  (void)x;
  (void)n;
  std::vector<ld> out(outer * inner);
  for (std::size_t j = 0; j < outer * inner; ++j) out[j] = logsumexp_of(st[j]);
  return out;
}

inline std::vector<ld> softmax(const float *x, std::size_t outer, std::size_t n, std::size_t inner) {
  return softmax(x, outer, n, inner, stats(x, outer, n, inner));
}
inline std::vector<ld> log_softmax(const float *x, std::size_t outer, std::size_t n, std::size_t inner) {
  return log_softmax(x, outer, n, inner, stats(x, outer, n, inner));
}
inline std::vector<ld> logsumexp(const float *x, std::size_t outer, std::size_t n, std::size_t inner) {
  return logsumexp(x, outer, n, inner, stats(x, outer, n, inner));
}

struct CrossEntropyOptions {
  softkit_reduction reduction = SOFTKIT_REDUCTION_MEAN;
  std::int64_t ignore_index = -100;
  double label_smoothing = 0.0;
  const float *weights = nullptr;  // classes entries or nullptr
};

// Per-sample terms, exactly as libtorch 1.13 forms them:
//   nll    = w[t] * (-log p[t])
//   smooth = sum_c w[c] * (-log p[c])          (only when label_smoothing > 0)
//   loss   = (1 - e) * nll + (e / C) * smooth   (e = 0: loss = nll)
// Ignored samples have loss 0 and do not count in the MEAN divisor.
struct CrossEntropyResult {
  std::vector<ld> loss;            // 1 value for MEAN / SUM, outer * inner for NONE
  std::vector<ld> sample;          // per-sample loss, always outer * inner
  std::vector<bool> ignored;       // per sample
  ld divisor = 0;                  // MEAN divisor
};

inline CrossEntropyResult cross_entropy(const float *logits, const std::int64_t *targets, std::size_t outer,
                                        std::size_t classes, std::size_t inner, const CrossEntropyOptions &o) {
  CrossEntropyResult r;
  const std::size_t samples = outer * inner;
  r.sample.assign(samples, 0);
  r.ignored.assign(samples, false);
  const ld e = o.label_smoothing;
  ld total = 0;
  for (std::size_t s = 0; s < samples; ++s) {
    const std::size_t oo = s / inner, ii = s % inner;
    const std::int64_t t = targets[s];
    if (t == o.ignore_index) {
      r.ignored[s] = true;
      continue;
    }
    const float *row = logits + oo * classes * inner + ii;
    const RowStats st = row_stats(row, classes, inner);
    const ld ls = st.finite() ? st.log_sum() : 0;
    auto neg_logp = [&](std::size_t c) -> ld {
      if (!st.finite()) return ld_nan();
      return -(((ld)row[c * inner] - st.max) - ls);
    };
    const ld wt = o.weights ? (ld)o.weights[t] : (ld)1;
    const ld nll = wt * neg_logp((std::size_t)t);
    ld loss = nll;
    if (e > 0) {
      ld smooth = 0;
      for (std::size_t c = 0; c < classes; ++c) smooth += (o.weights ? (ld)o.weights[c] : (ld)1) * neg_logp(c);
      loss = (1 - e) * nll + (e / (ld)classes) * smooth;
    }
    r.sample[s] = loss;
    r.divisor += wt;
    total += loss;
  }
  switch (o.reduction) {
    case SOFTKIT_REDUCTION_MEAN:
      r.loss.assign(1, total / r.divisor);  // 0 / 0 = NaN when every sample is ignored
      break;
    case SOFTKIT_REDUCTION_SUM:
      r.loss.assign(1, total);
      break;
    default:
      r.loss = r.sample;
      break;
  }
  return r;
}

}  // namespace ref

#endif  // SOFTKIT_TESTS_REFERENCE_HPP
