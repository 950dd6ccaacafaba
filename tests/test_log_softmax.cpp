// softkit_log_softmax_f32: worked example, every dim of 1-D..4-D shapes, in place,
// accuracy against the long double reference, cross-checked against scalar.
#include "op_suites.hpp"

using namespace tu;

TEST_CASE("log_softmax worked example", "[log_softmax]") {
  const std::vector<float> x = {1, 2, 3, 4, 5, 6};
  const float expect[] = {-2.4076f, -1.4076f, -0.4076f};
  const auto y = run(Op::LogSoftmax, x, 2, 3, 1);
  for (int r = 0; r < 2; ++r)
    for (int k = 0; k < 3; ++k) {
      INFO("row " << r << ", k " << k);
      CHECK(y[r * 3 + k] == Approx(expect[k]).margin(1e-4));
    }
  // Transposed: [3, 2] along dim 0 (inner = 2).
  const std::vector<float> xt = {1, 4, 2, 5, 3, 6};
  const auto yt = run(Op::LogSoftmax, xt, 1, 3, 2);
  for (int k = 0; k < 3; ++k)
    for (int i = 0; i < 2; ++i) CHECK(yt[k * 2 + i] == Approx(expect[k]).margin(1e-4));
}

TEST_CASE("log_softmax of a single element is 0", "[log_softmax]") {
  const std::vector<float> x = {-3e38f, -1.5f, 0.0f, 7.0f, 3e38f};
  const auto y = run(Op::LogSoftmax, x, 5, 1, 1);
  for (float v : y) CHECK(v == 0.0f);
}

TEST_CASE("log_softmax along every dim of 1-D to 4-D shapes", "[log_softmax][shapes]") { suite_every_dim(Op::LogSoftmax); }
TEST_CASE("log_softmax in place", "[log_softmax][in-place]") { suite_in_place(Op::LogSoftmax); }
TEST_CASE("log_softmax accuracy: rows of many lengths", "[log_softmax][accuracy]") { suite_row_lengths(Op::LogSoftmax); }
TEST_CASE("log_softmax accuracy: inner > 1", "[log_softmax][accuracy]") { suite_inner(Op::LogSoftmax); }
TEST_CASE("log_softmax accuracy: long columns", "[log_softmax][accuracy]") { suite_long_columns(Op::LogSoftmax); }
TEST_CASE("log_softmax of big tensors: streamed passes, long rows, aligned columns", "[log_softmax][accuracy][big]") {
  suite_big_tensors(Op::LogSoftmax);
}
TEST_CASE("log_softmax of rows and column blocks: the same bits wherever x and y sit", "[log_softmax][address]") {
  suite_output_address(Op::LogSoftmax);
}

TEST_CASE("log_softmax of rows whose max lies about the one-pass range", "[log_softmax][accuracy]") {
  suite_one_pass_edges(Op::LogSoftmax);
}

TEST_CASE("log_softmax of sums whose terms lie at half an ulp of the max's", "[log_softmax][accuracy]") {
  suite_half_ulp_terms(Op::LogSoftmax);
}
