// softkit_internal_tests: the exps the kernels use (kernel_table::exp_nonpositive,
// whose values are output, and exp_summed, whose values are only summed) of the
// ISA named by SOFTKIT_TEST_ISA, over every float in [-104, 0] (or every
// SOFTKIT_TEST_EXP_STRIDE-th one), against exp in double rounded to float.
// Exit code 77 when this CPU or build lacks the ISA.
#include <catch2/catch.hpp>

#include <algorithm>
#include <atomic>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <functional>
#include <limits>
#include <random>
#include <sstream>
#include <thread>
#include <vector>

#include "catch_session.hpp"
#include "dispatch.h"
#include "kernels.h"

namespace {

const softkit::kernel_table *g_table = nullptr;
const char *g_isa_name = "default";

float from_bits(std::uint32_t u) {
  float f;
  std::memcpy(&f, &u, 4);
  return f;
}
std::uint32_t to_bits(float f) {
  std::uint32_t u;
  std::memcpy(&u, &f, 4);
  return u;
}

struct SweepResult {
  std::uint64_t count = 0;
  std::uint64_t bad = 0;          // NaN, negative or > 2 ulp
  std::uint64_t inexact = 0;      // not the correctly rounded float
  std::uint32_t worst_ulp = 0;    // in float steps from the correctly rounded result
  double worst_frac = 0;          // |y - exp(x)| / ulp(exp(x)), exp(x) in double
  float worst_x = 0, worst_y = 0;
  float first_bad_x = 0, first_bad_y = 0;
};

// The ulp of a float at r > 0 (r a double): 2^(its binary exponent - 23),
// 2^-149 among the subnormals. From the bits: frexp and ldexp were a fifth of
// the sweep's time.
double float_ulp(double r) {
  if (r < 0x1p-126) return 0x1p-149;
  std::uint64_t u;
  std::memcpy(&u, &r, 8);
  u = ((u >> 52) - 23) << 52;  // r >= 2^-126: the biased exponent stays > 23
  double ulp;
  std::memcpy(&ulp, &u, 8);
  return ulp;
}

using exp_fn = void (*)(const float *, float *, std::size_t);

// An exp under test: a value is bad beyond 2 ulp of the correctly rounded
// result, plus, for an exp whose error may grow with |x|, slope * |x| relatively.
struct ExpUnderTest {
  exp_fn f;
  double slope;
  const char *name;  // as printed
};

// got is not want, the correctly rounded exp(x) (e: exp(x) in double).
void tally_inexact(SweepResult &r, float x, float got, double e, float want, double slope) {
  ++r.inexact;
  std::uint32_t dist;
  if (!(got >= 0.0f) || std::isinf(got)) {
    dist = std::numeric_limits<std::uint32_t>::max();
  } else {
    const std::uint32_t a = to_bits(got), b = to_bits(want);
    dist = a > b ? a - b : b - a;
  }
  const double ulp = float_ulp(e);
  const double frac = std::isfinite(got) ? std::fabs((double)got - e) / ulp : 1e300;
  const double allowed = 2.0 + slope * std::fabs((double)x) * e / ulp;
  if (dist > allowed) {
    if (r.bad++ == 0) {
      r.first_bad_x = x;
      r.first_bad_y = got;
    }
  }
  if (dist > r.worst_ulp || (dist == r.worst_ulp && frac > r.worst_frac)) {
    r.worst_ulp = dist;
    r.worst_x = x;
    r.worst_y = got;
  }
  r.worst_frac = std::max(r.worst_frac, frac);
}

// Bit patterns [lo, hi] of floats (0x80000000 = -0.0 ... 0xC2D00000 = -104)
// through every exp of exps, each against the one exp in double, taken once
// for all of them; most values are correctly rounded and cost one compare.
void sweep(const std::vector<ExpUnderTest> &exps, std::uint32_t lo, std::uint32_t hi, std::uint32_t stride,
           SweepResult *out) {
  constexpr std::size_t kBatch = 1 << 16;
  std::vector<float> x(kBatch), want(kBatch), y(kBatch);
  std::vector<double> e(kBatch);
  std::uint64_t u = lo;
  while (u <= hi) {
    std::size_t m = 0;
    for (; m < kBatch && u <= hi; ++m, u += stride) x[m] = from_bits((std::uint32_t)u);
    for (std::size_t k = 0; k < m; ++k) {
      e[k] = std::exp((double)x[k]);
      want[k] = (float)e[k];
    }
    for (std::size_t j = 0; j < exps.size(); ++j) {
      exps[j].f(x.data(), y.data(), m);
      out[j].count += m;
      for (std::size_t k = 0; k < m; ++k)
        if (!(y[k] == want[k])) tally_inexact(out[j], x[k], y[k], e[k], want[k], exps[j].slope);
    }
  }
}

// Every float of [-104, 0] (every SOFTKIT_TEST_EXP_STRIDE-th) through each exp,
// on all cores; or of [0, top] when top > 0. One result per exp, each printed
// under its name.
std::vector<SweepResult> sweep_all(const std::vector<ExpUnderTest> &exps, float top = 0.0f) {
  std::uint32_t stride = 1;
  if (const char *s = std::getenv("SOFTKIT_TEST_EXP_STRIDE")) stride = (std::uint32_t)std::max(1L, std::atol(s));
  const std::uint32_t lo = top > 0.0f ? 0u : 0x80000000u, hi = to_bits(top > 0.0f ? top : -104.0f);
  unsigned threads = std::max(1u, std::min(8u, std::thread::hardware_concurrency()));
  std::vector<std::vector<SweepResult>> parts(threads, std::vector<SweepResult>(exps.size()));
  std::vector<std::thread> pool;
  const std::uint64_t steps = ((std::uint64_t)hi - lo) / stride + 1;
  for (unsigned t = 0; t < threads; ++t) {
    const std::uint64_t a = steps * t / threads, b = steps * (t + 1) / threads;
    if (a == b) continue;
    pool.emplace_back(sweep, std::cref(exps), (std::uint32_t)(lo + a * stride), (std::uint32_t)(lo + (b - 1) * stride),
                      stride, parts[t].data());
  }
  for (auto &th : pool) th.join();

  std::vector<SweepResult> results(exps.size());
  for (std::size_t j = 0; j < exps.size(); ++j) {
    SweepResult &r = results[j];
    for (const auto &part : parts) {
      const SweepResult &p = part[j];
      r.count += p.count;
      if (p.bad && !r.bad) {
        r.first_bad_x = p.first_bad_x;
        r.first_bad_y = p.first_bad_y;
      }
      r.bad += p.bad;
      r.inexact += p.inexact;
      if (p.worst_ulp > r.worst_ulp) {
        r.worst_ulp = p.worst_ulp;
        r.worst_x = p.worst_x;
        r.worst_y = p.worst_y;
      }
      r.worst_frac = std::max(r.worst_frac, p.worst_frac);
    }
    std::printf("  %s: %llu floats (stride %u), %llu not correctly rounded, worst %u ulp", exps[j].name,
                (unsigned long long)r.count, stride, (unsigned long long)r.inexact, r.worst_ulp);
    if (r.inexact)
      std::printf(" (x = %.9g, got %.9g, correctly rounded %.9g), worst |error| %.3f ulp of the exact value",
                  (double)r.worst_x, (double)r.worst_y, (double)(float)std::exp((double)r.worst_x), r.worst_frac);
    std::printf("\n");
    CHECK(r.count == steps);
  }
  return results;
}

}  // namespace

// Both exps in one sweep. The exp of sums reduces by ln2 rounded to float
// (off by 1.9e-9): at most |x| 2^-28 relatively beyond the 2 ulp. That slope
// is tight: 2^-29 fails.
TEST_CASE("exp_nonpositive and exp_summed over every float in [-104, 0]", "[exp]") {
  REQUIRE(g_table != nullptr);
  REQUIRE(g_table->exp_nonpositive != nullptr);
  REQUIRE(g_table->exp_summed != nullptr);
  REQUIRE(to_bits(-104.0f) == 0xC2D00000u);
  std::printf("exp sweep on %s:\n", g_isa_name);
  const auto r = sweep_all(
      {{g_table->exp_nonpositive, 0.0, "the exp of outputs"}, {g_table->exp_summed, 0x1p-28, "the exp of sums"}});
  INFO("exp of outputs, first value beyond 2 ulp: exp(" << r[0].first_bad_x << ") = " << r[0].first_bad_y
                                                         << ", want " << (float)std::exp((double)r[0].first_bad_x));
  CHECK(r[0].bad == 0);
  CHECK(r[0].worst_ulp <= 2);
  INFO("exp of sums, first value beyond 2 ulp + |x| 2^-28: exp("
       << r[1].first_bad_x << ") = " << r[1].first_bad_y << ", want " << (float)std::exp((double)r[1].first_bad_x));
  CHECK(r[1].bad == 0);
}

// The one-pass sums take the exp of sums on x itself, up to the row's max.
TEST_CASE("exp_summed over every float in [0, one_pass_high]", "[exp]") {
  REQUIRE(g_table != nullptr);
  if (g_table->one_pass_high <= 0.0f) return;  // no one-pass sums on this ISA
  std::printf("exp sweep on %s, on [0, %g]:\n", g_isa_name, (double)g_table->one_pass_high);
  const SweepResult r =
      sweep_all({{g_table->exp_summed, 0x1p-28, "the exp of sums"}}, g_table->one_pass_high)[0];
  INFO("first value beyond 2 ulp + |x| 2^-28: exp(" << r.first_bad_x << ") = " << r.first_bad_y << ", want "
                                                    << (float)std::exp((double)r.first_bad_x));
  CHECK(r.bad == 0);
}

// A vector holding both values up to one_pass_high and values whose exp is
// subnormal: the ISAs that scale through the exponent bits take another path
// for such a vector, and it must hold the high lanes too.
TEST_CASE("exp_summed of vectors mixing [0, one_pass_high] and subnormal results", "[exp]") {
  REQUIRE(g_table != nullptr);
  const float high = g_table->one_pass_high;
  if (high <= 0.0f) return;
  std::vector<float> x(4096), y(x.size());
  for (std::size_t i = 0; i < x.size(); ++i)
    x[i] = i % 2 ? high * static_cast<float>(i % 1000 + 1) / 1000.0f : -86.6f - 17.0f * static_cast<float>(i % 997) / 997.0f;
  g_table->exp_summed(x.data(), y.data(), x.size());
  std::size_t bad = 0;
  std::ostringstream first;
  for (std::size_t i = 0; i < x.size(); ++i) {
    const double want = std::exp((double)x[i]);
    if (!(std::fabs((double)y[i] - (float)want) <= 2 * float_ulp(want) + 0x1p-28 * std::fabs((double)x[i]) * want))
      if (bad++ == 0) first << "exp(" << x[i] << ") = " << y[i] << ", want " << (float)want;
  }
  INFO(bad << " beyond the bound; first: " << first.str());
  CHECK(bad == 0);
}

// The one-pass sums move sum exp(x) to the max by exp(-beta max), where beta
// accounts for the exp of sums computing e^(beta x) (float(ln2) in its
// reduction): by exp(-max) instead, every sum of a row whose max is near 80
// would come out 2.2e-7 relatively low. Rows of chunk length, their max at the
// top of the range: the sums' mean relative error against long double must
// stay within 2^-24 (the exp's own errors average out over the terms and rows).
TEST_CASE("one-pass sums: no bias from the exp of sums' reduction", "[exp]") {
  REQUIRE(g_table != nullptr);
  const float high = g_table->one_pass_high;
  if (high <= 0.0f) return;
  std::mt19937_64 rng(42);
  std::normal_distribution<float> nd(0.0f, 1.0f);
  const std::size_t n = 20000, rows = 32;
  double mean = 0.0;
  std::vector<float> x(n);
  for (std::size_t r = 0; r < rows; ++r) {
    for (auto &v : x) v = nd(rng);
    const float top = high - 0.5f, m = *std::max_element(x.begin(), x.end());
    for (auto &v : x) v += top - m;
    const float mx = *std::max_element(x.begin(), x.end());
    const softkit::span_stats st = g_table->stats_chunk(x.data(), n, nullptr, false, nullptr);
    REQUIRE(st.max == mx);
    long double want = 0.0L;
    for (float v : x) want += std::exp((long double)v - (long double)mx);
    mean += (double)(((long double)st.sum - want) / want) / rows;
  }
  std::printf("one-pass sums on %s, rows with max %g: mean relative error %.3g (2^-24 = %.3g)\n", g_isa_name,
              (double)(high - 0.5f), mean, 0x1p-24);
  CHECK(std::fabs(mean) <= 0x1p-24);
}

// Both exps, each with its bound: the exp of sums may be off by |x| 2^-28 more.
TEST_CASE("exp_nonpositive and exp_summed special values", "[exp]") {
  REQUIRE(g_table != nullptr);
  const float inf = std::numeric_limits<float>::infinity();
  const struct {
    const char *name;
    exp_fn f;
    double slope;
  } exps[] = {{"exp_nonpositive", g_table->exp_nonpositive, 0.0}, {"exp_summed", g_table->exp_summed, 0x1p-28}};
  // Each value alone (scalar tail) and inside a longer vector (SIMD body).
  const float specials[] = {-inf, std::numeric_limits<float>::quiet_NaN(), 0.0f, -0.0f, -1e-45f, -104.0f, -1000.0f,
                            -3.4e38f, -87.33654f, -103.97208f};
  for (const auto &e : exps) {
    for (std::size_t len : {1, 3, 8, 16, 17, 33, 64}) {
      for (std::size_t pos = 0; pos < len; pos += std::max<std::size_t>(1, len / 3)) {
        for (float s : specials) {
          std::vector<float> x(len, -1.0f), y(len, 123.0f);
          x[pos] = s;
          e.f(x.data(), y.data(), len);
          INFO(e.name << "(" << s << ") at " << pos << " of " << len << " = " << y[pos]);
          if (std::isnan(s)) {
            CHECK(std::isnan(y[pos]));
          } else if (s == -inf || s <= -104.0f) {
            CHECK(y[pos] == (s <= -104.0f && s > -inf ? (float)std::exp((double)s) : 0.0f));
          } else if (s == 0.0f) {
            CHECK(y[pos] == 1.0f);
          } else {
            const double want = std::exp((double)s);
            CHECK(std::fabs((double)y[pos] - (float)want) <=
                  2 * float_ulp(want) + e.slope * std::fabs((double)s) * want);
          }
          // The neighbours are unaffected.
          for (std::size_t k = 0; k < len; ++k)
            if (k != pos) CHECK(y[k] == Approx(std::exp(-1.0)).epsilon(3e-7));
        }
      }
    }
    // Far below -104 underflows to 0.
    std::vector<float> far = {-105.0f, -150.0f, -1e10f, -3.4e38f};
    std::vector<float> y(far.size(), 1.0f);
    e.f(far.data(), y.data(), far.size());
    for (float v : y) CHECK(v == 0.0f);
  }
}

// softmax_chunk_exp_scaled (AVX-512): the exps of a long row's chunk taken as
// exp(x) * 2^-k, k from the chunk's first 64 values, from k ln2 - 104 to
// k ln2 + 80 (sums of such terms stay finite): within 2 ulp of the correctly
// rounded value, as the exp of outputs, for k from -115 to 115 (first values
// -80 to 80), and x itself up to 160 in magnitude. The first 64 values are
// k ln2; the others random in that range, a masked tail among them. (With
// ln2 in one part, as the exp of sums, the worst reached 9 ulp at x = 158.)
TEST_CASE("softmax_chunk_exp_scaled: exp(x) * 2^-k within 2 ulp", "[exp]") {
  REQUIRE(g_table != nullptr);
  if (g_table->softmax_chunk_exp_scaled == nullptr) return;  // not on this ISA
  std::mt19937_64 rng(11);
  const std::size_t first = 64, n = first + 300001;
  std::vector<float> x(n), y(n);
  for (int k : {-115, -57, -1, 0, 1, 60, 115}) {
    const double k_ln2 = k * 0.6931471805599453;
    std::uniform_real_distribution<double> u(k_ln2 - 104.0, k_ln2 + 80.0);
    std::fill(x.begin(), x.begin() + first, static_cast<float>(k_ln2));
    for (std::size_t i = first; i < n; ++i) x[i] = static_cast<float>(u(rng));
    float max = 0.0f;
    double shift = 0.0;
    const double sum = g_table->softmax_chunk_exp_scaled(x.data(), y.data(), n, &max, &shift, nullptr);
    INFO("k = " << k);
    REQUIRE(shift == k_ln2);
    CHECK(max == *std::max_element(x.begin(), x.end()));
    std::uint32_t worst = 0;
    float worst_x = 0.0f;
    long double want_sum = 0.0L;
    for (std::size_t i = 0; i < n; ++i) {
      const double e = std::ldexp(std::exp(static_cast<double>(x[i])), -k);
      want_sum += e;
      const std::uint32_t a = to_bits(y[i]), b = to_bits(static_cast<float>(e));
      const std::uint32_t dist = a > b ? a - b : b - a;
      if (dist > worst) {
        worst = dist;
        worst_x = x[i];
      }
    }
    std::printf("softmax_chunk_exp_scaled on %s, k = %d: worst %u ulp (x = %.9g)\n", g_isa_name, k, worst,
                (double)worst_x);
    INFO("worst at x = " << worst_x);
    CHECK(worst <= 2);
    CHECK(std::fabs((long double)sum - want_sum) <= 1e-6L * want_sum);
  }
}

int main(int argc, char **argv) {
  const char *want = std::getenv("SOFTKIT_TEST_ISA");
  softkit_isa isa = softkit::active_kernels()->isa;
  if (want != nullptr && *want != '\0') {
    static const struct {
      const char *name;
      softkit_isa isa;
    } names[] = {{"scalar", SOFTKIT_ISA_SCALAR}, {"avx2", SOFTKIT_ISA_AVX2}, {"avx512", SOFTKIT_ISA_AVX512},
                 {"neon", SOFTKIT_ISA_NEON}};
    bool found = false;
    for (const auto &n : names)
      if (std::strcmp(want, n.name) == 0) {
        isa = n.isa;
        found = true;
      }
    if (!found) {
      std::fprintf(stderr, "SOFTKIT_TEST_ISA=%s is not one of scalar|avx2|avx512|neon\n", want);
      return 2;
    }
    g_isa_name = want;
  }
  g_table = softkit::kernels_for(isa);
  if (g_table == nullptr) {
    std::printf("skipping: %s not supported here\n", g_isa_name);
    return 77;
  }
  if (want == nullptr || *want == '\0') g_isa_name = softkit_isa_name(isa);
  std::printf("exp kernel of ISA %s\n", g_isa_name);
  std::fflush(stdout);
  const int failed = run_catch_session(argc, argv);
  return failed == 0 ? 0 : 1;
}
