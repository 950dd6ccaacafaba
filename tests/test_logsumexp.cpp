// softkit_logsumexp_f32: hand-checked values, n == 0, every dim of 1-D..4-D
// shapes, accuracy against the long double reference, cross-checked against scalar.
#include "op_suites.hpp"

using namespace tu;

TEST_CASE("logsumexp hand-checked values", "[logsumexp]") {
  // log(e^1 + e^2 + e^3) = 3.40760596; of [4,5,6]: 6.40760596; of n equal values v: v + log(n).
  const std::vector<float> x = {1, 2, 3, 4, 5, 6};
  const auto y = run(Op::LogSumExp, x, 2, 3, 1);
  CHECK(y[0] == Approx(3.40760596).epsilon(4 * kEps));
  CHECK(y[1] == Approx(6.40760596).epsilon(4 * kEps));
  const std::vector<float> eq(1000, -2.0f);
  const auto z = run(Op::LogSumExp, eq, 1, 1000, 1);
  CHECK(z[0] == Approx(-2.0 + std::log(1000.0)).epsilon(4 * kEps));
  const std::vector<float> big = {1e30f, 1e30f};
  const auto b = run(Op::LogSumExp, big, 1, 2, 1);
  CHECK(b[0] == 1e30f);
}

TEST_CASE("logsumexp over n == 0 is -inf for every (outer, inner)", "[logsumexp]") {
  for (const auto &s : {std::pair<std::size_t, std::size_t>{1, 1}, {3, 1}, {2, 5}, {1, 70}}) {
    std::vector<float> out(s.first * s.second, kSentinel);
    const float dummy = 1.0f;
    REQUIRE(softkit_logsumexp_f32(&dummy, out.data(), s.first, 0, s.second) == SOFTKIT_OK);
    for (float v : out) CHECK(v == -kInf);
  }
  // Nothing to read: x may be NULL. Either it is accepted (and -inf written) or
  // refused as NULL with the output untouched.
  std::vector<float> out(6, kSentinel);
  const softkit_status s = softkit_logsumexp_f32(nullptr, out.data(), 2, 0, 3);
  CHECK((s == SOFTKIT_OK || s == SOFTKIT_ERROR_NULL_POINTER));
  for (float v : out) CHECK(v == (s == SOFTKIT_OK ? -kInf : kSentinel));
}

TEST_CASE("logsumexp along every dim of 1-D to 4-D shapes", "[logsumexp][shapes]") { suite_every_dim(Op::LogSumExp); }
TEST_CASE("logsumexp accuracy: rows of many lengths", "[logsumexp][accuracy]") { suite_row_lengths(Op::LogSumExp); }
TEST_CASE("logsumexp accuracy: inner > 1", "[logsumexp][accuracy]") { suite_inner(Op::LogSumExp); }
TEST_CASE("logsumexp accuracy: long columns", "[logsumexp][accuracy]") { suite_long_columns(Op::LogSumExp); }
TEST_CASE("logsumexp of big tensors: streamed passes, long rows, aligned columns", "[logsumexp][accuracy][big]") {
  suite_big_tensors(Op::LogSumExp);
}

TEST_CASE("logsumexp of rows whose max lies about the one-pass range", "[logsumexp][accuracy]") {
  suite_one_pass_edges(Op::LogSumExp);
}

TEST_CASE("logsumexp of sums whose terms lie at half an ulp of the max's", "[logsumexp][accuracy]") {
  suite_half_ulp_terms(Op::LogSumExp);
}
