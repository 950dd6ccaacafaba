// The small API: version, status strings, ISA names and selection, thread count,
// option defaults, and that results do not depend on the thread count.
#include <set>
#include <string>

#include "test_util.hpp"

using namespace tu;

TEST_CASE("version is 1.0.0 and matches the header macros", "[api]") {
  const char *v = softkit_version();
  REQUIRE(v != nullptr);
  const std::string from_macros = std::to_string(SOFTKIT_VERSION_MAJOR) + "." + std::to_string(SOFTKIT_VERSION_MINOR) +
                                  "." + std::to_string(SOFTKIT_VERSION_PATCH);
  CHECK(std::string(v) == from_macros);
  CHECK(std::string(v) == "1.0.0");
}

TEST_CASE("status strings are non-NULL, non-empty and distinct", "[api]") {
  const softkit_status all[] = {SOFTKIT_OK,
                                SOFTKIT_ERROR_NULL_POINTER,
                                SOFTKIT_ERROR_INVALID_ARGUMENT,
                                SOFTKIT_ERROR_TARGET_OUT_OF_RANGE,
                                SOFTKIT_ERROR_SIZE_OVERFLOW,
                                SOFTKIT_ERROR_UNSUPPORTED_ISA};
  std::set<std::string> seen;
  for (softkit_status s : all) {
    const char *str = softkit_status_string(s);
    INFO("status " << (int)s);
    REQUIRE(str != nullptr);
    CHECK(std::string(str).size() > 0);
    CHECK(seen.insert(str).second);
  }
  for (int unknown : {6, 12345, -1}) {
    INFO("status " << unknown);
    const char *str = softkit_status_string((softkit_status)unknown);
    REQUIRE(str != nullptr);
    // An unknown value must not pass for "OK".
    CHECK(std::string(str) != softkit_status_string(SOFTKIT_OK));
  }
}

TEST_CASE("ISA names", "[api]") {
  CHECK(std::string(softkit_isa_name(SOFTKIT_ISA_SCALAR)) == "scalar");
  CHECK(std::string(softkit_isa_name(SOFTKIT_ISA_AVX2)) == "avx2");
  CHECK(std::string(softkit_isa_name(SOFTKIT_ISA_AVX512)) == "avx512");
  CHECK(std::string(softkit_isa_name(SOFTKIT_ISA_NEON)) == "neon");
  REQUIRE(softkit_isa_name((softkit_isa)99) != nullptr);
  CHECK(std::string(softkit_isa_name((softkit_isa)99)) == "unknown");
  CHECK(std::string(softkit_isa_name((softkit_isa)-1)) == "unknown");
}

TEST_CASE("set_isa / get_isa round-trip; unsupported ISAs are refused", "[api]") {
  const softkit_isa start = softkit_get_isa();
  // The scalar ISA is always available.
  REQUIRE(softkit_set_isa(SOFTKIT_ISA_SCALAR) == SOFTKIT_OK);
  CHECK(softkit_get_isa() == SOFTKIT_ISA_SCALAR);
  int supported = 0;
  for (softkit_isa isa : {SOFTKIT_ISA_SCALAR, SOFTKIT_ISA_AVX2, SOFTKIT_ISA_AVX512, SOFTKIT_ISA_NEON}) {
    INFO("isa " << softkit_isa_name(isa));
    REQUIRE(softkit_set_isa(SOFTKIT_ISA_SCALAR) == SOFTKIT_OK);
    const softkit_status s = softkit_set_isa(isa);
    CHECK((s == SOFTKIT_OK || s == SOFTKIT_ERROR_UNSUPPORTED_ISA));
    if (s == SOFTKIT_OK) {
      ++supported;
      CHECK(softkit_get_isa() == isa);
    } else {
      CHECK(softkit_get_isa() == SOFTKIT_ISA_SCALAR);  // unchanged by a refused call
    }
  }
  CHECK(supported >= 1);
#if defined(__x86_64__) || defined(_M_X64)
  CHECK(softkit_set_isa(SOFTKIT_ISA_NEON) == SOFTKIT_ERROR_UNSUPPORTED_ISA);
#elif defined(__aarch64__)
  CHECK(softkit_set_isa(SOFTKIT_ISA_AVX2) == SOFTKIT_ERROR_UNSUPPORTED_ISA);
  CHECK(softkit_set_isa(SOFTKIT_ISA_AVX512) == SOFTKIT_ERROR_UNSUPPORTED_ISA);
#endif
  REQUIRE(softkit_set_isa(SOFTKIT_ISA_SCALAR) == SOFTKIT_OK);
  CHECK(softkit_set_isa((softkit_isa)99) == SOFTKIT_ERROR_UNSUPPORTED_ISA);
  CHECK(softkit_set_isa((softkit_isa)-1) == SOFTKIT_ERROR_UNSUPPORTED_ISA);
  CHECK(softkit_get_isa() == SOFTKIT_ISA_SCALAR);
  REQUIRE(softkit_set_isa(start) == SOFTKIT_OK);
  CHECK(softkit_get_isa() == start);
}

TEST_CASE("the forced ISA is the active one", "[api]") {
  const char *want = std::getenv("SOFTKIT_TEST_ISA");
  if (want == nullptr || *want == '\0') {
    // Without a forced ISA the default is a supported one: setting it again succeeds.
    CHECK(softkit_set_isa(softkit_get_isa()) == SOFTKIT_OK);
    return;
  }
  CHECK(std::string(softkit_isa_name(softkit_get_isa())) == want);
}

TEST_CASE("num_threads: n > 0 is kept, n <= 0 restores a positive default", "[api][threads]") {
  softkit_set_num_threads(0);
  const int def = softkit_get_num_threads();
  CHECK(def > 0);
  for (int n : {1, 2, 3, 7, 64}) {
    softkit_set_num_threads(n);
    CHECK(softkit_get_num_threads() == n);
  }
  softkit_set_num_threads(3);
  softkit_set_num_threads(0);
  CHECK(softkit_get_num_threads() == def);
  softkit_set_num_threads(5);
  softkit_set_num_threads(-4);
  CHECK(softkit_get_num_threads() == def);
}

TEST_CASE("cross-entropy option defaults", "[api]") {
  const softkit_cross_entropy_options a = SOFTKIT_CROSS_ENTROPY_OPTIONS_INIT;
  const softkit_cross_entropy_options b = softkit_cross_entropy_options_default();
  for (const auto &o : {a, b}) {
    CHECK(o.struct_size == sizeof(softkit_cross_entropy_options));
    CHECK(o.reduction == SOFTKIT_REDUCTION_MEAN);
    CHECK(o.ignore_index == -100);
    CHECK(o.label_smoothing == 0.0f);
    CHECK(o.class_weights == nullptr);
  }
}

namespace {

// Every op on one shape with 1..4 threads: the outputs must be bitwise equal.
void check_thread_invariance(std::size_t outer, std::size_t n, std::size_t inner) {
  const auto x = make_tensor(Dist::Normal30, outer, n, inner, 17);
  for (Op op : {Op::Softmax, Op::LogSoftmax, Op::LogSumExp}) {
    std::vector<float> base;
    {
      ScopedThreads t(1);
      base = run(op, x, outer, n, inner);
    }
    for (int threads : {2, 3, 4}) {
      ScopedThreads t(threads);
      const auto y = run(op, x, outer, n, inner);
      std::size_t diff = 0;
      for (std::size_t j = 0; j < y.size(); ++j) diff += !same_bits(y[j], base[j]);
      INFO(op_name(op) << " " << shape_label(outer, n, inner) << " with " << threads << " threads vs 1: " << diff
                       << " outputs differ bitwise");
      CHECK(diff == 0);
    }
  }
  // Cross-entropy, all reductions, with weights and smoothing.
  const std::size_t classes = n;
  std::vector<std::int64_t> t(outer * inner);
  for (std::size_t s = 0; s < t.size(); ++s) t[s] = (s % 11 == 3) ? -100 : (std::int64_t)((s * 7919) % classes);
  std::vector<float> w(classes);
  for (std::size_t c = 0; c < classes; ++c) w[c] = 0.25f + (float)(c % 5);
  for (softkit_reduction red : {SOFTKIT_REDUCTION_MEAN, SOFTKIT_REDUCTION_SUM, SOFTKIT_REDUCTION_NONE}) {
    softkit_cross_entropy_options o = SOFTKIT_CROSS_ENTROPY_OPTIONS_INIT;
    o.reduction = red;
    o.label_smoothing = 0.125f;
    o.class_weights = w.data();
    const std::size_t m = red == SOFTKIT_REDUCTION_NONE ? outer * inner : 1;
    std::vector<float> base(m, kSentinel);
    {
      ScopedThreads th(1);
      REQUIRE(softkit_cross_entropy_f32(x.data(), t.data(), outer, classes, inner, &o, base.data()) == SOFTKIT_OK);
    }
    for (int threads : {2, 3, 4}) {
      ScopedThreads th(threads);
      std::vector<float> y(m, kSentinel);
      REQUIRE(softkit_cross_entropy_f32(x.data(), t.data(), outer, classes, inner, &o, y.data()) == SOFTKIT_OK);
      std::size_t diff = 0;
      for (std::size_t j = 0; j < m; ++j) diff += !same_bits(y[j], base[j]);
      INFO("cross_entropy reduction " << (int)red << " " << shape_label(outer, n, inner) << " with " << threads
                                      << " threads: " << diff << " outputs differ bitwise");
      CHECK(diff == 0);
    }
  }
}

}  // namespace

TEST_CASE("results are bitwise identical for every thread count", "[api][threads]") {
  check_thread_invariance(257, 100, 1);      // many short rows
  check_thread_invariance(3, 70001, 1);      // long rows, several chunks
  if (!emulated()) check_thread_invariance(5, 70001, 1);  // long rows past 2 MiB (softmax_chunk_write, AVX-512)
  check_thread_invariance(1, 262147, 1);     // one long row
  check_thread_invariance(5, 33, 200);       // column blocks
  check_thread_invariance(3, 5, 9000);       // short columns, in spans
  check_thread_invariance(3, 21, 5000);      // short columns past the registers, in spans
  check_thread_invariance(2, 20000, 3);      // long columns
}
