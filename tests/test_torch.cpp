// softkit against libtorch (ATen) live: softmax, log_softmax, logsumexp and
// cross_entropy over shapes, distributions, IEEE specials and every
// cross-entropy option. Both sides are float approximations, so finite values
// agree within twice softkit's accuracy bound (plus, for softmax, log_softmax and
// logsumexp, torch's own float summation error) and specials agree exactly.
// The worst differences are reported in units of softkit's bound scale.
#include <ATen/ATen.h>

#include "ce_util.hpp"

using namespace tu;

namespace {

at::Tensor as_tensor(const std::vector<float> &x, std::vector<int64_t> sizes) {
  return at::from_blob(const_cast<float *>(x.data()), sizes, at::kFloat).clone();
}

std::vector<float> to_vec(const at::Tensor &t) {
  const at::Tensor c = t.contiguous().to(at::kFloat);
  const float *p = c.data_ptr<float>();
  return std::vector<float>(p, p + c.numel());
}

std::vector<float> torch_op(Op op, const std::vector<float> &x, std::size_t outer, std::size_t n, std::size_t inner) {
  const at::Tensor t = as_tensor(x, {(int64_t)outer, (int64_t)n, (int64_t)inner});
  switch (op) {
    case Op::Softmax: return to_vec(at::softmax(t, 1));
    case Op::LogSoftmax: return to_vec(at::log_softmax(t, 1));
    default: return to_vec(at::logsumexp(t, {1}));
  }
}

// ATen's reduction enum: 0 None, 1 Mean, 2 Sum.
int64_t aten_reduction(softkit_reduction r) {
  switch (r) {
    case SOFTKIT_REDUCTION_MEAN: return 1;
    case SOFTKIT_REDUCTION_SUM: return 2;
    default: return 0;
  }
}

std::vector<float> torch_ce(const std::vector<float> &x, const std::vector<std::int64_t> &t, std::size_t outer,
                            std::size_t classes, std::size_t inner, const softkit_cross_entropy_options &o) {
  at::Tensor xt, tt;
  if (inner == 1) {
    xt = as_tensor(x, {(int64_t)outer, (int64_t)classes});
    tt = at::from_blob(const_cast<std::int64_t *>(t.data()), {(int64_t)outer}, at::kLong).clone();
  } else {
    xt = as_tensor(x, {(int64_t)outer, (int64_t)classes, (int64_t)inner});
    tt = at::from_blob(const_cast<std::int64_t *>(t.data()), {(int64_t)outer, (int64_t)inner}, at::kLong).clone();
  }
  c10::optional<at::Tensor> w;
  if (o.class_weights) w = at::from_blob(const_cast<float *>(o.class_weights), {(int64_t)classes}, at::kFloat).clone();
  return to_vec(at::cross_entropy_loss(xt, tt, w, aten_reduction(o.reduction), o.ignore_index,
                                       (double)o.label_smoothing));
}

// softkit vs torch on one tensor and op.
void versus_torch(Op op, const std::vector<float> &x, std::size_t outer, std::size_t n, std::size_t inner,
                  const std::string &label) {
  const auto st = ref::stats(x.data(), outer, n, inner);
  const auto mine = run(op, x, outer, n, inner);
  const auto theirs = torch_op(op, x, outer, n, inner);
  REQUIRE(theirs.size() == mine.size());
  // Specials must match exactly. Torch has its own error: finite values may differ
  // by twice softkit's bound plus torch's float summation error over n terms
  // (n * 2^-24 of the sum).
  Compare c;
  for (std::size_t o = 0; o < outer; ++o)
    for (std::size_t i = 0; i < inner; ++i) {
      const ref::RowStats &s = st[o * inner + i];
      const std::size_t kn = op == Op::LogSumExp ? 1 : n;
      for (std::size_t k = 0; k < kn; ++k) {
        const std::size_t idx = op == Op::LogSumExp ? o * inner + i : (o * n + k) * inner + i;
        const float xv = op == Op::LogSumExp ? 0.0f : x[idx];
        const float m = mine[idx], t = theirs[idx];
        ++c.checked;
        bool ok;
        double tol = 0;
        if (m == t) {
          ok = true;
        } else if (std::isnan(t) || std::isinf(t) || !std::isfinite(m)) {
          ok = std::isnan(t) ? std::isnan(m) : m == t;
        } else {
          const Bound b = bound(op, xv, s, t);
          const double sum_err = (double)n * kHalfEps * (op == Op::Softmax ? std::fabs((double)t) : 1.0);
          const double err = std::fabs((double)m - t);
          tol = 2 * b.tol + sum_err;
          ok = err <= tol;
          c.worst_ratio = std::max(c.worst_ratio, err / tol);
          const double ulp = err / b.unit;
          if (ulp > c.worst_ulp) {
            c.worst_ulp = ulp;
            c.worst_where = label + " " + describe(op_name(op), o, k, i, xv, m, t, tol);
          }
        }
        if (!ok && c.bad++ == 0) c.first_bad = label + " " + describe(op_name(op), o, k, i, xv, m, t, tol);
      }
    }
  INFO(op_name(op) << " vs torch, " << label << " on " << isa_name(softkit_get_isa()) << ": " << c.bad << " of "
                   << c.checked << " differ; first: " << c.first_bad);
  CHECK(c.bad == 0);
  note_worst(std::string(op_name(op)) + " vs torch", c);
}

void ce_versus_torch(const std::vector<float> &x, const std::vector<std::int64_t> &t, std::size_t outer,
                     std::size_t classes, std::size_t inner, const softkit_cross_entropy_options &o,
                     const std::string &label) {
  const ref::CrossEntropyOptions ro = to_ref(&o);
  const auto r = ref::cross_entropy(x.data(), t.data(), outer, classes, inner, ro);
  const auto scale = ce_scales(x, t, outer, classes, inner, ro);
  const auto mine = run_ce(x, t, outer, classes, inner, &o);
  const auto theirs = torch_ce(x, t, outer, classes, inner, o);
  REQUIRE(theirs.size() == mine.size());
  const std::vector<ld> want(theirs.begin(), theirs.end());
  const Compare c = compare_ce(mine, want, scale, r.divisor, o.reduction, label, 2.0);
  {
    INFO("cross_entropy vs torch, " << label << ": " << c.bad << " of " << c.checked << " differ; first: " << c.first_bad);
    CHECK(c.bad == 0);
  }
  note_worst("cross_entropy vs torch", c);
  // The long double reference agrees with torch too (validates the reference's semantics).
  const Compare cr = compare_ce(theirs, r.loss, scale, r.divisor, o.reduction, label + " (torch vs reference)", 2.0);
  INFO("torch vs the reference, " << label << ": " << cr.bad << " of " << cr.checked << " differ; first: " << cr.first_bad);
  CHECK(cr.bad == 0);
}

// Sprinkles special rows into a tensor: +inf, NaN, all -inf, one-hot among -inf.
void add_specials(std::vector<float> &x, std::size_t outer, std::size_t n, std::size_t inner, std::uint64_t seed) {
  std::mt19937_64 rng(seed);
  const std::size_t rows = outer * inner;
  if (rows < 5 || n == 0) return;
  auto at = [&](std::size_t row, std::size_t k) -> float & { return row_elem(x, n, inner, row, k); };
  std::uniform_int_distribution<std::size_t> pos(0, n - 1);
  at(0, pos(rng)) = kInf;
  at(1, pos(rng)) = kNaN;
  for (std::size_t k = 0; k < n; ++k) at(2, k) = -kInf;
  for (std::size_t k = 0; k < n; ++k) at(3, k) = -kInf;
  at(3, pos(rng)) = 1.5f;
  at(4, pos(rng)) = -kInf;
}

}  // namespace

TEST_CASE("torch sanity: the documented cross-entropy numbers", "[torch][cross_entropy]") {
  const std::vector<float> x = {1, 2, 3, 4, 5, 6, 7, 8, 9, 1, 1, 1};
  const std::vector<std::int64_t> t = {2, -100, 0, 1};
  const std::vector<float> w = {0.5f, 2.0f, 1.0f};
  struct Case {
    float smoothing;
    bool weighted;
    std::vector<float> none;
    float mean, sum;
  } cases[] = {{0.0f, false, {0.4076f, 0, 2.4076f, 1.0986f}, 1.30461f, 3.91382f},
               {0.0f, true, {}, 1.08818f, 3.80863f},
               {0.3f, false, {0.7076f, 0, 2.1076f, 1.0986f}, 1.30461f, 3.91382f},
               {0.3f, true, {0.7280f, 0, 1.2853f, 1.9226f}, 1.12454f, 3.93588f}};
  for (const Case &c : cases) {
    INFO("smoothing " << c.smoothing << (c.weighted ? " weighted" : ""));
    softkit_cross_entropy_options o = SOFTKIT_CROSS_ENTROPY_OPTIONS_INIT;
    o.label_smoothing = c.smoothing;
    o.class_weights = c.weighted ? w.data() : nullptr;
    for (softkit_reduction red : {SOFTKIT_REDUCTION_MEAN, SOFTKIT_REDUCTION_SUM, SOFTKIT_REDUCTION_NONE}) {
      o.reduction = red;
      const auto theirs = torch_ce(x, t, 4, 3, 1, o);
      const auto mine = run_ce(x, t, 4, 3, 1, &o);
      const auto r = ref::cross_entropy(x.data(), t.data(), 4, 3, 1, to_ref(&o));
      INFO("reduction " << (int)red);
      if (red == SOFTKIT_REDUCTION_NONE) {
        for (std::size_t s = 0; s < c.none.size(); ++s) {
          CHECK(theirs[s] == Approx(c.none[s]).margin(1e-4));
          CHECK((double)r.loss[s] == Approx(c.none[s]).margin(1e-4));
        }
        for (std::size_t s = 0; s < 4; ++s) CHECK(mine[s] == Approx(theirs[s]).epsilon(1e-5).margin(1e-6));
      } else {
        const float want = red == SOFTKIT_REDUCTION_MEAN ? c.mean : c.sum;
        CHECK(theirs[0] == Approx(want).margin(1e-4));
        CHECK((double)r.loss[0] == Approx(want).margin(1e-4));
        CHECK(mine[0] == Approx(theirs[0]).epsilon(1e-5));
      }
    }
  }
}

TEST_CASE("softmax, log_softmax, logsumexp vs torch", "[torch]") {
  const std::size_t shapes[][3] = {{1, 1, 1},   {7, 3, 1},     {64, 17, 1},  {8, 100, 1},   {2, 1000, 1},
                                   {1, 16385, 1}, {1, 50257, 1}, {2, 70001, 1}, {3, 17, 5},    {2, 1000, 64},
                                   {1, 21, 4096}, {4, 7, 100},   {5, 33, 19},  {1, 20000, 3}, {6, 2, 70}};
  std::uint64_t seed = 5;
  for (const auto &s : shapes)
    for (Dist d : kAllDists) {
      auto x = make_tensor(d, s[0], s[1], s[2], seed);
      const std::string lab = shape_label(s[0], s[1], s[2]) + " " + dist_name(d);
      for (Op op : {Op::Softmax, Op::LogSoftmax, Op::LogSumExp}) versus_torch(op, x, s[0], s[1], s[2], lab);
      add_specials(x, s[0], s[1], s[2], seed++);
      for (Op op : {Op::Softmax, Op::LogSoftmax, Op::LogSumExp})
        versus_torch(op, x, s[0], s[1], s[2], lab + " with specials");
    }
  // Large magnitudes and subnormal outputs.
  const std::vector<float> big = {3e38f, -3e38f, 1e30f, -1e30f, 0.0f, -90.0f, -100.0f, 3.4e38f, -3.4e38f, 1e-40f};
  for (Op op : {Op::Softmax, Op::LogSoftmax, Op::LogSumExp}) {
    versus_torch(op, big, 1, big.size(), 1, "large magnitudes");
    versus_torch(op, big, 2, big.size() / 2, 1, "large magnitudes, two rows");
    versus_torch(op, big, 1, 2, big.size() / 2, "large magnitudes, columns");
  }
  // A NaN alone in the last chunk of a long row (kRowChunk = 16384).
  for (std::size_t n : {16385, 32769}) {
    auto v = make_tensor(Dist::Normal1, 1, n, 1, n);
    v[n - 1] = kNaN;
    for (Op op : {Op::Softmax, Op::LogSoftmax, Op::LogSumExp}) versus_torch(op, v, 1, n, 1, "NaN alone in the last chunk");
  }
  std::vector<float> sub = {0.0f};
  for (float v = -87.0f; v >= -103.5f; v -= 0.25f) sub.push_back(v);
  versus_torch(Op::Softmax, sub, 1, sub.size(), 1, "subnormal outputs");
}

TEST_CASE("logsumexp over n == 0 vs torch", "[torch]") {
  const float dummy = 0.0f;
  std::vector<float> mine(6, kSentinel);
  REQUIRE(softkit_logsumexp_f32(&dummy, mine.data(), 2, 0, 3) == SOFTKIT_OK);
  const auto theirs = to_vec(at::logsumexp(at::empty({2, 0, 3}, at::kFloat), {1}));
  REQUIRE(theirs.size() == 6);
  for (std::size_t j = 0; j < 6; ++j) CHECK(same_bits(mine[j], theirs[j]));
}

TEST_CASE("cross_entropy vs torch: every option", "[torch][cross_entropy]") {
  const std::size_t shapes[][3] = {{4, 3, 1}, {16, 10, 1}, {3, 5, 7}, {2, 1000, 1}, {3, 33, 17}, {1, 16385, 2}, {2, 50257, 1}, {5, 1, 3}, {4, 21, 300}};
  std::uint64_t seed = 40;
  for (const auto &s : shapes) {
    const std::size_t outer = s[0], classes = s[1], inner = s[2];
    std::mt19937_64 rng(seed);
    const auto x = make_tensor(Dist::Normal30, outer, classes, inner, seed);
    std::vector<float> w(classes);
    std::uniform_real_distribution<float> uw(0.05f, 3.0f);
    for (auto &v : w) v = uw(rng);
    for (std::int64_t ignore : {(std::int64_t)-100, (std::int64_t)0, (std::int64_t)3}) {
      std::vector<std::int64_t> t(outer * inner);
      std::uniform_int_distribution<std::int64_t> pick(0, (std::int64_t)classes - 1);
      std::uniform_real_distribution<double> u(0, 1);
      for (auto &v : t) v = u(rng) < 0.2 ? ignore : pick(rng);
      for (softkit_reduction red : {SOFTKIT_REDUCTION_MEAN, SOFTKIT_REDUCTION_SUM, SOFTKIT_REDUCTION_NONE})
        for (float e : {0.0f, 0.1f, 0.3f, 1.0f})
          for (bool weighted : {false, true}) {
            softkit_cross_entropy_options o = SOFTKIT_CROSS_ENTROPY_OPTIONS_INIT;
            o.reduction = red;
            o.ignore_index = ignore;
            o.label_smoothing = e;
            o.class_weights = weighted ? w.data() : nullptr;
            std::ostringstream lab;
            lab << shape_label(outer, classes, inner) << " red " << (int)red << " ignore " << ignore << " e " << e
                << (weighted ? " weighted" : "");
            ce_versus_torch(x, t, outer, classes, inner, o, lab.str());
          }
    }
    ++seed;
  }
}

TEST_CASE("cross_entropy vs torch: edge cases", "[torch][cross_entropy]") {
  const std::vector<float> x = {1, -kInf, 3, 0.5f, 0.25f, 2, kNaN, 1, 1, -kInf, -kInf, -kInf, kInf, 0, 0};
  for (const std::vector<std::int64_t> &t :
       {std::vector<std::int64_t>{1, 2, -100, -100, -100}, std::vector<std::int64_t>{0, 2, -100, -100, -100},
        std::vector<std::int64_t>{-100, -100, -100, -100, -100}, std::vector<std::int64_t>{1, 0, 0, 0, 1}})
    for (softkit_reduction red : {SOFTKIT_REDUCTION_MEAN, SOFTKIT_REDUCTION_SUM, SOFTKIT_REDUCTION_NONE})
      for (float e : {0.0f, 0.2f}) {
        softkit_cross_entropy_options o = SOFTKIT_CROSS_ENTROPY_OPTIONS_INIT;
        o.reduction = red;
        o.label_smoothing = e;
        std::ostringstream lab;
        lab << "edge targets " << t[0] << "," << t[1] << "," << t[2] << " red " << (int)red << " e " << e;
        ce_versus_torch(x, t, 5, 3, 1, o, lab.str());
      }
}
