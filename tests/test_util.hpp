// Shared helpers of the softkit tests: running an op, comparing against the long
// double reference within the accuracy bounds, data generators, ISA / thread
// scoping and the worst-error table printed at the end of a run.
#ifndef SOFTKIT_TESTS_TEST_UTIL_HPP
#define SOFTKIT_TESTS_TEST_UTIL_HPP

#include <catch2/catch.hpp>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <limits>
#include <map>
#include <random>
#include <sstream>
#include <string>
#include <vector>

#include "reference.hpp"
#include "softkit/softkit.h"

namespace tu {

// The ISAs this machine runs, found once.
inline const std::vector<softkit_isa> &supported_isas() {
  static const std::vector<softkit_isa> isas = [] {
    std::vector<softkit_isa> v;
    const softkit_isa prev = softkit_get_isa();
    for (softkit_isa i : {SOFTKIT_ISA_SCALAR, SOFTKIT_ISA_AVX2, SOFTKIT_ISA_AVX512, SOFTKIT_ISA_NEON})
      if (softkit_set_isa(i) == SOFTKIT_OK) v.push_back(i);
    softkit_set_isa(prev);
    return v;
  }();
  return isas;
}

using ld = ref::ld;

constexpr double kEps = 0x1p-23;      // float epsilon (ulp of 1)
constexpr double kHalfEps = 0x1p-24;  // float unit roundoff
constexpr double kMinSub = 0x1p-149;  // smallest float subnormal
constexpr float kInf = std::numeric_limits<float>::infinity();
constexpr float kNaN = std::numeric_limits<float>::quiet_NaN();
constexpr float kSentinel = -12345.625f;  // written into outputs before a call

// Whether a float output g lies within tol of a finite reference w that may be
// beyond the float range. An infinity stands for every value from the overflow
// threshold 2^128 - 2^103 on (they all round to it), so +inf passes where
// w + tol reaches it and -inf where w - tol reaches its negative; with a tol
// smaller than the distance to the largest float, that is the rounded w only.
constexpr ld kFloatOverflow = 0x1p128L - 0x1p103L;  // from here on, values round to infinity in float
inline bool float_within(float g, ld w, double tol) {
  if (std::isnan(g)) return false;
  if (std::isinf(g)) return g > 0 ? w + tol >= kFloatOverflow : w - tol <= -kFloatOverflow;
  return std::fabs((ld)g - w) <= tol;
}

// ---------------------------------------------------------------- ISA, threads

inline const char *isa_name(softkit_isa isa) { return softkit_isa_name(isa); }

// Under an emulator (SOFTKIT_TEST_EMULATED=1: the AArch64 build under QEMU),
// where some tests leave out cases for paths only native ISAs take.
inline bool emulated() {
  const char *e = std::getenv("SOFTKIT_TEST_EMULATED");
  return e && *e == '1';
}

inline bool parse_isa(const char *s, softkit_isa *isa) {
  static const struct {
    const char *name;
    softkit_isa isa;
  } names[] = {{"scalar", SOFTKIT_ISA_SCALAR},
               {"avx2", SOFTKIT_ISA_AVX2},
               {"avx512", SOFTKIT_ISA_AVX512},
               {"neon", SOFTKIT_ISA_NEON}};
  for (const auto &n : names)
    if (std::strcmp(s, n.name) == 0) {
      *isa = n.isa;
      return true;
    }
  return false;
}

// Switches the ISA for a scope and restores the previous one.
struct ScopedIsa {
  softkit_isa prev;
  explicit ScopedIsa(softkit_isa isa) : prev(softkit_get_isa()) { REQUIRE(softkit_set_isa(isa) == SOFTKIT_OK); }
  ~ScopedIsa() { softkit_set_isa(prev); }
  ScopedIsa(const ScopedIsa &) = delete;
  ScopedIsa &operator=(const ScopedIsa &) = delete;
};

// Sets the thread count for a scope; restores the default (n <= 0) afterwards.
struct ScopedThreads {
  explicit ScopedThreads(int n) { softkit_set_num_threads(n); }
  ~ScopedThreads() { softkit_set_num_threads(0); }
  ScopedThreads(const ScopedThreads &) = delete;
  ScopedThreads &operator=(const ScopedThreads &) = delete;
};

// ---------------------------------------------------------------- ops

enum class Op { Softmax, LogSoftmax, LogSumExp };

inline const char *op_name(Op op) {
  switch (op) {
    case Op::Softmax: return "softmax";
    case Op::LogSoftmax: return "log_softmax";
    default: return "logsumexp";
  }
}

using OpFn = softkit_status (*)(const float *, float *, std::size_t, std::size_t, std::size_t);

inline OpFn op_fn(Op op) {
  switch (op) {
    case Op::Softmax: return &softkit_softmax_f32;
    case Op::LogSoftmax: return &softkit_log_softmax_f32;
    default: return &softkit_logsumexp_f32;
  }
}

inline std::size_t out_size(Op op, std::size_t outer, std::size_t n, std::size_t inner) {
  return op == Op::LogSumExp ? outer * inner : outer * n * inner;
}

// Runs op on the active ISA into a fresh, sentinel-filled output.
inline std::vector<float> run(Op op, const std::vector<float> &x, std::size_t outer, std::size_t n,
                              std::size_t inner) {
  std::vector<float> y(out_size(op, outer, n, inner), kSentinel);
  const softkit_status s = op_fn(op)(x.data(), y.data(), outer, n, inner);
  INFO(op_name(op) << " [" << outer << ", " << n << ", " << inner << "] on " << isa_name(softkit_get_isa()));
  REQUIRE(s == SOFTKIT_OK);
  return y;
}

inline std::vector<ld> reference(Op op, const std::vector<float> &x, std::size_t outer, std::size_t n,
                                 std::size_t inner, const std::vector<ref::RowStats> &st) {
  switch (op) {
    case Op::Softmax: return ref::softmax(x.data(), outer, n, inner, st);
    case Op::LogSoftmax: return ref::log_softmax(x.data(), outer, n, inner, st);
    default: return ref::logsumexp(x.data(), outer, n, inner, st);
  }
}

// ---------------------------------------------------------------- error measures

// The spacing of floats at |r| (2^-149 in the subnormal range).
inline double float_ulp(ld r) {
  r = std::fabs(r);
  if (!(r >= (ld)0x1p-126)) return kMinSub;
  if (r > (ld)std::numeric_limits<float>::max()) r = std::numeric_limits<float>::max();
  int e = 0;
  std::frexp((double)r, &e);  // r = m * 2^e, m in [0.5, 1)
  return std::ldexp(1.0, e - 24);
}

// Accuracy bound of one output and the scale its "ulp" is measured in.
struct Bound {
  double tol;   // allowed |got - want|
  double unit;  // error / unit is the reported ulp count
};

// Softmax:     |y - ref| <= ref * (8 * 2^-23 + |x - max| * 2^-24) + 4 * 2^-149,  ulp of ref
// log_softmax: |y - ref| <= 4 * 2^-23 * (1 + |x - max| + log(sum)),              unit 2^-23 * (...)
// logsumexp:   |y - ref| <= 4 * 2^-23 * (1 + |max| + log(sum)),                  unit 2^-23 * (...)
inline Bound bound(Op op, float x, const ref::RowStats &s, ld want) {
  switch (op) {
    case Op::Softmax: {
      const double d = std::fabs((double)((ld)x - s.max));
      return {(double)std::fabs(want) * (8 * kEps + d * kHalfEps) + 4 * kMinSub, float_ulp(want)};
    }
    case Op::LogSoftmax: {
      const double scale = 1 + std::fabs((double)((ld)x - s.max)) + (double)s.log_sum();
      return {4 * kEps * scale, kEps * scale};
    }
    default: {
      const double scale = 1 + std::fabs((double)s.max) + (double)s.log_sum();
      return {4 * kEps * scale, kEps * scale};
    }
  }
}

struct Compare {
  std::size_t checked = 0;
  std::size_t bad = 0;
  std::string first_bad;
  double worst_ulp = 0;
  double worst_ratio = 0;
  std::string worst_where;
};

inline std::string describe(const char *what, std::size_t o, std::size_t k, std::size_t i, float x, float got,
                            ld want, double tol) {
  std::ostringstream os;
  os.precision(9);
  os << what << " at (outer " << o << ", n " << k << ", inner " << i << "): x=" << x << " got=" << got
     << " want=" << (double)want << " |diff|=" << std::fabs((double)((ld)got - want)) << " tol=" << tol;
  return os.str();
}

// Compares one output element; special values must match exactly (NaN is NaN,
// an infinity that infinity). Against a finite reference beyond the float range,
// or with an infinite output, float_within decides with the element's bound.
inline void compare_one(Compare &c, Op op, float x, const ref::RowStats &s, float got, ld want, std::size_t o,
                        std::size_t k, std::size_t i, const std::string &label) {
  ++c.checked;
  bool ok;
  double err = 0, tol = 0, unit = 1;
  const float wantf = (float)want;
  if (std::isnan(want)) {
    ok = std::isnan(got);
  } else if (std::isinf(want)) {
    ok = got == wantf;
  } else if (std::isinf(wantf) || !std::isfinite(got)) {
    tol = bound(op, x, s, want).tol;
    ok = float_within(got, want, tol);
  } else if ((ld)got == want) {
    ok = true;  // exact (also where the bound is meaningless, e.g. exp(-inf - max) = 0)
  } else {
    const Bound b = bound(op, x, s, want);
    tol = b.tol;
    unit = b.unit;
    err = std::fabs((double)((ld)got - want));
    ok = err <= tol;
    const double ulp = err / unit;
    if (ulp > c.worst_ulp) {
      c.worst_ulp = ulp;
      c.worst_where = label + " " + describe(op_name(op), o, k, i, x, got, want, tol);
    }
    c.worst_ratio = std::max(c.worst_ratio, err / tol);
  }
  if (!ok) {
    if (c.bad == 0) c.first_bad = label + " " + describe(op_name(op), o, k, i, x, got, want, tol);
    ++c.bad;
  }
}

inline Compare compare(Op op, const std::vector<float> &x, const std::vector<float> &got, const std::vector<ld> &want,
                       const std::vector<ref::RowStats> &st, std::size_t outer, std::size_t n, std::size_t inner,
                       const std::string &label) {
  Compare c;
  for (std::size_t o = 0; o < outer; ++o)
    for (std::size_t i = 0; i < inner; ++i) {
      const ref::RowStats &s = st[o * inner + i];
      if (op == Op::LogSumExp) {
        const std::size_t j = o * inner + i;
        compare_one(c, op, 0.0f, s, got[j], want[j], o, 0, i, label);
        continue;
      }
      for (std::size_t k = 0; k < n; ++k) {
        const std::size_t idx = (o * n + k) * inner + i;
        compare_one(c, op, x[idx], s, got[idx], want[idx], o, k, i, label);
      }
    }
  return c;
}

// ---------------------------------------------------------------- worst-error table

struct Worst {
  double ulp = 0;
  double ratio = 0;
  std::string where;
};

inline std::map<std::string, Worst> &worst_table() {
  static std::map<std::string, Worst> table;
  return table;
}

inline void note_worst(const std::string &key, double ulp, double ratio, const std::string &where) {
  Worst &w = worst_table()[key];
  if (ulp > w.ulp || w.where.empty()) {
    w.ulp = ulp;
    w.where = where;
  }
  w.ratio = std::max(w.ratio, ratio);
}

inline void note_worst(const std::string &key, const Compare &c) { note_worst(key, c.worst_ulp, c.worst_ratio, c.worst_where); }

inline void print_worst_table(std::FILE *f) {
  if (worst_table().empty()) return;
  std::fprintf(f, "worst observed errors on ISA %s (ulp: softmax in ulps of the output; log_softmax, "
                  "logsumexp, cross_entropy in units of 2^-23 * (1 + |x - max| + log sum), the scale of their bound; "
                  "ratio = error / allowed bound):\n",
               isa_name(softkit_get_isa()));
  for (const auto &kv : worst_table())
    std::fprintf(f, "  %-28s %9.3f ulp  (%.3f of bound)  %s\n", kv.first.c_str(), kv.second.ulp, kv.second.ratio,
                 kv.second.where.c_str());
}

// ---------------------------------------------------------------- verification

// The scalar ISA's outputs as a second reference, except where it gives an
// infinity or NaN for a finite reference (beyond the float range, within the
// bound): there the other ISA answers to the reference alone.
inline std::vector<ld> scalar_or_reference(const std::vector<float> &scalar, const std::vector<ld> &want) {
  std::vector<ld> r(scalar.begin(), scalar.end());
  for (std::size_t j = 0; j < r.size(); ++j)
    if (!std::isfinite(scalar[j]) && std::isfinite(want[j])) r[j] = want[j];
  return r;
}

// Runs op on x, checks it against the reference, and unless the active ISA is
// scalar also checks it against the scalar ISA's output within the same bound.
// Returns the outputs.
inline std::vector<float> verify(Op op, const std::vector<float> &x, std::size_t outer, std::size_t n,
                                 std::size_t inner, const std::string &label, bool cross_check = true) {
  const auto st = ref::stats(x.data(), outer, n, inner);
  const auto want = reference(op, x, outer, n, inner, st);
  const auto got = run(op, x, outer, n, inner);
  const Compare c = compare(op, x, got, want, st, outer, n, inner, label);
  {
    INFO(op_name(op) << " on " << isa_name(softkit_get_isa()) << ", " << label << ": " << c.bad << " of "
                     << c.checked << " outputs outside the bound; first: " << c.first_bad);
    CHECK(c.bad == 0);
  }
  note_worst(op_name(op), c);
  if (cross_check && softkit_get_isa() != SOFTKIT_ISA_SCALAR) {
    std::vector<float> scalar;
    {
      ScopedIsa guard(SOFTKIT_ISA_SCALAR);
      scalar = run(op, x, outer, n, inner);
    }
    const std::vector<ld> want_s = scalar_or_reference(scalar, want);
    const Compare cs = compare(op, x, got, want_s, st, outer, n, inner, label + " (vs scalar)");
    INFO(op_name(op) << " on " << isa_name(softkit_get_isa()) << " vs scalar, " << label << ": " << cs.bad
                     << " of " << cs.checked << " outputs differ by more than the bound; first: " << cs.first_bad);
    CHECK(cs.bad == 0);
    note_worst(std::string(op_name(op)) + " vs scalar", cs);
  }
  return got;
}

// Element k of softmax row `row` (row = o * inner + i) of an [outer, n, inner] tensor.
inline float &row_elem(std::vector<float> &v, std::size_t n, std::size_t inner, std::size_t row, std::size_t k) {
  return v[((row / inner) * n + k) * inner + row % inner];
}

inline std::string shape_label(std::size_t outer, std::size_t n, std::size_t inner) {
  std::ostringstream os;
  os << "[" << outer << ", " << n << ", " << inner << "]";
  return os.str();
}

// ---------------------------------------------------------------- data

enum class Dist { Uniform10, Normal1, Normal30, ManyEqual, MostlyLow };
constexpr Dist kAllDists[] = {Dist::Uniform10, Dist::Normal1, Dist::Normal30, Dist::ManyEqual, Dist::MostlyLow};

inline const char *dist_name(Dist d) {
  switch (d) {
    case Dist::Uniform10: return "uniform[-10,10]";
    case Dist::Normal1: return "normal(0,1)";
    case Dist::Normal30: return "normal(0,30)";
    case Dist::ManyEqual: return "many-equal";
    default: return "mostly-max-100";
  }
}

// A tensor [outer, n, inner] of the distribution. MostlyLow: in every row a few
// values near the row's max, all others about max - 100 (subnormal softmax outputs).
inline std::vector<float> make_tensor(Dist d, std::size_t outer, std::size_t n, std::size_t inner, std::uint64_t seed) {
  std::mt19937_64 rng(seed * 0x9E3779B97F4A7C15ull + (std::uint64_t)d * 7919 + n);
  std::vector<float> x(outer * n * inner);
  std::uniform_real_distribution<float> u10(-10.0f, 10.0f);
  std::normal_distribution<float> nd(0.0f, 1.0f);
  switch (d) {
    case Dist::Uniform10:
      for (auto &v : x) v = u10(rng);
      break;
    case Dist::Normal1:
      for (auto &v : x) v = nd(rng);
      break;
    case Dist::Normal30:
      for (auto &v : x) v = 30.0f * nd(rng);
      break;
    case Dist::ManyEqual: {
      static const float pool[] = {2.5f, 2.5f, 2.5f, 2.5f, -1.0f, 0.75f, 2.5f, -7.25f};
      std::uniform_int_distribution<int> pick(0, 7);
      for (auto &v : x) v = pool[pick(rng)];
      break;
    }
    case Dist::MostlyLow: {
      std::uniform_real_distribution<float> u01(0.0f, 1.0f);
      for (std::size_t o = 0; o < outer; ++o)
        for (std::size_t i = 0; i < inner; ++i) {
          const float m = u10(rng) * 0.5f;
          const std::size_t highs = std::max<std::size_t>(1, n / 1000);
          for (std::size_t k = 0; k < n; ++k) x[(o * n + k) * inner + i] = m - 100.0f + 0.5f * (u01(rng) - 0.5f);
          if (n == 0) continue;
          std::uniform_int_distribution<std::size_t> pos(0, n - 1);
          for (std::size_t h = 0; h < highs; ++h) x[(o * n + pos(rng)) * inner + i] = m - 2.0f * u01(rng);
        }
      break;
    }
  }
  return x;
}

// Rows about the ends of the one-pass sums' range: where a row's max lies in
// [-80, 80] (AVX-512; [-80, 40] on the other ISAs) the kernels that only sum
// exps add exp(x) itself while they find the max, and outside they take two
// passes. Each row of `rows` x n (inner == 1) is normal(0, 1), shifted so that
// its max is one of kOnePassMaxima in turn; every second round of them puts
// in one low value as well: -inf, -1e30 (beyond the unclamped exp: its sum
// fails and the row takes two passes) or -90 (a lane whose exp is subnormal,
// beside the max in the same vector).
constexpr float kOnePassMaxima[] = {-1000.0f, -200.0f, -81.0f, -80.0f, -79.5f, -40.0f, -0.5f,
                                    39.5f,    40.5f,   79.5f,  80.5f,  100.0f, 1e4f};
constexpr std::size_t kOnePassKinds = sizeof(kOnePassMaxima) / sizeof(float);
inline std::vector<float> one_pass_rows(std::size_t rows, std::size_t n, std::uint64_t seed) {
  std::vector<float> x = make_tensor(Dist::Normal1, rows, n, 1, seed);
  const float lows[] = {-__builtin_huge_valf(), -1e30f, -90.0f};
  for (std::size_t r = 0; r < rows; ++r) {
    float *row = x.data() + r * n;
    const float top = kOnePassMaxima[r % kOnePassKinds], m = *std::max_element(row, row + n);
    for (std::size_t k = 0; k < n; ++k) row[k] += top - m;
    const std::size_t round = r / kOnePassKinds;
    if (n >= 2 && round % 2 == 1 && lows[round / 2 % 3] < top) {
      row[0] = lows[round / 2 % 3];
      row[1] = top;
    }
  }
  return x;
}

// Row lengths of the accuracy sweep: every tail 1..33, powers of two and their
// neighbours up to 2^18 + 3, and lengths around the long-row chunk size.
inline std::vector<std::size_t> accuracy_lengths() {
  std::vector<std::size_t> v;
  for (std::size_t n = 1; n <= 33; ++n) v.push_back(n);
  for (int k = 6; k <= 13; ++k) {
    const std::size_t p = std::size_t(1) << k;
    v.insert(v.end(), {p - 1, p, p + 1});
  }
  for (int k = 14; k <= 18; ++k) {
    const std::size_t p = std::size_t(1) << k;
    v.insert(v.end(), {p, p + 3});
  }
  v.insert(v.end(), {1000, 4097, 16383, 16384, 16385, 50257, 65536 + 7, 262147});
  std::sort(v.begin(), v.end());
  v.erase(std::unique(v.begin(), v.end()), v.end());
  return v;
}

// Rows per length: short rows come several to a call (exercising the rows path).
inline std::size_t rows_for(std::size_t n) { return std::max<std::size_t>(1, std::min<std::size_t>(64, 4096 / n)); }

inline bool same_bits(float a, float b) {
  std::uint32_t ua, ub;
  std::memcpy(&ua, &a, 4);
  std::memcpy(&ub, &b, 4);
  return ua == ub;
}

}  // namespace tu

#endif  // SOFTKIT_TESTS_TEST_UTIL_HPP
