// Helpers of the gradient and soft-target tests (test_backward.cpp,
// test_torch_backward.cpp): long double references of
//   softkit_cross_entropy_backward_f32, softkit_cross_entropy_probs_f32,
//   softkit_softmax_backward_f32, softkit_log_softmax_backward_f32,
// each with the error scale its bound is counted in, and a comparison.
#ifndef SOFTKIT_TESTS_BW_UTIL_HPP
#define SOFTKIT_TESTS_BW_UTIL_HPP

#include "ce_util.hpp"

namespace bw {

using tu::ld;

// A reference value and the error scale of its output: the magnitude of the
// terms it is formed from (the allowed error is a few float ulps of it).
struct Ref {
  std::vector<ld> want;
  std::vector<double> scale;  // allowed |got - want| = tol_factor * 2^-23 * scale (+ a subnormal floor)
  // Outputs no value can be asked of (any float, NaN included, passes): an
  // infinite factor times a sum whose sign the float sums may lose.
  std::vector<char> any;
  // Outputs where NaN passes besides the reference's infinity: inf * 0 in
  // float, as PyTorch gives it, where the long double has a tiny nonzero
  // factor (a p that rounds to 0, a -log p within its rounding of 0).
  std::vector<char> nan_ok;
  // Outputs where any infinity or NaN passes besides the reference's value: a
  // factor of the float computation (a, b or c of a cross-entropy gradient,
  // rounded to float as PyTorch's are) lies beyond the float range while the
  // long double result does not.
  std::vector<char> nonfinite_ok;
};



// d loss / d logits, PyTorch's chain rule (see softkit.h):
//   dx[j] = g ((1 - e) w[t] (p[j] - [j == t]) + (e / C) (W p[j] - w[j])), ignored rows 0,
// rows whose softmax is NaN (NaN, +inf, all -inf) NaN, and with smoothing an
// ignored row NaN where a class weight is not finite (as PyTorch). Scale of dx[j]:
//   |a| p[j] (10 + |x[j] - max| / 2) + |b w[j]| + |c| [j == t],  a, b, c as in kernels.h,
//   + |a| 2^-149 / eps where p[j] is a float subnormal, + 2^-149 / eps times
//   p[j], |w[j]| or 1 where a, b or c is a float subnormal; NaN passes too where an
//   infinite a meets a p[j] that rounds to 0 in float, and any non-finite
//   value where a, b or c overflows float.
inline Ref ce_backward(const float *x, const std::int64_t *t, std::size_t outer, std::size_t classes, std::size_t inner,
                       const softkit_cross_entropy_options &o, const float *dloss) {
  Ref r;
  r.want.assign(outer * classes * inner, 0);
  r.scale.assign(outer * classes * inner, 0);
  r.nan_ok.assign(outer * classes * inner, 0);
  r.nonfinite_ok.assign(outer * classes * inner, 0);
  const std::size_t samples = outer * inner;
  const ld e = o.label_smoothing, C = (ld)classes;
  auto wt = [&](std::size_t c) -> ld { return o.class_weights ? (ld)o.class_weights[c] : (ld)1; };
  ld W = 0, D = 0;
  for (std::size_t c = 0; c < classes; ++c) W += wt(c);
  // PyTorch masks an ignored sample's smoothing term after w[j] * log p[j]:
  // its gradient there is 0 * w[j], NaN across the row for a non-finite weight.
  const bool ignored_nan = e > 0 && !std::isfinite(W);
  for (std::size_t s = 0; s < samples; ++s)
    if (t[s] != o.ignore_index) D += wt((std::size_t)t[s]);
  for (std::size_t s = 0; s < samples; ++s) {
    const std::size_t oo = s / inner, ii = s % inner;
    const float *row = x + oo * classes * inner + ii;
    const ref::RowStats st = ref::row_stats(row, classes, inner);
    const bool ign = t[s] == o.ignore_index;
    ld g = o.reduction == SOFTKIT_REDUCTION_NONE ? (ld)dloss[s] : (ld)dloss[0];
    if (o.reduction == SOFTKIT_REDUCTION_MEAN) g /= D;
    const ld a = ign ? 0 : g * ((1 - e) * wt((std::size_t)t[s]) + (e > 0 ? e / C * W : 0));
    const ld b = ign || e == 0 ? 0 : g * e / C;
    const ld c = ign ? 0 : g * (1 - e) * wt((std::size_t)t[s]);
    const bool factor_overflows =
        std::fabs(a) >= tu::kFloatOverflow || std::fabs(b) >= tu::kFloatOverflow || std::fabs(c) >= tu::kFloatOverflow;
    for (std::size_t k = 0; k < classes; ++k) {
      const std::size_t idx = (oo * classes + k) * inner + ii;
      if (!st.finite() || (ign && ignored_nan)) {
        r.want[idx] = ref::ld_nan();
        continue;
      }
      const ld p = std::exp((ld)row[k * inner] - st.max) / st.sum;
      const bool at_t = !ign && (std::size_t)t[s] == k;
      // With no smoothing term (b == 0: no smoothing, or an ignored sample) the
      // class weights other than the target's are never read, as in PyTorch:
      // an infinite or NaN one must not make 0 * w.
      const ld bw = b == 0 ? 0 : b * wt(k);
      r.want[idx] = a * p - bw - (at_t ? c : 0);
      r.scale[idx] = (double)((p > 0 ? std::fabs(a) * p * (10 + std::fabs((ld)row[k * inner] - st.max) / 2) : 0) +
                              std::fabs(bw) + (at_t ? std::fabs(c) : 0));
      // Below 2^-126 the float p is a subnormal, only as close as their spacing
      // (2^-149; PyTorch's float softmax too): that error times |a|.
      if (p < (ld)0x1p-126) r.scale[idx] += (double)(std::fabs(a) * (ld)(tu::kMinSub / tu::kEps));
      // a, b and c are floats (kernels.h), as PyTorch's factors are: a
      // subnormal one is only as close as 2^-149, times what it multiplies.
      auto spacing = [](ld f) { return f != 0 && std::fabs(f) < (ld)0x1p-126 ? (ld)(tu::kMinSub / tu::kEps) : 0; };
      r.scale[idx] += (double)(spacing(a) * p + spacing(b) * (b == 0 ? 0 : std::fabs(wt(k))) + (at_t ? spacing(c) : 0));
      // An infinite a (dloss, a weight) times a p that the float softmax may
      // round to 0: NaN, as PyTorch's (0 * inf), besides the reference's infinity.
      if (std::isinf(a) && p < (ld)0x1p-148) r.nan_ok[idx] = 1;
      r.nonfinite_ok[idx] = factor_overflows;
    }
  }
  return r;
}

// Soft targets: per-sample sum_c w t' (lse - x[c]), t' = (1 - e) t + e / C; scale
// as ce_scales: sum_c |w t'| (1 + |x - max| + log sum).
inline Ref ce_probs(const float *x, const float *tp, std::size_t outer, std::size_t classes, std::size_t inner,
                    const softkit_cross_entropy_options &o) {
  Ref r;
  const std::size_t samples = outer * inner;
  r.want.assign(samples, 0);
  r.scale.assign(samples, 0);
  r.nan_ok.assign(samples, 0);
  const ld e = o.label_smoothing, C = (ld)classes;
  for (std::size_t s = 0; s < samples; ++s) {
    const std::size_t oo = s / inner, ii = s % inner;
    const float *row = x + oo * classes * inner + ii;
    const float *trow = tp + oo * classes * inner + ii;
    const ref::RowStats st = ref::row_stats(row, classes, inner);
    ld loss = 0, sc = 0;
    for (std::size_t k = 0; k < classes; ++k) {
      const ld tk = (1 - e) * (ld)trow[k * inner] + e / C;
      const ld wk = (o.class_weights ? (ld)o.class_weights[k] : (ld)1) * tk;
      // -log p = (max - x) + log_sum: max + log_sum first would lose the log
      // sum next to a max near the float range, even in long double.
      const ld nlp = st.finite() ? ((ld)st.max - (ld)row[k * inner]) + st.log_sum() : ref::ld_nan();
      loss += wk * nlp;
      if (!st.finite()) continue;
      const ld d = (ld)st.max - (ld)row[k * inner];
      sc += std::fabs(wk) * (1 + d + st.log_sum());
      if (std::isinf(wk) && tu::nll_rounds_to_0(nlp, d, st.log_sum())) r.nan_ok[s] = 1;
    }
    r.want[s] = loss;
    r.scale[s] = (double)sc;
  }
  if (o.reduction != SOFTKIT_REDUCTION_NONE) {
    ld tot = 0;
    double sc = 0;
    for (std::size_t s = 0; s < samples; ++s) {
      tot += r.want[s];
      sc += r.scale[s];
    }
    if (o.reduction == SOFTKIT_REDUCTION_MEAN) {
      tot /= (ld)samples;
      sc /= (double)samples;
    }
    const bool any_nan_ok = std::find(r.nan_ok.begin(), r.nan_ok.end(), 1) != r.nan_ok.end();
    r.want.assign(1, tot);
    r.scale.assign(1, sc);
    r.nan_ok.assign(1, any_nan_ok);
  }
  return r;
}

// Softmax backward dx = y (dy - sum(dy y)), scale |y| (|dy| + |dot| + 4 sum|dy y|);
// log-softmax backward dx = dy - exp(y) sum(dy), scale |dy| + exp(y) (|sum| + 4 sum|dy|)
// (+ |sum| 2^-149 / eps where exp(y) is a float subnormal),
// with exp(y) = 0 where the float exp underflows (PyTorch's semantics: with an
// infinite sum, 0 * inf = NaN rather than the long double's -inf). Where exp(y)
// overflows and the sum is within its rounding of 0 (|sum| <= 4 2^-23 sum|dy|:
// 2^76 + 2^12 - 2^76 is 2^12 here, 0 in float or double), inf times that sum
// is -inf, +inf or NaN, as PyTorch's own float sum falls: any output passes.
// (The sums run in float blocks of 16 terms per lane before moving to double.)
inline Ref softmax_backward(bool log, const float *y, const float *dy, std::size_t outer, std::size_t n,
                            std::size_t inner) {
  Ref r;
  r.want.assign(outer * n * inner, 0);
  r.scale.assign(outer * n * inner, 0);
  r.any.assign(outer * n * inner, 0);
  for (std::size_t o = 0; o < outer; ++o)
    for (std::size_t i = 0; i < inner; ++i) {
      ld s = 0, sa = 0;
      for (std::size_t k = 0; k < n; ++k) {
        const std::size_t idx = (o * n + k) * inner + i;
        const ld term = log ? (ld)dy[idx] : (ld)dy[idx] * (ld)y[idx];
        s += term;
        sa += std::fabs(term);
      }
      for (std::size_t k = 0; k < n; ++k) {
        const std::size_t idx = (o * n + k) * inner + i;
        if (log) {
          const ld ey = (float)std::exp((double)y[idx]) == 0.0f ? 0 : std::exp((ld)y[idx]);
          r.want[idx] = (ld)dy[idx] - ey * s;
          r.scale[idx] = (double)(std::fabs((ld)dy[idx]) + ey * (std::fabs(s) + 4 * sa));
          // Below about -87.3 exp(y) is a float subnormal, only as close as their
          // spacing (2^-149; PyTorch's float exp too): that error times |sum|.
          if (ey < (ld)0x1p-126) r.scale[idx] += (double)(std::fabs(s) * (ld)(tu::kMinSub / tu::kEps));
          if ((float)std::exp((double)y[idx]) == tu::kInf && std::fabs(s) <= 4 * (ld)tu::kEps * sa) r.any[idx] = 1;
        } else {
          r.want[idx] = (ld)y[idx] * ((ld)dy[idx] - s);
          r.scale[idx] = (double)(std::fabs((ld)y[idx]) * (std::fabs((ld)dy[idx]) + std::fabs(s) + 4 * sa));
        }
      }
    }
  return r;
}

// got vs want within factor * 4 * 2^-23 * scale + factor * 8 * 2^-149 (specials exact).
inline tu::Compare compare(const std::vector<float> &got, const Ref &r, const std::string &label,
                           double factor = 1.0) {
  tu::Compare c;
  for (std::size_t j = 0; j < got.size(); ++j) {
    ++c.checked;
    const ld w = r.want[j];
    const float g = got[j];
    const double tol = factor * (4 * tu::kEps * r.scale[j] + 8 * tu::kMinSub);
    bool ok;
    double err = 0;
    if ((!r.any.empty() && r.any[j]) || (!r.nonfinite_ok.empty() && r.nonfinite_ok[j] && !std::isfinite(g))) {
      ok = true;
    } else if (std::isnan(w)) {
      ok = std::isnan(g);
    } else if (std::isinf((float)w) || !std::isfinite(g)) {  // an infinity on either side
      const bool nan_too = !r.nan_ok.empty() && r.nan_ok[j] && std::isnan(g);
      ok = nan_too || (std::isinf(w) ? g == w : tu::float_within(g, w, tol));
    } else {
      err = std::fabs((double)((ld)g - w));
      ok = err <= tol;
      const double unit = tu::kEps * r.scale[j] + tu::kMinSub;
      if (err / unit > c.worst_ulp) {
        c.worst_ulp = err / unit;
        std::ostringstream os;
        os.precision(9);
        os << label << " [" << j << "] got " << g << " want " << (double)w;
        c.worst_where = os.str();
      }
      c.worst_ratio = std::max(c.worst_ratio, err / tol);
    }
    if (!ok && c.bad++ == 0) {
      std::ostringstream os;
      os.precision(9);
      os << label << " [" << j << "] got " << g << " want " << (double)w << " tol " << tol;
      c.first_bad = os.str();
    }
  }
  return c;
}

inline std::vector<float> run_backward(const std::vector<float> &x, const std::vector<std::int64_t> &t,
                                       std::size_t outer, std::size_t classes, std::size_t inner,
                                       const softkit_cross_entropy_options &o, const std::vector<float> &dloss) {
  std::vector<float> dx(outer * classes * inner, tu::kSentinel);
  const softkit_status s =
      softkit_cross_entropy_backward_f32(x.data(), t.data(), outer, classes, inner, &o, dloss.data(), dx.data());
  INFO("cross_entropy_backward " << tu::shape_label(outer, classes, inner) << " on "
                                 << tu::isa_name(softkit_get_isa()));
  REQUIRE(s == SOFTKIT_OK);
  return dx;
}

inline std::vector<float> run_probs(const std::vector<float> &x, const std::vector<float> &tp, std::size_t outer,
                                    std::size_t classes, std::size_t inner, const softkit_cross_entropy_options &o) {
  std::vector<float> loss(o.reduction == SOFTKIT_REDUCTION_NONE ? outer * inner : 1, tu::kSentinel);
  const softkit_status s = softkit_cross_entropy_probs_f32(x.data(), tp.data(), outer, classes, inner, &o, loss.data());
  INFO("cross_entropy_probs " << tu::shape_label(outer, classes, inner) << " on " << tu::isa_name(softkit_get_isa()));
  REQUIRE(s == SOFTKIT_OK);
  return loss;
}

inline std::vector<float> run_sm_backward(bool log, const std::vector<float> &y, const std::vector<float> &dy,
                                          std::size_t outer, std::size_t n, std::size_t inner) {
  std::vector<float> dx(y.size(), tu::kSentinel);
  const softkit_status s = (log ? softkit_log_softmax_backward_f32 : softkit_softmax_backward_f32)(
      y.data(), dy.data(), dx.data(), outer, n, inner);
  INFO((log ? "log_softmax_backward " : "softmax_backward ") << tu::shape_label(outer, n, inner));
  REQUIRE(s == SOFTKIT_OK);
  return dx;
}

// Random targets with about `ignore_rate` of them ignore_index.
inline std::vector<std::int64_t> targets(std::size_t count, std::size_t classes, std::int64_t ignore, double ignore_rate,
                                         std::uint64_t seed) {
  std::mt19937_64 rng(seed);
  std::uniform_int_distribution<std::int64_t> pick(0, (std::int64_t)classes - 1);
  std::uniform_real_distribution<double> u(0, 1);
  std::vector<std::int64_t> t(count);
  for (auto &v : t) v = u(rng) < ignore_rate ? ignore : pick(rng);
  return t;
}

inline std::vector<float> uniform(std::size_t count, float lo, float hi, std::uint64_t seed) {
  std::mt19937_64 rng(seed);
  std::uniform_real_distribution<float> u(lo, hi);
  std::vector<float> v(count);
  for (auto &x : v) x = u(rng);
  return v;
}

// Class probabilities [outer, classes, inner]: a softmax of random values (rows sum to 1).
inline std::vector<float> probs(std::size_t outer, std::size_t classes, std::size_t inner, std::uint64_t seed) {
  std::vector<float> p = uniform(outer * classes * inner, -3.0f, 3.0f, seed);
  REQUIRE(softkit_softmax_f32(p.data(), p.data(), outer, classes, inner) == SOFTKIT_OK);
  return p;
}

}  // namespace bw

#endif  // SOFTKIT_TESTS_BW_UTIL_HPP
