// The scalar implementation: correct first. It is the SOFTKIT_ISA_SCALAR
// fallback and the reference the SIMD kernels are tested against, so it works
// in double (exp, log, sums) and rounds to float once at the end.
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <limits>

#include "kernels.h"

namespace softkit {
namespace scalar_impl {
namespace {

constexpr float kInf = std::numeric_limits<float>::infinity();

// A strided view of one softmax row: n elements `stride` apart.
struct row {
  const float *x;
  std::size_t n, stride;
  float operator[](std::size_t i) const { return x[i * stride]; }
};

// NaN elements do not win the max; they make the sum NaN below.
float max_of(row r) {
  float m = -kInf;
  for (std::size_t i = 0; i < r.n; ++i)
    if (r[i] > m) m = r[i];
  return m;
}

// exp(x - m) in double; NaN when x and m are both infinite of the same sign,
// which is how a row of all -inf or one holding +inf turns NaN, as in PyTorch.
double shifted_exp(float x, float m) { return std::exp(static_cast<double>(x) - static_cast<double>(m)); }

// For the driver's combine: NaN if the span holds NaN and nothing above -inf.
float chunk_max(row r) {
  const float m = max_of(r);
  if (m == -kInf)
    for (std::size_t i = 0; i < r.n; ++i)
      if (r[i] != r[i]) return r[i];
  return m;
}

double exp_sum(row r, float m) {
  double s = 0.0;
  for (std::size_t i = 0; i < r.n; ++i) s += shifted_exp(r[i], m);
  return s;
}

double smooth_sum(row r, const float *w, float m) {
  double s = 0.0;
  for (std::size_t i = 0; i < r.n; ++i) {
    const double d = static_cast<double>(m) - r[i];
    s += w ? w[i] * d : d;
  }
  return s;
}

// PyTorch's logsumexp: NaN if any NaN, else +inf if any +inf, else (all -inf) -inf.
float logsumexp_of(row r) {
  const float m = max_of(r);
  const double v = m + std::log(exp_sum(r, m));
  if (v == v) return static_cast<float>(v);
  bool pos_inf = false;
  for (std::size_t i = 0; i < r.n; ++i) {
    if (r[i] != r[i]) return r[i];
    if (r[i] == kInf) pos_inf = true;
  }
  return pos_inf ? kInf : -kInf;
}

void softmax_of(row r, float *y, std::size_t ystride) {
  const float m = max_of(r);
  const double inv = 1.0 / exp_sum(r, m);
  for (std::size_t i = 0; i < r.n; ++i) y[i * ystride] = static_cast<float>(shifted_exp(r[i], m) * inv);
}

void log_softmax_of(row r, float *y, std::size_t ystride) {
  const float m = max_of(r);
  const double ls = std::log(exp_sum(r, m));
  for (std::size_t i = 0; i < r.n; ++i)
    y[i * ystride] = static_cast<float>((static_cast<double>(r[i]) - m) - ls);
}

void stats_of(row r, const float *w, bool smooth, float *max, float *log_sum, double *smooth_out) {
  *max = max_of(r);
  *log_sum = static_cast<float>(std::log(exp_sum(r, *max)));
  if (smooth) *smooth_out = smooth_sum(r, w, *max);
}

// --- kernel_table entries

void exp_nonpositive(const float *x, float *y, std::size_t n) {
  for (std::size_t i = 0; i < n; ++i) y[i] = static_cast<float>(std::exp(static_cast<double>(x[i])));
}

void softmax_rows(const float *x, float *y, std::size_t rows, std::size_t n, bool) {
  for (std::size_t r = 0; r < rows; ++r) softmax_of({x + r * n, n, 1}, y + r * n, 1);
}

void log_softmax_rows(const float *x, float *y, std::size_t rows, std::size_t n, bool) {
  for (std::size_t r = 0; r < rows; ++r) log_softmax_of({x + r * n, n, 1}, y + r * n, 1);
}

void logsumexp_rows(const float *x, float *out, std::size_t rows, std::size_t n) {
  for (std::size_t r = 0; r < rows; ++r) out[r] = logsumexp_of({x + r * n, n, 1});
}

void stats_rows(const float *x, std::size_t rows, std::size_t n, const float *w, bool smooth, float *max,
                float *log_sum, double *smooth_sum_out) {
  for (std::size_t r = 0; r < rows; ++r)
    stats_of({x + r * n, n, 1}, w, smooth, max + r, log_sum + r, smooth_sum_out + r);
}

float span_max(const float *x, std::size_t n) { return chunk_max({x, n, 1}); }

// The chunk_side's work, done after the chunk's own pass: the scalar path
// keeps things simple.
void do_side(chunk_side *side) {
  if (!side) return;
  if (side->next_n) side->next_max = span_max(side->next, side->next_n);
  for (std::size_t i = 0; i < side->write_n; ++i)
    side->write_y[i] = side->write_x
                           ? static_cast<float>((static_cast<double>(side->write_x[i]) - side->a) - side->b)
                           : side->write_y[i] * side->a;
}

double softmax_chunk_exp(const float *x, float *y, std::size_t n, float max, chunk_side *side) {
  double s = 0.0;
  for (std::size_t i = 0; i < n; ++i) {
    const double e = shifted_exp(x[i], max);
    y[i] = static_cast<float>(e);
    s += e;
  }
  do_side(side);
  return s;
}

void scale(float *y, std::size_t n, float factor) {
  for (std::size_t i = 0; i < n; ++i) y[i] *= factor;
}

void log_softmax_chunk_write(const float *x, float *y, std::size_t n, float max, float log_sum) {
  for (std::size_t i = 0; i < n; ++i) y[i] = static_cast<float>((static_cast<double>(x[i]) - max) - log_sum);
}

// The reference path leaves y alone and writes from x in the last pass.
double log_shift_chunk(const float *x, float *, std::size_t n, float max, chunk_side *side) {
  const double s = max == -kInf ? 0.0 : exp_sum({x, n, 1}, max);
  do_side(side);
  return s;
}

void log_shifted_write(const float *x, float *y, std::size_t n, float max, float log_sum, float) {
  log_softmax_chunk_write(x, y, n, max, log_sum);
}

span_stats stats_chunk(const float *x, std::size_t n, const float *w, bool smooth, const chunk_side *write) {
  const row r{x, n, 1};
  span_stats st;
  st.max = chunk_max(r);
  st.sum = exp_sum(r, st.max);
  st.smooth = smooth ? smooth_sum(r, w, st.max) : 0.0;
  if (write) {
    chunk_side side = *write;
    do_side(&side);
  }
  return st;
}

void softmax_cols(const float *x, float *y, std::size_t n, std::size_t stride, std::size_t width, float *, bool) {
  for (std::size_t j = 0; j < width; ++j) softmax_of({x + j, n, stride}, y + j, stride);
}

void log_softmax_cols(const float *x, float *y, std::size_t n, std::size_t stride, std::size_t width, float *,
                      bool) {
  for (std::size_t j = 0; j < width; ++j) log_softmax_of({x + j, n, stride}, y + j, stride);
}

void slabs(const float *x, float *y, std::size_t count, std::size_t n, std::size_t inner, std::size_t, bool log, bool,
           float *) {
  for (std::size_t s = 0; s < count; ++s)
    (log ? log_softmax_cols : softmax_cols)(x + s * n * inner, y + s * n * inner, n, inner, inner, nullptr, false);
}

void logsumexp_cols(const float *x, float *out, std::size_t n, std::size_t stride, std::size_t width, float *) {
  for (std::size_t j = 0; j < width; ++j) out[j] = logsumexp_of({x + j, n, stride});
}

void stats_cols(const float *x, std::size_t n, std::size_t stride, std::size_t width, const float *w, bool smooth,
                float *max, float *log_sum, double *smooth_sum_out, float *) {
  for (std::size_t j = 0; j < width; ++j)
    stats_of({x + j, n, stride}, w, smooth, max + j, log_sum + j, smooth_sum_out + j);
}

// --- backward and soft targets

// dx[j] = a * p[j] - b * w[j] - (j == t ? c : 0), p = softmax of the row, in double.
void ce_grad_of(row r, float *dx, std::size_t dstride, const float *w, const ce_grad &g) {
  const float m = max_of(r);
  const double inv = 1.0 / exp_sum(r, m);
  for (std::size_t i = 0; i < r.n; ++i) {
    const double p = shifted_exp(r[i], m) * inv;
    double v = static_cast<double>(g.a) * p;
    if (g.b != 0.0f) v -= static_cast<double>(g.b) * (w ? w[i] : 1.0);
    if (static_cast<int64_t>(i) == g.t) v -= g.c;
    dx[i * dstride] = static_cast<float>(v);
  }
}

void ce_grad_rows(const float *x, float *dx, std::size_t rows, std::size_t n, const float *w, const ce_grad *g) {
  for (std::size_t r = 0; r < rows; ++r) ce_grad_of({x + r * n, n, 1}, dx + r * n, 1, w, g[r]);
}

void ce_grad_scale(float *y, std::size_t n, const float *w, float s, float b) {
  for (std::size_t i = 0; i < n; ++i) {
    double v = static_cast<double>(y[i]) * s;
    if (b != 0.0f) v -= static_cast<double>(b) * (w ? w[i] : 1.0);
    y[i] = static_cast<float>(v);
  }
}

void ce_grad_cols(const float *x, float *dx, std::size_t n, std::size_t stride, std::size_t width, const float *w,
                  const ce_grad *g, float *, bool) {
  for (std::size_t j = 0; j < width; ++j) ce_grad_of({x + j, n, stride}, dx + j, stride, w, g[j]);
}

// sum(dy * y) (softmax) or sum(dy) (log-softmax) of a strided row.
double backward_sum(const float *y, const float *dy, std::size_t n, std::size_t stride, bool log) {
  double s = 0.0;
  for (std::size_t i = 0; i < n; ++i)
    s += log ? static_cast<double>(dy[i * stride]) : static_cast<double>(dy[i * stride]) * y[i * stride];
  return s;
}

// exp(y) for log-softmax backward: 0 where the float exp underflows (below
// about -103.97), as PyTorch's float computation has it, so that 0 * inf (an
// infinite sum) is NaN as there; elsewhere in double.
inline double exp_of_logprob(double y) {
  const double e = std::exp(y);
  return static_cast<float>(e) == 0.0f ? 0.0 : e;
}

void backward_write(const float *y, const float *dy, float *dx, std::size_t n, std::size_t stride, double s,
                    bool log) {
  for (std::size_t i = 0; i < n; ++i) {
    const double yi = y[i * stride], gi = dy[i * stride];
    dx[i * stride] = static_cast<float>(log ? gi - exp_of_logprob(yi) * s : yi * (gi - s));
  }
}

void softmax_backward_rows(const float *y, const float *dy, float *dx, std::size_t rows, std::size_t n, bool log) {
  for (std::size_t r = 0; r < rows; ++r)
    backward_write(y + r * n, dy + r * n, dx + r * n, n, 1, backward_sum(y + r * n, dy + r * n, n, 1, log), log);
}

double softmax_backward_chunk_sum(const float *y, const float *dy, std::size_t n, bool log) {
  return backward_sum(y, dy, n, 1, log);
}

void softmax_backward_chunk_write(const float *y, const float *dy, float *dx, std::size_t n, double s, bool log) {
  backward_write(y, dy, dx, n, 1, s, log);
}

void softmax_backward_cols(const float *y, const float *dy, float *dx, std::size_t n, std::size_t stride,
                           std::size_t width, bool log, float *, bool) {
  for (std::size_t j = 0; j < width; ++j)
    backward_write(y + j, dy + j, dx + j, n, stride, backward_sum(y + j, dy + j, n, stride, log), log);
}

soft_stats soft_of(row r, const float *t, std::size_t tstride, const float *w, float keep, float add) {
  soft_stats st;
  st.max = chunk_max(r);
  st.sum = exp_sum(r, st.max);
  st.dist = 0.0;
  st.mass = 0.0;
  for (std::size_t i = 0; i < r.n; ++i) {
    const double tp = static_cast<double>(keep) * t[i * tstride] + add;
    const double wt = w ? w[i] * tp : tp;
    st.dist += wt * (static_cast<double>(st.max) - r[i]);
    st.mass += wt;
  }
  return st;
}

double soft_loss(const soft_stats &st) { return st.dist + std::log(st.sum) * st.mass; }

void soft_ce_rows(const float *x, const float *t, std::size_t rows, std::size_t n, const float *w, float keep,
                  float add, double *loss) {
  for (std::size_t r = 0; r < rows; ++r) loss[r] = soft_loss(soft_of({x + r * n, n, 1}, t + r * n, 1, w, keep, add));
}

soft_stats soft_ce_chunk(const float *x, const float *t, std::size_t n, const float *w, float keep, float add) {
  return soft_of({x, n, 1}, t, 1, w, keep, add);
}

void soft_ce_cols(const float *x, const float *t, std::size_t n, std::size_t stride, std::size_t width,
                  const float *w, float keep, float add, double *loss, float *) {
  for (std::size_t j = 0; j < width; ++j) loss[j] = soft_loss(soft_of({x + j, n, stride}, t + j, stride, w, keep, add));
}

constexpr kernel_table kTable{SOFTKIT_ISA_SCALAR, exp_nonpositive,   exp_nonpositive, 0.0f /* no one-pass sums */, softmax_rows, log_softmax_rows,
                              logsumexp_rows,     stats_rows,        nullptr /* nll_sum: the driver's loop */, span_max, softmax_chunk_exp, nullptr /* softmax_chunk_exp_scaled */, scale,
                              stats_chunk,        log_softmax_chunk_write, nullptr /* softmax_chunk_write: keeps its exps */, log_shift_chunk, log_shifted_write, softmax_cols, log_softmax_cols,
                              nullptr /* cols_run: block by block */, slabs, slab_rows::never, false,
                              nullptr /* short_cols: block by block */, nullptr /* short_col_stats: likewise */, 0, 0,
                              logsumexp_cols,     stats_cols,        nullptr /* stats_cols_run: block by block */,
                              ce_grad_rows,       ce_grad_scale,     ce_grad_cols, nullptr /* ce_grad_short_cols */,
                              softmax_backward_rows, softmax_backward_chunk_sum, softmax_backward_chunk_write,
                              softmax_backward_cols, nullptr /* short_cols_backward */, 0, soft_ce_rows,   soft_ce_chunk,     soft_ce_cols};

}  // namespace
}  // namespace scalar_impl

const kernel_table *scalar_kernels() { return &scalar_impl::kTable; }

}  // namespace softkit
