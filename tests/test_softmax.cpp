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

// Long rows out of place, on AVX-512: each chunk's exps are exp(x) * 2^-k, k
// from the chunk's first 64 values, its max found on the way
// (kernel_table::softmax_chunk_exp_scaled). Rows whose later values climb or
// fall far from those first ones, in every chunk (chunks of 12352 here):
// - climb: exps up to e^70, kept;
// - overflow: one value e^95 above the first ones: the sum overflows, and
//   the chunk takes its max and runs again;
// - fall: values 130 below, far under the exp's reach (zeros);
// - again: the first chunk's exps reach e^55 while its factor to the row
//   (the row's max lies 120 above its first values) is below the normal
//   floats: its outputs, normal floats near 6e-29, are taken again from x.
// Alone and three to a call (the writes of a row ride along the next one's
// exps), on 1 and 2 threads. Not under the emulator, where no ISA takes it.
TEST_CASE("softmax of long rows whose values climb or fall far from each chunk's first", "[softmax][accuracy]") {
  if (emulated()) return;
  const std::size_t n = 3 * 16384 + 77, chunk = 12352, first = 64;
  struct climb_case {
    const char *name;
    float first, rest, peak;  // peak: one value in the middle of each chunk, if not 0
  };
  const climb_case cases[] = {{"climb", -40.0f, 30.0f, 0.0f},
                              {"overflow", -50.0f, 0.0f, 45.0f},
                              {"fall", 10.0f, -130.0f, 0.0f},
                              {"again", -80.0f, -25.0f, 0.0f}};
  for (const climb_case &c : cases) {
    const bool again = std::string(c.name) == "again";
    for (std::size_t rows : {1, 3})
      for (int threads : {1, 2}) {
        auto x = make_tensor(Dist::Normal1, rows, n, 1, rows + threads);
        for (std::size_t r = 0; r < rows; ++r)
          for (std::size_t k = 0; k < n; ++k) {
            float &v = x[r * n + k];
            const std::size_t at = k % chunk;
            if (again && k >= chunk)  // the chunks after the first: ordinary values
              v += k == 2 * chunk + chunk / 2 ? 40.0f : 0.0f;
            else
              v += at < first ? c.first : at == chunk / 2 && c.peak != 0.0f ? c.peak : c.rest;
          }
        ScopedThreads t(threads);
        verify(Op::Softmax, x, rows, n, 1,
               std::string(c.name) + ", " + shape_label(rows, n, 1) + ", " + std::to_string(threads) + " threads");
      }
  }
}
