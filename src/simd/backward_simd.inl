// The SIMD kernels of the gradients (cross-entropy, softmax, log-softmax
// backward) and of the soft-target cross-entropy. Included by each ISA file
// right after kernels_simd.inl, inside that file's own namespace (the same one
// definition rule), and uses its helpers: exp_nonpos, row_max, row_exp_sum,
// wide_sum, short_row, col_block, ... The kernel table of the ISA (make_table)
// is at the end of this file, as it lists the entry points of both.
//
// Conventions as there: sums run in float vector accumulators for at most
// kFlush steps and are then added to double accumulators; tails use masked
// loads and stores.

// 1 in the first k lanes, 0 in the others.
inline vf lane_mask(std::size_t k) {
  alignas(64) static const float ones[16] = {1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1};
  return isa_ops::load_tail(ones, k, 0.0f);
}

// ---------------------------------------------------------------------------
// Cross-entropy gradient: dx[j] = a * p[j] - b * w[j] - (j == t ? c : 0).

// y = y * s - b * w (w = 1 when null); b == 0: y * s.
inline void ce_affine(float *y, std::size_t n, const float *w, float s, float b) {
  if (b == 0.0f) {
    row_scale(y, n, s);
    return;
  }
  const vf vs(s), nb(-b);
  std::size_t i = 0;
  if (w) {
    for (; i + 2 * W <= n; i += 2 * W) {
      prefetch_step<false, true, 2>(y + i);
      prefetch_step<false, false, 2>(w + i);
      xsimd::fma(vf::load_unaligned(y + i), vs, nb * vf::load_unaligned(w + i)).store_unaligned(y + i);
      xsimd::fma(vf::load_unaligned(y + i + W), vs, nb * vf::load_unaligned(w + i + W)).store_unaligned(y + i + W);
    }
    for (; i + W <= n; i += W)
      xsimd::fma(vf::load_unaligned(y + i), vs, nb * vf::load_unaligned(w + i)).store_unaligned(y + i);
    if (i < n)
      isa_ops::store_tail(
          y + i, xsimd::fma(isa_ops::load_tail(y + i, n - i, 0.0f), vs, nb * isa_ops::load_tail(w + i, n - i, 0.0f)),
          n - i);
    return;
  }
  for (; i + 2 * W <= n; i += 2 * W) {
    prefetch_step<false, true, 2>(y + i);
    xsimd::fma(vf::load_unaligned(y + i), vs, nb).store_unaligned(y + i);
    xsimd::fma(vf::load_unaligned(y + i + W), vs, nb).store_unaligned(y + i + W);
  }
  for (; i + W <= n; i += W) xsimd::fma(vf::load_unaligned(y + i), vs, nb).store_unaligned(y + i);
  if (i < n) isa_ops::store_tail(y + i, xsimd::fma(isa_ops::load_tail(y + i, n - i, 0.0f), vs, nb), n - i);
}

// Short rows in registers: x read once, dx written once.
template <std::size_t NV>
void ce_grad_short(const float *x, float *dx, std::size_t rows, std::size_t n, const float *w, const ce_grad *g) {
  vf wv[NV];
  if (w) {
    for (std::size_t i = 0; i + 1 < NV; ++i) wv[i] = vf::load_unaligned(w + i * W);
    wv[NV - 1] = isa_ops::load_tail(w + (NV - 1) * W, n - (NV - 1) * W, 0.0f);
  }
  for (std::size_t r = 0; r < rows; ++r, x += n, dx += n) {
    const short_row<NV> row(x, n);
    const vf m = row.max();
    vf e[NV];
    const vf s = vf(g[r].a) / row.exp_sum(m, e);
    const vf nb(-g[r].b);
    if (g[r].b == 0.0f)
      for (std::size_t i = 0; i < NV; ++i) e[i] *= s;
    else
      for (std::size_t i = 0; i < NV; ++i) e[i] = xsimd::fma(e[i], s, w ? nb * wv[i] : nb);
    short_row<NV>::store(dx, n, e);
    if (g[r].t >= 0) dx[g[r].t] -= g[r].c;
  }
}

void ce_grad_rows(const float *x, float *dx, std::size_t rows, std::size_t n, const float *w, const ce_grad *g) {
  if (with_short_count(n, [&](auto nv) { ce_grad_short<decltype(nv)::value>(x, dx, rows, n, w, g); })) return;
  for (std::size_t r = 0; r < rows; ++r, x += n, dx += n) {
    const float m = row_max(x, n);
    const double s = row_exp_sum<kStoreExp>(x, dx, n, m);  // the exps, in dx
    ce_affine(dx, n, w, static_cast<float>(g[r].a / s), g[r].b);
    if (g[r].t >= 0) dx[g[r].t] -= g[r].c;
  }
}

void ce_grad_scale(float *y, std::size_t n, const float *w, float s, float b) { ce_affine(y, n, w, s, b); }

void ce_grad_cols(const float *x, float *dx, std::size_t n, std::size_t stride, std::size_t width, const float *w,
                  const ce_grad *g, float *scratch, bool stream) {
  const col_block bl(x, n, stride, width, scratch);
  vf m[col_block::kMaxVecs], sc[col_block::kMaxVecs], nb[col_block::kMaxVecs];
  vf tv[col_block::kMaxVecs], cv[col_block::kMaxVecs];  // each lane's target row (-1: none) and c
  wide_sum acc[col_block::kMaxVecs];
  bl.max(m);
  bl.exp_sums(m, dx, acc);  // the exps go to the buffer, or straight to dx
  bool smooth = false;
  for (std::size_t v = 0; v < bl.vecs; ++v) {
    alignas(64) float a[W], b[W], t[W], c[W];
    for (std::size_t l = 0; l < W; ++l) {
      const bool in = l < bl.lanes(v);
      a[l] = in ? g[v * W + l].a : 0.0f;
      b[l] = in ? -g[v * W + l].b : 0.0f;
      t[l] = in && g[v * W + l].t >= 0 ? static_cast<float>(g[v * W + l].t) : -1.0f;
      c[l] = in ? g[v * W + l].c : 0.0f;
      smooth |= b[l] != 0.0f;
    }
    sc[v] = vf::load_aligned(a) / col_sums_f32(acc[v]);
    nb[v] = vf::load_aligned(b);
    tv[v] = vf::load_aligned(t);
    cv[v] = vf::load_aligned(c);
  }
  if (scratch) {
    // From the copy: the target's c in the same write (n <= kColScratch, so a
    // row index is exact in float), which may then go around the caches.
    bl.write(dx, dx, stream, [&](std::size_t r, std::size_t v, vf e) {
      const vf wr(w ? w[r] : 1.0f);
      const vf o = smooth ? xsimd::fma(e, sc[v], nb[v] * wr) : e * sc[v];
      return o - xsimd::select(tv[v] == vf(static_cast<float>(r)), cv[v], vf(0.0f));
    });
    return;
  }
  // The whole vectors first, with no lane test each, then a partial last one.
  const std::size_t whole = width / W;
  for (std::size_t r = 0; r < n; ++r) {
    const vf wr(w ? w[r] : 1.0f);
    std::size_t v = 0;
    for (; v < whole; ++v) {
      const vf e = vf::load_unaligned(dx + r * stride + v * W);
      (smooth ? xsimd::fma(e, sc[v], nb[v] * wr) : e * sc[v]).store_unaligned(dx + r * stride + v * W);
    }
    for (; v < bl.vecs; ++v) {
      const vf e = bl.direct(dx, v).load(r, 0.0f);
      col_store(dx + r * stride + v * W, smooth ? xsimd::fma(e, sc[v], nb[v] * wr) : e * sc[v], bl.lanes(v));
    }
  }
  for (std::size_t l = 0; l < width; ++l)
    if (g[l].t >= 0) dx[static_cast<std::size_t>(g[l].t) * stride + l] -= g[l].c;
}

// Short columns (n <= isa_ops::kShortColumns, inner > 1), as the forward's
// short_cols: x read once, dx written once, the exps in registers; the bits of
// ce_grad_cols (its exps and sums, then e * a / sum - b * w - [r == t] c).
// The b * w term is taken wherever smoothing is on (ce_grad_cols: in blocks
// with some b != 0), so that a sample whose b is 0 gets 0 * w, NaN for an
// infinite weight, as PyTorch's -g (e / C) w[j] does.
template <std::size_t N, bool Smooth, bool Stream, bool Full>
__attribute__((always_inline)) inline void ce_grad_short_step(const float *x, float *dx, std::size_t inner,
                                                              std::size_t lanes, const vf *wr, const ce_grad_lanes &g,
                                                              std::size_t j) {
  vf e[N];
  const vf m = short_col_rows<N, Full>(x + j, inner, lanes, e);
  for (std::size_t r = 0; r < N; ++r) e[r] = exp_nonpos(e[r] - m);
  auto load = [&](const float *p) { return Full ? vf::load_unaligned(p + j) : isa_ops::load_tail(p + j, lanes, 0.0f); };
  const vf sc = load(g.a) / short_col_sum<N>(e), t = load(g.t), c = load(g.c);
  const vf nb = Smooth ? -load(g.b) : vf(0.0f);
  for (std::size_t r = 0; r < N; ++r) {
    const vf o = (Smooth ? xsimd::fma(e[r], sc, nb * wr[r]) : e[r] * sc) -
                 xsimd::select(t == vf(static_cast<float>(r)), c, vf(0.0f));
    if (Stream && Full) isa_ops::store_stream(dx + j + r * inner, o);
    else col_store<Full>(dx + j + r * inner, o, lanes);
  }
}

template <std::size_t N, bool Smooth, bool Stream>
void ce_grad_short_of(const float *x, float *dx, std::size_t inner, std::size_t width, const float *w,
                      const ce_grad_lanes &g) {
  vf wr[N];
  for (std::size_t r = 0; r < N; ++r) wr[r] = vf(w ? w[r] : 1.0f);
  std::size_t j = 0;
  for (; j + W <= width; j += W) ce_grad_short_step<N, Smooth, Stream, true>(x, dx, inner, W, wr, g, j);
  if (j < width) ce_grad_short_step<N, Smooth, Stream, false>(x, dx, inner, width - j, wr, g, j);
  if (Stream) isa_ops::stream_fence();
}

void ce_grad_short_cols(const float *x, float *dx, std::size_t n, std::size_t inner, std::size_t width,
                        const float *w, const ce_grad_lanes *g, bool stream) {
  with_short_rows(n, [&](auto rows) {
    constexpr std::size_t N = decltype(rows)::value;
    if (g->smooth) stream ? ce_grad_short_of<N, true, true>(x, dx, inner, width, w, *g)
                          : ce_grad_short_of<N, true, false>(x, dx, inner, width, w, *g);
    else stream ? ce_grad_short_of<N, false, true>(x, dx, inner, width, w, *g)
                : ce_grad_short_of<N, false, false>(x, dx, inner, width, w, *g);
  });
}

// ---------------------------------------------------------------------------
// Softmax backward dx = y * (dy - sum(dy * y)); log-softmax backward
// dx = dy - exp(y) * sum(dy).

template <bool Log>
inline vf bwd_term(vf y, vf dy, vf acc) {
  return Log ? acc + dy : xsimd::fma(dy, y, acc);
}

// The write in float cannot overflow where the result does not: log-softmax's
// dy - exp(y) * s is one fused operation (exp(y) <= 1 for y <= 0), and
// softmax's y * (dy - s) is taken as 2 * (y * (dy/2 - s/2)), where dy/2 - s/2
// (one FMA, rounded once) stays in range while |s| <= FLT_MAX (|s/2| and
// |dy/2| each at most FLT_MAX/2); the same bits as y * (dy - s) away from the
// range's ends. Only a sum beyond the float range, which the sum pass tells,
// takes the double form of the scalar ISA for its row or block; and a
// log-softmax vector with a y > 0 (not a log-probability; its exp may overflow
// in float where the double one does not). So does the sum, term by term,
// when its float blocks overflow. Never with softmax outputs and moderate
// gradients, but the contract is the formula for any floats.
inline bool bwd_float_ok(double sum) {
  return std::fabs(sum) <= __FLT_MAX__;
}
// The float form's s: the sum, halved for softmax.
template <bool Log>
inline float bwd_float_sum(double sum) {
  return static_cast<float>(Log ? sum : 0.5 * sum);
}

template <bool Log>
inline double bwd_sum_wide(const float *y, const float *dy, std::size_t n, std::size_t stride) {
  double s = 0.0;
  for (std::size_t i = 0; i < n; ++i)
    s += Log ? static_cast<double>(dy[i * stride]) : static_cast<double>(dy[i * stride]) * y[i * stride];
  return s;
}

// Out of line: a call to exp inside the hot loops would cost them their vector
// registers. exp(y) is 0 where the float exp underflows, as the float form (and
// PyTorch) has it: with an infinite sum, 0 * inf is NaN there too.
template <bool Log>
__attribute__((noinline, cold)) void bwd_write_wide(const float *y, const float *dy, float *dx, std::size_t n,
                                                    std::size_t stride, double s) {
  for (std::size_t i = 0; i < n; ++i) {
    const double yi = y[i * stride], g = dy[i * stride];
    const double e = Log ? std::exp(yi) : 0.0;
    dx[i * stride] = static_cast<float>(Log ? g - (static_cast<float>(e) == 0.0f ? 0.0 : e) * s : yi * (g - s));
  }
}
// A log-softmax vector with a y > 0; lane l's sum at s[l * s_step].
__attribute__((noinline, cold)) inline vf log_bwd_out_wide(vf y, vf dy, const double *s, std::size_t s_step) {
  alignas(64) float a[W], b[W];
  y.store_aligned(a);
  dy.store_aligned(b);
  for (std::size_t l = 0; l < W; ++l) bwd_write_wide<true>(a + l, b + l, a + l, 1, 1, s[l * s_step]);
  return vf::load_aligned(a);
}

// sum(dy * y) (softmax) or sum(dy) (log-softmax) of a row.
template <bool Log>
inline double bwd_sum(const float *y, const float *dy, std::size_t n) {
  wide_sum acc{};
  std::size_t i = 0;
  constexpr std::size_t step = kUnroll * W;
  while (i + step <= n) {
    const std::size_t end = i + min_size((n - i) / step, kFlush) * step;
    vf a0(0.0f), a1(0.0f), a2(0.0f), a3(0.0f);
    for (; i < end; i += step) {
      if (!Log) prefetch_step(y + i);  // log-softmax's sum reads dy alone: y's cost it 20-30%
      prefetch_step(dy + i);
      a0 = bwd_term<Log>(vf::load_unaligned(y + i), vf::load_unaligned(dy + i), a0);
      a1 = bwd_term<Log>(vf::load_unaligned(y + i + W), vf::load_unaligned(dy + i + W), a1);
      a2 = bwd_term<Log>(vf::load_unaligned(y + i + 2 * W), vf::load_unaligned(dy + i + 2 * W), a2);
      a3 = bwd_term<Log>(vf::load_unaligned(y + i + 3 * W), vf::load_unaligned(dy + i + 3 * W), a3);
    }
    acc.add(a0);
    acc.add(a1);
    acc.add(a2);
    acc.add(a3);
  }
  vf a(0.0f);
  for (; i + W <= n; i += W) a = bwd_term<Log>(vf::load_unaligned(y + i), vf::load_unaligned(dy + i), a);
  if (i < n) a = bwd_term<Log>(isa_ops::load_tail(y + i, n - i, 0.0f), isa_ops::load_tail(dy + i, n - i, 0.0f), a);
  acc.add(a);
  const double s = acc.total();
  return std::isfinite(s) ? s : bwd_sum_wide<Log>(y, dy, n, 1);
}

// s: bwd_float_sum of the row's sum.
template <bool Log>
inline vf bwd_out_float(vf y, vf dy, vf s) {
  if (Log) return xsimd::fnma(exp_nonpos(y), s, dy);
  const vf h = y * xsimd::fms(dy, vf(0.5f), s);
  return h + h;
}
template <bool Log>
inline vf bwd_out(vf y, vf dy, vf s, const double *sum, std::size_t s_step) {
  if (Log && __builtin_expect(xsimd::any(y > vf(0.0f)), 0)) return log_bwd_out_wide(y, dy, sum, s_step);
  return bwd_out_float<Log>(y, dy, s);
}

template <bool Log>
inline void bwd_write(const float *y, const float *dy, float *dx, std::size_t n, double sum) {
  if (!bwd_float_ok(sum)) return bwd_write_wide<Log>(y, dy, dx, n, 1, sum);
  const vf s(bwd_float_sum<Log>(sum));
  std::size_t i = 0;
  for (; i + 2 * W <= n; i += 2 * W) {
    prefetch_step<false, false, 2>(y + i);
    prefetch_step<false, false, 2>(dy + i);
    prefetch_step<false, true, 2>(dx + i);
    const vf o0 = bwd_out<Log>(vf::load_unaligned(y + i), vf::load_unaligned(dy + i), s, &sum, 0);
    const vf o1 = bwd_out<Log>(vf::load_unaligned(y + i + W), vf::load_unaligned(dy + i + W), s, &sum, 0);
    o0.store_unaligned(dx + i);
    o1.store_unaligned(dx + i + W);
  }
  for (; i + W <= n; i += W)
    bwd_out<Log>(vf::load_unaligned(y + i), vf::load_unaligned(dy + i), s, &sum, 0).store_unaligned(dx + i);
  if (i < n)
    isa_ops::store_tail(dx + i,
                        bwd_out<Log>(isa_ops::load_tail(y + i, n - i, 0.0f), isa_ops::load_tail(dy + i, n - i, 0.0f),
                                     s, &sum, 0),
                        n - i);
}

template <bool Log>
void softmax_backward_rows_t(const float *y, const float *dy, float *dx, std::size_t rows, std::size_t n) {
  for (std::size_t r = 0; r < rows; ++r, y += n, dy += n, dx += n) bwd_write<Log>(y, dy, dx, n, bwd_sum<Log>(y, dy, n));
}

void softmax_backward_rows(const float *y, const float *dy, float *dx, std::size_t rows, std::size_t n, bool log) {
  if (log)
    softmax_backward_rows_t<true>(y, dy, dx, rows, n);
  else
    softmax_backward_rows_t<false>(y, dy, dx, rows, n);
}

double softmax_backward_chunk_sum(const float *y, const float *dy, std::size_t n, bool log) {
  return log ? bwd_sum<true>(y, dy, n) : bwd_sum<false>(y, dy, n);
}

void softmax_backward_chunk_write(const float *y, const float *dy, float *dx, std::size_t n, double sum, bool log) {
  if (log)
    bwd_write<true>(y, dy, dx, n, sum);
  else
    bwd_write<false>(y, dy, dx, n, sum);
}

// Columns: the block is walked row by row (each row a contiguous run of width
// floats), the per-column sums in float registers flushed to double every
// kFlush rows. With scratch, the sum pass also copies y's and dy's block into
// it, row-major, whole vectors (zeros past the width), and the write reads the
// copies: a block's rows, a power of two apart, share cache sets and would be
// gone by then. The write then prefetches the next block's rows and, from
// memory, stores around the caches, as the forward column passes do.
template <bool Log, bool Copy>
void softmax_backward_cols_t(const float *y, const float *dy, float *dx, std::size_t n, std::size_t stride,
                             std::size_t width, float *scratch, bool stream) {
  constexpr std::size_t kMaxVecs = col_block::kMaxVecs;
  const std::size_t vecs = (width + W - 1) / W, whole = width / W;  // whole: no lane test
  const std::size_t pitch = vecs * W;                                // a copied row
  float *const ys = scratch, *const dys = Copy ? scratch + n * pitch : nullptr;
  auto lanes = [&](std::size_t v) { return min_size(W, width - v * W); };
  vf part[kMaxVecs], s[kMaxVecs];
  wide_sum acc[kMaxVecs];
  for (std::size_t v = 0; v < vecs; ++v) acc[v] = wide_sum{};
  for (std::size_t r = 0; r < n;) {
    const std::size_t end = r + min_size(n - r, kFlush);
    for (std::size_t v = 0; v < vecs; ++v) part[v] = vf(0.0f);
    for (; r < end; ++r) {
      std::size_t v = 0;
      for (; v < whole; ++v) {
        const vf a = vf::load_unaligned(y + r * stride + v * W), b = vf::load_unaligned(dy + r * stride + v * W);
        if (Copy) {
          a.store_unaligned(ys + r * pitch + v * W);
          b.store_unaligned(dys + r * pitch + v * W);
        }
        part[v] = bwd_term<Log>(a, b, part[v]);
      }
      for (; v < vecs; ++v) {
        const col_vec cy{y + v * W, stride, lanes(v)}, cd{dy + v * W, stride, lanes(v)};
        const vf a = cy.load(r, 0.0f), b = cd.load(r, 0.0f);
        if (Copy) {
          a.store_unaligned(ys + r * pitch + v * W);
          b.store_unaligned(dys + r * pitch + v * W);
        }
        part[v] = bwd_term<Log>(a, b, part[v]);
      }
    }
    for (std::size_t v = 0; v < vecs; ++v) acc[v].add(part[v]);
  }
  // Each column's sum in double, a column whose float blocks overflowed again
  // term by term; a block with a sum past the float form, all in double.
  double sd[kMaxVecs * W];
  bool float_ok = true;
  for (std::size_t v = 0; v < vecs; ++v) {
    wide_lanes(acc[v], sd + v * W);
    alignas(64) float f[W] = {};
    for (std::size_t l = 0; l < lanes(v); ++l) {
      double &c = sd[v * W + l];
      if (!std::isfinite(c)) c = bwd_sum_wide<Log>(y + v * W + l, dy + v * W + l, n, stride);
      float_ok = float_ok && bwd_float_ok(c);
      f[l] = bwd_float_sum<Log>(c);
    }
    s[v] = vf::load_aligned(f);
  }
  if (!float_ok) {
    for (std::size_t j = 0; j < width; ++j) bwd_write_wide<Log>(y + j, dy + j, dx + j, n, stride, sd[j]);
    return;
  }
  const bool around = Copy && stream && reinterpret_cast<std::uintptr_t>(dx) % sizeof(vf) == 0 &&
                      (stride * sizeof(float)) % sizeof(vf) == 0;
  for (std::size_t r = 0; r < n; ++r) {
    std::size_t v = 0;
    for (; v < whole; ++v) {
      const std::size_t at = r * stride + v * W;
      const vf a = Copy ? vf::load_unaligned(ys + r * pitch + v * W) : vf::load_unaligned(y + at);
      const vf b = Copy ? vf::load_unaligned(dys + r * pitch + v * W) : vf::load_unaligned(dy + at);
      if (Copy) {  // the next block's rows (never faults, past the end neither)
        __builtin_prefetch(y + at + width);
        __builtin_prefetch(dy + at + width);
      }
      const vf o = bwd_out<Log>(a, b, s[v], sd + v * W, 1);
      if (around) isa_ops::store_stream(dx + at, o);
      else o.store_unaligned(dx + at);
    }
    for (; v < vecs; ++v) {
      const col_vec cy{y + v * W, stride, lanes(v)}, cd{dy + v * W, stride, lanes(v)};
      const vf a = Copy ? vf::load_unaligned(ys + r * pitch + v * W) : cy.load(r, 0.0f);
      const vf b = Copy ? vf::load_unaligned(dys + r * pitch + v * W) : cd.load(r, 0.0f);
      col_store(dx + r * stride + v * W, bwd_out<Log>(a, b, s[v], sd + v * W, 1), lanes(v));
    }
  }
  if (around) isa_ops::stream_fence();
}

void softmax_backward_cols(const float *y, const float *dy, float *dx, std::size_t n, std::size_t stride,
                           std::size_t width, bool log, float *scratch, bool stream) {
  if (scratch) {
    if (log) softmax_backward_cols_t<true, true>(y, dy, dx, n, stride, width, scratch, stream);
    else softmax_backward_cols_t<false, true>(y, dy, dx, n, stride, width, scratch, stream);
  } else {
    if (log) softmax_backward_cols_t<true, false>(y, dy, dx, n, stride, width, nullptr, false);
    else softmax_backward_cols_t<false, false>(y, dy, dx, n, stride, width, nullptr, false);
  }
}

// Short columns (n <= isa_ops::kShortBackwardRows, inner > 1): each step of
// columns sums its n rows (in float blocks of kFlush, then double: the bits of
// softmax_backward_cols) and writes them while they are still in L1, with no
// copy. A vector whose sums leave the float form takes the double form lane
// by lane, as a block does.
template <bool Log>
__attribute__((noinline, cold)) void short_bwd_wide(const float *y, const float *dy, float *dx, std::size_t n,
                                                    std::size_t inner, std::size_t lanes, vf s) {
  alignas(64) float f[W];
  s.store_aligned(f);
  for (std::size_t l = 0; l < lanes; ++l) {
    const double c = std::isfinite(f[l]) ? f[l] : bwd_sum_wide<Log>(y + l, dy + l, n, inner);
    bwd_write_wide<Log>(y + l, dy + l, dx + l, n, inner, c);
  }
}
// A log-softmax vector with a y > 0, its lanes' sums in s.
__attribute__((noinline, cold)) inline vf short_log_bwd_wide(vf y, vf dy, vf s) {
  alignas(64) float f[W];
  s.store_aligned(f);
  double sd[W];
  for (std::size_t l = 0; l < W; ++l) sd[l] = f[l];
  return log_bwd_out_wide(y, dy, sd, 1);
}

// N: n where it is known at compile time (up to isa_ops::kShortColumns,
// unrolled: 12-17% faster at [4096, 4, 16]), 0 elsewhere.
template <std::size_t N, bool Log, bool Stream, bool Full, std::size_t V = 1>
__attribute__((always_inline)) inline void short_bwd_step(const float *y, const float *dy, float *dx,
                                                          std::size_t rows, std::size_t inner, std::size_t lanes) {
  const std::size_t n = N ? N : rows;
  auto load = [&](const float *p) { return Full ? vf::load_unaligned(p) : isa_ops::load_tail(p, lanes, 0.0f); };
  auto block = [&](std::size_t r, std::size_t end, vf *s) {
    for (std::size_t v = 0; v < V; ++v) s[v] = vf(0.0f);
    for (; r < end; ++r) {
      if (!Log) prefetch_region(y + r * inner, V * sizeof(vf));
      prefetch_region(dy + r * inner, V * sizeof(vf));
      for (std::size_t v = 0; v < V; ++v)
        s[v] = bwd_term<Log>(load(y + r * inner + v * W), load(dy + r * inner + v * W), s[v]);
    }
  };
  vf s[V];
  if (n <= kFlush) {
    block(0, n, s);  // one float block: its double sum is the float one
  } else {
    wide_sum acc[V] = {};
    vf b[V];
    for (std::size_t r = 0; r < n; r += kFlush) {
      block(r, min_size(n, r + kFlush), b);
      for (std::size_t v = 0; v < V; ++v) acc[v].add(b[v]);
    }
    for (std::size_t v = 0; v < V; ++v) s[v] = col_sums_f32(acc[v]);
  }
  bool finite = true;
  for (std::size_t v = 0; v < V; ++v) finite = finite && xsimd::all(xsimd::abs(s[v]) <= vf(__FLT_MAX__));
  if (__builtin_expect(!finite, 0)) {
    for (std::size_t v = 0; v < V; ++v) short_bwd_wide<Log>(y + v * W, dy + v * W, dx + v * W, n, inner, lanes, s[v]);
    return;
  }
  vf f[V];
  for (std::size_t v = 0; v < V; ++v) f[v] = Log ? s[v] : s[v] * vf(0.5f);  // bwd_float_sum
  for (std::size_t r = 0; r < n; ++r)
    for (std::size_t v = 0; v < V; ++v) {
      const std::size_t at = r * inner + v * W;
      const vf a = load(y + at), b = load(dy + at);
      const vf out = Log && __builtin_expect(xsimd::any(a > vf(0.0f)), 0) ? short_log_bwd_wide(a, b, s[v])
                                                                          : bwd_out_float<Log>(a, b, f[v]);
      if (Stream && Full) isa_ops::store_stream(dx + at, out);
      else col_store<Full>(dx + at, out, lanes);
    }
}

// Vectors of columns a step takes at once (kLineVectors a line): a 64-byte
// line of each row (AVX2 +44-65% at [16, 5, 65536], against half a line), two
// lines where n is a run-time count (at [8, 21, 16384] AVX-512 +27-44%, AVX2
// +16-42%).
template <std::size_t N, bool Log, bool Stream>
void short_bwd_of(const float *y, const float *dy, float *dx, std::size_t n, std::size_t inner, std::size_t width) {
  constexpr std::size_t V = N == 0 ? 2 * kLineVectors : kLineVectors;
  std::size_t j = 0;
  for (; j + V * W <= width; j += V * W) short_bwd_step<N, Log, Stream, true, V>(y + j, dy + j, dx + j, n, inner, W);
  for (; j + W <= width; j += W) short_bwd_step<N, Log, Stream, true>(y + j, dy + j, dx + j, n, inner, W);
  if (j < width) short_bwd_step<N, Log, Stream, false>(y + j, dy + j, dx + j, n, inner, width - j);
  if (Stream) isa_ops::stream_fence();
}

template <std::size_t N>
void short_bwd_n(const float *y, const float *dy, float *dx, std::size_t n, std::size_t inner, std::size_t width,
                 bool log, bool stream) {
  if (log) stream ? short_bwd_of<N, true, true>(y, dy, dx, n, inner, width) : short_bwd_of<N, true, false>(y, dy, dx, n, inner, width);
  else stream ? short_bwd_of<N, false, true>(y, dy, dx, n, inner, width) : short_bwd_of<N, false, false>(y, dy, dx, n, inner, width);
}

void short_cols_backward(const float *y, const float *dy, float *dx, std::size_t n, std::size_t inner,
                         std::size_t width, bool log, bool stream) {
  if (n > isa_ops::kShortColumns) return short_bwd_n<0>(y, dy, dx, n, inner, width, log, stream);
  with_short_rows(n, [&](auto rows) { short_bwd_n<decltype(rows)::value>(y, dy, dx, n, inner, width, log, stream); });
}

// ---------------------------------------------------------------------------
// Soft targets: per row sum_c w t' (m - x[c]) and sum_c w t', t' = keep * t + add.

inline void soft_sums(const float *x, const float *t, std::size_t n, const float *w, float m, float keep, float add,
                      double *dist, double *mass) {
  const vf vm(m), vk(keep), va(add);
  wide_sum ad{}, am{};
  std::size_t i = 0;
  while (i < n) {
    const std::size_t end = i + min_size(n - i, kFlush * W);
    vf m0(0.0f);
    for (; i + W <= end; i += W) {
      vf wt = xsimd::fma(vf::load_unaligned(t + i), vk, va);
      if (w) wt *= vf::load_unaligned(w + i);
      add_smooth_terms(ad, vm, vf::load_unaligned(x + i), wt);  // in double: see row_smooth_sum
      m0 += wt;
    }
    if (i < end) {
      const std::size_t k = end - i;
      vf wt = xsimd::fma(isa_ops::load_tail(t + i, k, 0.0f), vk, va) * lane_mask(k);
      if (w) wt *= isa_ops::load_tail(w + i, k, 0.0f);
      add_smooth_terms(ad, vm, isa_ops::load_tail(x + i, k, m), wt);
      m0 += wt;
      i = end;
    }
    am.add(m0);
  }
  *dist = ad.total();
  *mass = am.total();
}

inline soft_stats soft_span(const float *x, const float *t, std::size_t n, const float *w, float keep, float add) {
  soft_stats st;
  max_sum ms;
  if (n >= kOnePassShortest && max_sum_one_pass(x, n, &ms)) {
    st.max = ms.max;
    st.sum = ms.sum;
  } else {
    st.max = chunk_max(x, n);
    st.sum = row_exp_sum<kStoreNone>(x, nullptr, n, st.max);
  }
  soft_sums(x, t, n, w, st.max, keep, add, &st.dist, &st.mass);
  return st;
}

void soft_ce_rows(const float *x, const float *t, std::size_t rows, std::size_t n, const float *w, float keep,
                  float add, double *loss) {
  for (std::size_t r = 0; r < rows; ++r) {
    const soft_stats st = soft_span(x + r * n, t + r * n, n, w, keep, add);
    loss[r] = st.dist + std::log(st.sum) * st.mass;
  }
}

soft_stats soft_ce_chunk(const float *x, const float *t, std::size_t n, const float *w, float keep, float add) {
  return soft_span(x, t, n, w, keep, add);
}

void soft_ce_cols(const float *x, const float *t, std::size_t n, std::size_t stride, std::size_t width,
                  const float *w, float keep, float add, double *loss, float *scratch) {
  const col_block bl(x, n, stride, width, scratch);
  vf m[col_block::kMaxVecs], pm[col_block::kMaxVecs];
  wide_sum acc[col_block::kMaxVecs], ad[col_block::kMaxVecs], am[col_block::kMaxVecs];
  for (std::size_t v = 0; v < bl.vecs; ++v) ad[v] = am[v] = wide_sum{};
  bl.max(m);
  bl.exp_sums(m, nullptr, acc);
  const vf vk(keep), va(add);
  for (std::size_t r = 0; r < n;) {
    const std::size_t end = r + min_size(n - r, kFlush);
    for (std::size_t v = 0; v < bl.vecs; ++v) pm[v] = vf(0.0f);
    for (; r < end; ++r) {
      const vf wr(w ? w[r] : 1.0f);
      for (std::size_t v = 0; v < bl.vecs; ++v) {
        const col_vec ct{t + v * W, stride, bl.lanes(v)};
        const vf wt = xsimd::fma(ct.load(r, 0.0f), vk, va) * wr;
        add_smooth_terms(ad[v], m[v], bl.source(v).load(r, 0.0f), wt);  // in double: see row_smooth_sum
        pm[v] += wt;
      }
    }
    for (std::size_t v = 0; v < bl.vecs; ++v) am[v].add(pm[v]);
  }
  for (std::size_t v = 0; v < bl.vecs; ++v) {
    alignas(64) double s[W], d[W], ms[W];
    wide_lanes(acc[v], s);
    wide_lanes(ad[v], d);
    wide_lanes(am[v], ms);
    for (std::size_t l = 0; l < bl.lanes(v); ++l) loss[v * W + l] = d[l] + std::log(s[l]) * ms[l];
  }
}

// ---------------------------------------------------------------------------

constexpr kernel_table make_table(softkit_isa isa) {
  return kernel_table{isa,
                      exp_nonpositive,
                      exp_summed,
                      isa_ops::kOnePassHigh,
                      softmax_rows,
                      log_softmax_rows,
                      logsumexp_rows,
                      stats_rows,
                      isa_ops::nll_sum,
                      chunk_max,
                      softmax_chunk_exp,
                      scaled_chunk_exp<isa_ops>(0),
                      scale,
                      stats_chunk,
                      log_softmax_chunk_write,
                      isa_ops::kExpAgain ? softmax_chunk_write : nullptr,
                      log_shift_chunk,
                      log_shifted_write,
                      softmax_cols,
                      log_softmax_cols,
                      cols_run,
                      slabs,
                      isa_ops::kSlabRows,
                      isa_ops::kWideSlabsFromMemory,
                      short_cols,
                      short_col_stats,
                      isa_ops::kShortColumns,
                      isa_ops::kShortSoftmaxRows,
                      logsumexp_cols,
                      stats_cols,
                      stats_cols_run,
                      ce_grad_rows,
                      ce_grad_scale,
                      ce_grad_cols,
                      ce_grad_short_cols,
                      softmax_backward_rows,
                      softmax_backward_chunk_sum,
                      softmax_backward_chunk_write,
                      softmax_backward_cols,
                      short_cols_backward,
                      isa_ops::kShortBackwardRows,
                      soft_ce_rows,
                      soft_ce_chunk,
                      soft_ce_cols};
}
