#include "driver.h"

#include <algorithm>
#include <cmath>
#include <cstddef>
#include <cstdlib>
#include <cstring>
#include <limits>
#include <memory>
#include <new>
#include <vector>

#include "dispatch.h"
#include "driver_common.h"
#include "kernels.h"
#include "threading.h"
#include "tuning.h"

namespace softkit {
namespace {


// PyTorch's logsumexp of a row whose sum came out NaN.
float logsumexp_special(const float *x, std::size_t n, std::size_t stride) {
  bool pos_inf = false;
  for (std::size_t i = 0; i < n; ++i) {
    const float v = x[i * stride];
    if (v != v) return v;
    if (v == kInf) pos_inf = true;
  }
  return pos_inf ? kInf : -kInf;
}

// From this many long rows on, softmax past L2 may take each exp again
// (softmax_long_rows), and a log-softmax in cache takes the chunk stats with
// the writes a row behind. Below it, where the tuning says so, the shifted
// passes: with few rows, most threads would hold a single row, whose writes
// no later pass can take along (see tuning.cpp). By shape and CPU, never by
// threads.
constexpr std::size_t kRowsBehind = 4;

// Long rows in two passes from x: each chunk's stats (one pass where the
// one-pass sums hold), then the write from x: log-softmax's y = (x - max) -
// log(sum), or with soft softmax's y = exp(x - max) * (1 / sum)
// (kernel_table::softmax_chunk_write). In cache with whole rows per thread, a
// chunk's pass also writes the same chunk of the row before (log-softmax
// 32 x 50257: +24%); else (from memory, or rows split between threads) the
// stats of every chunk first and the writes after: the same arithmetic either way.
void rows_from_stats(const kernel_table &k, const float *x, float *y, std::size_t outer, std::size_t n, int threads,
                     bool soft) {
  const chunking ch(n);
  std::vector<span_stats> parts(outer * ch.chunks);
  std::vector<float> max(outer), of_sum(outer);  // of_sum: 1 / sum (soft) or log(sum)
  const auto row_done = [&](std::size_t o) {
    const row_total t = combine(&parts[o * ch.chunks], ch.chunks);
    max[o] = t.max;
    of_sum[o] = static_cast<float>(soft ? 1.0 / t.sum : std::log(t.sum));
  };
  const auto write_of = [&](std::size_t it) {
    chunk_side w;
    w.exp_write = soft;
    w.write_x = x + ch.offset(it);
    w.write_y = y + ch.offset(it);
    w.write_n = ch.span(it);
    w.a = max[it / ch.chunks];
    w.b = of_sum[it / ch.chunks];
    return w;
  };
  const auto write_alone = [&](const chunk_side &w) {
    (soft ? k.softmax_chunk_write : k.log_softmax_chunk_write)(w.write_x, w.write_y, w.write_n, w.a, w.b);
  };
  if (write_fusion(outer, n, threads) == fuse::max_write) {
    parallel_ranges(outer, threads, [&](std::size_t b, std::size_t e) {
      for (std::size_t o = b; o < e; ++o) {
        for (std::size_t it = o * ch.chunks; it < (o + 1) * ch.chunks; ++it) {
          const chunk_side w = o > b ? write_of(it - ch.chunks) : chunk_side{};
          parts[it] = k.stats_chunk(x + ch.offset(it), ch.span(it), nullptr, false, &w);
        }
        row_done(o);
      }
      for (std::size_t it = (e - 1) * ch.chunks; it < e * ch.chunks; ++it) write_alone(write_of(it));
    });
    return;
  }
  parts = chunk_stats(k, x, outer, ch, nullptr, false, threads);
  for (std::size_t o = 0; o < outer; ++o) row_done(o);
  parallel_ranges(parts.size(), threads, [&](std::size_t b, std::size_t e) {
    for (std::size_t it = b; it < e; ++it) write_alone(write_of(it));
  });
}

// Softmax over long rows whose x and y together outgrow an L2 of 2 MiB, from
// kRowsBehind rows on, where the ISA takes each exp again (kernel_table::
// softmax_chunk_write) and the tuning says so: rows_from_stats, rather than
// the exps stored in y and read back. AVX-512, 1 thread, Intel: 32 x 50257
// +13-21%, 8 x 50257 +15-19%, 4 x 131072 +19%, 16 x 20000 +19%, from memory
// (64 x 50257, 16 x 262144) +4-15%; with fewer rows or in L2, -1 to -6% (the
// last row's exps again, on their own). Zen 5: -12 to -16% (tuning.cpp).
constexpr std::size_t kExpAgainElements = std::size_t{1} << 18;

// inner == 1, rows of more than kRowChunk: each chunk's exps (to its own max,
// or scaled) go to y, then one factor per chunk moves them to the row's
// softmax (many rows past 2 MiB: rows_from_stats).
//
// Out of place, where the ISA has it, each chunk's exp pass finds its own max
// (kernel_table::softmax_chunk_exp_scaled) instead of reading the next
// chunk's along. Its exps are exp(x) * 2^-k: the factor 2^k exp(-max) / sum
// brings them to the row's softmax unless that factor is below the normal
// floats, where an exp above 1 (they reach e^88) times it could be a normal
// output: such a chunk (a row whose max lies 87 above where the chunk's first
// values had put k) takes each exp again from x.
void softmax_long_rows(const kernel_table &k, const float *x, float *y, std::size_t outer, std::size_t n,
                       int threads) {
  if (k.softmax_chunk_write && active_tuning().softmax_exp_again && outer >= kRowsBehind &&
      outer * n > kExpAgainElements) {
    rows_from_stats(k, x, y, outer, n, threads, true);
    return;
  }
  const bool scaled = k.softmax_chunk_exp_scaled && k.softmax_chunk_write && x != y;
  const chunking ch(n);
  std::vector<span_stats> parts(outer * ch.chunks);
  std::vector<float> factor(parts.size());
  std::vector<char> zero(parts.size()), again(parts.size());
  std::vector<double> shift(scaled ? parts.size() : 0);
  std::vector<row_total> rows(outer);
  const auto row_done = [&](std::size_t o) {
    const std::size_t first = o * ch.chunks;
    rows[o] = softmax_factors(&parts[first], ch.chunks, 1.0, &factor[first], &zero[first],
                              scaled ? &shift[first] : nullptr);
    if (scaled)
      for (std::size_t it = first; it < first + ch.chunks; ++it)
        again[it] = shift[it] != parts[it].max && factor[it] < std::numeric_limits<float>::min();
  };
  const auto write = [&](std::size_t it, chunk_side &side) {
    if (zero[it]) {
      std::memset(y + ch.offset(it), 0, ch.span(it) * sizeof(float));
      return;
    }
    if (again[it]) {
      const row_total &t = rows[it / ch.chunks];
      k.softmax_chunk_write(x + ch.offset(it), y + ch.offset(it), ch.span(it), t.max, static_cast<float>(1.0 / t.sum));
      return;
    }
    side.write_y = y + ch.offset(it);
    side.write_n = ch.span(it);
    side.a = factor[it];
  };
  if (!scaled) {
    walk_long_rows(k, x, ch, outer, threads, chunk_exp_pass(k, x, y, ch, parts.data()), row_done, write);
    return;
  }
  const auto exp_pass = [&](std::size_t it, float, chunk_side *side) {
    parts[it].sum = k.softmax_chunk_exp_scaled(x + ch.offset(it), y + ch.offset(it), ch.span(it), &parts[it].max,
                                               &shift[it], side);
  };
  walk_long_rows(k, x, ch, outer, threads, exp_pass, row_done, write, false);
}

// inner == 1, rows of more than kRowChunk, in cache, fewer than kRowsBehind
// rows where the tuning says so: the first pass over each chunk finds its sum
// and leaves x - chunk max in y (a store hidden behind its exps), the last is
// y -= shift in place.
void log_softmax_shifted_rows(const kernel_table &k, const float *x, float *y, std::size_t outer, std::size_t n,
                              int threads) {
  const chunking ch(n);
  std::vector<span_stats> parts(outer * ch.chunks);
  std::vector<row_total> rows(outer);
  std::vector<float> log_sum(outer), shift(parts.size());
  const auto row_done = [&](std::size_t o) {
    rows[o] = combine(&parts[o * ch.chunks], ch.chunks);
    log_sum[o] = static_cast<float>(std::log(rows[o].sum));
    for (std::size_t it = o * ch.chunks; it < (o + 1) * ch.chunks; ++it)
      shift[it] = static_cast<float>((static_cast<double>(rows[o].max) - parts[it].max) + log_sum[o]);
  };
  const auto first = [&](std::size_t it, float max, chunk_side *side) {
    parts[it].max = max;
    parts[it].sum = k.log_shift_chunk(x + ch.offset(it), y + ch.offset(it), ch.span(it), max, side);
  };
  const auto write = [&](std::size_t it, chunk_side &side) {
    const std::size_t o = it / ch.chunks;
    if (parts[it].max == -kInf) {  // nothing above -inf: -inf in a finite row, else NaN (as PyTorch)
      const float fill = rows[o].finite() ? -kInf : std::numeric_limits<float>::quiet_NaN();
      std::fill(y + ch.offset(it), y + ch.offset(it) + ch.span(it), fill);
      return;
    }
    side.write_x = x + ch.offset(it);
    side.write_y = y + ch.offset(it);
    side.write_n = ch.span(it);
    side.a = rows[o].max;
    side.b = log_sum[o];
    side.c = shift[it];
  };
  walk_long_rows(k, x, ch, outer, threads, first, row_done, write);
}

// inner == 1, rows of more than kRowChunk: y = (x - row max) - log_sum from x
// after the stats (rows_from_stats).
void log_softmax_long_rows(const kernel_table &k, const float *x, float *y, std::size_t outer, std::size_t n,
                           int threads) {
  const bool cold = outer * n > kColdElements;
  if (!cold && outer < kRowsBehind && active_tuning().log_shifted_few_rows) {
    log_softmax_shifted_rows(k, x, y, outer, n, threads);
    return;
  }
  rows_from_stats(k, x, y, outer, n, threads, false);
}

// --- cross-entropy

struct ce_setup {
  const float *logits;
  const int64_t *targets;
  std::size_t classes, inner;
  const float *weights;
  int64_t ignore_index;
  double smoothing;
  double weight_total;  // sum of the class weights (or classes): the smoothing term's log_sum factor
  // No weights, no smoothing, one loss out (MEAN or SUM), rows or column
  // blocks: the walk checks each target as it reads it (plain_losses), instead
  // of a pass of its own before.
  bool plain;
};

// The common case: adds the losses of `count` samples whose logits start at x,
// sample_stride apart, their classes class_stride apart (kernel_table::nll_sum,
// then here without a branch per sample, all where the ISA has no gather, or
// the samples the kernel leaves). A target
// out of range is flagged, and reads class 0 instead. Four partial sums, so
// that the adds do not wait on each other.
inline void plain_losses(const kernel_table &k, const ce_setup &s, const int64_t *targets, const float *x,
                         std::size_t count, std::size_t sample_stride, std::size_t class_stride, const float *max,
                         const float *log_sum, loss_sum *acc) {
  if (k.nll_sum) {
    const std::size_t done =
        k.nll_sum(x, targets, count, sample_stride, class_stride, s.classes, s.ignore_index, max, log_sum, acc);
    targets += done, x += done * sample_stride, max += done, log_sum += done, count -= done;
  }
  loss_sum a[4];  // in registers: a sum in memory would chain each add through a store
  auto add = [&](std::size_t i, loss_sum &to) {
    const int64_t t = targets[i];
    const bool keep = t != s.ignore_index, in_range = static_cast<uint64_t>(t) < s.classes;
    to.bad_target |= keep & !in_range;
    const std::size_t c = (keep & in_range) ? static_cast<std::size_t>(t) : 0;
    const double l = (static_cast<double>(max[i]) - x[i * sample_stride + c * class_stride]) + log_sum[i];
    to.loss += keep ? l : 0.0;
    to.weight += keep ? 1.0 : 0.0;
  };
  std::size_t i = 0;
  for (; i + 4 <= count; i += 4) {
    add(i, a[0]);
    add(i + 1, a[1]);
    add(i + 2, a[2]);
    add(i + 3, a[3]);
  }
  for (; i < count; ++i) add(i, a[0]);
  acc->loss += (a[0].loss + a[1].loss) + (a[2].loss + a[3].loss);
  acc->weight += (a[0].weight + a[1].weight) + (a[2].weight + a[3].weight);
  acc->bad_target |= a[0].bad_target | a[1].bad_target | a[2].bad_target | a[3].bad_target;
}

// PyTorch's per-sample loss from the sample's logits (x[c * stride]), their
// max, log(sum exp(x - max)) and smoothing sum, with the sample's weight for
// the mean's divisor. An ignored sample reads no logit.
inline double sample_loss(const ce_setup &s, int64_t t, const float *x, std::size_t stride, double max,
                          double log_sum, double smooth, loss_sum *acc) {
  if (t == s.ignore_index) return 0.0;
  const double w = s.weights ? s.weights[t] : 1.0;
  const double nll = (max - x[static_cast<std::size_t>(t) * stride]) + log_sum;
  double loss = w * nll;
  if (s.smoothing > 0.0) {
    double all_classes = smooth + log_sum * s.weight_total;  // sum_c w[c] * -log p[c]
    if (all_classes != all_classes)  // an infinite weight on the max's class (see nll_by_class)
      all_classes = nll_by_class(x, s.classes, stride, max, log_sum,
                                 [&](std::size_t c) { return s.weights ? s.weights[c] : 1.0; });
    loss = (1.0 - s.smoothing) * loss + s.smoothing / static_cast<double>(s.classes) * all_classes;
  }
  acc->loss += loss;
  acc->weight += w;
  return loss;
}

// inner == 1, rows short enough for one kernel call each.
void cross_entropy_rows(const kernel_table &k, const ce_setup &s, std::size_t outer, float *per_sample,
                        std::vector<loss_sum> &partial, int threads) {
  const bool smooth = s.smoothing > 0.0;
  const std::size_t item_rows = rows_per_item(s.classes), items = ceil_div(outer, item_rows);
  partial.assign(items, {});
  parallel_ranges(items, threads, [&](std::size_t b, std::size_t e) {
    float max[kMaxItemRows], log_sum[kMaxItemRows];
    double smooth_sum[kMaxItemRows];
    for (std::size_t it = b; it < e; ++it) {
      const std::size_t r0 = it * item_rows, count = min_size(item_rows, outer - r0);
      const float *x = s.logits + r0 * s.classes;
      k.stats_rows(x, count, s.classes, s.weights, smooth, max, log_sum, smooth_sum);
      loss_sum acc;
      if (s.plain) plain_losses(k, s, s.targets + r0, x, count, s.classes, 1, max, log_sum, &acc);
      else
        for (std::size_t r = 0; r < count; ++r) {
          const int64_t t = s.targets[r0 + r];
          const double l =
              sample_loss(s, t, x + r * s.classes, 1, max[r], log_sum[r], smooth ? smooth_sum[r] : 0.0, &acc);
          if (per_sample) per_sample[r0 + r] = static_cast<float>(l);
        }
      partial[it] = acc;
    }
  });
}

void cross_entropy_cols(const kernel_table &k, const ce_setup &s, std::size_t outer, float *per_sample,
                        std::vector<loss_sum> &partial, int threads) {
  const bool smooth = s.smoothing > 0.0;
  const column_blocks cb(s.classes, s.inner);
  partial.assign(cb.items(outer), {});
  parallel_ranges(cb.items(outer), threads, [&](std::size_t b, std::size_t e) {
    column_stats(k, s.logits, cb, b, e, s.weights, smooth,
                 [&](std::size_t it, const float *max, const float *log_sum, const double *smooth_sum) {
                   const std::size_t o = it / cb.blocks, j0 = cb.column(it), width = cb.width_of(it);
                   const float *x = s.logits + cb.offset(it);
                   loss_sum acc;
                   if (s.plain) plain_losses(k, s, s.targets + o * s.inner + j0, x, width, 1, s.inner, max, log_sum, &acc);
                   else
                     for (std::size_t l = 0; l < width; ++l) {
                       const std::size_t sample = o * s.inner + j0 + l;
                       const int64_t t = s.targets[sample];
                       const double v = sample_loss(s, t, x + l, s.inner, max[l], log_sum[l],
                                                    smooth_sum ? smooth_sum[l] : 0.0, &acc);
                       if (per_sample) per_sample[sample] = static_cast<float>(v);
                     }
                   partial[it] = acc;
                 });
  });
}

// inner == 1, rows of more than kRowChunk classes.
void cross_entropy_long_rows(const kernel_table &k, const ce_setup &s, std::size_t outer, float *per_sample,
                             std::vector<loss_sum> &partial, int threads) {
  const bool smooth = s.smoothing > 0.0;
  const chunking ch(s.classes);
  const std::vector<span_stats> parts = chunk_stats(k, s.logits, outer, ch, s.weights, smooth, threads);
  partial.assign(outer, {});
  for (std::size_t o = 0; o < outer; ++o) {
    const float *x = s.logits + o * s.classes;
    const span_stats *p = &parts[o * ch.chunks];
    const row_total t = combine(p, ch.chunks);
    double smooth_sum = 0.0;
    if (smooth) {
      // Each chunk's sum of w * (chunk max - x) moved to the row max.
      for (std::size_t c = 0; c < ch.chunks; ++c) {
        const float *w = s.weights ? s.weights + ch.begin(c) : nullptr;
        if (p[c].max == -kInf && t.max != -kInf) {
          for (std::size_t i = 0; i < ch.length(c); ++i)
            smooth_sum += (w ? w[i] : 1.0) * (static_cast<double>(t.max) - x[ch.begin(c) + i]);
          continue;
        }
        double chunk_weight = static_cast<double>(ch.length(c));
        if (w) {
          chunk_weight = 0.0;
          for (std::size_t i = 0; i < ch.length(c); ++i) chunk_weight += w[i];
        }
        smooth_sum += p[c].smooth + (static_cast<double>(t.max) - p[c].max) * chunk_weight;
      }
    }
    const int64_t target = s.targets[o];
    const double l = sample_loss(s, target, x, 1, t.max, std::log(t.sum), smooth_sum, &partial[o]);
    if (per_sample) per_sample[o] = static_cast<float>(l);
  }
}

}  // namespace

float *thread_scratch(std::size_t floats) {
  struct free_deleter {
    void operator()(float *p) const { std::free(p); }
  };
  thread_local std::unique_ptr<float, free_deleter> buffer;
  thread_local std::size_t size = 0;
  if (floats > size) {
    buffer.reset();  // the old buffer goes first: never both at once
    size = 0;        // and none, should the allocation throw
    buffer.reset(static_cast<float *>(std::aligned_alloc(64, (floats * sizeof(float) + 63) / 64 * 64)));
    if (!buffer) throw std::bad_alloc();
    size = floats;
  }
  return buffer.get();
}

softkit_status run_softmax(normalize kind, const float *x, float *y, std::size_t outer, std::size_t n,
                           std::size_t inner) {
  std::size_t total = 0;
  if (softkit_status st = count_elements(outer, n, inner, &total)) return st;
  if (total == 0) return SOFTKIT_OK;
  if (!x || !y) return SOFTKIT_ERROR_NULL_POINTER;
  if (x != y && overlaps(x, total * sizeof(float), y, total * sizeof(float))) return SOFTKIT_ERROR_INVALID_ARGUMENT;

  const kernel_table &k = *active_kernels();
  const int threads = threads_for(total);
  const bool soft = kind == normalize::softmax;
  if (inner > 1 && softmax_short_columns(k, n, inner, total)) {
    const bool stream = short_columns_stream(total, y, inner);
    short_column_spans(outer, n, inner, kShortColumnSpan, threads, [&](std::size_t, std::size_t at, std::size_t width) {
      k.short_cols(x + at, y + at, n, inner, width, !soft, stream);
    });
  } else if (inner > 1 && softmax_slabs(k, soft, outer, n, inner, total, threads, y)) {
    // Whole slabs, or past kColBlock columns their column chunks (slab_width).
    const std::size_t width = slab_width(inner);
    const bool by_rows = slabs_by_rows(k, n, width, total);
    // From memory, two whole slabs of scratch per thread keep the exps in cache.
    const bool cold = width == inner && total > kColdElements && 2 * n * inner <= kColScratch;
    parallel_ranges(outer, threads, [&](std::size_t b, std::size_t e) {
      float *const scratch = cold ? thread_scratch(2 * n * inner) : nullptr;
      for (std::size_t c = 0; c < inner; c += width)
        k.slabs(x + b * n * inner + c, y + b * n * inner + c, e - b, n, min_size(width, inner - c), inner, !soft,
                by_rows, scratch);
    });
  } else if (inner > 1) {
    const column_blocks cb(n, inner, y);
    const auto cols = soft ? k.softmax_cols : k.log_softmax_cols;
    const bool stream = total > kColdElements;  // from memory: the output may go around the caches
    // Pipelined where it was measured faster: blocks copied to scratch, columns
    // of kColRunShortest or more, and from memory only where y's rows stream
    // (stores that go through the caches to memory stall the pipeline's exps).
    const bool pipelined = k.cols_run && column_run(cb) && (!stream || cb.aligned_rows);
    parallel_ranges(cb.items(outer), threads, [&](std::size_t b, std::size_t e) {
      if (pipelined) {
        k.cols_run(x, y, n, inner, column_blocks::place, &cb, b, e, cb.run_scratch(), cb.slot(), stream, !soft);
        return;
      }
      float *const scratch = cb.scratch();
      for (std::size_t it = b; it < e; ++it)
        cols(x + cb.offset(it), y + cb.offset(it), n, inner, cb.width_of(it), scratch, stream);
    });
  } else if (n <= kRowChunk) {
    const auto rows = soft ? k.softmax_rows : k.log_softmax_rows;
    const bool from_memory = total > kColdElements;
    parallel_ranges(outer, threads,
                    [&](std::size_t b, std::size_t e) { rows(x + b * n, y + b * n, e - b, n, from_memory); });
  } else if (soft) {
    softmax_long_rows(k, x, y, outer, n, threads);
  } else {
    log_softmax_long_rows(k, x, y, outer, n, threads);
  }
  return SOFTKIT_OK;
}

softkit_status run_logsumexp(const float *x, float *out, std::size_t outer, std::size_t n, std::size_t inner) {
  std::size_t total = 0, results = 0;
  if (softkit_status st = count_elements(outer, n, inner, &total)) return st;
  if (softkit_status st = count_elements(outer, 1, inner, &results)) return st;
  if (results == 0) return SOFTKIT_OK;
  if (!out || (total && !x)) return SOFTKIT_ERROR_NULL_POINTER;
  if (total == 0) {  // sum over an empty dim: log(0)
    for (std::size_t i = 0; i < results; ++i) out[i] = -kInf;
    return SOFTKIT_OK;
  }
  if (overlaps(x, total * sizeof(float), out, results * sizeof(float))) return SOFTKIT_ERROR_INVALID_ARGUMENT;

  const kernel_table &k = *active_kernels();
  const int threads = threads_for(total);
  if (inner > 1) {
    const column_blocks cb(n, inner);
    parallel_ranges(cb.items(outer), threads, [&](std::size_t b, std::size_t e) {
      if (column_stats_run(k, cb)) {  // logsumexp_cols' arithmetic, pipelined
        column_stats(k, x, cb, b, e, nullptr, false,
                     [&](std::size_t it, const float *max, const float *log_sum, const double *) {
                       const std::size_t j0 = cb.column(it);
                       float *o = out + (it / cb.blocks) * inner + j0;
                       for (std::size_t l = 0; l < cb.width_of(it); ++l) {
                         const float v = max[l] + log_sum[l];
                         o[l] = v == v ? v : logsumexp_special(x + cb.offset(it) + l, n, inner);
                       }
                     });
        return;
      }
      float *const scratch = cb.scratch();
      for (std::size_t it = b; it < e; ++it)
        k.logsumexp_cols(x + cb.offset(it), out + (it / cb.blocks) * inner + cb.column(it), n, inner,
                         cb.width_of(it), scratch);
    });
  } else if (n <= kRowChunk) {
    parallel_ranges(outer, threads, [&](std::size_t b, std::size_t e) { k.logsumexp_rows(x + b * n, out + b, e - b, n); });
  } else {
    const chunking ch(n);
    const std::vector<span_stats> parts = chunk_stats(k, x, outer, ch, nullptr, false, threads);
    for (std::size_t o = 0; o < outer; ++o) {
      const row_total t = combine(&parts[o * ch.chunks], ch.chunks);
      const double v = t.max + std::log(t.sum);
      out[o] = v == v ? static_cast<float>(v) : logsumexp_special(x + o * n, n, 1);
    }
  }
  return SOFTKIT_OK;
}

softkit_status run_cross_entropy(const float *logits, const int64_t *targets, std::size_t outer,
                                 std::size_t classes, std::size_t inner, const softkit_cross_entropy_options *opts,
                                 float *loss) {
  ce_options o;
  if (softkit_status st = read_options(opts, classes, &o)) return st;

  std::size_t total = 0, samples = 0;
  if (softkit_status st = count_cross_entropy(outer, classes, inner, true, &total, &samples)) return st;
  const bool none = o.reduction == SOFTKIT_REDUCTION_NONE;
  if (samples == 0) return reduce_empty_batch(o.reduction, loss), SOFTKIT_OK;
  if (!logits || !targets || !loss) return SOFTKIT_ERROR_NULL_POINTER;
  const std::size_t loss_bytes = (none ? samples : 1) * sizeof(float);
  if (overlaps(loss, loss_bytes, logits, total * sizeof(float)) ||
      overlaps(loss, loss_bytes, targets, samples * sizeof(int64_t)) ||
      (o.class_weights && overlaps(loss, loss_bytes, o.class_weights, classes * sizeof(float))))
    return SOFTKIT_ERROR_INVALID_ARGUMENT;
  // Every target is checked before anything is written: here, or (plain) by
  // the walk, whose one output, the reduced loss, is written after it.
  const bool plain = !none && (inner > 1 || classes <= kRowChunk) && !o.class_weights && !(o.label_smoothing > 0.0);
  if (!plain && !targets_in_range(targets, samples, classes, o.ignore_index))
    return SOFTKIT_ERROR_TARGET_OUT_OF_RANGE;

  ce_setup s{logits, targets, classes, inner, o.class_weights, o.ignore_index, o.label_smoothing,
             static_cast<double>(classes), plain};
  if (s.weights && s.smoothing > 0.0) {
    s.weight_total = 0.0;
    for (std::size_t c = 0; c < classes; ++c) s.weight_total += s.weights[c];
  }
  const kernel_table &k = *active_kernels();
  const int threads = threads_for(total);
  float *per_sample = none ? loss : nullptr;
  std::vector<loss_sum> partial;
  if (inner > 1)
    cross_entropy_cols(k, s, outer, per_sample, partial, threads);
  else if (classes <= kRowChunk)
    cross_entropy_rows(k, s, outer, per_sample, partial, threads);
  else
    cross_entropy_long_rows(k, s, outer, per_sample, partial, threads);

  if (!none) {
    loss_sum sum;
    for (const loss_sum &p : partial) {
      sum.loss += p.loss;
      sum.weight += p.weight;
      sum.bad_target |= p.bad_target;
    }
    if (sum.bad_target) return SOFTKIT_ERROR_TARGET_OUT_OF_RANGE;
    *loss = static_cast<float>(o.reduction == SOFTKIT_REDUCTION_SUM ? sum.loss : sum.loss / sum.weight);
  }
  return SOFTKIT_OK;
}

}  // namespace softkit
