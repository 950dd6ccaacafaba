// The driver of the gradients (cross-entropy, softmax, log-softmax backward) and
// of the soft-target cross-entropy: argument checks, the split into rows, long-row
// chunks and column blocks (the forward's, from driver_common.h), threading, and
// the combination of partial results in a fixed order, so that results are
// bitwise identical for any thread count.
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <limits>
#include <memory>
#include <vector>

#include "dispatch.h"
#include "driver.h"
#include "driver_common.h"
#include "kernels.h"
#include "threading.h"

namespace softkit {
namespace {


// --- cross-entropy backward

struct grad_setup {
  const float *weights;
  int64_t ignore_index;
  double smoothing;      // e
  double smooth_coef;    // e / C
  double weight_total;   // W: sum of the weights, or C
  bool none;
  const float *dloss;
  double scale;          // g of every sample for MEAN and SUM

  // PyTorch's chain: grad of log_softmax's output z is
  //   gz[j] = -g (1 - e) w[t] [j == t] - g (e / C) w[j]   (0 for an ignored sample),
  // and dx[j] = gz[j] - p[j] * sum(gz).
  ce_grad of(int64_t t, std::size_t sample) const {
    // An ignored sample: g = 0 and no target. Without smoothing nothing else is
    // read (PyTorch reads no weight); with it, a = 0 * W, NaN across the row
    // where a weight is inf or NaN, as PyTorch's masked 0 * w[j] makes it.
    if (t == ignore_index) return {smoothing == 0.0 ? 0.0f : static_cast<float>(0.0 * weight_total), 0.0f, 0.0f, -1};
    const double g = none ? static_cast<double>(dloss[sample]) : scale;
    const double wt = weights ? static_cast<double>(weights[t]) : 1.0;
    if (smoothing == 0.0) {
      const double gw = g * wt;
      return {static_cast<float>(gw), 0.0f, static_cast<float>(gw), t};
    }
    const double hard = g * ((1.0 - smoothing) * wt);
    const double soft = g * smooth_coef;
    return {static_cast<float>(hard + soft * weight_total), static_cast<float>(soft), static_cast<float>(hard), t};
  }

  // of() for samples [first, first + count), one lane each (ce_grad_lanes).
  // Without smoothing, with no branch on the ignored samples: they come at
  // random, and a mispredicted branch costs more than the sample's gradient.
  void lanes(const int64_t *targets, std::size_t first, std::size_t count, float *a, float *b, float *c,
             float *t) const {
    if (smoothing != 0.0) {
      for (std::size_t l = 0; l < count; ++l) {
        const ce_grad f = of(targets[first + l], first + l);
        a[l] = f.a;
        b[l] = f.b;
        c[l] = f.c;
        t[l] = f.t >= 0 ? static_cast<float>(f.t) : -1.0f;
      }
      return;
    }
    for (std::size_t l = 0; l < count; ++l) {
      const int64_t target = targets[first + l];
      const bool ignored = target == ignore_index;
      const double g = none ? static_cast<double>(dloss[first + l]) : scale;
      const double gw = g * (weights ? static_cast<double>(weights[ignored ? 0 : target]) : 1.0);
      a[l] = c[l] = ignored ? 0.0f : static_cast<float>(gw);
      b[l] = 0.0f;
      t[l] = ignored ? -1.0f : static_cast<float>(target);
    }
  }
};

void grad_rows(const kernel_table &k, const grad_setup &s, const float *x, const int64_t *targets, float *dx,
               std::size_t outer, std::size_t n, int threads) {
  const std::size_t item_rows = rows_per_item(n);
  parallel_ranges(ceil_div(outer, item_rows), threads, [&](std::size_t b, std::size_t e) {
    ce_grad g[kMaxItemRows];
    for (std::size_t it = b; it < e; ++it) {
      const std::size_t r0 = it * item_rows, count = min_size(item_rows, outer - r0);
      for (std::size_t r = 0; r < count; ++r) g[r] = s.of(targets[r0 + r], r0 + r);
      k.ce_grad_rows(x + r0 * n, dx + r0 * n, count, n, s.weights, g);
    }
  });
}

void grad_cols(const kernel_table &k, const grad_setup &s, const float *x, const int64_t *targets, float *dx,
               std::size_t outer, std::size_t n, std::size_t inner, int threads) {
  if (n <= k.short_columns) {  // as run_softmax's short columns, kColBlock columns an item
    const bool stream = short_columns_stream(outer * n * inner, dx, inner);
    short_column_spans(outer, n, inner, kColBlock, threads, [&](std::size_t first, std::size_t at, std::size_t width) {
      float a[kColBlock], b[kColBlock], c[kColBlock], t[kColBlock];
      s.lanes(targets, first, width, a, b, c, t);
      const ce_grad_lanes g{a, b, c, t, s.smoothing != 0.0};
      k.ce_grad_short_cols(x + at, dx + at, n, inner, width, s.weights, &g, stream);
    });
    return;
  }
  const column_blocks cb(n, inner, dx);
  const bool stream = outer * n * inner > kColdElements;  // from memory: dx may go around the caches
  parallel_ranges(cb.items(outer), threads, [&](std::size_t b, std::size_t e) {
    ce_grad g[kColBlock];
    float *const scratch = cb.scratch();
    for (std::size_t it = b; it < e; ++it) {
      const std::size_t first = (it / cb.blocks) * inner + cb.column(it), width = cb.width_of(it);
      for (std::size_t l = 0; l < width; ++l) g[l] = s.of(targets[first + l], first + l);
      k.ce_grad_cols(x + cb.offset(it), dx + cb.offset(it), n, inner, width, s.weights, g, scratch, stream);
    }
  });
}

// inner == 1, rows of more than kRowChunk classes: each chunk's exps (to its own
// max) go to dx, then one factor per chunk moves them to the row's softmax.
void grad_long_rows(const kernel_table &k, const grad_setup &s, const float *x, const int64_t *targets, float *dx,
                    std::size_t outer, std::size_t n, int threads) {
  const chunking ch(n);
  std::vector<span_stats> parts(outer * ch.chunks);
  const fuse how = write_fusion(outer, n, threads) == fuse::none ? fuse::none : fuse::max;
  first_pass(k, x, ch, parts.size(), how, threads, chunk_exp_pass(k, x, dx, ch, parts.data()));
  std::vector<ce_grad> g(outer);
  std::vector<float> factor(parts.size());
  std::vector<char> zero(parts.size());
  for (std::size_t o = 0; o < outer; ++o) {
    g[o] = s.of(targets[o], o);
    const std::size_t first = o * ch.chunks;
    softmax_factors(&parts[first], ch.chunks, g[o].a, &factor[first], &zero[first]);
  }
  parallel_ranges(parts.size(), threads, [&](std::size_t b, std::size_t e) {
    for (std::size_t it = b; it < e; ++it) {
      const std::size_t o = it / ch.chunks, c = it % ch.chunks;
      const std::size_t off = o * n + ch.begin(c), len = ch.length(c);
      const float *w = s.weights ? s.weights + ch.begin(c) : nullptr;
      if (zero[it]) {
        std::memset(dx + off, 0, len * sizeof(float));
        k.ce_grad_scale(dx + off, len, w, 0.0f, g[o].b);
      } else {
        k.ce_grad_scale(dx + off, len, w, factor[it], g[o].b);
      }
      const int64_t t = g[o].t;
      if (t >= 0 && static_cast<std::size_t>(t) >= ch.begin(c) && static_cast<std::size_t>(t) < ch.begin(c) + len)
        dx[o * n + static_cast<std::size_t>(t)] -= g[o].c;
    }
  });
}

// --- soft targets

struct soft_setup {
  const float *weights;
  float keep, add;  // t' = keep * t + add
};

// One sample's loss class by class (nll_by_class, coefficients w t'), in
// double, for a sample whose split form (dist + log_sum * mass) came out NaN
// (inf * 0 where the class by class form has none) or infinite (the SIMD
// kernels sum the mass in float blocks, which overflow where w t' is near the
// float range). The kernels return no max nor log sum for it: they are taken
// here. A sample whose softmax is NaN stays NaN.
double soft_exact(const soft_setup &s, const float *x, const float *t, std::size_t n, std::size_t stride) {
  float max = -kInf;
  for (std::size_t c = 0; c < n; ++c) {
    const float v = x[c * stride];
    if (v != v) return kNaN;
    max = v > max ? v : max;
  }
  if (max == kInf || max == -kInf) return kNaN;
  double sum = 0.0;
  for (std::size_t c = 0; c < n; ++c) sum += std::exp(static_cast<double>(x[c * stride]) - max);
  return nll_by_class(x, n, stride, max, std::log(sum), [&](std::size_t c) {
    const double tp = static_cast<double>(s.keep) * t[c * stride] + s.add;
    return s.weights ? s.weights[c] * tp : tp;
  });
}

// A long row's loss from its chunks: sum_c [dist_c + (row max - chunk max) * mass_c]
// + log(sum) * mass. A chunk of all -inf (under a finite row max) is summed
// element by element: w t' (max - x) is +inf, or NaN where w t' is 0, as in PyTorch.
double soft_long_row(const soft_setup &s, const float *x, const float *t, const chunking &ch, const soft_stats *p) {
  std::vector<span_stats> mx(ch.chunks);
  for (std::size_t c = 0; c < ch.chunks; ++c) mx[c] = {p[c].max, p[c].sum, 0.0};
  const row_total tot = combine(mx.data(), ch.chunks);
  if (tot.max != tot.max) return kNaN;
  double dist = 0.0, mass = 0.0;
  for (std::size_t c = 0; c < ch.chunks; ++c) {
    mass += p[c].mass;
    if (p[c].max == -kInf && tot.max != -kInf) {
      for (std::size_t i = ch.begin(c); i < ch.begin(c) + ch.length(c); ++i) {
        const double tp = static_cast<double>(s.keep) * t[i] + s.add;
        dist += (s.weights ? s.weights[i] * tp : tp) * (static_cast<double>(tot.max) - x[i]);
      }
      continue;
    }
    dist += p[c].dist + (static_cast<double>(tot.max) - p[c].max) * p[c].mass;
  }
  return dist + std::log(tot.sum) * mass;
}

}  // namespace

softkit_status run_cross_entropy_backward(const float *logits, const int64_t *targets, std::size_t outer,
                                          std::size_t classes, std::size_t inner,
                                          const softkit_cross_entropy_options *opts, const float *dloss,
                                          float *dlogits) {
  ce_options o;
  if (softkit_status st = read_options(opts, classes, &o)) return st;
  std::size_t total = 0, samples = 0;
  if (softkit_status st = count_cross_entropy(outer, classes, inner, true, &total, &samples)) return st;
  if (samples == 0) return SOFTKIT_OK;  // no gradient element
  if (!logits || !targets || !dloss || !dlogits) return SOFTKIT_ERROR_NULL_POINTER;
  const bool none = o.reduction == SOFTKIT_REDUCTION_NONE;
  const std::size_t bytes = total * sizeof(float);
  if (overlaps(dlogits, bytes, logits, bytes) || overlaps(dlogits, bytes, targets, samples * sizeof(int64_t)) ||
      overlaps(dlogits, bytes, dloss, (none ? samples : 1) * sizeof(float)) ||
      (o.class_weights && overlaps(dlogits, bytes, o.class_weights, classes * sizeof(float))))
    return SOFTKIT_ERROR_INVALID_ARGUMENT;
  // Every target is checked before anything is written; MEAN's divisor on the way.
  // Unweighted, a count: a double sum of ones would cost 4 cycles a sample.
  double weighted = 0.0;
  std::size_t counted = 0;
  for (std::size_t i = 0; i < samples; ++i) {
    const int64_t t = targets[i];
    if (t == o.ignore_index) continue;
    if (t < 0 || static_cast<uint64_t>(t) >= classes) return SOFTKIT_ERROR_TARGET_OUT_OF_RANGE;
    if (o.class_weights) weighted += static_cast<double>(o.class_weights[t]);
    else ++counted;
  }
  const double divisor = o.class_weights ? weighted : static_cast<double>(counted);

  grad_setup s{};
  s.weights = o.class_weights;
  s.ignore_index = o.ignore_index;
  s.smoothing = o.label_smoothing;
  s.smooth_coef = s.smoothing / static_cast<double>(classes);
  s.weight_total = static_cast<double>(classes);
  if (s.weights && s.smoothing > 0.0) {
    s.weight_total = 0.0;
    for (std::size_t c = 0; c < classes; ++c) s.weight_total += s.weights[c];
  }
  s.none = none;
  s.dloss = dloss;
  // MEAN with every sample ignored: g = dloss / 0, but no sample uses it.
  s.scale = none ? 0.0 : o.reduction == SOFTKIT_REDUCTION_SUM ? static_cast<double>(dloss[0]) : dloss[0] / divisor;

  const kernel_table &k = *active_kernels();
  const int threads = threads_for(total);
  if (inner > 1)
    grad_cols(k, s, logits, targets, dlogits, outer, classes, inner, threads);
  else if (classes <= kRowChunk)
    grad_rows(k, s, logits, targets, dlogits, outer, classes, threads);
  else
    grad_long_rows(k, s, logits, targets, dlogits, outer, classes, threads);
  return SOFTKIT_OK;
}

softkit_status run_cross_entropy_probs(const float *logits, const float *target_probs, std::size_t outer,
                                       std::size_t classes, std::size_t inner,
                                       const softkit_cross_entropy_options *opts, float *loss) {
  ce_options o;
  if (softkit_status st = read_options(opts, classes, &o)) return st;
  std::size_t total = 0, samples = 0;
  if (softkit_status st = count_cross_entropy(outer, classes, inner, false, &total, &samples)) return st;
  const bool none = o.reduction == SOFTKIT_REDUCTION_NONE;
  if (samples == 0) return reduce_empty_batch(o.reduction, loss), SOFTKIT_OK;
  if (!logits || !target_probs || !loss) return SOFTKIT_ERROR_NULL_POINTER;
  const std::size_t loss_bytes = (none ? samples : 1) * sizeof(float), bytes = total * sizeof(float);
  if (overlaps(loss, loss_bytes, logits, bytes) || overlaps(loss, loss_bytes, target_probs, bytes) ||
      (o.class_weights && overlaps(loss, loss_bytes, o.class_weights, classes * sizeof(float))))
    return SOFTKIT_ERROR_INVALID_ARGUMENT;

  const soft_setup s{o.class_weights, static_cast<float>(1.0 - o.label_smoothing),
                     static_cast<float>(o.label_smoothing / static_cast<double>(classes))};
  const kernel_table &k = *active_kernels();
  const int threads = threads_for(total);
  float *per_sample = none ? loss : nullptr;
  // Per-item partial sums. Not a std::vector<double>: its out-of-line members
  // have default visibility and would show in a static libsoftkit's symbols.
  std::size_t items = 0;
  std::unique_ptr<double[]> partial;
  auto reset = [&](std::size_t n) {
    items = n;
    partial.reset(new double[n]());
  };
  if (inner > 1) {
    const column_blocks cb(classes, inner);
    reset(cb.items(outer));
    parallel_ranges(cb.items(outer), threads, [&](std::size_t b, std::size_t e) {
      double l[kColBlock];
      float *const scratch = cb.scratch();
      for (std::size_t it = b; it < e; ++it) {
        const std::size_t first = (it / cb.blocks) * inner + cb.column(it), width = cb.width_of(it);
        k.soft_ce_cols(logits + cb.offset(it), target_probs + cb.offset(it), classes, inner, width, s.weights, s.keep,
                       s.add, l, scratch);
        for (std::size_t j = 0; j < width; ++j) {
          if (!std::isfinite(l[j])) l[j] = soft_exact(s, logits + cb.offset(it) + j, target_probs + cb.offset(it) + j, classes, inner);
          partial[it] += l[j];
          if (per_sample) per_sample[first + j] = static_cast<float>(l[j]);
        }
      }
    });
  } else if (classes <= kRowChunk) {
    const std::size_t item_rows = rows_per_item(classes);
    reset(ceil_div(outer, item_rows));
    parallel_ranges(items, threads, [&](std::size_t b, std::size_t e) {
      double l[kMaxItemRows];
      for (std::size_t it = b; it < e; ++it) {
        const std::size_t r0 = it * item_rows, count = min_size(item_rows, outer - r0);
        k.soft_ce_rows(logits + r0 * classes, target_probs + r0 * classes, count, classes, s.weights, s.keep, s.add,
                       l);
        for (std::size_t r = 0; r < count; ++r) {
          if (!std::isfinite(l[r]))
            l[r] = soft_exact(s, logits + (r0 + r) * classes, target_probs + (r0 + r) * classes, classes, 1);
          partial[it] += l[r];
          if (per_sample) per_sample[r0 + r] = static_cast<float>(l[r]);
        }
      }
    });
  } else {
    const chunking ch(classes);
    std::vector<soft_stats> parts(outer * ch.chunks);
    parallel_ranges(parts.size(), threads, [&](std::size_t b, std::size_t e) {
      for (std::size_t it = b; it < e; ++it) {
        const std::size_t off = ch.offset(it);
        parts[it] = k.soft_ce_chunk(logits + off, target_probs + off, ch.span(it),
                                    s.weights ? s.weights + ch.begin(it % ch.chunks) : nullptr, s.keep, s.add);
      }
    });
    reset(outer);
    for (std::size_t r = 0; r < outer; ++r) {
      partial[r] = soft_long_row(s, logits + r * classes, target_probs + r * classes, ch, &parts[r * ch.chunks]);
      if (!std::isfinite(partial[r]))
        partial[r] = soft_exact(s, logits + r * classes, target_probs + r * classes, classes, 1);
      if (per_sample) per_sample[r] = static_cast<float>(partial[r]);
    }
  }
  if (!none) {
    double sum = 0.0;
    for (std::size_t i = 0; i < items; ++i) sum += partial[i];
    *loss = static_cast<float>(o.reduction == SOFTKIT_REDUCTION_SUM ? sum : sum / static_cast<double>(samples));
  }
  return SOFTKIT_OK;
}

softkit_status run_softmax_backward(normalize kind, const float *y, const float *dy, float *dx, std::size_t outer,
                                    std::size_t n, std::size_t inner) {
  std::size_t total = 0;
  if (softkit_status st = count_elements(outer, n, inner, &total)) return st;
  if (total == 0) return SOFTKIT_OK;
  if (!y || !dy || !dx) return SOFTKIT_ERROR_NULL_POINTER;
  const std::size_t bytes = total * sizeof(float);
  if ((dx != y && overlaps(dx, bytes, y, bytes)) || (dx != dy && overlaps(dx, bytes, dy, bytes)))
    return SOFTKIT_ERROR_INVALID_ARGUMENT;

  const kernel_table &k = *active_kernels();
  const int threads = threads_for(total);
  const bool log = kind == normalize::log_softmax;
  if (inner > 1 && n <= k.short_backward_rows) {  // as run_softmax's short columns
    const bool stream = short_columns_stream(total, dx, inner);
    short_column_spans(outer, n, inner, kShortColumnSpan, threads, [&](std::size_t, std::size_t at, std::size_t width) {
      k.short_cols_backward(y + at, dy + at, dx + at, n, inner, width, log, stream);
    });
  } else if (inner > 1) {
    const column_blocks cb(n, inner, dx);
    const bool stream = total > kColdElements;  // from memory: dx may go around the caches
    parallel_ranges(cb.items(outer), threads, [&](std::size_t b, std::size_t e) {
      float *const scratch = stream && cb.copies() ? thread_scratch(2 * n * cb.width) : nullptr;
      for (std::size_t it = b; it < e; ++it)
        k.softmax_backward_cols(y + cb.offset(it), dy + cb.offset(it), dx + cb.offset(it), n, inner, cb.width_of(it),
                                log, scratch, stream);
    });
  } else if (n <= kRowChunk) {
    parallel_ranges(outer, threads, [&](std::size_t b, std::size_t e) {
      k.softmax_backward_rows(y + b * n, dy + b * n, dx + b * n, e - b, n, log);
    });
  } else if (whole_rows(outer, threads)) {
    // Each row's write right after its sum, while its y and dy are in cache
    // (softmax backward at 32 x 50257 had read them twice from L3). The
    // chunks' sums add up in the order below: the same bits.
    const chunking ch(n);
    parallel_ranges(outer, threads, [&](std::size_t b, std::size_t e) {
      for (std::size_t o = b; o < e; ++o) {
        double sum = 0.0;
        for (std::size_t c = 0; c < ch.chunks; ++c) {
          const std::size_t off = o * n + ch.begin(c);
          sum += k.softmax_backward_chunk_sum(y + off, dy + off, ch.length(c), log);
        }
        for (std::size_t c = 0; c < ch.chunks; ++c) {
          const std::size_t off = o * n + ch.begin(c);
          k.softmax_backward_chunk_write(y + off, dy + off, dx + off, ch.length(c), sum, log);
        }
      }
    });
  } else {
    const chunking ch(n);
    std::vector<double> parts(outer * ch.chunks);
    parallel_ranges(parts.size(), threads, [&](std::size_t b, std::size_t e) {
      for (std::size_t it = b; it < e; ++it) {
        const std::size_t off = ch.offset(it);
        parts[it] = k.softmax_backward_chunk_sum(y + off, dy + off, ch.span(it), log);
      }
    });
    std::vector<double> row_sum(outer);  // in double: a sum beyond the float range still gives finite outputs
    for (std::size_t o = 0; o < outer; ++o) {
      double sum = 0.0;
      for (std::size_t c = 0; c < ch.chunks; ++c) sum += parts[o * ch.chunks + c];
      row_sum[o] = sum;
    }
    parallel_ranges(parts.size(), threads, [&](std::size_t b, std::size_t e) {
      for (std::size_t it = b; it < e; ++it) {
        const std::size_t off = ch.offset(it);
        k.softmax_backward_chunk_write(y + off, dy + off, dx + off, ch.span(it), row_sum[it / ch.chunks], log);
      }
    });
  }
  return SOFTKIT_OK;
}

}  // namespace softkit
