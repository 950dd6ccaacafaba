// Shared machinery of the libFuzzer harnesses (issue 8): decoding shapes,
// values, options, ISA and buffer placement from the fuzzer's bytes; guarded
// allocations whose every byte is checked after a call; and the comparisons
// against the scalar ISA and the long double reference (tests/test_util.hpp).
//
// The contract every harness checks, for any input:
//  - the status is OK exactly when no error applies, else one of the errors that
//    apply (the README's table; the order between two applicable errors is free);
//  - not one byte outside the output changes, and on an error status not one
//    byte at all (inputs, the output and the guard zones around every buffer);
//  - on OK, the result matches the scalar ISA's within the accuracy bounds of
//    the tests and the long double reference within them, NaN where they are NaN.
// A broken contract prints what it was and aborts (a libFuzzer crash).
#ifndef SOFTKIT_TESTS_FUZZ_FUZZ_COMMON_HPP
#define SOFTKIT_TESTS_FUZZ_FUZZ_COMMON_HPP

#include <fuzzer/FuzzedDataProvider.h>

#include <cfloat>
#include <cstdarg>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <initializer_list>
#include <limits>
#include <memory>
#include <random>
#include <string>
#include <vector>

#include "softkit/softkit.h"
#include "test_util.hpp"

namespace fz {

using tu::ld;

[[noreturn]] inline void fail(const char *fmt, ...) {
  std::va_list ap;
  va_start(ap, fmt);
  std::fprintf(stderr, "\nsoftkit fuzz: CONTRACT BROKEN on ISA %s: ", softkit_isa_name(softkit_get_isa()));
  std::vfprintf(stderr, fmt, ap);
  std::fprintf(stderr, "\n");
  va_end(ap);
  std::abort();
}

inline const char *status_name(softkit_status s) {
  switch (s) {
    case SOFTKIT_OK: return "OK";
    case SOFTKIT_ERROR_NULL_POINTER: return "NULL_POINTER";
    case SOFTKIT_ERROR_INVALID_ARGUMENT: return "INVALID_ARGUMENT";
    case SOFTKIT_ERROR_TARGET_OUT_OF_RANGE: return "TARGET_OUT_OF_RANGE";
    case SOFTKIT_ERROR_SIZE_OVERFLOW: return "SIZE_OVERFLOW";
    case SOFTKIT_ERROR_UNSUPPORTED_ISA: return "UNSUPPORTED_ISA";
  }
  return "?";
}

// ------------------------------------------------------------------ expected status

// The errors that apply to a call; OK is expected when there are none.
struct Expect {
  unsigned mask = 0;
  void add(softkit_status s, bool applies = true) {
    if (applies) mask |= 1u << s;
  }
  bool any() const { return mask != 0; }
  void check(softkit_status got, const std::string &what) const {
    static const bool verbose = std::getenv("SOFTKIT_FUZZ_VERBOSE") != nullptr;
    if (verbose) std::fprintf(stderr, "%s -> %s\n", what.c_str(), status_name(got));
    const bool ok = mask == 0 ? got == SOFTKIT_OK : got != SOFTKIT_OK && (mask >> got & 1u);
    if (ok) return;
    std::string want;
    for (int s = 1; s <= 5; ++s)
      if (mask >> s & 1u) want += std::string(want.empty() ? "" : " or ") + status_name((softkit_status)s);
    fail("%s: status %s, expected %s", what.c_str(), status_name(got), mask ? want.c_str() : "OK");
  }
};

// a * b * c elements of `elem` bytes overflow size_t (only when none is 0: no work otherwise).
inline bool overflows(std::size_t a, std::size_t b, std::size_t c, std::size_t elem) {
  if (a == 0 || b == 0 || c == 0) return false;
  std::size_t t;
  return __builtin_mul_overflow(a, b, &t) || __builtin_mul_overflow(t, c, &t) || __builtin_mul_overflow(t, elem, &t);
}

// ------------------------------------------------------------------ guarded memory

// Every allocation of a call: [guard][payload][guard], all of it snapshotted
// before the call. After it, the bytes of the declared output (when the status
// is OK) may differ, nothing else.
class Arena {
 public:
  static constexpr std::size_t kGuard = 64;  // bytes each side, beyond any SIMD tail
  // Payload of `bytes`, 64-byte aligned plus `misalign` bytes, guards filled with canaries.
  unsigned char *alloc(std::size_t bytes, std::size_t misalign = 0) {
    const std::size_t payload = bytes + misalign;
    holders_.emplace_back(new unsigned char[payload + 2 * kGuard + 64]);
    unsigned char *raw = holders_.back().get();
    const auto base = reinterpret_cast<std::uintptr_t>(raw);
    unsigned char *start = raw + (64 - (base + kGuard) % 64) % 64;
    starts_.push_back(start);
    sizes_.push_back(payload);
    for (std::size_t i = 0; i < payload + 2 * kGuard; ++i) start[i] = canary(i);
    return start + kGuard + misalign;
  }
  template <class T>
  T *alloc_n(std::size_t count, std::size_t misalign_elems = 0) {
    return reinterpret_cast<T *>(alloc(count * sizeof(T), misalign_elems * sizeof(T)));
  }

  void declare_output(const void *p, std::size_t bytes) {
    out_ = static_cast<const unsigned char *>(p);
    out_bytes_ = bytes;
  }
  void snapshot() {
    snaps_.clear();
    for (std::size_t k = 0; k < starts_.size(); ++k)
      snaps_.emplace_back(starts_[k], starts_[k] + sizes_[k] + 2 * kGuard);
  }
  // Every byte but the output's (when allowed) is as snapshotted.
  void verify(bool output_may_change, const std::string &what) const {
    for (std::size_t k = 0; k < starts_.size(); ++k) {
      const unsigned char *s = starts_[k];
      const std::size_t len = sizes_[k] + 2 * kGuard;
      for (std::size_t i = 0; i < len; ++i) {
        if (s[i] == snaps_[k][i]) continue;
        const unsigned char *p = s + i;
        if (output_may_change && out_ && p >= out_ && p < out_ + out_bytes_) continue;
        const long off = (long)i - (long)kGuard;
        const long out_off = out_ ? (long)(p - out_) : 0;
        fail("%s: byte changed outside the output%s: allocation %zu (payload %zu bytes) at payload offset %ld "
             "(%s; %ld bytes from the output's start, output %zu bytes), was 0x%02x now 0x%02x",
             what.c_str(), output_may_change ? "" : " (error status: nothing may change)", k, sizes_[k], off,
             off < 0 ? "front guard" : (std::size_t)off >= sizes_[k] ? "back guard" : "payload", out_off, out_bytes_,
             snaps_[k][i], s[i]);
      }
    }
  }

 private:
  static unsigned char canary(std::size_t i) { return (unsigned char)(0xA5 ^ (i * 37)); }
  std::vector<std::unique_ptr<unsigned char[]>> holders_;
  std::vector<unsigned char *> starts_;
  std::vector<std::size_t> sizes_;
  std::vector<std::vector<unsigned char>> snaps_;
  const unsigned char *out_ = nullptr;
  std::size_t out_bytes_ = 0;
};

// ------------------------------------------------------------------ decoding

using tu::supported_isas;

// Picks the ISA of the call from the input; an unknown or unsupported one must
// be refused and leave the active ISA unchanged.
inline void decode_isa(FuzzedDataProvider &in) {
  const auto &isas = supported_isas();
  const unsigned pick = in.ConsumeIntegralInRange<unsigned>(0, 7);
  if (pick >= 4) {
    const softkit_isa before = softkit_get_isa();
    const int bogus = pick == 4 ? -1 : pick == 5 ? 4 : pick == 6 ? 1000 : SOFTKIT_ISA_NEON;
    const softkit_status s = softkit_set_isa((softkit_isa)bogus);
    bool supported = false;
    for (softkit_isa i : isas) supported |= (int)i == bogus;
    if (!supported && s != SOFTKIT_ERROR_UNSUPPORTED_ISA) fail("softkit_set_isa(%d): %s", bogus, status_name(s));
    if (!supported && softkit_get_isa() != before) fail("refused softkit_set_isa(%d) changed the ISA", bogus);
    if (supported && s != SOFTKIT_OK) fail("softkit_set_isa(%d) refused a supported ISA", bogus);
    return;
  }
  const softkit_isa isa = isas[pick % isas.size()];
  if (softkit_set_isa(isa) != SOFTKIT_OK || softkit_get_isa() != isa) fail("softkit_set_isa(%s)", softkit_isa_name(isa));
}

inline void decode_threads(FuzzedDataProvider &in) { softkit_set_num_threads(in.ConsumeIntegralInRange<int>(-1, 3)); }

struct Shape {
  std::size_t outer = 0, n = 0, inner = 0;
  bool huge = false;  // dimensions chosen to overflow, buffers not of that size
  std::size_t total() const { return outer * n * inner; }
};

// Small and medium tensors, zero dimensions, column layouts, a few long rows
// (> 16384, the chunk path), and dimensions whose product overflows.
inline Shape decode_shape(FuzzedDataProvider &in, std::size_t max_total = std::size_t{1} << 16) {
  Shape s;
  switch (in.ConsumeIntegralInRange<int>(0, 9)) {
    case 0:  // zero somewhere
      s.outer = in.ConsumeIntegralInRange<std::size_t>(0, 3);
      s.n = in.ConsumeIntegralInRange<std::size_t>(0, 3);
      s.inner = in.ConsumeIntegralInRange<std::size_t>(0, 3);
      if (in.ConsumeBool()) s.n = 0;
      break;
    case 1:  // long rows: the chunk path
      s.outer = in.ConsumeIntegralInRange<std::size_t>(1, 2);
      s.n = in.ConsumeIntegralInRange<std::size_t>(16385, 40000);
      s.inner = 1;
      return s;
    case 2:  // columns
      s.outer = in.ConsumeIntegralInRange<std::size_t>(1, 3);
      s.n = in.ConsumeIntegralInRange<std::size_t>(1, 80);
      s.inner = in.ConsumeIntegralInRange<std::size_t>(2, 2100);
      break;
    case 3:  // tall columns (narrow blocks, no scratch for very long ones)
      s.outer = 1;
      s.n = in.ConsumeIntegralInRange<std::size_t>(100, 20000);
      s.inner = in.ConsumeIntegralInRange<std::size_t>(2, 70);
      break;
    case 4: {  // overflow
      s.huge = true;
      const std::size_t big[] = {std::numeric_limits<std::size_t>::max(), std::size_t{1} << 62, std::size_t{1} << 32,
                                 (std::size_t{1} << 61) + 1, std::size_t{1} << 31, 3};
      s.outer = big[in.ConsumeIntegralInRange<int>(0, 5)];
      s.n = big[in.ConsumeIntegralInRange<int>(0, 5)];
      s.inner = in.ConsumeBool() ? 1 : big[in.ConsumeIntegralInRange<int>(0, 5)];
      if (in.ConsumeIntegralInRange<int>(0, 7) == 0) s.n = 0;
      // Make sure it overflows: outer * n * inner (and outer * inner, the
      // logsumexp result count, when n == 0) in bytes.
      if (s.n == 0) {
        s.outer = std::size_t{1} << 63;
        if (s.inner < 2) s.inner = 2;
      } else if (!overflows(s.outer, s.n, s.inner, sizeof(float))) {
        s.outer = std::numeric_limits<std::size_t>::max();
      }
      return s;
    }
    default:  // rows of every small length
      s.outer = in.ConsumeIntegralInRange<std::size_t>(1, 70);
      s.n = in.ConsumeIntegralInRange<std::size_t>(1, in.ConsumeBool() ? 40 : 5000);
      s.inner = in.ConsumeIntegralInRange<int>(0, 3) == 0 ? in.ConsumeIntegralInRange<std::size_t>(1, 9) : 1;
      break;
  }
  while (s.total() > max_total) {
    if (s.outer > 1) s.outer = (s.outer + 1) / 2;
    else if (s.inner > 1) s.inner = (s.inner + 1) / 2;
    else s.n = max_total;
  }
  return s;
}

inline float special(int k) {
  const float v[] = {std::numeric_limits<float>::infinity(),
                     -std::numeric_limits<float>::infinity(),
                     std::numeric_limits<float>::quiet_NaN(),
                     -std::numeric_limits<float>::quiet_NaN(),
                     0.0f,
                     -0.0f,
                     std::numeric_limits<float>::denorm_min(),
                     -std::numeric_limits<float>::denorm_min(),
                     1e-40f,
                     FLT_MIN,
                     3e38f,
                     -3e38f,
                     FLT_MAX,
                     -FLT_MAX,
                     -1e30f,
                     1e30f,
                     88.7f,
                     -87.4f,
                     -104.0f,
                     -1e4f,
                     1.0f,
                     -1.0f};
  return v[(unsigned)k % (sizeof v / sizeof v[0])];
}
constexpr int kSpecials = 22;

// count values: a distribution from a seed, then up to 48 specials placed by the input.
inline std::vector<float> decode_values(FuzzedDataProvider &in, std::size_t count, float lo = -30.0f,
                                        float hi = 30.0f) {
  std::vector<float> v(count);
  std::mt19937_64 rng(in.ConsumeIntegral<std::uint32_t>());
  const int dist = in.ConsumeIntegralInRange<int>(0, 7);
  const unsigned rate = in.ConsumeIntegralInRange<unsigned>(0, 255);  // specials per 1024 in dist 5
  std::uniform_real_distribution<float> u(lo, hi);
  std::normal_distribution<float> nd(0.0f, 1.0f);
  std::uniform_int_distribution<int> sp(0, kSpecials - 1);
  const float constant = special(in.ConsumeIntegralInRange<int>(0, kSpecials - 1));
  for (std::size_t i = 0; i < count; ++i) {
    switch (dist) {
      case 0: case 1: v[i] = u(rng); break;
      case 2: v[i] = 30.0f * nd(rng); break;
      case 3: v[i] = constant; break;
      case 4: v[i] = (rng() & 1 ? 1.0f : -1.0f) * std::ldexp(1.0f, (int)(rng() % 254) - 126); break;  // all magnitudes
      case 5: v[i] = (rng() % 1024) < rate ? special(sp(rng)) : u(rng); break;
      case 6: v[i] = (rng() % 64) ? -std::numeric_limits<float>::infinity() : u(rng); break;
      default: v[i] = u(rng) - 100.0f * (float)(rng() % 2); break;  // subnormal softmax outputs
    }
  }
  if (count == 0) return v;
  const int placed = in.ConsumeIntegralInRange<int>(0, 48);
  for (int k = 0; k < placed && in.remaining_bytes() > 0; ++k) {
    const std::size_t at = in.ConsumeIntegral<std::uint32_t>() % count;
    v[at] = special(in.ConsumeIntegralInRange<int>(0, kSpecials - 1));
  }
  return v;
}

// Where the output goes relative to an input.
enum class Place { Disjoint, Same, PartialAfter, PartialBefore, NullIn, NullOut };

inline Place decode_place(FuzzedDataProvider &in) {
  const int p = in.ConsumeIntegralInRange<int>(0, 15);
  if (p < 8) return Place::Disjoint;
  if (p < 11) return Place::Same;
  if (p < 12) return Place::PartialAfter;
  if (p < 13) return Place::PartialBefore;
  return p == 13 ? Place::NullIn : p == 14 ? Place::NullOut : Place::Disjoint;
}

// Input and output buffers as `place` lays them out: in_n and out_n floats,
// `shift` floats apart when one starts inside the other, null for NullIn /
// NullOut. A shared buffer holds the larger of the two.
struct Buffers {
  float *in = nullptr, *out = nullptr;
};
inline Buffers place_buffers(Arena &arena, Place place, std::size_t in_n, std::size_t out_n, std::size_t shift,
                             std::size_t misalign_in, std::size_t misalign_out) {
  const std::size_t both = in_n > out_n ? in_n : out_n;
  Buffers b;
  switch (place) {
    case Place::Disjoint:
      b.in = arena.alloc_n<float>(in_n, misalign_in);
      b.out = arena.alloc_n<float>(out_n, misalign_out);
      break;
    case Place::Same: b.in = b.out = arena.alloc_n<float>(both, misalign_in); break;
    case Place::PartialAfter:  // out starts inside in
      b.in = arena.alloc_n<float>(shift + both, misalign_in);
      b.out = b.in + shift;
      break;
    case Place::PartialBefore:  // in starts inside out
      b.out = arena.alloc_n<float>(shift + both, misalign_in);
      b.in = b.out + shift;
      break;
    case Place::NullIn: b.out = arena.alloc_n<float>(out_n, misalign_out); break;
    case Place::NullOut: b.in = arena.alloc_n<float>(in_n, misalign_in); break;
  }
  return b;
}

// Cross-entropy options as a C caller may pass them, NULL one time in ten: a
// struct_size too small, zero or a later, bigger struct's; every reduction and
// invalid ones, as the int a C caller passes (it is read back as this int only:
// in C++ an enum holding no enumerator is undefined); ignore_index inside and
// outside the classes, INT64_MIN too with lowest_ignore; a smoothing from the list.
struct CeOptions {
  softkit_cross_entropy_options o = SOFTKIT_CROSS_ENTROPY_OPTIONS_INIT;
  int reduction = SOFTKIT_REDUCTION_MEAN;
  bool null_opts = false;
};
constexpr std::size_t kOptionsV1 = offsetof(softkit_cross_entropy_options, class_weights) + sizeof(const float *);
template <std::size_t K>
inline CeOptions decode_ce_options(FuzzedDataProvider &in, std::size_t classes, const float (&smoothings)[K],
                                   bool lowest_ignore) {
  CeOptions r;
  softkit_cross_entropy_options &o = r.o;
  r.null_opts = in.ConsumeIntegralInRange<int>(0, 9) == 0;
  switch (in.ConsumeIntegralInRange<int>(0, 9)) {
    case 0: o.struct_size = kOptionsV1 - 1; break;
    case 1: o.struct_size = 0; break;
    case 2: o.struct_size = sizeof(o) + 64; break;  // a later, bigger struct: its tail is there
    default: break;
  }
  const int red = in.ConsumeIntegralInRange<int>(0, 12);
  r.reduction = red < 4 ? SOFTKIT_REDUCTION_MEAN : red < 7 ? SOFTKIT_REDUCTION_SUM
                : red < 11 ? SOFTKIT_REDUCTION_NONE : red == 11 ? 3 : -1;
  std::memcpy(&o.reduction, &r.reduction, sizeof r.reduction);
  switch (in.ConsumeIntegralInRange<int>(0, 7)) {
    case 0: o.ignore_index = classes ? (std::int64_t)in.ConsumeIntegralInRange<std::size_t>(0, classes - 1) : 0; break;
    case 1: o.ignore_index = -1; break;
    case 2: o.ignore_index = (std::int64_t)classes; break;
    case 3:
      if (lowest_ignore) o.ignore_index = std::numeric_limits<std::int64_t>::min();
      break;
    default: break;  // -100
  }
  o.label_smoothing = smoothings[in.ConsumeIntegralInRange<int>(0, static_cast<int>(K) - 1)];
  return r;
}

// ------------------------------------------------------------------ comparisons

inline void require_clean(const tu::Compare &c, const char *what, const std::string &where) {
  if (c.bad) fail("%s %s: %zu of %zu outputs outside the bound; first: %s", what, where.c_str(), c.bad, c.checked,
                  c.first_bad.c_str());
}

// Runs `call` once more on the scalar ISA and restores the ISA under test.
template <class F>
auto on_scalar(F &&call) -> decltype(call()) {
  const softkit_isa prev = softkit_get_isa();
  if (softkit_set_isa(SOFTKIT_ISA_SCALAR) != SOFTKIT_OK) fail("scalar ISA refused");
  auto r = call();
  softkit_set_isa(prev);
  return r;
}

inline std::string shape_str(const char *op, std::size_t outer, std::size_t n, std::size_t inner) {
  return std::string(op) + " " + tu::shape_label(outer, n, inner) + " on " + softkit_isa_name(softkit_get_isa());
}

}  // namespace fz

#endif  // SOFTKIT_TESTS_FUZZ_FUZZ_COMMON_HPP
