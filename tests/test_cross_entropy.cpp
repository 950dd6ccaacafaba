// softkit_cross_entropy_f32 (torch.nn.functional.cross_entropy semantics): the
// worked example in both layouts, defaults, weights, ignore_index, label smoothing,
// every reduction, edge cases, and accuracy against the long double reference,
// cross-checked against the scalar ISA.
#include <array>

#include "ce_util.hpp"

using namespace tu;

namespace {


// Checks softkit against the reference (and, off scalar, against the scalar ISA).
void verify_ce(const std::vector<float> &x, const std::vector<std::int64_t> &t, std::size_t outer, std::size_t classes,
               std::size_t inner, const softkit_cross_entropy_options &o, const std::string &label) {
  const ref::CrossEntropyOptions ro = to_ref(&o);
  const auto r = ref::cross_entropy(x.data(), t.data(), outer, classes, inner, ro);
  const auto scale = ce_scales(x, t, outer, classes, inner, ro);
  const auto got = run_ce(x, t, outer, classes, inner, &o);
  const Compare c = compare_ce(got, r.loss, scale, r.divisor, o.reduction, label);
  {
    INFO("cross_entropy on " << isa_name(softkit_get_isa()) << ": " << c.bad << " of " << c.checked
                             << " bad; first: " << c.first_bad);
    CHECK(c.bad == 0);
  }
  note_worst(o.reduction == SOFTKIT_REDUCTION_NONE ? "cross_entropy (none)" : "cross_entropy (mean/sum)", c);
  if (softkit_get_isa() != SOFTKIT_ISA_SCALAR) {
    std::vector<float> s;
    {
      ScopedIsa guard(SOFTKIT_ISA_SCALAR);
      s = run_ce(x, t, outer, classes, inner, &o);
    }
    const std::vector<ld> ws(s.begin(), s.end());
    const Compare cs = compare_ce(got, ws, scale, r.divisor, o.reduction, label + " (vs scalar)");
    INFO("cross_entropy on " << isa_name(softkit_get_isa()) << " vs scalar: " << cs.bad << " of " << cs.checked
                             << " differ beyond the bound; first: " << cs.first_bad);
    CHECK(cs.bad == 0);
    note_worst("cross_entropy vs scalar", cs);
  }
}

std::vector<std::int64_t> random_targets(std::size_t count, std::size_t classes, std::int64_t ignore,
                                         double ignore_rate, std::uint64_t seed) {
  std::mt19937_64 rng(seed);
  std::uniform_int_distribution<std::int64_t> pick(0, (std::int64_t)classes - 1);
  std::uniform_real_distribution<double> u(0, 1);
  std::vector<std::int64_t> t(count);
  for (auto &v : t) v = u(rng) < ignore_rate ? ignore : pick(rng);
  return t;
}

std::vector<float> random_weights(std::size_t classes, std::uint64_t seed) {
  std::mt19937_64 rng(seed);
  std::uniform_real_distribution<float> u(0.05f, 3.0f);
  std::vector<float> w(classes);
  for (auto &v : w) v = u(rng);
  return w;
}

}  // namespace

TEST_CASE("cross-entropy worked example, rows and channel layouts", "[cross_entropy]") {
  // 4 samples of 3 classes: rows [1,2,3] [4,5,6] [7,8,9] [1,1,1], targets 2 1 0 1.
  const std::vector<float> rows = {1, 2, 3, 4, 5, 6, 7, 8, 9, 1, 1, 1};
  const std::vector<std::int64_t> t = {2, 1, 0, 1};
  const auto mean = run_ce(rows, t, 4, 3, 1, nullptr);
  CHECK(mean[0] == Approx(1.330357).margin(1e-6));

  // PyTorch's (N=2, C=3, d=2): sample (n, d) = row 2n + d, logits[n][c][d].
  std::vector<float> chan(12);
  for (int nn = 0; nn < 2; ++nn)
    for (int c = 0; c < 3; ++c)
      for (int d = 0; d < 2; ++d) chan[(nn * 3 + c) * 2 + d] = rows[(nn * 2 + d) * 3 + c];
  const auto mean2 = run_ce(chan, t, 2, 3, 2, nullptr);
  CHECK(mean2[0] == Approx(1.330357).margin(1e-6));

  // Per-sample losses of both layouts agree with each other and with the rows' log_softmax.
  const auto o = ce_opts(SOFTKIT_REDUCTION_NONE);
  const auto a = run_ce(rows, t, 4, 3, 1, &o);
  const auto b = run_ce(chan, t, 2, 3, 2, &o);
  const auto ls = run(Op::LogSoftmax, rows, 4, 3, 1);
  for (int s = 0; s < 4; ++s) {
    INFO("sample " << s);
    CHECK(a[s] == Approx(b[s]).epsilon(8 * kEps));
    CHECK(a[s] == Approx(-ls[s * 3 + t[s]]).epsilon(8 * kEps));
  }
  const auto os = ce_opts(SOFTKIT_REDUCTION_SUM);
  const auto sum = run_ce(rows, t, 4, 3, 1, &os);
  CHECK(sum[0] == Approx(4 * 1.330357).margin(4e-6));
}

TEST_CASE("cross-entropy: NULL options, the INIT macro and the default function agree", "[cross_entropy]") {
  const std::size_t outer = 6, classes = 11, inner = 5;
  const auto x = make_tensor(Dist::Normal1, outer, classes, inner, 3);
  auto t = random_targets(outer * inner, classes, -100, 0.2, 4);
  const softkit_cross_entropy_options init = SOFTKIT_CROSS_ENTROPY_OPTIONS_INIT;
  const softkit_cross_entropy_options def = softkit_cross_entropy_options_default();
  const auto a = run_ce(x, t, outer, classes, inner, nullptr);
  const auto b = run_ce(x, t, outer, classes, inner, &init);
  const auto c = run_ce(x, t, outer, classes, inner, &def);
  CHECK(same_bits(a[0], b[0]));
  CHECK(same_bits(a[0], c[0]));
  verify_ce(x, t, outer, classes, inner, init, "defaults");
}

TEST_CASE("cross-entropy options against the reference", "[cross_entropy]") {
  // [2, 6, 1100], [2, 11, 700]: short columns in registers (kernel_table::short_col_stats), many vectors wide.
  const std::size_t shapes[][3] = {{4, 3, 1},     {8, 10, 1},    {3, 5, 7}, {2, 1000, 1}, {3, 33, 17},
                                   {1, 16385, 2}, {2, 50257, 1}, {5, 1, 3}, {2, 6, 1100}, {2, 11, 700}};
  std::uint64_t seed = 11;
  for (const auto &s : shapes) {
    const std::size_t outer = s[0], classes = s[1], inner = s[2];
    const auto x = make_tensor(Dist::Normal30, outer, classes, inner, seed);
    const auto w = random_weights(classes, seed + 1);
    for (std::int64_t ignore : {(std::int64_t)-100, (std::int64_t)0, (std::int64_t)7}) {
      const auto t = random_targets(outer * inner, classes, ignore, 0.25, seed++);
      for (softkit_reduction red : {SOFTKIT_REDUCTION_MEAN, SOFTKIT_REDUCTION_SUM, SOFTKIT_REDUCTION_NONE})
        for (float e : {0.0f, 0.1f, 0.5f, 1.0f})
          for (const float *wp : {(const float *)nullptr, w.data()}) {
            std::ostringstream lab;
            lab << shape_label(outer, classes, inner) << " red " << (int)red << " ignore " << ignore << " smoothing "
                << e << (wp ? " weighted" : "");
            verify_ce(x, t, outer, classes, inner, ce_opts(red, ignore, e, wp), lab.str());
          }
    }
  }
}

TEST_CASE("cross-entropy: a target equal to ignore_index is ignored even inside [0, C)", "[cross_entropy]") {
  const std::vector<float> x = {1, 2, 3, 4, 5, 6, 7, 8, 9, 1, 1, 1};
  const std::vector<std::int64_t> t = {2, 1, 0, 1};
  const auto none = ce_opts(SOFTKIT_REDUCTION_NONE, 1);
  const auto y = run_ce(x, t, 4, 3, 1, &none);
  CHECK(y[1] == 0.0f);
  CHECK(y[3] == 0.0f);
  CHECK(y[0] > 0.0f);
  CHECK(y[2] > 0.0f);
  const auto mean = ce_opts(SOFTKIT_REDUCTION_MEAN, 1);
  const auto m = run_ce(x, t, 4, 3, 1, &mean);
  CHECK(m[0] == Approx(((double)y[0] + y[2]) / 2).epsilon(8 * kEps));
  verify_ce(x, t, 4, 3, 1, ce_opts(SOFTKIT_REDUCTION_SUM, 1, 0.3f), "ignore 1, smoothing");
}

TEST_CASE("cross-entropy: every target ignored", "[cross_entropy]") {
  const std::size_t outer = 3, classes = 4, inner = 2;
  const auto x = make_tensor(Dist::Uniform10, outer, classes, inner, 8);
  const std::vector<std::int64_t> t(outer * inner, -100);
  const auto w = random_weights(classes, 9);
  for (float e : {0.0f, 0.2f})
    for (const float *wp : {(const float *)nullptr, w.data()}) {
      INFO("smoothing " << e << (wp ? " weighted" : ""));
      auto o = ce_opts(SOFTKIT_REDUCTION_MEAN, -100, e, wp);
      CHECK(std::isnan(run_ce(x, t, outer, classes, inner, &o)[0]));
      o.reduction = SOFTKIT_REDUCTION_SUM;
      CHECK(run_ce(x, t, outer, classes, inner, &o)[0] == 0.0f);
      o.reduction = SOFTKIT_REDUCTION_NONE;
      for (float v : run_ce(x, t, outer, classes, inner, &o)) CHECK(v == 0.0f);
    }
}

TEST_CASE("cross-entropy: ignored samples do not read their logits", "[cross_entropy]") {
  // NaN logits in an ignored sample's row must not leak into the result.
  std::vector<float> x = {1, 2, 3, kNaN, kInf, kNaN, 7, 8, 9};
  const std::vector<std::int64_t> t = {2, -100, 0};
  for (float e : {0.0f, 0.3f}) {
    auto o = ce_opts(SOFTKIT_REDUCTION_NONE, -100, e);
    const auto y = run_ce(x, t, 3, 3, 1, &o);
    CHECK(std::isfinite(y[0]));
    CHECK(y[1] == 0.0f);
    CHECK(std::isfinite(y[2]));
    o.reduction = SOFTKIT_REDUCTION_MEAN;
    CHECK(std::isfinite(run_ce(x, t, 3, 3, 1, &o)[0]));
    verify_ce(x, t, 3, 3, 1, o, "NaN in an ignored row");
  }
}

TEST_CASE("cross-entropy: -inf logit at the target gives +inf", "[cross_entropy]") {
  const std::vector<float> x = {1, -kInf, 3, 0.5f, 0.25f, 2};
  const std::vector<std::int64_t> t = {1, 2};
  for (softkit_reduction red : {SOFTKIT_REDUCTION_MEAN, SOFTKIT_REDUCTION_SUM, SOFTKIT_REDUCTION_NONE}) {
    const auto o = ce_opts(red);
    const auto y = run_ce(x, t, 2, 3, 1, &o);
    INFO("reduction " << (int)red);
    CHECK(y[0] == kInf);
    if (red == SOFTKIT_REDUCTION_NONE) CHECK(std::isfinite(y[1]));
  }
  // With smoothing a -inf logit at another class also gives +inf; without it, not.
  const std::vector<std::int64_t> t0 = {0, 2};
  auto o = ce_opts(SOFTKIT_REDUCTION_NONE, -100, 0.1f);
  CHECK(run_ce(x, t0, 2, 3, 1, &o)[0] == kInf);
  o.label_smoothing = 0.0f;
  CHECK(std::isfinite(run_ce(x, t0, 2, 3, 1, &o)[0]));
}

// Smoothing with an infinite class weight on the class of the row's max: that
// class's term is inf * -log p, and -log p > 0, so the loss is +inf (the split
// form sum w * (max - x) + log_sum * sum w would give inf * 0 = NaN). Rows,
// column blocks and long rows, every reduction, against the reference.
TEST_CASE("cross-entropy: smoothing with an infinite class weight", "[cross_entropy]") {
  for (const auto &s : std::vector<std::array<std::size_t, 3>>{{3, 10, 1}, {2, 10, 5}, {2, 20000, 1}}) {
    const std::size_t outer = s[0], classes = s[1], inner = s[2];
    auto x = make_tensor(Dist::Normal1, outer, classes, inner, 3);
    for (std::size_t o = 0; o < outer; ++o)
      for (std::size_t i = 0; i < inner; ++i) x[(o * classes + 4) * inner + i] = 5.0f;  // class 4: the max
    std::vector<float> w(classes, 1.5f);
    w[4] = kInf;
    std::vector<std::int64_t> t(outer * inner);
    for (std::size_t k = 0; k < t.size(); ++k) {  // never class 4: its weight would make MEAN's divisor inf
      const std::size_t c = (k * 3 + 1) % classes;
      t[k] = static_cast<std::int64_t>(c == 4 ? 5 : c);
    }
    for (softkit_reduction red : {SOFTKIT_REDUCTION_MEAN, SOFTKIT_REDUCTION_SUM, SOFTKIT_REDUCTION_NONE}) {
      const auto o = ce_opts(red, -100, 0.1f, w.data());
      const auto got = run_ce(x, t, outer, classes, inner, &o);
      const auto want = ref::cross_entropy(x.data(), t.data(), outer, classes, inner, to_ref(&o));
      INFO(shape_label(outer, classes, inner) << " reduction " << (int)red);
      for (std::size_t k = 0; k < got.size(); ++k) {
        const float wk = static_cast<float>(want.loss[k]);
        INFO("loss " << k << " got " << got[k] << " want " << wk);
        CHECK(wk == kInf);
        CHECK(got[k] == wk);
      }
    }
  }
}

TEST_CASE("cross-entropy: no samples (outer * inner == 0)", "[cross_entropy]") {
  // Assumed like PyTorch on an empty batch: MEAN writes NaN, SUM writes 0, NONE
  // writes nothing; logits and targets may be NULL since nothing is read.
  const float dummy_x = 1.0f;
  const std::int64_t dummy_t = 0;
  for (auto shape : {std::pair<std::size_t, std::size_t>{0, 1}, {2, 0}, {0, 0}}) {
    INFO("outer " << shape.first << " inner " << shape.second);
    for (bool null_inputs : {false, true}) {
      INFO("NULL logits/targets: " << null_inputs);
      const float *lx = null_inputs ? nullptr : &dummy_x;
      const std::int64_t *lt = null_inputs ? nullptr : &dummy_t;
      float loss = kSentinel;
      auto o = ce_opts(SOFTKIT_REDUCTION_MEAN);
      CHECK(softkit_cross_entropy_f32(lx, lt, shape.first, 3, shape.second, &o, &loss) == SOFTKIT_OK);
      CHECK(std::isnan(loss));
      loss = kSentinel;
      o.reduction = SOFTKIT_REDUCTION_SUM;
      CHECK(softkit_cross_entropy_f32(lx, lt, shape.first, 3, shape.second, &o, &loss) == SOFTKIT_OK);
      CHECK(loss == 0.0f);
      loss = kSentinel;
      o.reduction = SOFTKIT_REDUCTION_NONE;
      CHECK(softkit_cross_entropy_f32(lx, lt, shape.first, 3, shape.second, &o, &loss) == SOFTKIT_OK);
      CHECK(loss == kSentinel);
      CHECK(softkit_cross_entropy_f32(lx, lt, shape.first, 3, shape.second, &o, nullptr) == SOFTKIT_OK);
    }
  }
}

TEST_CASE("cross-entropy: one class gives zero loss", "[cross_entropy]") {
  const auto x = make_tensor(Dist::Normal30, 7, 1, 3, 2);
  const std::vector<std::int64_t> t(21, 0);
  const auto o = ce_opts(SOFTKIT_REDUCTION_NONE, -100, 0.4f);
  for (float v : run_ce(x, t, 7, 1, 3, &o)) CHECK(v == 0.0f);
}

TEST_CASE("cross-entropy accuracy: per-sample losses over many class counts", "[cross_entropy][accuracy]") {
  std::uint64_t seed = 1000;
  for (std::size_t classes : {1, 2, 3, 7, 8, 9, 15, 16, 17, 31, 32, 33, 100, 1000, 4097, 16384, 16385, 50257}) {
    for (Dist d : kAllDists) {
      const std::size_t outer = std::max<std::size_t>(1, std::min<std::size_t>(40, 8192 / classes));
      for (std::size_t inner : {1, 3}) {
        const auto x = make_tensor(d, outer, classes, inner, seed);
        const auto t = random_targets(outer * inner, classes, -100, 0.1, seed++);
        const std::string lab = shape_label(outer, classes, inner) + " " + dist_name(d);
        verify_ce(x, t, outer, classes, inner, ce_opts(SOFTKIT_REDUCTION_NONE), lab);
        verify_ce(x, t, outer, classes, inner, ce_opts(SOFTKIT_REDUCTION_MEAN), lab + " mean");
      }
    }
  }
  // Many samples in column layout: a segmentation-like [8, 21, 4096].
  const auto x = make_tensor(Dist::Normal1, 8, 21, 4096, 77);
  const auto t = random_targets(8 * 4096, 21, -100, 0.05, 78);
  const auto w = random_weights(21, 79);
  verify_ce(x, t, 8, 21, 4096, ce_opts(SOFTKIT_REDUCTION_NONE, -100, 0.1f, w.data()), "[8, 21, 4096] none");
  verify_ce(x, t, 8, 21, 4096, ce_opts(SOFTKIT_REDUCTION_MEAN, -100, 0.1f, w.data()), "[8, 21, 4096] mean");
  verify_ce(x, t, 8, 21, 4096, ce_opts(SOFTKIT_REDUCTION_SUM), "[8, 21, 4096] sum");
}

TEST_CASE("cross-entropy of rows whose max lies about the one-pass range", "[cross_entropy][accuracy]") {
  const std::size_t shapes[][2] = {{6 * kOnePassKinds, 200}, {6 * kOnePassKinds, 1000}, {2 * kOnePassKinds, 20000}};
  for (const auto &s : shapes) {
    const auto x = one_pass_rows(s[0], s[1], s[1]);
    const auto t = random_targets(s[0], s[1], -100, 0.0, s[1]);
    const std::string lab = shape_label(s[0], s[1], 1) + " maxima about the one-pass range";
    verify_ce(x, t, s[0], s[1], 1, ce_opts(SOFTKIT_REDUCTION_NONE), lab);
    verify_ce(x, t, s[0], s[1], 1, ce_opts(SOFTKIT_REDUCTION_NONE, -100, 0.1f), lab + " smoothing");
  }
}
