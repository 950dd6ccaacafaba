// The accuracy and shape suites shared by softmax, log_softmax and logsumexp;
// each op's test file instantiates them for its op.
#ifndef SOFTKIT_TESTS_OP_SUITES_HPP
#define SOFTKIT_TESTS_OP_SUITES_HPP

#include <cstdlib>
#include <cstring>
#include <numeric>

#include "test_util.hpp"

namespace tu {

// Op over dimension `dim` of a contiguous tensor of `shape`, called as
// [outer, n, inner], checked against a per-slice reference that walks the
// tensor by multi-index and strides (not by the outer/inner formula).
inline void verify_along_dim(Op op, const std::vector<std::size_t> &shape, std::size_t dim, std::uint64_t seed) {
  const std::size_t rank = shape.size();
  std::vector<std::size_t> stride(rank, 1);
  for (std::size_t d = rank - 1; d > 0; --d) stride[d - 1] = stride[d] * shape[d];
  const std::size_t total = stride[0] * shape[0];
  std::size_t outer = 1, inner = 1;
  for (std::size_t d = 0; d < dim; ++d) outer *= shape[d];
  for (std::size_t d = dim + 1; d < rank; ++d) inner *= shape[d];
  const std::size_t n = shape[dim];

  // Reduced shape (logsumexp output): dim removed.
  std::vector<std::size_t> rstride(rank, 0);
  {
    std::size_t s = 1;
    for (std::size_t d = rank; d-- > 0;) {
      if (d == dim) continue;
      rstride[d] = s;
      s *= shape[d];
    }
  }

  std::vector<float> x = make_tensor(Dist::Uniform10, 1, total, 1, seed);
  const std::vector<float> got = run(op, x, outer, n, inner);

  std::ostringstream lab;
  lab << "shape (";
  for (std::size_t d = 0; d < rank; ++d) lab << shape[d] << (d + 1 < rank ? "," : "");
  lab << ") dim " << dim;
  const std::string label = lab.str();

  Compare c;
  std::vector<std::size_t> idx(rank, 0);
  for (std::size_t flat = 0; flat < total; ++flat) {
    std::size_t rem = flat;
    for (std::size_t d = 0; d < rank; ++d) {
      idx[d] = rem / stride[d];
      rem %= stride[d];
    }
    if (idx[dim] != 0) continue;  // one slice per start position
    std::size_t base = 0, rbase = 0;
    for (std::size_t d = 0; d < rank; ++d) {
      base += idx[d] * stride[d];
      rbase += idx[d] * rstride[d];
    }
    std::vector<float> slice(n);
    for (std::size_t k = 0; k < n; ++k) slice[k] = x[base + k * stride[dim]];
    const auto st = ref::stats(slice.data(), 1, n, 1);
    const auto want = reference(op, slice, 1, n, 1, st);
    if (op == Op::LogSumExp) {
      compare_one(c, op, 0.0f, st[0], got[rbase], want[0], flat, 0, 0, label);
    } else {
      for (std::size_t k = 0; k < n; ++k)
        compare_one(c, op, slice[k], st[0], got[base + k * stride[dim]], want[k], flat, k, 0, label);
    }
  }
  INFO(op_name(op) << " " << label << ": " << c.bad << " of " << c.checked << " bad; first: " << c.first_bad);
  CHECK(c.checked == (op == Op::LogSumExp ? total / n : total));
  CHECK(c.bad == 0);
}

inline void suite_every_dim(Op op) {
  const std::vector<std::vector<std::size_t>> shapes = {
      {1}, {7}, {33}, {3, 5}, {1, 9}, {6, 1}, {2, 3, 4}, {4, 1, 5}, {3, 17, 2}, {2, 3, 4, 5}, {1, 2, 1, 3}, {3, 1, 4, 2}, {2, 19, 3, 9}};
  std::uint64_t seed = 1;
  for (const auto &shape : shapes)
    for (std::size_t d = 0; d < shape.size(); ++d) verify_along_dim(op, shape, d, seed++);
}

// Random rows of every length of accuracy_lengths(), all distributions.
inline void suite_row_lengths(Op op) {
  for (std::size_t n : accuracy_lengths())
    for (Dist d : kAllDists) {
      const std::size_t outer = rows_for(n);
      const auto x = make_tensor(d, outer, n, 1, 100 + n);
      verify(op, x, outer, n, 1, shape_label(outer, n, 1) + " " + dist_name(d));
    }
  // Several long rows whose x and y together outgrow 2 MiB: softmax takes its
  // exps again from x there where the ISA does (kernel_table::softmax_chunk_write:
  // AVX-512 only, so not under the emulator).
  for (Dist d : kAllDists) {
    if (emulated()) break;
    const auto x = make_tensor(d, 5, 65543, 1, 17);
    verify(op, x, 5, 65543, 1, shape_label(5, 65543, 1) + " " + dist_name(d));
  }
}

// inner > 1: column blocks. [2, 40, 1100] and [3, 21, 129]: pipelined runs of
// blocks (kernel_table::cols_run, stats_cols_run) across outer slices, whose
// last block is partial; in the second only one column wide, before a slice's
// first block of 128. [3, 40, 300], [1, 300, 129], [2, 100, 1000]: slabs wider
// than a column block (kernel_table::slabs, in cache, on one thread), with a
// partial last vector and up to 63 vectors of columns; [2, 100, 1000] and
// [4, 110, 301] (a partial last vector, two slabs a thread on up to two
// threads) by rows on AVX2 and AVX-512 (slabs_by_rows).
// [3, 2, 1500] to [2, 13, 1100]: short columns, each
// vector of them in registers (kernel_table::short_cols; 13 rows: AVX-512's
// sums in two blocks), [2, 5, 4100]'s last columns in a span of their own.
inline void suite_inner(Op op) {
  const std::size_t shapes[][3] = {{3, 17, 5},   {2, 1000, 64}, {1, 21, 16384}, {4, 7, 100},  {1, 1, 7},
                                   {2, 3, 65},   {1, 300, 129}, {3, 16385, 2},  {3, 40, 300}, {3, 21, 129},
                                   {3, 2, 1500}, {2, 8, 600},   {1, 1, 1100},   {2, 5, 4100}, {2, 13, 1100},
                                   // Short columns past the registers (short_cols_any), a vector and a
                                   // tail left after the steps of two lines on every ISA.
                                   {2, 24, 157}, {3, 17, 157}, {2, 9, 285},
                                   {2, 40, 1100}, {2, 100, 1000}, {4, 110, 301}};
  for (const auto &s : shapes)
    for (Dist d : {Dist::Uniform10, Dist::Normal30, Dist::MostlyLow}) {
      const auto x = make_tensor(d, s[0], s[1], s[2], 7);
      verify(op, x, s[0], s[1], s[2], shape_label(s[0], s[1], s[2]) + " " + dist_name(d));
    }
  for (std::size_t inner = 1; inner <= 20; ++inner)
    for (std::size_t n : {1, 2, 3, 7, 12, 16, 33, 100}) {
      const Dist d = kAllDists[(inner + n) % 5];
      const auto x = make_tensor(d, 2, n, inner, inner * 1000 + n);
      verify(op, x, 2, n, inner, shape_label(2, n, inner) + " " + dist_name(d));
    }
}

// Long columns: n = 2^18 + 3 with inner = 3.
inline void suite_long_columns(Op op) {
  for (Dist d : {Dist::Normal1, Dist::Normal30}) {
    const std::size_t n = (std::size_t(1) << 18) + 3;
    const auto x = make_tensor(d, 1, n, 3, 99);
    verify(op, x, 1, n, 3, shape_label(1, n, 3) + " " + dist_name(d));
  }
}

// Big tensors: more than kColdElements (2^21) elements per call, where the row
// passes stream from memory instead of running as a pipeline; a long-row
// tensor as big; and column blocks and short columns as big, written into a
// 64-byte aligned output, which the kernels then store around the caches. Out of place and in
// place. One thread, so that one call gets the whole tensor.
inline void suite_big_tensors(Op op) {
  const int threads = softkit_get_num_threads();
  softkit_set_num_threads(1);
  // [24, 100, 1000]: slabs wider than a column block, rows not 64 bytes apart
  // (kernel_table::wide_slabs_from_memory, slabs_by_rows); [8, 100, 3001]:
  // past kColBlock, slabs by rows of column chunks (slab_width), the last
  // chunk's vectors ending in a partial one on every ISA.
  const std::size_t shapes[][3] = {{1100, 2000, 1}, {40, 60000, 1}, {7, 21, 16384}, {9, 3, 80000}, {24, 100, 1000},
                                   {8, 100, 3001}};
  for (const auto &s : shapes) {
    // Under the emulator (NEON and scalar, which never take slabs by rows),
    // [8, 100, 3001] takes [24, 100, 1000]'s path, the column blocks one by
    // one from memory; the in-cache suites split columns past 1024 as it would.
    if (emulated() && s[2] == 3001) continue;
    const std::size_t total = s[0] * s[1] * s[2];
    const auto x = make_tensor(Dist::Normal30, s[0], s[1], s[2], 11);
    // The long double reference, once for both calls: it is most of the time
    // (under QEMU, where long double is quad precision in software, nearly all).
    const auto stats = ref::stats(x.data(), s[0], s[1], s[2]);
    const auto want = reference(op, x, s[0], s[1], s[2], stats);
    for (bool in_place : {false, true}) {
      float *buf = static_cast<float *>(std::aligned_alloc(64, total * sizeof(float)));
      REQUIRE(buf != nullptr);
      if (in_place) std::copy(x.begin(), x.end(), buf);
      const softkit_status st = op_fn(op)(in_place ? buf : x.data(), buf, s[0], s[1], s[2]);
      const std::size_t out = op == Op::LogSumExp ? s[0] * s[2] : total;
      const std::vector<float> y(buf, buf + out);
      std::free(buf);
      REQUIRE(st == SOFTKIT_OK);
      const std::string label = (in_place ? "in place " : "") + shape_label(s[0], s[1], s[2]);
      const Compare c = compare(op, x, y, want, stats, s[0], s[1], s[2], label);
      INFO(op_name(op) << " " << label << ": " << c.bad << " of " << c.checked << " bad; first: " << c.first_bad);
      CHECK(c.bad == 0);
      if (op == Op::LogSumExp) break;  // its output cannot alias x
    }
  }
  softkit_set_num_threads(threads);
}

// Every placement of the output and input: column blocks start on a 64-byte
// boundary of y whatever its address, and the row passes' sides (AVX-512) on
// the first boundary of the span they read or write; no result may depend on
// where those fall. The same bits from y (and x) placed 0, 1, 4 and 15 floats
// past a 64-byte boundary; the first placement also against the reference.
// Rows: a pipeline of rows in cache, long rows in chunks, and rows of 1000
// (a row every 4000 bytes: every other one starts half a line off), from
// normal(0, 1), where every term weighs in the sum: a sum taken in an order
// that followed the address would show in the last bits.
inline void suite_output_address(Op op) {
  const std::size_t shapes[][3] = {{2, 21, 4096}, {1, 300, 1024}, {3, 5, 2048}, {2, 7, 1040},
                                   {9, 1000, 1},  {128, 3001, 1}, {3, 40009, 1}};
  for (const auto &s : shapes) {
    const std::size_t total = s[0] * s[1] * s[2];
    const auto x = make_tensor(s[2] == 1 ? Dist::Normal1 : Dist::Normal30, s[0], s[1], s[2], 17);
    const std::size_t bytes = (total + 16 + 15) / 16 * 64;  // aligned_alloc wants a multiple of 64
    float *xb = static_cast<float *>(std::aligned_alloc(64, bytes));
    float *yb = static_cast<float *>(std::aligned_alloc(64, bytes));
    REQUIRE((xb != nullptr && yb != nullptr));
    std::vector<float> first;
    for (std::size_t off : {0, 1, 4, 15}) {
      for (std::size_t x_off : {off, (off + 3) % 16}) {
        std::copy(x.begin(), x.end(), xb + x_off);
        REQUIRE(op_fn(op)(xb + x_off, yb + off, s[0], s[1], s[2]) == SOFTKIT_OK);
        const std::vector<float> y(yb + off, yb + off + total);
        if (first.empty()) {
          first = y;
          const auto st = ref::stats(x.data(), s[0], s[1], s[2]);
          const auto want = reference(op, x, s[0], s[1], s[2], st);
          const Compare c = compare(op, x, y, want, st, s[0], s[1], s[2], shape_label(s[0], s[1], s[2]));
          INFO(op_name(op) << ": " << c.bad << " of " << c.checked << " bad; first: " << c.first_bad);
          CHECK(c.bad == 0);
        }
        std::size_t differ = 0;
        for (std::size_t i = 0; i < total; ++i) differ += std::memcmp(&y[i], &first[i], sizeof(float)) != 0;
        INFO(op_name(op) << " " << shape_label(s[0], s[1], s[2]) << ", y " << off << " and x " << x_off
                         << " floats past a 64-byte boundary");
        CHECK(differ == 0);
      }
    }
    std::free(xb);
    std::free(yb);
  }
}

// Sums whose every term but the max's lies near half an ulp of it (x - max
// about -16.6: e^-16.6 is 0.52 ulp of 1, e^-16.8 0.42, e^-15.9 1.04, half an
// ulp of 2): each float add onto a partial that holds the max's term rounds
// the same way, and a float block of 16 such adds drifted 7 ulp (log_softmax
// at 1.8 times its bound on rows of 1024 and more, 1.3 on columns of 43; found
// by fuzzing). Short rows, the row pipeline, the one-pass sums (maxima 0, 30,
// -50), long rows in chunks, and column blocks and slabs; the max first, in
// the middle or last.
inline void suite_half_ulp_terms(Op op) {
  const std::size_t shapes[][3] = {{3, 64, 1},   {3, 128, 1},  {3, 200, 1},  {3, 1024, 1}, {3, 5000, 1}, {3, 40000, 1},
                                   {3, 43, 472}, {3, 300, 64}, {3, 1000, 16}};
  for (const float d : {-16.8f, -16.6f, -16.4f, -15.9f})
    for (const auto &s : shapes) {
      std::vector<float> x(s[0] * s[1] * s[2]);
      for (std::size_t o = 0; o < s[0]; ++o)
        for (std::size_t c = 0; c < s[2]; ++c) {
          const float base = o == 0 ? 0.0f : o == 1 ? 30.0f : -50.0f;
          const std::size_t at = (o + c) % 3 == 0 ? 0 : (o + c) % 3 == 1 ? s[1] / 2 : s[1] - 1;
          for (std::size_t k = 0; k < s[1]; ++k) x[(o * s[1] + k) * s[2] + c] = k == at ? base : base + d;
        }
      verify(op, x, s[0], s[1], s[2], shape_label(s[0], s[1], s[2]) + " terms max " + std::to_string(d));
    }
}

// one_pass_rows in the row pipeline, in the streamed passes (more than
// kColdElements) and in the chunks of long rows; out of place and in place.
inline void suite_one_pass_edges(Op op) {
  const std::size_t shapes[][2] = {{6 * kOnePassKinds, 200}, {6 * kOnePassKinds, 1000}, {2210, 1000},
                                   {2 * kOnePassKinds, 20000}};
  for (const auto &s : shapes) {
    const auto x = one_pass_rows(s[0], s[1], s[1]);
    const std::string label = shape_label(s[0], s[1], 1) + " maxima about the one-pass range";
    verify(op, x, s[0], s[1], 1, label);
    if (op == Op::LogSumExp) continue;  // its output cannot alias x
    std::vector<float> y = x;
    REQUIRE(op_fn(op)(y.data(), y.data(), s[0], s[1], 1) == SOFTKIT_OK);
    const auto st = ref::stats(x.data(), s[0], s[1], 1);
    const Compare c = compare(op, x, y, reference(op, x, s[0], s[1], 1, st), st, s[0], s[1], 1, "in place " + label);
    INFO(op_name(op) << " in place " << label << ": " << c.bad << " of " << c.checked << " bad; first: " << c.first_bad);
    CHECK(c.bad == 0);
  }
}

// x == y: the op in place gives the reference result too.
inline void suite_in_place(Op op) {
  const std::size_t shapes[][3] = {{5, 1, 1}, {3, 33, 1}, {1, 16385, 1}, {2, 40000, 1}, {3, 17, 5}, {2, 1000, 64}, {1, 20000, 3}};
  for (const auto &s : shapes) {
    const auto x = make_tensor(Dist::Normal30, s[0], s[1], s[2], 5);
    std::vector<float> y = x;
    REQUIRE(op_fn(op)(y.data(), y.data(), s[0], s[1], s[2]) == SOFTKIT_OK);
    const auto st = ref::stats(x.data(), s[0], s[1], s[2]);
    const auto want = reference(op, x, s[0], s[1], s[2], st);
    const Compare c = compare(op, x, y, want, st, s[0], s[1], s[2], "in place " + shape_label(s[0], s[1], s[2]));
    INFO(op_name(op) << " in place: " << c.bad << " of " << c.checked << " bad; first: " << c.first_bad);
    CHECK(c.bad == 0);
  }
}

}  // namespace tu

#endif  // SOFTKIT_TESTS_OP_SUITES_HPP
