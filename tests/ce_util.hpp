// Cross-entropy helpers shared by test_cross_entropy.cpp and test_torch.cpp.
#ifndef SOFTKIT_TESTS_CE_UTIL_HPP
#define SOFTKIT_TESTS_CE_UTIL_HPP

#include "test_util.hpp"

namespace tu {

// Cross-entropy options with the given reduction, ignore_index, smoothing and weights.
inline softkit_cross_entropy_options ce_opts(softkit_reduction red, std::int64_t ignore = -100, float smoothing = 0.0f,
                                             const float *weights = nullptr) {
  softkit_cross_entropy_options o = SOFTKIT_CROSS_ENTROPY_OPTIONS_INIT;
  o.reduction = red;
  o.ignore_index = ignore;
  o.label_smoothing = smoothing;
  o.class_weights = weights;
  return o;
}

inline ref::CrossEntropyOptions to_ref(const softkit_cross_entropy_options *o) {
  ref::CrossEntropyOptions r;
  if (o == nullptr) return r;
  r.reduction = o->reduction;
  r.ignore_index = o->ignore_index;
  r.label_smoothing = (double)o->label_smoothing;
  r.weights = o->class_weights;
  return r;
}

// Runs softkit_cross_entropy_f32 on the active ISA into a sentinel-filled buffer.
inline std::vector<float> run_ce(const std::vector<float> &x, const std::vector<std::int64_t> &t, std::size_t outer,
                                 std::size_t classes, std::size_t inner, const softkit_cross_entropy_options *o) {
  const bool none = o != nullptr && o->reduction == SOFTKIT_REDUCTION_NONE;
  std::vector<float> loss(none ? outer * inner : 1, kSentinel);
  const softkit_status s = softkit_cross_entropy_f32(x.data(), t.data(), outer, classes, inner, o, loss.data());
  INFO("cross_entropy " << shape_label(outer, classes, inner) << " on " << isa_name(softkit_get_isa()));
  REQUIRE(s == SOFTKIT_OK);
  return loss;
}

// The error scale of each sample's loss: the log_softmax bound scale
// (1 + |x - max| + log sum) of the terms the loss is made of, weighted like them.
// The allowed error of a sample is 4 * 2^-23 * scale; of MEAN / SUM the sum of
// the scales over the divisor.
inline std::vector<double> ce_scales(const std::vector<float> &x, const std::vector<std::int64_t> &t, std::size_t outer,
                                     std::size_t classes, std::size_t inner, const ref::CrossEntropyOptions &o) {
  std::vector<double> scale(outer * inner, 0.0);
  const double e = o.label_smoothing;
  for (std::size_t s = 0; s < outer * inner; ++s) {
    if (t[s] == o.ignore_index) continue;
    const std::size_t oo = s / inner, ii = s % inner;
    const float *row = x.data() + oo * classes * inner + ii;
    const ref::RowStats st = ref::row_stats(row, classes, inner);
    if (!st.finite()) continue;
    const double ls = (double)st.log_sum();
    auto S = [&](std::size_t c) { return 1 + std::fabs((double)((ld)row[c * inner] - st.max)) + ls; };
    auto W = [&](std::size_t c) { return o.weights ? std::fabs((double)o.weights[c]) : 1.0; };
    double v = (e > 0 ? (1 - e) : 1.0) * W((std::size_t)t[s]) * S((std::size_t)t[s]);
    if (e > 0) {
      double sm = 0;
      for (std::size_t c = 0; c < classes; ++c) sm += W(c) * S(c);
      v += e / (double)classes * sm;
    }
    scale[s] = v;
  }
  return scale;
}

// Whether a class's nll = (max - x) + log_sum, d = max - x, is within its own
// bound of 0 (the row's max, the others e^-17 or more below it): the float or
// double nll may round to 0 there (log of 1 + 1e-19), and an infinite factor
// times it is then NaN, as PyTorch's float log_softmax gives it, where the long
// double gives infinity. Both are right.
inline bool nll_rounds_to_0(ld nll, ld d, ld log_sum) { return nll <= 4 * kEps * (1 + d + log_sum); }

// Samples whose loss holds an infinite class weight times an nll that
// nll_rounds_to_0 (the target's class; with smoothing, any class): NaN is as
// right there as the infinite reference.
inline std::vector<char> ce_nan_ok(const std::vector<float> &x, const std::vector<std::int64_t> &t, std::size_t outer,
                                   std::size_t classes, std::size_t inner, const ref::CrossEntropyOptions &o) {
  std::vector<char> ok(outer * inner, 0);
  if (!o.weights) return ok;
  for (std::size_t s = 0; s < outer * inner; ++s) {
    if (t[s] == o.ignore_index || t[s] < 0 || (std::size_t)t[s] >= classes) continue;
    const std::size_t oo = s / inner, ii = s % inner;
    const float *row = x.data() + oo * classes * inner + ii;
    const ref::RowStats st = ref::row_stats(row, classes, inner);
    if (!st.finite()) continue;
    for (std::size_t c = 0; c < classes && !ok[s]; ++c) {
      if ((o.label_smoothing == 0 && c != (std::size_t)t[s]) || !std::isinf(o.weights[c])) continue;
      const ld d = st.max - (ld)row[c * inner];
      ok[s] = nll_rounds_to_0(d + st.log_sum(), d, st.log_sum());
    }
  }
  return ok;
}

// Compares softkit's loss output against `want` (reference or another
// implementation). `factor` widens the bound (2 when both sides are approximations).
// Besides the relative bound, one ulp of the subnormals: a loss in that range
// (a subnormal class weight) is only as close as the float spacing there.
inline Compare compare_ce(const std::vector<float> &got, const std::vector<ld> &want, const std::vector<double> &scale,
                          ld divisor, softkit_reduction red, const std::string &label, double factor = 1.0,
                          const std::vector<char> *nan_ok = nullptr) {
  Compare c;
  bool any_nan_ok = false;
  if (nan_ok)
    for (char v : *nan_ok) any_nan_ok = any_nan_ok || v;
  auto one = [&](float g, ld w, double sc, std::size_t where) {
    const bool nan_too = nan_ok && (red == SOFTKIT_REDUCTION_NONE ? (*nan_ok)[where] != 0 : any_nan_ok);
    ++c.checked;
    const double tol = factor * (4 * kEps * sc + kMinSub);
    bool ok;
    double err = 0;
    if (std::isnan(w)) {
      ok = std::isnan(g);
    } else if (std::isinf((float)w) || !std::isfinite(g)) {  // an infinity on either side
      ok = (nan_too && std::isnan(g)) || (std::isinf(w) ? g == w : float_within(g, w, tol));
    } else {
      err = std::fabs((double)((ld)g - w));
      ok = err <= tol;
      const double ulp = sc > 0 ? err / (kEps * sc) : (err > 0 ? 1e30 : 0);
      if (ulp > c.worst_ulp) {
        c.worst_ulp = ulp;
        std::ostringstream os;
        os.precision(9);
        os << label << " sample " << where << " got " << g << " want " << (double)w;
        c.worst_where = os.str();
      }
      if (tol > 0) c.worst_ratio = std::max(c.worst_ratio, err / tol);
    }
    if (!ok) {
      if (c.bad++ == 0) {
        std::ostringstream os;
        os.precision(9);
        os << label << " sample " << where << ": got " << g << " want " << (double)w << " tol " << tol;
        c.first_bad = os.str();
      }
    }
  };
  if (red == SOFTKIT_REDUCTION_NONE) {
    for (std::size_t s = 0; s < want.size(); ++s) one(got[s], want[s], scale[s], s);
  } else {
    double total = 0;
    for (double v : scale) total += v;
    if (red == SOFTKIT_REDUCTION_MEAN) total /= (double)std::fabs(divisor);
    one(got[0], want[0], total, 0);
  }
  return c;
}

}  // namespace tu

#endif  // SOFTKIT_TESTS_CE_UTIL_HPP
