// The seed's naive algorithm in plain C++ (max, std::exp, sum, divide), and the
// floors: a memcpy of the same bytes, a read-only sum of the logits, and for the
// backward ops an add (dx = y + dy: two arrays read, one written).
//
// "naive" runs one row after another with scalar std::exp (no -ffast-math, so GCC
// does not vectorise it); with threads > 1 the rows are shared out with OpenMP.
#include <benchmark/benchmark.h>
#include <omp.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>

#include "bench_common.h"

namespace skbench {
namespace {

// ---------------------------------------------------------------- naive

struct RowView {
  size_t base, stride;
};
inline RowView row_of(const Shape &s, size_t r) {
  size_t o = r / s.inner, i = r % s.inner;
  return {o * s.n * s.inner + i, s.inner};
}

inline float row_max(const float *x, size_t n, size_t st) {
  float m = -std::numeric_limits<float>::infinity();
  for (size_t k = 0; k < n; ++k) m = std::max(m, x[k * st]);
  return m;
}

void naive_softmax(const Shape &s, const float *x, float *y, int threads) {
  const long rows = static_cast<long>(s.rows());
#pragma omp parallel for num_threads(threads) schedule(static) if (threads > 1)
  for (long r = 0; r < rows; ++r) {
    RowView v = row_of(s, static_cast<size_t>(r));
    const float *xr = x + v.base;
    float *yr = y + v.base;
    float m = row_max(xr, s.n, v.stride);
    float sum = 0.0f;
    for (size_t k = 0; k < s.n; ++k) {
      float e = std::exp(xr[k * v.stride] - m);
      yr[k * v.stride] = e;
      sum += e;
    }
    for (size_t k = 0; k < s.n; ++k) yr[k * v.stride] /= sum;
  }
}

void naive_log_softmax(const Shape &s, const float *x, float *y, int threads) {
  const long rows = static_cast<long>(s.rows());
#pragma omp parallel for num_threads(threads) schedule(static) if (threads > 1)
  for (long r = 0; r < rows; ++r) {
    RowView v = row_of(s, static_cast<size_t>(r));
    const float *xr = x + v.base;
    float *yr = y + v.base;
    float m = row_max(xr, s.n, v.stride);
    float sum = 0.0f;
    for (size_t k = 0; k < s.n; ++k) sum += std::exp(xr[k * v.stride] - m);
    float shift = m + std::log(sum);
    for (size_t k = 0; k < s.n; ++k) yr[k * v.stride] = xr[k * v.stride] - shift;
  }
}

void naive_logsumexp(const Shape &s, const float *x, float *out, int threads) {
  const long rows = static_cast<long>(s.rows());
#pragma omp parallel for num_threads(threads) schedule(static) if (threads > 1)
  for (long r = 0; r < rows; ++r) {
    RowView v = row_of(s, static_cast<size_t>(r));
    const float *xr = x + v.base;
    float m = row_max(xr, s.n, v.stride);
    float sum = 0.0f;
    for (size_t k = 0; k < s.n; ++k) sum += std::exp(xr[k * v.stride] - m);
    out[r] = m + std::log(sum);
  }
}

float naive_cross_entropy(const Shape &s, const float *x, const int64_t *t, int threads) {
  const long rows = static_cast<long>(s.rows());
  double total = 0.0;
#pragma omp parallel for num_threads(threads) schedule(static) reduction(+ : total) if (threads > 1)
  for (long r = 0; r < rows; ++r) {
    RowView v = row_of(s, static_cast<size_t>(r));
    const float *xr = x + v.base;
    float m = row_max(xr, s.n, v.stride);
    float sum = 0.0f;
    for (size_t k = 0; k < s.n; ++k) sum += std::exp(xr[k * v.stride] - m);
    total += static_cast<double>(m + std::log(sum) - xr[static_cast<size_t>(t[r]) * v.stride]);
  }
  return static_cast<float>(total / static_cast<double>(rows));
}

// Mean loss, and dx = (softmax(x) - onehot(t)) / rows.
float naive_cross_entropy_fwbw(const Shape &s, const float *x, const int64_t *t, float *dx, int threads) {
  const long rows = static_cast<long>(s.rows());
  const float scale = 1.0f / static_cast<float>(rows);
  double total = 0.0;
#pragma omp parallel for num_threads(threads) schedule(static) reduction(+ : total) if (threads > 1)
  for (long r = 0; r < rows; ++r) {
    RowView v = row_of(s, static_cast<size_t>(r));
    const float *xr = x + v.base;
    float *dr = dx + v.base;
    float m = row_max(xr, s.n, v.stride);
    float sum = 0.0f;
    for (size_t k = 0; k < s.n; ++k) sum += std::exp(xr[k * v.stride] - m);
    float lse = m + std::log(sum);
    size_t tk = static_cast<size_t>(t[r]);
    total += static_cast<double>(lse - xr[tk * v.stride]);
    for (size_t k = 0; k < s.n; ++k) dr[k * v.stride] = std::exp(xr[k * v.stride] - lse) * scale;
    dr[tk * v.stride] -= scale;
  }
  return static_cast<float>(total / static_cast<double>(rows));
}

// dx = y * (dy - sum(dy * y)) and dx = dy - exp(y) * sum(dy), row by row.
void naive_softmax_backward(const Shape &s, const float *y, const float *dy, float *dx, int threads, bool log) {
  const long rows = static_cast<long>(s.rows());
#pragma omp parallel for num_threads(threads) schedule(static) if (threads > 1)
  for (long r = 0; r < rows; ++r) {
    RowView v = row_of(s, static_cast<size_t>(r));
    float acc = 0.0f;
    for (size_t k = 0; k < s.n; ++k) {
      size_t at = v.base + k * v.stride;
      acc += log ? dy[at] : dy[at] * y[at];
    }
    for (size_t k = 0; k < s.n; ++k) {
      size_t at = v.base + k * v.stride;
      dx[at] = log ? dy[at] - std::exp(y[at]) * acc : y[at] * (dy[at] - acc);
    }
  }
}

struct NaiveRunner : Runner {
  Problem p;
  AlignedArray<float> out;
  float loss = 0.0f;
  explicit NaiveRunner(const Problem &pr) : p(pr) {
    size_t count = (p.op == Op::logsumexp) ? p.shape.rows()
                   : (p.op == Op::cross_entropy) ? 1
                                                  : p.shape.elements();
    out = AlignedArray<float>(count);
    std::memset(out.data(), 0, count * sizeof(float));
  }
  void run() override {
    const float *x = p.in->x.data();
    const int64_t *t = p.in->target.data();
    switch (p.op) {
      case Op::softmax: naive_softmax(p.shape, x, out.data(), p.threads); break;
      case Op::log_softmax: naive_log_softmax(p.shape, x, out.data(), p.threads); break;
      case Op::logsumexp: naive_logsumexp(p.shape, x, out.data(), p.threads); break;
      case Op::cross_entropy: out.data()[0] = naive_cross_entropy(p.shape, x, t, p.threads); break;
      case Op::cross_entropy_fwbw: loss = naive_cross_entropy_fwbw(p.shape, x, t, out.data(), p.threads); break;
      case Op::softmax_backward:
        naive_softmax_backward(p.shape, p.bw->y_softmax.data(), p.bw->dy.data(), out.data(), p.threads, false);
        break;
      case Op::log_softmax_backward:
        naive_softmax_backward(p.shape, p.bw->y_log_softmax.data(), p.bw->dy.data(), out.data(), p.threads, true);
        break;
    }
    benchmark::ClobberMemory();
  }
  const float *output() const override { return out.data(); }
  const float *output_loss() const override { return &loss; }
};

// ---------------------------------------------------------------- floors

// memcpy of the op's input into its output: the bytes a softmax has to move.
struct MemcpyRunner : Runner {
  const float *src;
  size_t count;
  int threads;
  AlignedArray<float> dst;
  MemcpyRunner(const Problem &p) : src(p.in->x.data()), count(p.shape.elements()), threads(p.threads), dst(count) {
    std::memset(dst.data(), 0, count * sizeof(float));
  }
  void run() override {
    if (threads <= 1) {
      std::memcpy(dst.data(), src, count * sizeof(float));
    } else {
      // Equal parts, cut at multiples of 16 floats (64 bytes).
      const size_t blocks = (count + 15) / 16;
#pragma omp parallel num_threads(threads)
      {
        const size_t nt = static_cast<size_t>(omp_get_num_threads()), id = static_cast<size_t>(omp_get_thread_num());
        size_t b0 = blocks * id / nt * 16, b1 = std::min(count, blocks * (id + 1) / nt * 16);
        if (b1 > b0) std::memcpy(dst.data() + b0, src + b0, (b1 - b0) * sizeof(float));
      }
    }
    benchmark::ClobberMemory();
  }
};

#if defined(__x86_64__) && defined(__GNUC__)
typedef float v8f __attribute__((vector_size(32)));
__attribute__((target("avx2"))) float sum_avx2(const float *p, size_t n) {
  v8f a[8] = {};
  size_t i = 0;
  for (; i + 64 <= n; i += 64) {
    for (int j = 0; j < 8; ++j) {
      v8f v;
      std::memcpy(&v, p + i + 8 * j, sizeof v);
      a[j] += v;
    }
  }
  v8f t = ((a[0] + a[1]) + (a[2] + a[3])) + ((a[4] + a[5]) + (a[6] + a[7]));
  float s = 0.0f;
  for (int j = 0; j < 8; ++j) s += t[j];
  for (; i < n; ++i) s += p[i];
  return s;
}
#endif

float sum_generic(const float *p, size_t n) {
  float a[8] = {};
  size_t i = 0;
  for (; i + 8 <= n; i += 8)
    for (int j = 0; j < 8; ++j) a[j] += p[i + j];
  float s = ((a[0] + a[1]) + (a[2] + a[3])) + ((a[4] + a[5]) + (a[6] + a[7]));
  for (; i < n; ++i) s += p[i];
  return s;
}

float fast_sum(const float *p, size_t n) {
#if defined(__x86_64__) && defined(__GNUC__)
  static const bool avx2 = __builtin_cpu_supports("avx2");
  if (avx2) return sum_avx2(p, n);
#endif
  return sum_generic(p, n);
}

// Reads every logit once and writes nothing: what a cross-entropy forward (or a
// logsumexp, whose output is one float per row) has to move.
struct ReadSumRunner : Runner {
  const float *src;
  size_t count;
  int threads;
  float result = 0.0f;
  ReadSumRunner(const Problem &p) : src(p.in->x.data()), count(p.shape.elements()), threads(p.threads) {}
  void run() override {
    float s = 0.0f;
    if (threads <= 1) {
      s = fast_sum(src, count);
    } else {
      const size_t blocks = (count + 15) / 16;
#pragma omp parallel num_threads(threads) reduction(+ : s)
      {
        const size_t nt = static_cast<size_t>(omp_get_num_threads()), id = static_cast<size_t>(omp_get_thread_num());
        size_t b0 = blocks * id / nt * 16, b1 = std::min(count, blocks * (id + 1) / nt * 16);
        if (b1 > b0) s += fast_sum(src + b0, b1 - b0);
      }
    }
    result = s;
    benchmark::DoNotOptimize(result);
  }
};

#if defined(__x86_64__) && defined(__GNUC__)
__attribute__((target("avx2"))) void add_avx2(const float *a, const float *b, float *c, size_t n) {
  for (size_t i = 0; i < n; ++i) c[i] = a[i] + b[i];
}
#endif
void add_any(const float *a, const float *b, float *c, size_t n) {
#if defined(__x86_64__) && defined(__GNUC__)
  static const bool avx2 = __builtin_cpu_supports("avx2");
  if (avx2) return add_avx2(a, b, c, n);
#endif
  for (size_t i = 0; i < n; ++i) c[i] = a[i] + b[i];
}

// dx = y + dy: reads two arrays and writes one, the bytes a softmax backward moves.
struct AddRunner : Runner {
  const float *a, *b;
  size_t count;
  int threads;
  AlignedArray<float> dst;
  AddRunner(const Problem &p)
      : a(p.bw->y_softmax.data()), b(p.bw->dy.data()), count(p.shape.elements()), threads(p.threads), dst(count) {
    std::memset(dst.data(), 0, count * sizeof(float));
  }
  void run() override {
    if (threads <= 1) {
      add_any(a, b, dst.data(), count);
    } else {
      const size_t blocks = (count + 15) / 16;
#pragma omp parallel num_threads(threads)
      {
        const size_t nt = static_cast<size_t>(omp_get_num_threads()), id = static_cast<size_t>(omp_get_thread_num());
        size_t b0 = blocks * id / nt * 16, b1 = std::min(count, blocks * (id + 1) / nt * 16);
        if (b1 > b0) add_any(a + b0, b + b0, dst.data() + b0, b1 - b0);
      }
    }
    benchmark::ClobberMemory();
  }
};

}  // namespace

void add_reference_impls(const Options &, std::vector<Impl> *out, std::vector<std::string> *) {
  Impl naive;
  naive.name = "naive";
  naive.isa = "auto";
  naive.has = [](Op, const Shape &) { return true; };
  naive.prepare = [](int) {};
  naive.make = [](const Problem &p, std::string *) -> std::unique_ptr<Runner> {
    return std::make_unique<NaiveRunner>(p);
  };
  out->push_back(naive);

  Impl mc;
  mc.name = "memcpy";
  mc.isa = "auto";
  mc.is_floor = true;
  mc.has = [](Op op, const Shape &) {
    return op == Op::softmax || op == Op::log_softmax || op == Op::cross_entropy_fwbw;
  };
  mc.prepare = [](int) {};
  mc.make = [](const Problem &p, std::string *) -> std::unique_ptr<Runner> {
    return std::make_unique<MemcpyRunner>(p);
  };
  out->push_back(mc);

  Impl rs;
  rs.name = "readsum";
  rs.isa = "auto";
  rs.is_floor = true;
  rs.has = [](Op op, const Shape &) { return op == Op::logsumexp || op == Op::cross_entropy; };
  rs.prepare = [](int) {};
  rs.make = [](const Problem &p, std::string *) -> std::unique_ptr<Runner> {
    return std::make_unique<ReadSumRunner>(p);
  };
  out->push_back(rs);

  Impl ad;
  ad.name = "add";
  ad.isa = "auto";
  ad.is_floor = true;
  ad.has = [](Op op, const Shape &) { return is_backward(op); };
  ad.prepare = [](int) {};
  ad.make = [](const Problem &p, std::string *) -> std::unique_ptr<Runner> {
    return std::make_unique<AddRunner>(p);
  };
  out->push_back(ad);
}

}  // namespace skbench
