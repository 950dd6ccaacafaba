// Gradients and soft targets: softkit_cross_entropy_backward_f32,
// softkit_cross_entropy_probs_f32, softkit_softmax_backward_f32 and
// softkit_log_softmax_backward_f32 against long double references (bw_util.hpp)
// over many row lengths (tails, long-row chunks, 2^18 + 3), column layouts and
// every option; central finite differences of the reference loss; error rules,
// in-place aliasing, zero work and bitwise determinism across thread counts.
#include <array>

#include "bw_util.hpp"

using namespace tu;

namespace {

void check_ref(const std::vector<float> &got, const bw::Ref &r, const std::string &key, const std::string &label) {
  const Compare c = bw::compare(got, r, label);
  {
    INFO(key << " on " << isa_name(softkit_get_isa()) << ": " << c.bad << " of " << c.checked
             << " outside the bound; first: " << c.first_bad);
    CHECK(c.bad == 0);
  }
  note_worst(key, c);
}

void verify_backward(const std::vector<float> &x, const std::vector<std::int64_t> &t, std::size_t outer,
                     std::size_t classes, std::size_t inner, const softkit_cross_entropy_options &o,
                     const std::vector<float> &dloss, const std::string &label) {
  const auto got = bw::run_backward(x, t, outer, classes, inner, o, dloss);
  check_ref(got, bw::ce_backward(x.data(), t.data(), outer, classes, inner, o, dloss.data()), "ce_backward", label);
}

void verify_probs(const std::vector<float> &x, const std::vector<float> &tp, std::size_t outer, std::size_t classes,
                  std::size_t inner, const softkit_cross_entropy_options &o, const std::string &label) {
  const auto got = bw::run_probs(x, tp, outer, classes, inner, o);
  check_ref(got, bw::ce_probs(x.data(), tp.data(), outer, classes, inner, o), "ce_probs", label);
}

void verify_sm(bool log, const std::vector<float> &y, const std::vector<float> &dy, std::size_t outer, std::size_t n,
               std::size_t inner, const std::string &label) {
  const auto got = bw::run_sm_backward(log, y, dy, outer, n, inner);
  check_ref(got, bw::softmax_backward(log, y.data(), dy.data(), outer, n, inner),
            log ? "log_softmax_backward" : "softmax_backward", label);
}

// The forward output y of x, and a random upstream gradient.
std::vector<float> forward(bool log, const std::vector<float> &x, std::size_t outer, std::size_t n, std::size_t inner) {
  std::vector<float> y(x.size());
  REQUIRE((log ? softkit_log_softmax_f32 : softkit_softmax_f32)(x.data(), y.data(), outer, n, inner) == SOFTKIT_OK);
  return y;
}

const softkit_reduction kReductions[] = {SOFTKIT_REDUCTION_MEAN, SOFTKIT_REDUCTION_SUM, SOFTKIT_REDUCTION_NONE};

std::vector<float> dloss_for(softkit_reduction red, std::size_t samples, std::uint64_t seed) {
  return red == SOFTKIT_REDUCTION_NONE ? bw::uniform(samples, -2.0f, 2.0f, seed) : std::vector<float>{1.75f};
}

}  // namespace

TEST_CASE("backward accuracy: rows of every length", "[backward][accuracy]") {
  std::uint64_t seed = 1;
  for (std::size_t n : accuracy_lengths()) {
    const std::size_t outer = std::max<std::size_t>(rows_for(n), n < 64 ? 3 : 1);
    const Dist d = kAllDists[seed % 5];
    const auto x = make_tensor(d, outer, n, 1, seed);
    const std::string lab = shape_label(outer, n, 1) + " " + dist_name(d);
    const auto w = bw::uniform(n, 0.1f, 2.5f, seed + 7);
    const auto t = bw::targets(outer, n, -100, 0.2, seed);
    const softkit_reduction red = kReductions[seed % 3];
    const auto dl = dloss_for(red, outer, seed);
    verify_backward(x, t, outer, n, 1, tu::ce_opts(red), dl, lab);
    verify_backward(x, t, outer, n, 1, tu::ce_opts(red, -100, 0.1f, w.data()), dl, lab + " weighted e 0.1");
    const auto tp = bw::probs(outer, n, 1, seed + 3);
    verify_probs(x, tp, outer, n, 1, tu::ce_opts(red, -100, 0.0f, seed % 2 ? w.data() : nullptr), lab);
    verify_probs(x, tp, outer, n, 1, tu::ce_opts(SOFTKIT_REDUCTION_NONE, -100, 0.2f), lab + " e 0.2");
    for (bool log : {false, true}) {
      const auto y = forward(log, x, outer, n, 1);
      verify_sm(log, y, bw::uniform(x.size(), -1.0f, 1.0f, seed + 11), outer, n, 1, lab);
    }
    ++seed;
  }
}

TEST_CASE("backward accuracy: column layouts (inner > 1)", "[backward][accuracy]") {
  // Short columns (a vector of columns at a time) with tails, a span boundary
  // ([2, 8, 4100]) and the most rows: 8 (AVX2's cross-entropy), 16 (AVX-512's),
  // 24 (the softmax backward's, two sum blocks from 17 rows).
  const std::size_t shapes[][3] = {{3, 5, 7},     {2, 1000, 64}, {1, 21, 4096}, {4, 7, 100},  {2, 33, 19},
                                   {1, 20000, 3}, {3, 1, 9},     {2, 300, 1030}, {1, 2, 2},   {2, 16, 1100},
                                   {3, 9, 37},    {2, 8, 4100},  {2, 24, 70},   {2, 21, 53},  {1, 7, 29}};
  std::uint64_t seed = 100;
  for (const auto &s : shapes) {
    const std::size_t outer = s[0], n = s[1], inner = s[2];
    const Dist d = kAllDists[seed % 5];
    const auto x = make_tensor(d, outer, n, inner, seed);
    const std::string lab = shape_label(outer, n, inner) + " " + dist_name(d);
    const auto w = bw::uniform(n, 0.1f, 2.5f, seed + 7);
    const auto t = bw::targets(outer * inner, n, 1, 0.2, seed);
    for (softkit_reduction red : kReductions) {
      const auto dl = dloss_for(red, outer * inner, seed);
      verify_backward(x, t, outer, n, inner, tu::ce_opts(red, 1), dl, lab);
      verify_backward(x, t, outer, n, inner, tu::ce_opts(red, 1, 0.3f, w.data()), dl, lab + " weighted e 0.3");
      const auto tp = bw::probs(outer, n, inner, seed + 3);
      verify_probs(x, tp, outer, n, inner, tu::ce_opts(red, -100, 0.1f, w.data()), lab);
    }
    for (bool log : {false, true}) {
      const auto y = forward(log, x, outer, n, inner);
      verify_sm(log, y, bw::uniform(x.size(), -1.0f, 1.0f, seed + 11), outer, n, inner, lab);
    }
    ++seed;
  }
}

TEST_CASE("backward: specials (NaN, +inf, all -inf rows, -inf logits)", "[backward]") {
  // Rows of 40 and 20000 (long rows), columns and short columns; specials in rows 0..4.
  for (const auto &s : std::vector<std::array<std::size_t, 3>>{{6, 40, 1}, {6, 20000, 1}, {2, 40, 3}, {6, 3, 1},
                                                                {2, 5, 37}, {2, 16, 20}}) {
    const std::size_t outer = s[0], n = s[1], inner = s[2];
    auto x = make_tensor(Dist::Normal1, outer, n, inner, 9);
    auto at = [&](std::size_t row, std::size_t k) -> float & { return row_elem(x, n, inner, row, k); };
    at(0, n / 2) = kInf;
    at(1, n - 1) = kNaN;
    for (std::size_t k = 0; k < n; ++k) at(2, k) = -kInf;
    for (std::size_t k = 0; k < n; ++k) at(3, k) = -kInf;
    at(3, 1) = 0.5f;
    at(4, 0) = -kInf;
    const std::string lab = "specials " + shape_label(outer, n, inner);
    std::vector<std::int64_t> t(outer * inner, 1);
    t[4] = 0;  // the target's logit is -inf: finite gradient, infinite loss
    t[5] = -100;
    for (softkit_reduction red : kReductions)
      for (float e : {0.0f, 0.25f}) {
        const auto dl = dloss_for(red, outer * inner, 3);
        verify_backward(x, t, outer, n, inner, tu::ce_opts(red, -100, e), dl, lab);
        auto tp = bw::probs(outer, n, inner, 5);
        verify_probs(x, tp, outer, n, inner, tu::ce_opts(red, -100, e), lab);
      }
    for (bool log : {false, true}) {
      const auto y = forward(log, x, outer, n, inner);
      verify_sm(log, y, bw::uniform(x.size(), -1.0f, 1.0f, 4), outer, n, inner, lab);
    }
  }
}

// Inputs near the float range, whose outputs are finite: a sum(dy * y) beyond
// the float range, dy - sum overflowing in float while the product with a tiny
// y does not, and float blocks of the sum that overflow where the whole sum
// cancels. Not softmax outputs (those are in [0, 1]), but the contract is the
// formula for any floats, as the double reference computes it. Rows, long rows
// (chunks) and columns.
TEST_CASE("backward: inputs near the float range", "[backward]") {
  for (const auto &s : std::vector<std::array<std::size_t, 3>>{
           {3, 300, 1}, {3, 20000, 1}, {3, 300, 3}, {1, 300, 64}, {2, 8, 37}, {1, 12, 20}, {1, 20, 37}}) {
    const std::size_t outer = s[0], n = s[1], inner = s[2];
    // The large terms 64 rows apart (in different float blocks), or 2 in short columns.
    const std::size_t q = n > 193 ? 64 : 2;
    for (bool log : {false, true}) {
      for (int kind = 0; kind < 4; ++kind) {
        if (kind == 3 && log) continue;
        std::vector<float> y(outer * n * inner), dy(y.size());
        auto at = [&](std::vector<float> &v, std::size_t row, std::size_t k) -> float & {
          return row_elem(v, n, inner, row, k);
        };
        for (std::size_t row = 0; row < outer * inner; ++row)
          for (std::size_t k = 0; k < n; ++k) {
            at(y, row, k) = log ? -100.0f : 1e-30f;
            at(dy, row, k) = 1.0f + 0.25f * static_cast<float>(k % 7);
          }
        for (std::size_t row = 0; row < outer * inner; ++row) {
          if (kind == 0) {  // sum beyond the float range: 4 * 0.5 * 3e38 (softmax), 4 * 3e38 (log)
            for (std::size_t k : {1 + 0 * q, 1 + q, 1 + 2 * q, 1 + 3 * q}) {
              at(y, row, k) = log ? -1.0f : 0.5f;
              at(dy, row, k) = 3e38f;
            }
          } else if (kind == 1) {  // sum 2e38 in range, dy - sum = -4e38 out of it
            for (std::size_t k : {1 + 0 * q, 1 + q}) {
              at(y, row, k) = log ? -1.0f : 0.5f;
              at(dy, row, k) = log ? 1e38f : 2e38f;
            }
            at(dy, row, 2) = -2e38f;
          } else if (kind == 2) {  // float blocks overflow, the sum cancels: +3e38 twice, then -3e38 twice
            for (std::size_t k : {0 * q, q, 2 * q, 3 * q}) {
              at(y, row, k) = log ? -1.0f : 1.0f;
              at(dy, row, k) = k < 2 * q ? 3e38f : -3e38f;
            }
          } else {  // softmax: sum 5.8e38 beyond the float range, dy/2 - sum/2 = -3.9e38 too
            for (std::size_t k : {1 + 0 * q, 1 + q, 1 + 2 * q, 1 + 3 * q}) {
              at(y, row, k) = 0.5f;
              at(dy, row, k) = 3e38f;
            }
            at(y, row, 2) = 0.1f;
            at(dy, row, 2) = -2e38f;
          }
        }
        const std::string lab = "near the float range, kind " + std::to_string(kind) + " " + shape_label(outer, n, inner);
        const auto ref = bw::softmax_backward(log, y.data(), dy.data(), outer, n, inner);
        std::size_t infinite = 0;
        for (const auto w : ref.want) infinite += !std::isfinite((double)(float)w);
        INFO(lab << ": the reference has " << infinite << " non-finite outputs");
        CHECK(infinite == 0);
        verify_sm(log, y, dy, outer, n, inner, lab);
      }
    }
  }
}

// Cross-entropy gradients where p is a float subnormal or 0 (x - max from
// -100 to -104) times an upstream gradient of 100: p's spacing there, 2^-149,
// times 100 is the error PyTorch's float softmax has too; the bound counts it,
// and no more. Times an infinite upstream gradient: +-inf, or NaN where the
// float p is 0 (PyTorch's 0 * inf).
TEST_CASE("backward: subnormal probabilities times a large upstream gradient", "[backward]") {
  for (const auto &s : std::vector<std::array<std::size_t, 3>>{{4, 9, 1}, {3, 300, 1}, {4, 9, 4}, {2, 40, 70}}) {
    const std::size_t outer = s[0], n = s[1], inner = s[2];
    auto x = make_tensor(Dist::Normal1, outer, n, inner, 23);
    for (std::size_t o = 0; o < outer; ++o)
      for (std::size_t i = 0; i < inner; ++i)
        for (std::size_t k = 0; k < n; k += 2) x[(o * n + k) * inner + i] = -100.0f - 0.37f * static_cast<float>(k % 11);
    std::vector<std::int64_t> t(outer * inner);
    for (std::size_t j = 0; j < t.size(); ++j) t[j] = static_cast<std::int64_t>((2 * j + 1) % n);
    const auto o = tu::ce_opts(SOFTKIT_REDUCTION_NONE, -100, 0.0f, nullptr);
    for (float big : {101.25f, kInf}) {
      std::vector<float> dloss(t.size());
      for (std::size_t j = 0; j < dloss.size(); ++j) dloss[j] = j % 2 ? big : -big;
      verify_backward(x, t, outer, n, inner, o, dloss, "subnormal p, dloss " + std::to_string(big) + " " + shape_label(outer, n, inner));
    }
  }
}

// Weights of 3e38 under MEAN: g = dloss / (64 * 3e38) is 5e-41, and the
// smoothing factor b = g e / C a float subnormal, only as close as 2^-149:
// times w[j] = 3e38 that is an error of 1e-7 in an output of ~1e-3. The
// bound counts a subnormal factor's spacing, and no more.
TEST_CASE("backward: a subnormal gradient factor times a huge weight", "[backward]") {
  for (const auto &s : std::vector<std::array<std::size_t, 3>>{{64, 3, 1}, {8, 3, 8}, {2, 300, 32}}) {
    const std::size_t outer = s[0], n = s[1], inner = s[2];
    const auto x = make_tensor(Dist::Normal1, outer, n, inner, 27);
    std::vector<float> w(n);
    for (std::size_t k = 0; k < n; ++k) w[k] = k % 2 ? -3e38f : 2.5e38f;
    std::vector<std::int64_t> t(outer * inner);
    for (std::size_t j = 0; j < t.size(); ++j) t[j] = static_cast<std::int64_t>(j % n);
    for (float e : {0.5f, 1.0f}) {
      const auto o = tu::ce_opts(SOFTKIT_REDUCTION_MEAN, -100, e, w.data());
      verify_backward(x, t, outer, n, inner, o, {1.25f}, "subnormal b, e " + std::to_string(e) + " " + shape_label(outer, n, inner));
    }
  }
}

// A target weight of 3e38 times dloss 2: the factor g w[t] overflows float, as
// in PyTorch, whose float chain then gives +inf at every class and inf - inf =
// NaN at the target. The long double reference stays finite; the bound lets a
// non-finite output pass there, and the values are checked here.
TEST_CASE("backward: a gradient factor beyond the float range", "[backward]") {
  for (const auto &s : std::vector<std::array<std::size_t, 3>>{{2, 9, 1}, {2, 300, 1}, {2, 20000, 1}, {2, 21, 70}}) {
    const std::size_t outer = s[0], n = s[1], inner = s[2];
    const auto x = make_tensor(Dist::Normal1, outer, n, inner, 24);
    std::vector<float> w(n, 1.0f);
    w[3] = 3e38f;
    std::vector<std::int64_t> t(outer * inner, 3);
    for (std::size_t j = 0; j < t.size(); j += 2) t[j] = 5;  // every other sample: an ordinary weight
    const auto o = tu::ce_opts(SOFTKIT_REDUCTION_NONE, -100, 0.0f, w.data());
    const std::vector<float> dloss(t.size(), 2.0f);
    const std::string label = "factor beyond float " + shape_label(outer, n, inner);
    verify_backward(x, t, outer, n, inner, o, dloss, label);
    const auto dx = bw::run_backward(x, t, outer, n, inner, o, dloss);
    std::size_t bad = 0, nonfinite_ordinary = 0;
    for (std::size_t sm = 0; sm < t.size(); ++sm)
      for (std::size_t k = 0; k < n; ++k) {
        const float v = dx[((sm / inner) * n + k) * inner + sm % inner];
        if (t[sm] != 3) nonfinite_ordinary += !std::isfinite(v);
        else bad += k == 3 ? !std::isnan(v) : v != kInf;
      }
    INFO(label << " on " << isa_name(softkit_get_isa()));
    CHECK(bad == 0);
    CHECK(nonfinite_ordinary == 0);
  }
}

// log-softmax backward with an infinite sum(dy): dx = dy - exp(y) * inf. Where
// exp(y) underflows in float (y = -200) that is NaN, as PyTorch computes it in
// float; where it does not (y = -100, a subnormal), -inf. The same on every
// ISA and path: rows, long rows (chunks), columns.
TEST_CASE("backward: log-softmax with an infinite sum, exp(y) underflowing or not", "[backward]") {
  for (const auto &s : std::vector<std::array<std::size_t, 3>>{{2, 40, 1}, {1, 20000, 1}, {1, 40, 3}}) {
    const std::size_t outer = s[0], n = s[1], inner = s[2];
    std::vector<float> y(outer * n * inner, -1.0f), dy(y.size(), 0.5f);
    const std::size_t at_inf = 3 * inner, at_under = 7 * inner, at_sub = 9 * inner;  // in row 0 of each outer
    for (std::size_t o = 0; o < outer; ++o) {
      dy[o * n * inner + at_inf] = kInf;
      y[o * n * inner + at_under] = -200.0f;
      y[o * n * inner + at_sub] = -100.0f;
    }
    std::vector<float> dx(y.size(), kSentinel);
    REQUIRE(softkit_log_softmax_backward_f32(y.data(), dy.data(), dx.data(), outer, n, inner) == SOFTKIT_OK);
    const std::string lab = shape_label(outer, n, inner);
    for (std::size_t o = 0; o < outer; ++o) {
      INFO(lab << " outer " << o);
      CHECK(std::isnan(dx[o * n * inner + at_under]));
      CHECK(dx[o * n * inner + at_sub] == -kInf);
      CHECK(dx[o * n * inner + 0] == -kInf);  // exp(-1) * inf
    }
  }
}

TEST_CASE("backward: every target ignored", "[backward]") {
  for (std::size_t n : {5, 300, 20000}) {
    const auto x = make_tensor(Dist::Normal1, 4, n, 1, n);
    const std::vector<std::int64_t> t(4, -100);
    const auto w = bw::uniform(n, 0.1f, 2.0f, 3);
    for (softkit_reduction red : kReductions)
      for (float e : {0.0f, 0.5f})
        for (const float *wp : {(const float *)nullptr, w.data()}) {
          const auto dl = dloss_for(red, 4, 1);
          const auto dx = bw::run_backward(x, t, 4, n, 1, tu::ce_opts(red, -100, e, wp), dl);
          for (float v : dx) REQUIRE(same_bits(v, 0.0f));
        }
  }
}

// Without smoothing PyTorch reads only the target's class weight: an infinite
// or NaN weight on another class leaves the loss and every gradient finite
// (ignored samples 0). Rows, column blocks and long rows; the reference skips
// those weights too.
TEST_CASE("backward: a non-finite weight on a class no target names, no smoothing", "[backward]") {
  const std::size_t shapes[][3] = {{4, 9, 1}, {4, 300, 1}, {2, 21, 40}, {2, 29379, 1}};
  for (const auto &s : shapes) {
    const std::size_t samples = s[0] * s[2];
    const auto x = make_tensor(Dist::Normal1, s[0], s[1], s[2], s[1]);
    std::vector<std::int64_t> t(samples);
    for (std::size_t i = 0; i < samples; ++i) t[i] = i % 3 == 0 ? -100 : static_cast<std::int64_t>(2 + i % (s[1] - 2));
    for (float bad : {kInf, std::numeric_limits<float>::quiet_NaN()}) {
      auto w = bw::uniform(s[1], 0.1f, 2.0f, 5);
      w[0] = bad;
      w[1] = -bad;
      for (softkit_reduction red : kReductions) {
        const auto o = tu::ce_opts(red, -100, 0.0f, w.data());
        const auto dl = dloss_for(red, samples, 2);
        const auto dx = bw::run_backward(x, t, s[0], s[1], s[2], o, dl);
        std::size_t non_finite = 0;
        for (float v : dx) non_finite += !std::isfinite(v);
        for (float v : tu::run_ce(x, t, s[0], s[1], s[2], &o)) non_finite += !std::isfinite(v);
        INFO(tu::shape_label(s[0], s[1], s[2]) << " weight " << bad << " reduction " << red);
        CHECK(non_finite == 0);
        check_ref(dx, bw::ce_backward(x.data(), t.data(), s[0], s[1], s[2], o, dl.data()), "ce_backward",
                  tu::shape_label(s[0], s[1], s[2]) + " non-finite weight off target");
      }
    }
  }
}

TEST_CASE("backward: central differences of the reference loss", "[backward]") {
  // Small cases in double: the loss is the long double reference of the forward.
  const std::size_t shapes[][3] = {{3, 5, 1}, {2, 4, 3}, {1, 7, 1}};
  for (const auto &s : shapes) {
    const std::size_t outer = s[0], n = s[1], inner = s[2], total = outer * n * inner;
    const auto x = bw::uniform(total, -2.0f, 2.0f, total);
    const auto w = bw::uniform(n, 0.2f, 2.0f, 3);
    std::vector<std::int64_t> t = bw::targets(outer * inner, n, 2, 0.0, 5);
    t[0] = 2;  // ignored (ignore_index 2)
    for (softkit_reduction red : kReductions)
      for (float e : {0.0f, 0.1f, 1.0f})
        for (const float *wp : {(const float *)nullptr, w.data()}) {
          const auto o = tu::ce_opts(red, 2, e, wp);
          const auto dl = dloss_for(red, outer * inner, 8);
          const auto got = bw::run_backward(x, t, outer, n, inner, o, dl);
          // L(x) = sum_i dloss_i * loss_i (NONE) or dloss * loss, in long double.
          auto L = [&](const std::vector<float> &xv, std::size_t j, ld h) {
            ld total_loss = 0, D = 0;
            for (std::size_t smp = 0; smp < outer * inner; ++smp) {
              const std::size_t oo = smp / inner, ii = smp % inner;
              if (t[smp] == o.ignore_index) continue;
              std::vector<ld> row(n);
              for (std::size_t k = 0; k < n; ++k) {
                const std::size_t idx = (oo * n + k) * inner + ii;
                row[k] = (ld)xv[idx] + (idx == j ? h : 0);
              }
              ld m = row[0];
              for (ld v : row) m = std::max(m, v);
              ld sum = 0;
              for (ld v : row) sum += std::exp(v - m);
              const ld lse = m + std::log(sum);
              auto wc = [&](std::size_t c) -> ld { return wp ? (ld)wp[c] : (ld)1; };
              const std::size_t tt = (std::size_t)t[smp];
              ld l = wc(tt) * (lse - row[tt]);
              if (e > 0) {
                ld sm = 0;
                for (std::size_t c = 0; c < n; ++c) sm += wc(c) * (lse - row[c]);
                l = (1 - (ld)e) * l + (ld)e / n * sm;
              }
              D += wc(tt);
              total_loss += red == SOFTKIT_REDUCTION_NONE ? (ld)dl[smp] * l : (ld)dl[0] * l;
            }
            // Every sample ignored: the MEAN loss is NaN, its gradient 0 (as libtorch's).
            return red == SOFTKIT_REDUCTION_MEAN && D != 0 ? total_loss / D : total_loss;
          };
          for (std::size_t j = 0; j < total; ++j) {
            const ld h = 1e-4L;
            const ld fd = (L(x, j, h) - L(x, j, -h)) / (2 * h);
            INFO("red " << (int)red << " e " << e << (wp ? " weighted" : "") << " element " << j);
            CHECK((double)got[j] == Approx((double)fd).epsilon(1e-4).margin(2e-6));
          }
        }
  }
  // Softmax / log-softmax backward: L = sum(dy * f(x)), dL/dx = backward(f(x), dy).
  for (bool log : {false, true}) {
    const std::size_t outer = 2, n = 6, inner = 2, total = outer * n * inner;
    const auto x = bw::uniform(total, -2.0f, 2.0f, 21);
    const auto dy = bw::uniform(total, -1.0f, 1.0f, 22);
    const auto got = bw::run_sm_backward(log, forward(log, x, outer, n, inner), dy, outer, n, inner);
    for (std::size_t j = 0; j < total; ++j) {
      const ld h = 1e-4L;
      auto L = [&](ld hh) {
        ld l = 0;
        for (std::size_t o = 0; o < outer; ++o)
          for (std::size_t i = 0; i < inner; ++i) {
            ld m = -ref::ld_inf(), sum = 0;
            auto xv = [&](std::size_t k) {
              const std::size_t idx = (o * n + k) * inner + i;
              return (ld)x[idx] + (idx == j ? hh : 0);
            };
            for (std::size_t k = 0; k < n; ++k) m = std::max(m, xv(k));
            for (std::size_t k = 0; k < n; ++k) sum += std::exp(xv(k) - m);
            for (std::size_t k = 0; k < n; ++k) {
              const ld f = log ? xv(k) - m - std::log(sum) : std::exp(xv(k) - m) / sum;
              l += (ld)dy[(o * n + k) * inner + i] * f;
            }
          }
        return l;
      };
      const ld fd = (L(h) - L(-h)) / (2 * h);
      INFO((log ? "log_softmax" : "softmax") << " element " << j);
      CHECK((double)got[j] == Approx((double)fd).epsilon(1e-4).margin(2e-6));
    }
  }
}

// The formulas hold for any y, not only forward outputs: log-softmax y > 0
// (exp(y) > 1, past the float range above 88.7), softmax y > 1.
TEST_CASE("backward: any y, log-softmax's above 0", "[backward]") {
  for (const auto &s : std::vector<std::array<std::size_t, 3>>{{3, 40, 1}, {2, 33, 19}, {2, 5, 37}, {1, 16, 20}}) {
    const std::size_t outer = s[0], n = s[1], inner = s[2];
    for (bool log : {false, true}) {
      auto y = bw::uniform(outer * n * inner, -3.0f, 3.0f, 31);
      const auto dy = bw::uniform(y.size(), -1.0f, 1.0f, 32);
      if (log) y[y.size() / 2] = 90.0f;  // one exp(y) beyond the float range
      verify_sm(log, y, dy, outer, n, inner, "any y " + shape_label(outer, n, inner));
    }
  }
}

TEST_CASE("backward: in place (dx == y, dx == dy)", "[backward]") {
  for (const auto &s : std::vector<std::array<std::size_t, 3>>{{5, 37, 1}, {1, 40000, 1}, {3, 17, 70}, {3, 5, 70}, {2, 16, 33}, {2, 21, 33}}) {
    const std::size_t outer = s[0], n = s[1], inner = s[2];
    const auto x = make_tensor(Dist::Normal1, outer, n, inner, 2);
    const auto dy = bw::uniform(x.size(), -1.0f, 1.0f, 3);
    for (bool log : {false, true}) {
      const auto y = forward(log, x, outer, n, inner);
      const auto want = bw::run_sm_backward(log, y, dy, outer, n, inner);
      auto fn = log ? softkit_log_softmax_backward_f32 : softkit_softmax_backward_f32;
      std::vector<float> a = y;
      REQUIRE(fn(a.data(), dy.data(), a.data(), outer, n, inner) == SOFTKIT_OK);
      std::vector<float> b = dy;
      REQUIRE(fn(y.data(), b.data(), b.data(), outer, n, inner) == SOFTKIT_OK);
      for (std::size_t j = 0; j < want.size(); ++j) {
        REQUIRE(same_bits(a[j], want[j]));
        REQUIRE(same_bits(b[j], want[j]));
      }
    }
  }
}

// More than kColdElements: the column blocks are copied to scratch in the sum
// pass and written from the copies, around the caches where the output's rows
// allow (the cross-entropy gradient's target term in the same write). Against
// the reference, and in place with the same bits.
TEST_CASE("backward: column blocks from memory, out of place and in place", "[backward][big]") {
  // [4, 33, 16384]: column blocks (more rows than any ISA's short columns);
  // [2, 5, 262144]: short columns, a vector of them at a time.
  for (const auto &s : std::vector<std::array<std::size_t, 3>>{{4, 33, 16384}, {2, 5, 262144}}) {
  const std::size_t outer = s[0], n = s[1], inner = s[2];
  const auto x = make_tensor(Dist::Normal30, outer, n, inner, 5);
  const auto dy = bw::uniform(x.size(), -1.0f, 1.0f, 6);
  const auto t = bw::targets(outer * inner, n, 1, 0.2, 7);
  const auto w = bw::uniform(n, 0.1f, 2.5f, 8);
  const std::string ce_label = shape_label(outer, n, inner) + " from memory";
  verify_backward(x, t, outer, n, inner, tu::ce_opts(SOFTKIT_REDUCTION_MEAN, 1), {1.75f}, ce_label);
  verify_backward(x, t, outer, n, inner, tu::ce_opts(SOFTKIT_REDUCTION_NONE, 1, 0.3f, w.data()),
                  dloss_for(SOFTKIT_REDUCTION_NONE, outer * inner, 9), ce_label + " weighted e 0.3");
  for (bool log : {false, true}) {
    const auto y = forward(log, x, outer, n, inner);
    const std::string label = shape_label(outer, n, inner) + " from memory";
    verify_sm(log, y, dy, outer, n, inner, label);
    const auto want = bw::run_sm_backward(log, y, dy, outer, n, inner);
    auto fn = log ? softkit_log_softmax_backward_f32 : softkit_softmax_backward_f32;
    std::vector<float> a = y;
    REQUIRE(fn(a.data(), dy.data(), a.data(), outer, n, inner) == SOFTKIT_OK);
    std::size_t differ = 0;
    for (std::size_t j = 0; j < want.size(); ++j) differ += !same_bits(a[j], want[j]);
    INFO(label << " in place");
    CHECK(differ == 0);
  }
  }
}

TEST_CASE("backward: bitwise identical for 1 to 4 threads", "[backward][threads]") {
  const std::size_t shapes[][3] = {{300, 1000, 1}, {3, 50257, 1}, {4, 64, 3000}, {2, 20000, 5}, {3, 5, 9000}};
  for (const auto &s : shapes) {
    const std::size_t outer = s[0], n = s[1], inner = s[2];
    const auto x = make_tensor(Dist::Normal30, outer, n, inner, 4);
    const auto t = bw::targets(outer * inner, n, -100, 0.1, 4);
    const auto w = bw::uniform(n, 0.1f, 2.0f, 5);
    const auto tp = bw::probs(outer, n, inner, 6);
    const auto dy = bw::uniform(x.size(), -1.0f, 1.0f, 7);
    const auto o = tu::ce_opts(SOFTKIT_REDUCTION_MEAN, -100, 0.1f, w.data());
    const auto on = tu::ce_opts(SOFTKIT_REDUCTION_NONE, -100, 0.1f, w.data());
    std::vector<std::vector<float>> first;
    for (int threads = 1; threads <= 4; ++threads) {
      ScopedThreads st(threads);
      std::vector<std::vector<float>> out;
      out.push_back(bw::run_backward(x, t, outer, n, inner, o, {1.0f}));
      out.push_back(bw::run_probs(x, tp, outer, n, inner, o));
      out.push_back(bw::run_probs(x, tp, outer, n, inner, on));
      out.push_back(bw::run_sm_backward(false, x, dy, outer, n, inner));
      out.push_back(bw::run_sm_backward(true, forward(true, x, outer, n, inner), dy, outer, n, inner));
      if (threads == 1) {
        first = out;
        continue;
      }
      for (std::size_t k = 0; k < out.size(); ++k) {
        INFO(shape_label(outer, n, inner) << " output " << k << " threads " << threads);
        REQUIRE(out[k].size() == first[k].size());
        std::size_t diff = 0;
        for (std::size_t j = 0; j < out[k].size(); ++j) diff += !same_bits(out[k][j], first[k][j]);
        CHECK(diff == 0);
      }
    }
  }
}

TEST_CASE("backward: argument errors write nothing", "[backward][errors]") {
  const std::size_t outer = 2, n = 3, inner = 1;
  std::vector<float> x = {1, 2, 3, 4, 5, 6}, dx(6, kSentinel), dl = {1.0f}, tp(6, 1.0f / 3), loss(2, kSentinel);
  std::vector<std::int64_t> t = {0, 2};
  auto untouched = [&] {
    for (float v : dx) REQUIRE(same_bits(v, kSentinel));
    for (float v : loss) REQUIRE(same_bits(v, kSentinel));
  };
  auto o = tu::ce_opts(SOFTKIT_REDUCTION_MEAN);
  // Targets out of range, refused before anything is written.
  for (std::int64_t bad : {(std::int64_t)-1, (std::int64_t)3, (std::int64_t)-100 - 1}) {
    std::vector<std::int64_t> tb = {0, bad};
    CHECK(softkit_cross_entropy_backward_f32(x.data(), tb.data(), outer, n, inner, &o, dl.data(), dx.data()) ==
          SOFTKIT_ERROR_TARGET_OUT_OF_RANGE);
  }
  // NULL pointers with work.
  CHECK(softkit_cross_entropy_backward_f32(nullptr, t.data(), outer, n, inner, &o, dl.data(), dx.data()) ==
        SOFTKIT_ERROR_NULL_POINTER);
  CHECK(softkit_cross_entropy_backward_f32(x.data(), nullptr, outer, n, inner, &o, dl.data(), dx.data()) ==
        SOFTKIT_ERROR_NULL_POINTER);
  CHECK(softkit_cross_entropy_backward_f32(x.data(), t.data(), outer, n, inner, &o, nullptr, dx.data()) ==
        SOFTKIT_ERROR_NULL_POINTER);
  CHECK(softkit_cross_entropy_backward_f32(x.data(), t.data(), outer, n, inner, &o, dl.data(), nullptr) ==
        SOFTKIT_ERROR_NULL_POINTER);
  CHECK(softkit_cross_entropy_probs_f32(nullptr, tp.data(), outer, n, inner, &o, loss.data()) ==
        SOFTKIT_ERROR_NULL_POINTER);
  CHECK(softkit_cross_entropy_probs_f32(x.data(), nullptr, outer, n, inner, &o, loss.data()) ==
        SOFTKIT_ERROR_NULL_POINTER);
  CHECK(softkit_cross_entropy_probs_f32(x.data(), tp.data(), outer, n, inner, &o, nullptr) ==
        SOFTKIT_ERROR_NULL_POINTER);
  for (auto fn : {softkit_softmax_backward_f32, softkit_log_softmax_backward_f32}) {
    CHECK(fn(nullptr, x.data(), dx.data(), outer, n, inner) == SOFTKIT_ERROR_NULL_POINTER);
    CHECK(fn(x.data(), nullptr, dx.data(), outer, n, inner) == SOFTKIT_ERROR_NULL_POINTER);
    CHECK(fn(x.data(), x.data(), nullptr, outer, n, inner) == SOFTKIT_ERROR_NULL_POINTER);
    // Size overflow.
    CHECK(fn(x.data(), x.data(), dx.data(), SIZE_MAX / 2, 3, 1) == SOFTKIT_ERROR_SIZE_OVERFLOW);
  }
  CHECK(softkit_cross_entropy_backward_f32(x.data(), t.data(), SIZE_MAX / 2, 3, 1, &o, dl.data(), dx.data()) ==
        SOFTKIT_ERROR_SIZE_OVERFLOW);
  CHECK(softkit_cross_entropy_probs_f32(x.data(), tp.data(), SIZE_MAX / 2, 3, 1, &o, loss.data()) ==
        SOFTKIT_ERROR_SIZE_OVERFLOW);
  // Invalid options, classes == 0.
  for (int k = 0; k < 4; ++k) {
    auto ob = tu::ce_opts(SOFTKIT_REDUCTION_MEAN);
    if (k == 0) ob.reduction = (softkit_reduction)7;
    if (k == 1) ob.label_smoothing = -0.1f;
    if (k == 2) ob.label_smoothing = kNaN;
    if (k == 3) ob.struct_size = 8;
    CHECK(softkit_cross_entropy_backward_f32(x.data(), t.data(), outer, n, inner, &ob, dl.data(), dx.data()) ==
          SOFTKIT_ERROR_INVALID_ARGUMENT);
    CHECK(softkit_cross_entropy_probs_f32(x.data(), tp.data(), outer, n, inner, &ob, loss.data()) ==
          SOFTKIT_ERROR_INVALID_ARGUMENT);
  }
  CHECK(softkit_cross_entropy_backward_f32(x.data(), t.data(), outer, 0, inner, &o, dl.data(), dx.data()) ==
        SOFTKIT_ERROR_INVALID_ARGUMENT);
  // Overlaps: dlogits with logits (also in place), dloss, targets, weights; loss with inputs.
  CHECK(softkit_cross_entropy_backward_f32(x.data(), t.data(), outer, n, inner, &o, dl.data(), x.data()) ==
        SOFTKIT_ERROR_INVALID_ARGUMENT);
  std::vector<float> big(20, 0.5f);
  CHECK(softkit_cross_entropy_backward_f32(big.data(), t.data(), outer, n, inner, &o, dl.data(), big.data() + 3) ==
        SOFTKIT_ERROR_INVALID_ARGUMENT);
  CHECK(softkit_cross_entropy_backward_f32(x.data(), t.data(), outer, n, inner, &o, big.data() + 5, big.data()) ==
        SOFTKIT_ERROR_INVALID_ARGUMENT);
  auto ow = tu::ce_opts(SOFTKIT_REDUCTION_MEAN, -100, 0.0f, big.data() + 2);
  CHECK(softkit_cross_entropy_backward_f32(x.data(), t.data(), outer, n, inner, &ow, dl.data(), big.data() + 4) ==
        SOFTKIT_ERROR_INVALID_ARGUMENT);
  CHECK(softkit_cross_entropy_backward_f32(x.data(), t.data(), outer, n, inner, &o, dl.data(),
                                           reinterpret_cast<float *>(t.data())) == SOFTKIT_ERROR_INVALID_ARGUMENT);
  CHECK(softkit_cross_entropy_probs_f32(big.data(), tp.data(), outer, n, inner, &o, big.data() + 5) ==
        SOFTKIT_ERROR_INVALID_ARGUMENT);
  CHECK(softkit_cross_entropy_probs_f32(x.data(), big.data(), outer, n, inner, &o, big.data() + 5) ==
        SOFTKIT_ERROR_INVALID_ARGUMENT);
  for (auto fn : {softkit_softmax_backward_f32, softkit_log_softmax_backward_f32}) {
    CHECK(fn(big.data(), big.data() + 10, big.data() + 1, outer, n, inner) == SOFTKIT_ERROR_INVALID_ARGUMENT);
    CHECK(fn(big.data() + 10, big.data(), big.data() + 1, outer, n, inner) == SOFTKIT_ERROR_INVALID_ARGUMENT);
    for (float v : big) REQUIRE(v == 0.5f);
  }
  untouched();
}

TEST_CASE("backward: zero work is OK with NULL pointers", "[backward][errors]") {
  const auto o = tu::ce_opts(SOFTKIT_REDUCTION_MEAN);
  for (auto shape : std::vector<std::array<std::size_t, 3>>{{0, 3, 1}, {2, 3, 0}, {0, 3, 0}}) {
    CHECK(softkit_cross_entropy_backward_f32(nullptr, nullptr, shape[0], shape[1], shape[2], &o, nullptr, nullptr) ==
          SOFTKIT_OK);
    CHECK(softkit_cross_entropy_probs_f32(nullptr, nullptr, shape[0], shape[1], shape[2], &o, nullptr) == SOFTKIT_OK);
    CHECK(softkit_softmax_backward_f32(nullptr, nullptr, nullptr, shape[0], shape[1], shape[2]) == SOFTKIT_OK);
    CHECK(softkit_log_softmax_backward_f32(nullptr, nullptr, nullptr, shape[0], shape[1], shape[2]) == SOFTKIT_OK);
  }
  CHECK(softkit_softmax_backward_f32(nullptr, nullptr, nullptr, 2, 0, 3) == SOFTKIT_OK);
  // An empty batch of soft targets: MEAN NaN, SUM 0 (as the forward).
  float loss = kSentinel;
  auto om = tu::ce_opts(SOFTKIT_REDUCTION_MEAN);
  REQUIRE(softkit_cross_entropy_probs_f32(nullptr, nullptr, 0, 3, 1, &om, &loss) == SOFTKIT_OK);
  CHECK(std::isnan(loss));
  auto os = tu::ce_opts(SOFTKIT_REDUCTION_SUM);
  REQUIRE(softkit_cross_entropy_probs_f32(nullptr, nullptr, 0, 3, 1, &os, &loss) == SOFTKIT_OK);
  CHECK(loss == 0.0f);
}

TEST_CASE("soft targets: one-hot probabilities give the hard-target loss", "[backward]") {
  const std::size_t outer = 5, n = 37, inner = 3;
  const auto x = make_tensor(Dist::Normal1, outer, n, inner, 12);
  const auto t = bw::targets(outer * inner, n, -100, 0.0, 12);
  const auto w = bw::uniform(n, 0.1f, 2.0f, 5);
  std::vector<float> tp(x.size(), 0.0f);
  for (std::size_t s = 0; s < outer * inner; ++s) tp[((s / inner) * n + (std::size_t)t[s]) * inner + s % inner] = 1.0f;
  for (float e : {0.0f, 0.2f}) {
    const auto o = tu::ce_opts(SOFTKIT_REDUCTION_NONE, -100, e, w.data());
    const auto soft = bw::run_probs(x, tp, outer, n, inner, o);
    const auto hard = run_ce(x, t, outer, n, inner, &o);
    for (std::size_t s = 0; s < soft.size(); ++s) CHECK(soft[s] == Approx(hard[s]).epsilon(1e-5).margin(1e-6));
  }
}

// The split form (dist + log_sum * mass) made inf * 0 = NaN where an infinite
// target probability sits on the class of the max (fuzzer: [35, 15, 1], every
// t = +inf); PyTorch's -sum t log p is +inf there, and -inf + inf = NaN with
// targets of both signs. Rows, column blocks and long rows.
TEST_CASE("soft targets: infinite target probabilities", "[backward]") {
  for (const auto &dims : std::vector<std::array<std::size_t, 3>>{{4, 15, 1}, {3, 9, 5}, {3, 20000, 1}}) {
    const std::size_t outer = dims[0], n = dims[1], inner = dims[2];
    const auto x = make_tensor(Dist::Normal1, outer, n, inner, 21);
    std::vector<float> tp(x.size(), 0.25f);
    auto at = [&](std::size_t o, std::size_t k, std::size_t i) -> std::size_t { return (o * n + k) * inner + i; };
    auto argmax = [&](std::size_t o, std::size_t i) {
      std::size_t best = 0;
      for (std::size_t k = 1; k < n; ++k)
        if (x[at(o, k, i)] > x[at(o, best, i)]) best = k;
      return best;
    };
    for (std::size_t i = 0; i < inner; ++i) {
      for (std::size_t k = 0; k < n; ++k) tp[at(0, k, i)] = kInf;  // every class
      tp[at(1, argmax(1, i), i)] = kInf;                             // the max's class only
      tp[at(outer - 1, argmax(outer - 1, i), i)] = kInf;             // +inf and -inf: NaN
      tp[at(outer - 1, argmax(outer - 1, i) == 0 ? 1 : 0, i)] = -kInf;
    }
    const auto o = tu::ce_opts(SOFTKIT_REDUCTION_NONE, -100, 0.0f, nullptr);
    const auto loss = bw::run_probs(x, tp, outer, n, inner, o);
    for (std::size_t i = 0; i < inner; ++i) {
      INFO(tu::shape_label(outer, n, inner) << " on " << tu::isa_name(softkit_get_isa()) << " column " << i);
      CHECK(loss[0 * inner + i] == kInf);
      CHECK(loss[1 * inner + i] == kInf);
      CHECK(std::isnan(loss[(outer - 1) * inner + i]));
      if (outer > 3) CHECK(std::isfinite(loss[2 * inner + i]));
    }
  }
}

// Target "probabilities" of +-3e38 (any floats are taken): terms w t' (-log p)
// beyond the float range, and a loss beyond it too, whose sign only the exact
// sum knows. The SIMD kernels sum w t' in float blocks, which overflow: such a
// sample is taken again class by class in double, as the scalar path does.
TEST_CASE("soft targets: terms beyond the float range keep the loss's sign", "[backward]") {
  for (const auto &dims : std::vector<std::array<std::size_t, 3>>{{6, 40, 1}, {3, 300, 1}, {2, 40, 9}, {2, 20000, 1}}) {
    const std::size_t outer = dims[0], n = dims[1], inner = dims[2];
    // Two classes in three near the max with t = +3e38, the third 50 below with
    // t = -3e38: the mass sum t' is positive, the loss negative (-inf in float).
    std::vector<float> x(outer * n * inner), tp(x.size());
    for (std::size_t o = 0; o < outer; ++o)
      for (std::size_t k = 0; k < n; ++k)
        for (std::size_t i = 0; i < inner; ++i) {
          const bool far = (k + i) % 3 == 2;
          x[(o * n + k) * inner + i] = far ? -50.0f : 0.01f * static_cast<float>((k + o) % 7);
          tp[(o * n + k) * inner + i] = far ? -3e38f : 3e38f;
        }
    for (softkit_reduction red : kReductions) {
      const auto o = tu::ce_opts(red, -100, 0.0f, nullptr);
      verify_probs(x, tp, outer, n, inner, o, "huge targets " + shape_label(outer, n, inner) + " reduction " + std::to_string((int)red));
    }
  }
}

TEST_CASE("soft targets: an infinite target where -log p rounds to 0", "[backward]") {
  // One class 40 above the rest: its -log p is 4e-18, 0 in float. Infinite
  // targets on every class give +inf (long double) or NaN (inf * 0, as
  // PyTorch's float log_softmax gives it); never -inf or a finite loss.
  for (const auto &dims : std::vector<std::array<std::size_t, 3>>{{3, 15, 1}, {2, 300, 1}, {2, 21, 7}}) {
    const std::size_t outer = dims[0], n = dims[1], inner = dims[2];
    auto x = make_tensor(Dist::Normal1, outer, n, inner, 22);
    for (std::size_t o = 0; o < outer; ++o)
      for (std::size_t i = 0; i < inner; ++i) x[(o * n + (o * 7 + i) % n) * inner + i] = 45.0f;
    const std::vector<float> tp(x.size(), kInf);
    for (softkit_reduction red : kReductions) {
      const auto o = tu::ce_opts(red, -100, 0.0f, nullptr);
      const std::string label = tu::shape_label(outer, n, inner) + " reduction " + std::to_string((int)red);
      verify_probs(x, tp, outer, n, inner, o, label);
      for (float v : bw::run_probs(x, tp, outer, n, inner, o)) {
        INFO(label << " on " << tu::isa_name(softkit_get_isa()) << ": " << v);
        CHECK((v == kInf || std::isnan(v)));
      }
    }
  }
}
