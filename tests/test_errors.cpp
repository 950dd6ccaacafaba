// Error statuses of every entry point, and that on error no output is written
// (outputs are filled with a sentinel that must survive).
#include <cstdint>
#include <cstring>

#include "test_util.hpp"

using namespace tu;

namespace {

constexpr std::size_t kMax = SIZE_MAX;

bool untouched(const std::vector<float> &v) {
  for (float f : v)
    if (!same_bits(f, kSentinel)) return false;
  return true;
}

const Op kAllOps[] = {Op::Softmax, Op::LogSoftmax, Op::LogSumExp};

softkit_status ce(const float *x, const std::int64_t *t, std::size_t outer, std::size_t classes, std::size_t inner,
                  const softkit_cross_entropy_options *o, float *loss) {
  return softkit_cross_entropy_f32(x, t, outer, classes, inner, o, loss);
}

}  // namespace

TEST_CASE("NULL pointers with work to do", "[errors]") {
  std::vector<float> x(12, 1.0f), y(12, kSentinel);
  for (Op op : kAllOps) {
    INFO(op_name(op));
    CHECK(op_fn(op)(nullptr, y.data(), 2, 3, 2) == SOFTKIT_ERROR_NULL_POINTER);
    CHECK(untouched(y));
    CHECK(op_fn(op)(x.data(), nullptr, 2, 3, 2) == SOFTKIT_ERROR_NULL_POINTER);
    CHECK(op_fn(op)(nullptr, nullptr, 1, 1, 1) == SOFTKIT_ERROR_NULL_POINTER);
  }
  const std::vector<std::int64_t> t = {0, 1, 2, 0};
  std::vector<float> loss(4, kSentinel);
  CHECK(ce(nullptr, t.data(), 2, 3, 2, nullptr, loss.data()) == SOFTKIT_ERROR_NULL_POINTER);
  CHECK(ce(x.data(), nullptr, 2, 3, 2, nullptr, loss.data()) == SOFTKIT_ERROR_NULL_POINTER);
  CHECK(ce(x.data(), t.data(), 2, 3, 2, nullptr, nullptr) == SOFTKIT_ERROR_NULL_POINTER);
  softkit_cross_entropy_options o = SOFTKIT_CROSS_ENTROPY_OPTIONS_INIT;
  o.reduction = SOFTKIT_REDUCTION_NONE;
  CHECK(ce(nullptr, t.data(), 2, 3, 2, &o, loss.data()) == SOFTKIT_ERROR_NULL_POINTER);
  CHECK(ce(x.data(), t.data(), 2, 3, 2, &o, nullptr) == SOFTKIT_ERROR_NULL_POINTER);
  CHECK(untouched(loss));
}

TEST_CASE("zero work is OK even with NULL pointers", "[errors]") {
  for (Op op : {Op::Softmax, Op::LogSoftmax}) {
    INFO(op_name(op));
    CHECK(op_fn(op)(nullptr, nullptr, 0, 5, 5) == SOFTKIT_OK);
    CHECK(op_fn(op)(nullptr, nullptr, 5, 5, 0) == SOFTKIT_OK);
    CHECK(op_fn(op)(nullptr, nullptr, 5, 0, 5) == SOFTKIT_OK);
    CHECK(op_fn(op)(nullptr, nullptr, 0, 0, 0) == SOFTKIT_OK);
    // Zero work with a huge other dimension is not an overflow.
    CHECK(op_fn(op)(nullptr, nullptr, 0, kMax, kMax) == SOFTKIT_OK);
  }
  CHECK(softkit_logsumexp_f32(nullptr, nullptr, 0, 5, 5) == SOFTKIT_OK);
  CHECK(softkit_logsumexp_f32(nullptr, nullptr, 5, 5, 0) == SOFTKIT_OK);
  CHECK(softkit_logsumexp_f32(nullptr, nullptr, 0, 0, 0) == SOFTKIT_OK);
  // n == 0 with outputs to write needs the output.
  CHECK(softkit_logsumexp_f32(nullptr, nullptr, 2, 0, 2) == SOFTKIT_ERROR_NULL_POINTER);
}

TEST_CASE("size overflow", "[errors]") {
  // Dummy non-null pointers: nothing may be read or written.
  std::vector<float> buf(16, kSentinel);
  const float *x = buf.data();
  float *y = buf.data() + 8;
  const std::size_t half = kMax / 2 + 1;
  const std::size_t quarter = kMax / 4 + 1;  // element count fits, byte count does not
  struct Case {
    std::size_t outer, n, inner;
  } cases[] = {{half, 2, 1}, {1, half, 2}, {2, 1, half}, {kMax, kMax, kMax}, {quarter, 1, 1}, {1, quarter, 1},
               {1, 1, quarter}, {65536, 65536, 65536 * 65536ull}, {3, kMax / 3 + 1, 1}};
  for (Op op : kAllOps)
    for (const Case &c : cases) {
      INFO(op_name(op) << " " << shape_label(c.outer, c.n, c.inner));
      CHECK(op_fn(op)(x, y, c.outer, c.n, c.inner) == SOFTKIT_ERROR_SIZE_OVERFLOW);
    }
  // logsumexp: the output [outer, inner] alone overflowing.
  CHECK(softkit_logsumexp_f32(x, y, quarter, 0, 1) == SOFTKIT_ERROR_SIZE_OVERFLOW);
  // Cross-entropy: logits (outer * classes * inner floats) or targets (outer * inner int64).
  const std::int64_t t[4] = {0, 0, 0, 0};
  for (softkit_reduction red : {SOFTKIT_REDUCTION_MEAN, SOFTKIT_REDUCTION_SUM, SOFTKIT_REDUCTION_NONE}) {
    softkit_cross_entropy_options o = SOFTKIT_CROSS_ENTROPY_OPTIONS_INIT;
    o.reduction = red;
    INFO("reduction " << (int)red);
    CHECK(ce(x, t, half, 2, 1, &o, y) == SOFTKIT_ERROR_SIZE_OVERFLOW);
    CHECK(ce(x, t, 1, 2, half, &o, y) == SOFTKIT_ERROR_SIZE_OVERFLOW);
    CHECK(ce(x, t, 1, quarter, 1, &o, y) == SOFTKIT_ERROR_SIZE_OVERFLOW);
    CHECK(ce(x, t, kMax / 8 + 1, 1, 1, &o, y) == SOFTKIT_ERROR_SIZE_OVERFLOW);  // int64 targets' bytes
    CHECK(ce(x, t, kMax, kMax, kMax, &o, y) == SOFTKIT_ERROR_SIZE_OVERFLOW);
  }
  CHECK(untouched(buf));
}

TEST_CASE("partial overlap of x and y is refused; x == y and adjacency are fine", "[errors]") {
  for (Op op : {Op::Softmax, Op::LogSoftmax}) {
    INFO(op_name(op));
    std::vector<float> buf(64, kSentinel);
    for (std::size_t k = 0; k < 8; ++k) buf[k] = (float)k;
    const std::vector<float> before = buf;
    // y starts inside x.
    CHECK(op_fn(op)(buf.data(), buf.data() + 1, 1, 8, 1) == SOFTKIT_ERROR_INVALID_ARGUMENT);
    CHECK(op_fn(op)(buf.data(), buf.data() + 7, 2, 2, 2) == SOFTKIT_ERROR_INVALID_ARGUMENT);
    // x starts inside y.
    CHECK(op_fn(op)(buf.data() + 3, buf.data(), 1, 8, 1) == SOFTKIT_ERROR_INVALID_ARGUMENT);
    CHECK(op_fn(op)(buf.data() + 15, buf.data() + 8, 2, 4, 1) == SOFTKIT_ERROR_INVALID_ARGUMENT);
    for (std::size_t k = 0; k < buf.size(); ++k) CHECK(same_bits(buf[k], before[k]));
    // Adjacent (no overlap) and exactly equal are allowed.
    CHECK(op_fn(op)(buf.data(), buf.data() + 8, 1, 8, 1) == SOFTKIT_OK);
    CHECK(op_fn(op)(buf.data() + 16, buf.data() + 8, 1, 8, 1) == SOFTKIT_OK);
    CHECK(op_fn(op)(buf.data(), buf.data(), 2, 2, 2) == SOFTKIT_OK);
  }
}

TEST_CASE("cross-entropy argument errors leave the loss untouched", "[errors][cross_entropy]") {
  // Six samples as [3, 4, 2] (column blocks) and as [6, 4, 1] (rows).
  const std::size_t inner = GENERATE(1, 2), outer = 6 / inner, classes = 4;
  INFO("inner " << inner);
  const auto x = make_tensor(Dist::Uniform10, outer, classes, inner, 1);
  const std::vector<std::int64_t> good = {0, 1, 2, 3, -100, 1};
  std::vector<float> loss(outer * inner, kSentinel);
  // The reduction goes in as the int a C caller may pass, any value: in C++ an
  // enum variable holding no enumerator is undefined (UBSan checks the loads).
  auto opts = [](int r) {
    softkit_cross_entropy_options o = SOFTKIT_CROSS_ENTROPY_OPTIONS_INIT;
    std::memcpy(&o.reduction, &r, sizeof r);
    return o;
  };
  for (softkit_reduction red : {SOFTKIT_REDUCTION_MEAN, SOFTKIT_REDUCTION_SUM, SOFTKIT_REDUCTION_NONE}) {
    INFO("reduction " << (int)red);
    // Targets out of range, anywhere, including the very last one.
    for (std::size_t pos : {std::size_t(0), std::size_t(2), outer * inner - 1})
      for (std::int64_t bad : {(std::int64_t)classes, (std::int64_t)-1, (std::int64_t)1000, INT64_MIN, INT64_MAX}) {
        INFO("bad target " << bad << " at " << pos);
        std::vector<std::int64_t> t = good;
        t[pos] = bad;
        auto o = opts(red);
        CHECK(ce(x.data(), t.data(), outer, classes, inner, &o, loss.data()) == SOFTKIT_ERROR_TARGET_OUT_OF_RANGE);
        CHECK(untouched(loss));
      }
    // -100 is only ignored while it is the ignore_index.
    {
      auto o = opts(red);
      o.ignore_index = 3;
      CHECK(ce(x.data(), good.data(), outer, classes, inner, &o, loss.data()) == SOFTKIT_ERROR_TARGET_OUT_OF_RANGE);
      CHECK(untouched(loss));
    }
    // classes == 0.
    {
      auto o = opts(red);
      const std::vector<std::int64_t> zeros(outer * inner, 0);
      CHECK(ce(x.data(), zeros.data(), outer, 0, inner, &o, loss.data()) == SOFTKIT_ERROR_INVALID_ARGUMENT);
      CHECK(untouched(loss));
    }
    // Label smoothing outside [0, 1] or NaN.
    for (float e : {-0.01f, -1.0f, 1.0001f, 2.0f, kNaN, kInf, -kInf}) {
      INFO("label_smoothing " << e);
      auto o = opts(red);
      o.label_smoothing = e;
      CHECK(ce(x.data(), good.data(), outer, classes, inner, &o, loss.data()) == SOFTKIT_ERROR_INVALID_ARGUMENT);
      CHECK(untouched(loss));
    }
    // struct_size smaller than the v1 struct.
    for (std::size_t sz : {std::size_t(0), std::size_t(8), sizeof(softkit_cross_entropy_options) - 1}) {
      INFO("struct_size " << sz);
      auto o = opts(red);
      o.struct_size = sz;
      CHECK(ce(x.data(), good.data(), outer, classes, inner, &o, loss.data()) == SOFTKIT_ERROR_INVALID_ARGUMENT);
      CHECK(untouched(loss));
    }
  }
  // Unknown reductions.
  for (int r : {3, -1, 99}) {
    INFO("reduction " << r);
    auto o = opts(r);
    CHECK(ce(x.data(), good.data(), outer, classes, inner, &o, loss.data()) == SOFTKIT_ERROR_INVALID_ARGUMENT);
    CHECK(untouched(loss));
  }
  // Boundary values are accepted: smoothing 0 and 1, targets 0 and classes - 1.
  for (float e : {0.0f, 1.0f}) {
    auto o = opts(SOFTKIT_REDUCTION_NONE);
    o.label_smoothing = e;
    CHECK(ce(x.data(), good.data(), outer, classes, inner, &o, loss.data()) == SOFTKIT_OK);
    CHECK(!untouched(loss));
    std::fill(loss.begin(), loss.end(), kSentinel);
  }
}

TEST_CASE("set_isa errors", "[errors][api]") {
  const softkit_isa before = softkit_get_isa();
  CHECK(softkit_set_isa((softkit_isa)99) == SOFTKIT_ERROR_UNSUPPORTED_ISA);
  CHECK(softkit_set_isa((softkit_isa)4) == SOFTKIT_ERROR_UNSUPPORTED_ISA);
#if defined(__x86_64__) || defined(_M_X64)
  CHECK(softkit_set_isa(SOFTKIT_ISA_NEON) == SOFTKIT_ERROR_UNSUPPORTED_ISA);
#elif defined(__aarch64__)
  CHECK(softkit_set_isa(SOFTKIT_ISA_AVX512) == SOFTKIT_ERROR_UNSUPPORTED_ISA);
#endif
  CHECK(softkit_get_isa() == before);
}

TEST_CASE("outputs overlapping inputs are refused (logsumexp, cross-entropy)", "[errors]") {
  // Assumed from the header's "partial overlap" under SOFTKIT_ERROR_INVALID_ARGUMENT.
  std::vector<float> buf(64, 0.5f);
  const std::vector<float> before = buf;
  CHECK(softkit_logsumexp_f32(buf.data(), buf.data() + 3, 2, 4, 1) == SOFTKIT_ERROR_INVALID_ARGUMENT);
  CHECK(softkit_logsumexp_f32(buf.data() + 2, buf.data() + 1, 2, 4, 1) == SOFTKIT_ERROR_INVALID_ARGUMENT);
  const std::vector<std::int64_t> t = {0, 1};
  softkit_cross_entropy_options o = SOFTKIT_CROSS_ENTROPY_OPTIONS_INIT;
  o.reduction = SOFTKIT_REDUCTION_NONE;
  CHECK(ce(buf.data(), t.data(), 2, 4, 1, &o, buf.data() + 7) == SOFTKIT_ERROR_INVALID_ARGUMENT);
  o.reduction = SOFTKIT_REDUCTION_MEAN;
  CHECK(ce(buf.data(), t.data(), 2, 4, 1, &o, buf.data()) == SOFTKIT_ERROR_INVALID_ARGUMENT);
  for (std::size_t k = 0; k < buf.size(); ++k) CHECK(same_bits(buf[k], before[k]));
  // Adjacent buffers are fine.
  CHECK(softkit_logsumexp_f32(buf.data(), buf.data() + 8, 2, 4, 1) == SOFTKIT_OK);
  CHECK(ce(buf.data(), t.data(), 2, 4, 1, &o, buf.data() + 8) == SOFTKIT_OK);
}
