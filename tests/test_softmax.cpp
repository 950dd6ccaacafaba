// softkit_softmax_f32: worked examples, every dim of 1-D..4-D shapes, in place,
// and accuracy against the long double reference (rows of many lengths, column
// blocks, long columns), cross-checked against the scalar ISA.
#include "op_suites.hpp"

using namespace tu;

TEST_CASE("softmax worked examples", "[softmax]") {
  const float expect[] = {0.0900f, 0.2447f, 0.6652f};
  for (const std::vector<float> &x : {std::vector<float>{1000, 1001, 1002}, std::vector<float>{-1000, -999, -998}}) {
    const auto y = run(Op::Softmax, x, 1, 3, 1);
    for (int k = 0; k < 3; ++k) {
      INFO("x[0] = " << x[0] << ", k = " << k);
      CHECK(y[k] == Approx(expect[k]).margin(1e-4));
    }
  }
  // The same numbers as a column: [1, 3, 2] with the two rows interleaved.
  const std::vector<float> col = {1000, -1000, 1001, -999, 1002, -998};
  const auto y = run(Op::Softmax, col, 1, 3, 2);
  for (int k = 0; k < 3; ++k)
    for (int i = 0; i < 2; ++i) CHECK(y[k * 2 + i] == Approx(expect[k]).margin(1e-4));
}

TEST_CASE("softmax of equal values is uniform, of one value is 1", "[softmax]") {
  for (std::size_t n : {1, 2, 3, 8, 17, 1000, 16385}) {
    const std::vector<float> x(n, 4.25f);
    const auto y = run(Op::Softmax, x, 1, n, 1);
    std::size_t bad = 0;
    for (float v : y) bad += std::fabs((double)v - 1.0 / n) > 8 * kEps / n;
    INFO("n = " << n);
    CHECK(bad == 0);
  }
}

TEST_CASE("softmax along every dim of 1-D to 4-D shapes", "[softmax][shapes]") { suite_every_dim(Op::Softmax); }
TEST_CASE("softmax in place", "[softmax][in-place]") { suite_in_place(Op::Softmax); }
TEST_CASE("softmax accuracy: rows of many lengths", "[softmax][accuracy]") { suite_row_lengths(Op::Softmax); }
TEST_CASE("softmax accuracy: inner > 1", "[softmax][accuracy]") { suite_inner(Op::Softmax); }
TEST_CASE("softmax accuracy: long columns", "[softmax][accuracy]") { suite_long_columns(Op::Softmax); }
TEST_CASE("softmax of big tensors: streamed passes, long rows, aligned columns", "[softmax][accuracy][big]") {
  suite_big_tensors(Op::Softmax);
}
TEST_CASE("softmax of rows and column blocks: the same bits wherever x and y sit", "[softmax][address]") {
  suite_output_address(Op::Softmax);
}

TEST_CASE("softmax of sums whose terms lie at half an ulp of the max's", "[softmax][accuracy]") {
  suite_half_ulp_terms(Op::Softmax);
}
