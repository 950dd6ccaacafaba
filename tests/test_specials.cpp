// IEEE special values with PyTorch 1.13 semantics, in row and column layouts,
// short rows, vector tails and long (chunked) rows: +inf / NaN / all -inf rows,
// one-hot rows, huge magnitudes, subnormal outputs.
#include <functional>

#include "op_suites.hpp"

using namespace tu;

namespace {

// Outputs of the row `v` for one op (n values, or 1 for logsumexp).
using RowCheck = std::function<void(Op, const std::vector<float> &row_out)>;

// Runs every op with the row `v` embedded (a) alone, (b) as the middle of three
// rows, (c) as one column of an [2, n, 5] tensor among random rows (rows longer
// than 1000: alone and as one column of [1, n, 2]; rows of 16 or fewer also
// as a column of [1, n, 1100], in the last vector's tail); calls `check` on the
// row's outputs and checks the whole tensor against the reference.
void check_row_everywhere(const std::vector<float> &v, const std::string &what, const RowCheck &check) {
  const std::size_t n = v.size();
  struct Layout {
    std::size_t outer, inner, o, i;
  } layouts[] = {{1, 1, 0, 0}, {3, 1, 1, 0}, {2, 5, 1, 2}, {1, 2, 0, 1}, {1, 1100, 0, 1097}};
  for (const Layout &L : layouts) {
    // Long rows: one row alone and a narrow column; short rows: the first three.
    const std::size_t li = (std::size_t)(&L - layouts);
    if (n > 1000 ? (li == 1 || li == 2) : li == 3) continue;
    if (li == 4 && n > 16) continue;
    auto x = make_tensor(Dist::Uniform10, L.outer, n, L.inner, n + 31 * L.inner);
    for (std::size_t k = 0; k < n; ++k) x[(L.o * n + k) * L.inner + L.i] = v[k];
    for (Op op : {Op::Softmax, Op::LogSoftmax, Op::LogSumExp}) {
      const std::string label = what + " in " + shape_label(L.outer, n, L.inner);
      INFO(op_name(op) << " " << label << " on " << isa_name(softkit_get_isa()));
      const auto y = verify(op, x, L.outer, n, L.inner, label);
      std::vector<float> row;
      if (op == Op::LogSumExp) {
        row.push_back(y[L.o * L.inner + L.i]);
      } else {
        for (std::size_t k = 0; k < n; ++k) row.push_back(y[(L.o * n + k) * L.inner + L.i]);
      }
      check(op, row);
    }
  }
}

std::vector<float> random_row(std::size_t n, std::uint64_t seed) { return make_tensor(Dist::Normal30, 1, n, 1, seed); }

const std::size_t kLengths[] = {1, 2, 3, 7, 8, 9, 15, 16, 17, 31, 32, 33, 100, 1000, 16384, 16385, 40000};

std::size_t count_nan(const std::vector<float> &r) {
  std::size_t c = 0;
  for (float f : r) c += std::isnan(f);
  return c;
}

}  // namespace

TEST_CASE("a row holding +inf: softmax/log_softmax NaN, logsumexp +inf", "[specials]") {
  for (std::size_t n : kLengths)
    for (std::size_t pos : {std::size_t(0), n / 2, n - 1}) {
      auto v = random_row(n, n + pos);
      v[pos] = kInf;
      if (n > 2) v[(pos + 1) % n] = -kInf;  // a -inf as well changes nothing
      check_row_everywhere(v, "+inf at " + std::to_string(pos), [&](Op op, const std::vector<float> &r) {
        if (op == Op::LogSumExp)
          CHECK(r[0] == kInf);
        else
          CHECK(count_nan(r) == n);
      });
    }
}

TEST_CASE("a row holding NaN: all NaN, logsumexp NaN (also with +inf)", "[specials]") {
  for (std::size_t n : kLengths)
    for (std::size_t pos : {std::size_t(0), n / 2, n - 1}) {
      auto v = random_row(n, 7 * n + pos);
      v[pos] = kNaN;
      check_row_everywhere(v, "NaN at " + std::to_string(pos), [&](Op op, const std::vector<float> &r) {
        CHECK(count_nan(r) == r.size());
        (void)op;
      });
      if (n > 1) {
        v[(pos + n / 3 + 1) % n] = kInf;
        check_row_everywhere(v, "NaN and +inf", [&](Op op, const std::vector<float> &r) {
          CHECK(count_nan(r) == r.size());
          (void)op;
        });
      }
    }
}

TEST_CASE("a row of all -inf: softmax/log_softmax NaN, logsumexp -inf", "[specials]") {
  for (std::size_t n : kLengths) {
    const std::vector<float> v(n, -kInf);
    check_row_everywhere(v, "all -inf", [&](Op op, const std::vector<float> &r) {
      if (op == Op::LogSumExp)
        CHECK(r[0] == -kInf);
      else
        CHECK(count_nan(r) == n);
    });
  }
}

TEST_CASE("one finite value among -inf: one-hot", "[specials]") {
  for (std::size_t n : kLengths)
    for (std::size_t pos : {std::size_t(0), n / 2, n - 1})
      for (float val : {0.0f, -50.0f, 123.5f, 3e38f}) {
        if (n > 1000 && (val == -50.0f || val == 123.5f)) continue;
        std::vector<float> v(n, -kInf);
        v[pos] = val;
        check_row_everywhere(v, "one-hot at " + std::to_string(pos), [&](Op op, const std::vector<float> &r) {
          std::size_t bad = 0;
          if (op == Op::LogSumExp) {
            CHECK(r[0] == val);
            return;
          }
          for (std::size_t k = 0; k < n; ++k) {
            const float want = op == Op::Softmax ? (k == pos ? 1.0f : 0.0f) : (k == pos ? 0.0f : -kInf);
            bad += r[k] != want;
          }
          INFO("value " << val << ", n " << n);
          CHECK(bad == 0);
        });
      }
}

TEST_CASE("large magnitudes stay finite and correct", "[specials]") {
  const std::vector<std::vector<float>> rows = {
      {1e30f, -1e30f, 0.0f},          {1e30f, 1e30f, 1e30f - 1e23f}, {-1e30f, -1e30f},
      {3e38f, -3e38f},                {3e38f, 3e38f, 3e38f},         {-3e38f, -3e38f, -3e38f},
      {3.4e38f, 3.4e38f, 3.4e38f},    {-3.4e38f, 1.0f, 3.4e38f},     {1e30f, 1e30f + 1e24f, 1e30f - 1e24f}};
  for (const auto &v : rows) {
    std::ostringstream lab;
    lab << "large [" << v[0] << ", " << v[1] << ", ...]";
    check_row_everywhere(v, lab.str(), [&](Op op, const std::vector<float> &r) {
      if (op == Op::Softmax) {
        for (float f : r) CHECK(std::isfinite(f));
      } else if (op == Op::LogSumExp) {
        CHECK(std::isfinite(r[0]));
      } else {
        for (float f : r) CHECK(!std::isnan(f));  // -inf is correct where x - max < -FLT_MAX
      }
    });
  }
  // In long rows (chunked) too.
  for (std::size_t n : {16385, 40000}) {
    auto v = random_row(n, n);
    for (std::size_t k = 0; k < n; k += 3) v[k] = (k % 2 ? 3e38f : -3e38f) + (float)k * 1e32f;
    check_row_everywhere(v, "long large", [&](Op op, const std::vector<float> &r) {
      if (op != Op::LogSoftmax)
        for (float f : r) CHECK(std::isfinite(f));
    });
  }
}

TEST_CASE("subnormal outputs are produced, not flushed", "[specials]") {
  // x - max from -87 to -103 (softmax outputs below 2^-126) and subnormal inputs.
  std::vector<float> v = {0.0f};
  for (float d = -87.0f; d >= -103.0f; d -= 0.5f) v.push_back(d);
  for (std::size_t rep = 0; rep < 3; ++rep) {  // with vector tails of various lengths
    check_row_everywhere(v, "subnormal outputs, n " + std::to_string(v.size()), [&](Op op, const std::vector<float> &r) {
      if (op != Op::Softmax) return;
      std::size_t zeros = 0, subnormal = 0;
      for (std::size_t k = 1; k < v.size(); ++k) {
        zeros += r[k] == 0.0f && v[k] >= -102.0f;  // exp(-102) ~ 3.4 * 2^-149
        subnormal += std::fpclassify(r[k]) == FP_SUBNORMAL;
      }
      CHECK(zeros == 0);
      CHECK(subnormal > 20);
    });
    v.push_back(-95.25f);
  }
  // Long row (chunked): one 0 and x - max from -88 to -101 everywhere else.
  const std::size_t n = 50000;
  std::vector<float> x(n);
  for (std::size_t k = 0; k < n; ++k) x[k] = k == 7 ? 0.0f : -88.0f - (float)(k % 14);
  for (Op op : {Op::Softmax, Op::LogSoftmax, Op::LogSumExp}) verify(op, x, 1, n, 1, "long row, x - max in [-101, -88]");
  const auto y = run(Op::Softmax, x, 1, n, 1);
  std::size_t subnormal = 0, zeros = 0;
  for (float f : y) {
    subnormal += std::fpclassify(f) == FP_SUBNORMAL;
    zeros += f == 0.0f;
  }
  CHECK(zeros == 0);
  CHECK(subnormal == n - 1);
  // Subnormal and zero inputs are ordinary values.
  const std::vector<float> tiny = {1e-40f, -1e-42f, 0.0f, -0.0f, 1e-45f, 2e-38f};
  check_row_everywhere(tiny, "subnormal inputs", [&](Op op, const std::vector<float> &r) {
    if (op == Op::Softmax)
      for (float f : r) CHECK(f == Approx(1.0 / 6).epsilon(8 * kEps));
    if (op == Op::LogSumExp) CHECK(r[0] == Approx(std::log(6.0)).epsilon(4 * kEps));
  });
}

// The outputs of row v alone (rows = 1), or as the middle one of `rows` random rows.
std::vector<float> run_among(Op op, const std::vector<float> &v, std::size_t rows) {
  const std::size_t n = v.size(), mid = rows / 2;
  auto x = make_tensor(Dist::Normal1, rows, n, 1, rows + n);
  std::copy(v.begin(), v.end(), x.begin() + mid * n);
  const auto y = run(op, x, rows, n, 1);
  const std::size_t out = op == Op::LogSumExp ? 1 : n;
  return std::vector<float>(y.begin() + mid * out, y.begin() + (mid + 1) * out);
}

TEST_CASE("specials in long rows land in any chunk", "[specials]") {
  // kRowChunk is 16384; put specials in the first, a middle and the last chunk.
  // Alone, and among 7 rows: 7 x 49229 floats outgrow 2 MiB, where softmax
  // takes its exps again from x (kernel_table::softmax_chunk_write: AVX-512
  // only, so not under the emulator).
  const std::size_t n = 3 * 16384 + 77;
  for (std::size_t rows : {1, 7}) {
    if (rows > 1 && emulated()) break;
    for (std::size_t pos : {std::size_t(5), std::size_t(16384), std::size_t(2 * 16384 + 3), n - 1}) {
      const auto run = [rows](Op op, const std::vector<float> &v, std::size_t, std::size_t, std::size_t) {
        return run_among(op, v, rows);
      };
      INFO(rows << " rows");
      for (float special : {kInf, kNaN}) {
        auto v = random_row(n, pos);
        v[pos] = special;
        for (Op op : {Op::Softmax, Op::LogSoftmax, Op::LogSumExp}) {
          const auto y = run(op, v, 1, n, 1);
          INFO(op_name(op) << " special " << special << " at " << pos);
          if (op == Op::LogSumExp) {
            if (std::isnan(special))
              CHECK(std::isnan(y[0]));
            else
              CHECK(y[0] == kInf);
          } else {
            CHECK(count_nan(y) == n);
          }
        }
      }
      // One finite value at pos, -inf elsewhere.
      std::vector<float> h(n, -kInf);
      h[pos] = -3.0f;
      const auto s = run(Op::Softmax, h, 1, n, 1);
      const auto l = run(Op::LogSoftmax, h, 1, n, 1);
      const auto e = run(Op::LogSumExp, h, 1, n, 1);
      std::size_t bad = 0;
      for (std::size_t k = 0; k < n; ++k) bad += s[k] != (k == pos ? 1.0f : 0.0f) || l[k] != (k == pos ? 0.0f : -kInf);
      INFO("one-hot at " << pos);
      CHECK(bad == 0);
      CHECK(e[0] == -3.0f);
      // +inf or NaN at pos, -inf elsewhere (with no finite value, one in another
      // chunk, or one beside it): chunks of only -inf are NaN too, as the whole row.
      for (float special : {kInf, kNaN})
        for (int finite_at : {0, 1, 2}) {
          std::vector<float> g(n, -kInf);
          g[pos] = special;
          if (finite_at == 1) g[(pos + 20000) % n] = 1.0f;
          if (finite_at == 2) g[pos % 16384 == 0 ? pos + 1 : pos - 1] = 1.0f;
          INFO("special " << special << " at " << pos << " among -inf, finite value case " << finite_at);
          CHECK(count_nan(run(Op::Softmax, g, 1, n, 1)) == n);
          CHECK(count_nan(run(Op::LogSoftmax, g, 1, n, 1)) == n);
          const float lse = run(Op::LogSumExp, g, 1, n, 1)[0];
          CHECK((std::isnan(special) ? std::isnan(lse) : lse == kInf));
        }
      // All -inf.
      const std::vector<float> m(n, -kInf);
      CHECK(count_nan(run(Op::Softmax, m, 1, n, 1)) == n);
      CHECK(count_nan(run(Op::LogSoftmax, m, 1, n, 1)) == n);
      CHECK(run(Op::LogSumExp, m, 1, n, 1)[0] == -kInf);
    }
  }
}

TEST_CASE("special rows do not disturb their neighbours", "[specials]") {
  // [4, n, inner]: rows / columns of +inf, NaN, all -inf and normal values side by side.
  const auto check = [](std::size_t n, std::size_t inner) {
    auto x = make_tensor(Dist::Normal1, 4, n, inner, n * inner);
    for (std::size_t i = 0; i < inner; i += 2) {
      x[(0 * n + n / 2) * inner + i] = kInf;
      x[(1 * n + (n - 1)) * inner + i] = kNaN;
      for (std::size_t k = 0; k < n; ++k) x[(2 * n + k) * inner + i] = -kInf;
    }
    for (Op op : {Op::Softmax, Op::LogSoftmax, Op::LogSumExp})
      verify(op, x, 4, n, inner, "mixed specials " + shape_label(4, n, inner));
  };
  for (std::size_t inner : {1, 3, 17, 70})
    for (std::size_t n : {1, 5, 16, 33, 257}) check(n, inner);
  // Short columns (kernel_table::short_cols), many vectors wide.
  for (std::size_t n : {1, 2, 5, 8, 12, 16, 17, 24}) check(n, 1100);
}

// Rows of the pipelined passes (n > 128) whose exps fall far below the clamp:
// AVX-512 runs them unclamped and redoes a pass whose sum comes out non-finite.
// Each row sits between ordinary rows, whose maxima and writes ride along it.
TEST_CASE("huge gaps in pipelined rows and row groups give the reference results", "[specials]") {
  // Gaps beyond the reach of the unclamped exp: the passes that use it must
  // notice and redo. One tensor per kind of gap, so that no other kind hides
  // it (a NaN anywhere in a group of rows redoes the whole group), and one
  // with all of them: alone, -1e30 makes the unclamped exp -inf and the sum
  // -inf, which a check for +inf and NaN alone would let through. Short rows
  // go W at a time (37: full groups and a partial one).
  const float gaps[] = {-200.0f, -1e10f, -1e30f, -3e38f, -std::numeric_limits<float>::infinity()};
  for (Op op : {Op::Softmax, Op::LogSoftmax, Op::LogSumExp})
    for (std::size_t n : {10, 16, 20, 100, 128, 300, 5000, 20000})
      for (std::size_t kind = 0; kind <= 5; ++kind) {
        const std::size_t outer = n <= 128 ? 37 : 7;
        auto x = make_tensor(Dist::Normal1, outer, n, 1, 3 * n + kind);
        for (std::size_t r = 1; r < outer; r += 2)
          for (std::size_t i = r; i < n; i += 7) x[r * n + i] = gaps[kind == 5 ? (r / 2 + i) % 5 : kind];
        verify(op, x, outer, n, 1, "huge gaps " + std::to_string(kind) + ", n " + std::to_string(n));
      }
}
