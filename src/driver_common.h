// Internal helpers shared by the driver's translation units (driver.cpp, the
// forward ops; driver_backward.cpp, the gradients and soft targets): size and
// overlap checks, the split of long rows into chunks and of inner > 1 tensors
// into column blocks, and the combination of the chunks' (max, sum) pairs.
// Every split depends on the shape alone, never on the thread count.
#ifndef SOFTKIT_SRC_DRIVER_COMMON_H
#define SOFTKIT_SRC_DRIVER_COMMON_H

#include <cmath>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <limits>
#include <memory>
#include <type_traits>
#include <vector>

#include "kernels.h"
#include "softkit/softkit.h"
#include "threading.h"

namespace softkit {

constexpr float kInf = std::numeric_limits<float>::infinity();
constexpr double kNaN = std::numeric_limits<double>::quiet_NaN();

// The options struct as softkit 1.0 defined it.
constexpr std::size_t kCrossEntropyOptionsV1Size =
    offsetof(softkit_cross_entropy_options, class_weights) + sizeof(const float *);

// An enum argument as the int the C caller passed. A C caller may pass any
// value; in C++ reading an enum that holds no enumerator is undefined, so the
// bytes are copied instead.
template <class E>
inline int enum_value(const E &e) {
  static_assert(sizeof(E) == sizeof(int), "C enums are int-sized here");
  int v;
  std::memcpy(&v, &e, sizeof v);
  return v;
}

// The cross-entropy options, defaults filled in, reduction as an int.
struct ce_options {
  int reduction = SOFTKIT_REDUCTION_MEAN;
  int64_t ignore_index = -100;
  float label_smoothing = 0.0f;
  const float *class_weights = nullptr;
};

// Reads and checks the options as every cross-entropy entry point does. Callers
// compiled against a later header pass a bigger struct; its v1 part is what is
// read (a member added in 1.x must be read only when struct_size covers it).
inline softkit_status read_options(const softkit_cross_entropy_options *opts, std::size_t classes, ce_options *o) {
  *o = ce_options{};
  if (opts) {
    if (opts->struct_size < kCrossEntropyOptionsV1Size) return SOFTKIT_ERROR_INVALID_ARGUMENT;
    o->reduction = enum_value(opts->reduction);
    o->ignore_index = opts->ignore_index;
    o->label_smoothing = opts->label_smoothing;
    o->class_weights = opts->class_weights;
  }
  if (o->reduction != SOFTKIT_REDUCTION_MEAN && o->reduction != SOFTKIT_REDUCTION_SUM &&
      o->reduction != SOFTKIT_REDUCTION_NONE)
    return SOFTKIT_ERROR_INVALID_ARGUMENT;
  if (!(o->label_smoothing >= 0.0f && o->label_smoothing <= 1.0f)) return SOFTKIT_ERROR_INVALID_ARGUMENT;
  if (classes == 0) return SOFTKIT_ERROR_INVALID_ARGUMENT;
  return SOFTKIT_OK;
}

inline std::size_t ceil_div(std::size_t a, std::size_t b) { return (a + b - 1) / b; }

// sum_c coef(c) * ((max - x[c * stride]) + log_sum), class by class, in double.
// The cross-entropy sums split this as sum coef (max - x) + log_sum * sum coef;
// with an infinite coefficient on the class of the max (a class weight, a
// target probability) the split form makes inf * 0 = NaN where PyTorch's
// -sum coef log p is +-inf. A split sum that comes out NaN is taken again here:
// it is NaN here too when the inputs make it so.
template <class Coef>
inline double nll_by_class(const float *x, std::size_t n, std::size_t stride, double max, double log_sum, Coef &&coef) {
  double sum = 0.0;
  for (std::size_t c = 0; c < n; ++c) sum += coef(c) * ((max - x[c * stride]) + log_sum);
  return sum;
}
inline std::size_t min_size(std::size_t a, std::size_t b) { return a < b ? a : b; }

// Rows per work item of the row-wise cross-entropy passes: at most
// kMaxItemRows (their per-row results live on the stack), and few enough that a
// short batch of long rows still spreads over the threads. Shape alone decides.
constexpr std::size_t kMaxItemRows = 256;
inline std::size_t rows_per_item(std::size_t n) {
  const std::size_t rows = kGrainElements / (n ? n : 1);
  return rows < 1 ? 1 : rows > kMaxItemRows ? kMaxItemRows : rows;
}

// outer * n * inner elements, and their bytes, must fit a size_t. A zero
// dimension means no work, whatever the others are.
inline softkit_status count_elements(std::size_t outer, std::size_t n, std::size_t inner, std::size_t *total) {
  *total = 0;
  if (outer == 0 || n == 0 || inner == 0) return SOFTKIT_OK;
  std::size_t t = 0;
  if (__builtin_mul_overflow(outer, n, &t) || __builtin_mul_overflow(t, inner, &t) ||
      t > std::numeric_limits<std::size_t>::max() / sizeof(float))
    return SOFTKIT_ERROR_SIZE_OVERFLOW;
  *total = t;
  return SOFTKIT_OK;
}

// The shape of a cross-entropy call: the logits' element count and the number
// of samples (outer * inner); with class-index targets, their bytes must fit too.
inline softkit_status count_cross_entropy(std::size_t outer, std::size_t classes, std::size_t inner,
                                          bool index_targets, std::size_t *total, std::size_t *samples) {
  if (softkit_status st = count_elements(outer, classes, inner, total)) return st;
  if (softkit_status st = count_elements(outer, 1, inner, samples)) return st;
  if (index_targets && *samples > std::numeric_limits<std::size_t>::max() / sizeof(int64_t))
    return SOFTKIT_ERROR_SIZE_OVERFLOW;
  return SOFTKIT_OK;
}

// PyTorch's loss of an empty batch: MEAN NaN, SUM 0; NONE writes nothing.
inline void reduce_empty_batch(int reduction, float *loss) {
  if (reduction != SOFTKIT_REDUCTION_NONE && loss)
    *loss = reduction == SOFTKIT_REDUCTION_MEAN ? std::numeric_limits<float>::quiet_NaN() : 0.0f;
}

// Whether every target is a class index or ignore_index. Without a branch per
// target, so the check runs at the speed of reading them.
inline bool targets_in_range(const int64_t *targets, std::size_t samples, std::size_t classes, int64_t ignore_index) {
  bool bad = false;
  for (std::size_t i = 0; i < samples; ++i)
    bad |= (targets[i] != ignore_index) & (static_cast<uint64_t>(targets[i]) >= classes);
  return !bad;
}

inline bool overlaps(const void *a, std::size_t a_bytes, const void *b, std::size_t b_bytes) {
  const auto a0 = reinterpret_cast<std::uintptr_t>(a), b0 = reinterpret_cast<std::uintptr_t>(b);
  return a0 < b0 + b_bytes && b0 < a0 + a_bytes;
}

// --- long rows: (max, sum) pairs of the chunks combined in chunk order.

struct row_total {
  float max;       // the row's max (NaN if a chunk max is NaN)
  double sum;      // sum of exp(x - max)
  // No +inf nor NaN anywhere in the row (a NaN beside a finite value leaves
  // the max finite and the sum NaN): its chunks of only -inf then have p = 0.
  bool finite() const { return std::isfinite(max) && sum == sum; }
};

// A chunk with nothing above -inf reports either max -inf with sum NaN
// (exp(-inf - -inf): the softmax chunks, the scalar kernels) or the lowest float
// with sum 0 (the SIMD stats); either contributes nothing once another chunk has
// a larger max. A NaN in a chunk makes its max or its sum NaN.
// shift: where a chunk's sum is of exp(x - shift[c]) rather than of
// exp(x - max) (kernel_table::softmax_chunk_exp_scaled); null: the max.
inline double chunk_shift(const span_stats *parts, const double *shift, std::size_t c) {
  return shift ? shift[c] : static_cast<double>(parts[c].max);
}
inline row_total combine(const span_stats *parts, std::size_t count, const double *shift = nullptr) {
  row_total t{-kInf, 0.0};
  for (std::size_t c = 0; c < count; ++c) {
    if (parts[c].max != parts[c].max) return {parts[c].max, kNaN};
    if (parts[c].max > t.max) t.max = parts[c].max;
  }
  for (std::size_t c = 0; c < count; ++c) {
    if (parts[c].max == -kInf && t.max != -kInf) continue;
    t.sum += parts[c].sum * std::exp(chunk_shift(parts, shift, c) - t.max);
  }
  return t;
}

// Each chunk's factor to its row's softmax, scale * exp(chunk shift - row max) / sum,
// and whether it holds nothing above -inf in a finite row under a finite scale
// (zeros there: p = 0). Elsewhere the factor is NaN, as PyTorch's row is: +inf
// or NaN in the row, or an infinite scale times p = 0.
inline row_total softmax_factors(const span_stats *parts, std::size_t chunks, double scale, float *factor, char *zero,
                                 const double *shift = nullptr) {
  const row_total t = combine(parts, chunks, shift);
  for (std::size_t c = 0; c < chunks; ++c) {
    zero[c] = parts[c].max == -kInf && t.finite() && std::isfinite(scale);
    factor[c] = static_cast<float>(scale * (std::exp(chunk_shift(parts, shift, c) - t.max) / t.sum));
  }
  return t;
}

// A long row's chunks: the count kRowChunk asks for, rounded up to a multiple
// of 4, of one length (the least multiple of 64 floats that covers the row in
// that count; the last chunk is shorter by what is left, and the rounding can
// leave fewer chunks on rows of millions). A pipelined pass carries the next
// chunk's max along: beside a chunk of kRowChunk, a short last one left most of
// that max unhidden (50257 = 3 x 16384 + 1105 read 15279 elements per row on
// their own; four chunks of 12608: 32 x 50257 softmax +3-7%). Chunks of one
// length split evenly across threads only in a count the threads divide: a
// row of 7 chunks ran 10% slower on 2 threads than the uneven 6 x 16384 + 1696.
constexpr std::size_t kChunkCountStep = 4;
inline std::size_t chunk_length(std::size_t row) {
  const std::size_t count = ceil_div(ceil_div(row, kRowChunk), kChunkCountStep) * kChunkCountStep;
  return row ? ceil_div(ceil_div(row, count), 64) * 64 : kRowChunk;
}
struct chunking {
  std::size_t n, size, chunks;  // chunks = ceil(n / size)
  explicit chunking(std::size_t row) : n(row), size(chunk_length(row)), chunks(ceil_div(row, size)) {}
  std::size_t begin(std::size_t c) const { return c * size; }
  std::size_t length(std::size_t c) const { return min_size(size, n - c * size); }
  // Item it of the [rows, chunks] grid: chunk it % chunks of row it / chunks.
  std::size_t offset(std::size_t it) const { return (it / chunks) * n + begin(it % chunks); }
  std::size_t span(std::size_t it) const { return length(it % chunks); }
};

// How much of a long row's work one chunk's exp pass takes along.
enum class fuse {
  none,      // nothing: each chunk's max is a pass of its own (data from memory)
  max,       // the max of the chunk after it
  max_write  // also the last pass of the same chunk of the row before
};

// Runs one thread's items [b, e) of the (row, chunk) grid in order: exp(it,
// max, side) is item it's exp pass. With fuse::max_write (the range then holds
// whole rows) row_done(o) runs once row o's chunks are all through, item it's
// pass also does the last pass of item it - chunks, which write(item, side)
// describes, and the last row's last passes run on their own. The results do
// not depend on the range nor on the fusion.
// A chunk_side's write on its own: softmax's scaling or log-softmax's last pass.
inline void run_write(const kernel_table &k, const chunk_side &side) {
  if (side.write_n == 0) return;
  if (side.write_x)
    k.log_shifted_write(side.write_x, side.write_y, side.write_n, side.a, side.b, side.c);
  else
    k.scale(side.write_y, side.write_n, side.a);
}

// Without maxima (an exp pass that finds its own, softmax_chunk_exp_scaled)
// exp gets max 0 and no next chunk.
template <class Exp, class RowDone, class Write>
void walk_chunks(const kernel_table &k, const float *x, const chunking &ch, std::size_t b, std::size_t e,
                 fuse how, Exp &&exp, RowDone &&row_done, Write &&write, bool maxima = true) {
  if (b >= e) return;
  const bool writes = how == fuse::max_write;
  float max = maxima ? k.chunk_max(x + ch.offset(b), ch.span(b)) : 0.0f;
  for (std::size_t it = b; it < e; ++it) {
    chunk_side side;
    side.pipelined = how != fuse::none;
    if (maxima && it + 1 < e && how != fuse::none) {
      side.next = x + ch.offset(it + 1);
      side.next_n = ch.span(it + 1);
    }
    if (writes && it >= b + ch.chunks) write(it - ch.chunks, side);
    exp(it, max, &side);
    if (maxima && it + 1 < e)
      max = how != fuse::none ? side.next_max : k.chunk_max(x + ch.offset(it + 1), ch.span(it + 1));
    if (writes && (it + 1) % ch.chunks == 0) row_done(it / ch.chunks);
  }
  if (!writes) return;
  // The last row's writes from its last chunk down: those are still in L2
  // (1 x 262144: +2-7%).
  for (std::size_t it = e; it-- > e - ch.chunks;) {
    chunk_side side;
    write(it, side);
    run_write(k, side);
  }
}

// Whether long rows (or slabs) go to threads whole: the threads then share
// them evenly enough (else each row's chunks are split among them).
inline bool whole_rows(std::size_t outer, int threads) {
  const std::size_t t = static_cast<std::size_t>(threads);
  return t <= 1 || outer % t == 0 || outer >= 4 * t;
}

// The fusion for a long-row op that writes: in cache and whole rows per
// thread, everything; from memory, nothing.
inline fuse write_fusion(std::size_t outer, std::size_t n, int threads) {
  if (outer * n > kColdElements) return fuse::none;
  return whole_rows(outer, threads) ? fuse::max_write : fuse::max;
}

// The first pass over all (row, chunk) items, each thread walking its range
// with `how` (none or max): exp(it, max, side) per item.
template <class Exp>
void first_pass(const kernel_table &k, const float *x, const chunking &ch, std::size_t items, fuse how, int threads,
                Exp &&exp, bool maxima = true) {
  parallel_ranges(items, threads, [&](std::size_t b, std::size_t e) {
    walk_chunks(k, x, ch, b, e, how, exp, [](std::size_t) {}, [](std::size_t, chunk_side &) {}, maxima);
  });
}

// A long-row op that writes, over all its (row, chunk) items: with whole rows
// per thread, one walk whose exp passes carry the writes; else a first pass
// over the items, every row's row_done, and the writes on their own.
template <class Exp, class RowDone, class Write>
void walk_long_rows(const kernel_table &k, const float *x, const chunking &ch, std::size_t outer, int threads,
                    Exp &&exp, RowDone &&row_done, Write &&write, bool maxima = true) {
  const fuse how = write_fusion(outer, ch.n, threads);
  if (how == fuse::max_write) {
    parallel_ranges(outer, threads, [&](std::size_t b, std::size_t e) {
      walk_chunks(k, x, ch, b * ch.chunks, e * ch.chunks, how, exp, row_done, write, maxima);
    });
    return;
  }
  const std::size_t items = outer * ch.chunks;
  first_pass(k, x, ch, items, how, threads, exp, maxima);
  for (std::size_t o = 0; o < outer; ++o) row_done(o);
  parallel_ranges(items, threads, [&](std::size_t b, std::size_t e) {
    for (std::size_t it = b; it < e; ++it) {
      chunk_side side;
      write(it, side);
      run_write(k, side);
    }
  });
}

// Phase 1 of the long-row ops without a fused write: the stats of each (row, chunk), in parallel.
inline std::vector<span_stats> chunk_stats(const kernel_table &k, const float *x, std::size_t outer,
                                           const chunking &ch, const float *weights, bool smooth, int threads) {
  std::vector<span_stats> parts(outer * ch.chunks);
  parallel_ranges(parts.size(), threads, [&](std::size_t b, std::size_t e) {
    for (std::size_t it = b; it < e; ++it) {
      const float *w = weights ? weights + ch.begin(it % ch.chunks) : nullptr;
      parts[it] = k.stats_chunk(x + ch.offset(it), ch.span(it), w, smooth, nullptr);
    }
  });
  return parts;
}

// The exp pass of softmax-like long rows: item it's exps (to its own max) in y,
// its max and sum in parts.
inline auto chunk_exp_pass(const kernel_table &k, const float *x, float *y, const chunking &ch, span_stats *parts) {
  return [&k, x, y, &ch, parts](std::size_t it, float max, chunk_side *side) {
    parts[it].max = max;
    parts[it].sum = k.softmax_chunk_exp(x + ch.offset(it), y + ch.offset(it), ch.span(it), max, side);
  };
}

// The calling thread's scratch, 64-byte aligned (with every vector split
// across two cache lines, [8, 21, 16384] softmax ran 40% slower): it grows to
// the largest request and stays until the thread exits, at most
// kColRunSlots * kColScratch floats (3 MiB). One request's memory at a time:
// the next request may move it.
float *thread_scratch(std::size_t floats);

// Column blocks of an [outer, n, inner] tensor, inner > 1. The width depends on
// the shape alone: as wide as keeps the scratch copy in L1, at least 64 columns.
// Given the output, whose rows the blocks write, the blocks after the first
// start on a 64-byte boundary of it: the first block takes the columns up to
// the boundary (a head of 1..15), so that the writes stream whole lines, as
// they do from an aligned buffer, and the loads from an input placed alike do
// not straddle lines. Each column's arithmetic is the same wherever it falls
// in a block, so the results do not depend on the output's address.
struct column_blocks {
  static constexpr std::size_t kMinWidth = 64;
  std::size_t n, inner, width, head = 0, blocks;
  bool aligned_rows;  // out's rows start on 64 bytes once the head block is done
  column_blocks(std::size_t n_, std::size_t inner_, const float *out = nullptr) : n(n_), inner(inner_) {
    width = kColBlock;
    while (width > kMinWidth && n * width > kColScratchL1) width /= 2;
    const std::uintptr_t a = reinterpret_cast<std::uintptr_t>(out);
    aligned_rows = out && a % sizeof(float) == 0 && (inner * sizeof(float)) % 64 == 0;
    if (aligned_rows && inner > width) head = (64 - a % 64) % 64 / sizeof(float);
    blocks = (head ? 1 : 0) + ceil_div(inner - head, width);
  }
  std::size_t items(std::size_t outer) const { return outer * blocks; }
  std::size_t offset(std::size_t it) const { return (it / blocks) * n * inner + column(it); }
  std::size_t column(std::size_t it) const {
    const std::size_t j = it % blocks;
    return head ? (j == 0 ? 0 : head + (j - 1) * width) : j * width;
  }
  std::size_t width_of(std::size_t it) const {
    return head && it % blocks == 0 ? head : min_size(width, inner - column(it));
  }
  // Whether the kernels copy each block (scratch): not when the block is the
  // whole of each row (inner <= width: the block is contiguous and the passes
  // stream through x itself), nor for very long columns.
  bool copies() const { return inner > width && n * width <= kColScratch; }
  // The calling thread's (see thread_scratch), n * width floats; null where
  // there is no copy.
  float *scratch() const { return copies() ? thread_scratch(n * width) : nullptr; }
  // A pipelined run's: kColRunSlots slots of slot() floats.
  std::size_t slot() const { return n * width; }
  float *run_scratch() const { return thread_scratch(kColRunSlots * slot()); }
  // kernel_table::cols_run's place: blocks points to a column_blocks.
  static col_place place(const void *blocks, std::size_t it) {
    const column_blocks &cb = *static_cast<const column_blocks *>(blocks);
    return col_place{cb.offset(it), cb.width_of(it)};
  }
};

// Whether a column op runs its blocks as one pipelined run per thread
// (kernel_table::cols_run, stats_cols_run): where the blocks are copied and the
// columns are not short (see kColRunShortest).
inline bool column_run(const column_blocks &cb) { return cb.copies() && cb.n >= kColRunShortest; }
inline bool column_stats_run(const kernel_table &k, const column_blocks &cb) {
  return k.stats_cols_run && column_run(cb);
}
// Whether column_stats takes short columns in registers (kernel_table::short_col_stats).
inline bool column_stats_short(const kernel_table &k, const column_blocks &cb, bool smooth) {
  return cb.n <= k.short_columns && !smooth;
}

// Each column block's stats in [b, e) of x, handed to f(item, max, log_sum,
// smooth_sum) in order (smooth_sum null without smoothing): one pipelined run
// where the kernels have one (for the cross-entropy at [8, 16, 16384] 20%
// faster than the next), else short columns in registers, else block by
// block. The same bits any way.
template <class F>
void column_stats(const kernel_table &k, const float *x, const column_blocks &cb, std::size_t b, std::size_t e,
                  const float *weights, bool smooth, F &&f) {
  using Fn = std::remove_reference_t<F>;
  if (column_stats_run(k, cb)) {
    const col_stats_fn done = [](void *ctx, std::size_t it, const float *max, const float *log_sum,
                                 const double *smooth_sum) { (*static_cast<Fn *>(ctx))(it, max, log_sum, smooth_sum); };
    k.stats_cols_run(x, cb.n, cb.inner, column_blocks::place, &cb, b, e, weights, smooth, cb.run_scratch(),
                     cb.slot(), done, &f);
    return;
  }
  if (column_stats_short(k, cb, smooth)) {
    float max[kColBlock], log_sum[kColBlock];
    for (std::size_t it = b; it < e; ++it) {
      k.short_col_stats(x + cb.offset(it), cb.n, cb.inner, cb.width_of(it), max, log_sum);
      f(it, max, log_sum, nullptr);
    }
    return;
  }
  float max[kColBlock], log_sum[kColBlock];
  double smooth_sum[kColBlock];
  float *const scratch = cb.scratch();
  for (std::size_t it = b; it < e; ++it) {
    k.stats_cols(x + cb.offset(it), cb.n, cb.inner, cb.width_of(it), weights, smooth, max, log_sum, smooth_sum,
                 scratch);
    f(it, max, log_sum, smooth ? smooth_sum : nullptr);
  }
}

// Short columns (inner > 1, n within the kernel's short_columns or
// short_backward_rows) a span of up to `span` columns an item, across
// threads: f(first sample of the span, its offset in the tensor, its width).
template <class F>
void short_column_spans(std::size_t outer, std::size_t n, std::size_t inner, std::size_t span, int threads, F &&f) {
  const std::size_t spans = ceil_div(inner, span);
  parallel_ranges(outer * spans, threads, [&](std::size_t b, std::size_t e) {
    for (std::size_t it = b; it < e; ++it) {
      const std::size_t o = it / spans, j = (it % spans) * span;
      f(o * inner + j, o * n * inner + j, min_size(span, inner - j));
    }
  });
}
// Whether a softmax or log-softmax along n takes short columns (kernel_table::
// short_cols). In registers (n <= short_columns) always: faster than the slabs
// too (AVX-512 1.3-3.9x at [4096, 4, 16], [256, 3, 1000], [4096, 8, 32]).
// Past them, up to short_softmax_rows, where the slabs do not take the shape
// (AVX-512 slabs ran 5-25% faster at [512, 24, 64]) and in cache: from memory
// the column blocks' pipeline ran 10-20% faster ([8, 21, 16384], [4, 21, 65536]).
inline bool softmax_short_columns(const kernel_table &k, std::size_t n, std::size_t inner, std::size_t total) {
  if (n <= k.short_columns) return true;
  return n <= k.short_softmax_rows && total <= kColdElements && inner > column_blocks(n, inner).width;
}

// Whether slabs take each pass's rows in order, whole (kernel_table::slabs,
// by_rows), rather than 4 vectors of columns at a time down the rows, whose
// rows are too far apart for the hardware prefetchers, and whose three slabs'
// rows outgrow L1 where n is large. For slabs of 256 columns or more, where the
// ISA says (Intel family 6 model 207, one thread, against the groups):
// - tall (AVX-512): from memory 30 rows or more, [64, 100, 1000] 2.5-2.9
//   times as fast, [16, 300, 1000], [256, 30, 300], [24, 100, 1000] +20-77%
//   ([1000, 10, 512] lost 4-10%); in cache more than 64 rows, [4, 100, 1000],
//   [2, 1000, 256], [3, 300, 500], [8, 200, 256], [8, 100, 600] +10-29%
//   ([16, 40, 1000] lost 6-12%, [16, 64, 512] -4 to +3%);
// - large (AVX2, whose 16 registers spill the groups' maxima, sums and factors
//   anyway): from memory, and in cache where a slab holds 32768 floats or
//   more: log-softmax +24-118% at [64, 100, 1000], [16, 300, 1000],
//   [4, 100, 1000], [16, 40, 1000], [2, 1000, 256], [128, 40, 500]; smaller
//   slabs lost up to 22% ([8, 100, 256]), narrower ones up to 36%
//   ([64, 1000, 64]).
inline bool slabs_by_rows(const kernel_table &k, std::size_t n, std::size_t inner, std::size_t total) {
  if (inner < 256) return false;
  const bool cold = total > kColdElements;
  if (k.slabs_by_rows == slab_rows::tall) return n >= (cold ? 30 : 65);
  return k.slabs_by_rows == slab_rows::large && (cold || n * inner >= 32768);
}

// Whether a softmax or log-softmax along n (past short columns) takes a slab
// per outer index (kernel_table::slabs) rather than column blocks: where a slab
// is one block's width; and in cache any slab up to kColBlock columns, where
// the outer indices share evenly among the threads. There the column blocks
// narrow to 64 columns from n = 33 on and their copies outgrow L1: AVX-512 ran
// the slabs 17-52% faster at [8, 100, 256], [16, 64, 512], [32, 30, 512],
// [16, 40, 1000], [256, 30, 256] on one thread, 26-105% on two; AVX2's
// log-softmax 3-58% (Intel family 6 model 207). Softmax only where its slabs
// take each exp again (k.softmax_chunk_write, as the long rows): AVX2's keep
// their exps in y and ran 28% slower at [16, 40, 1000]. From memory the column
// blocks' pipeline stays ([16, 300, 1024] ran 25-41% slower as slabs,
// [128, 40, 512] 7-30%, AVX-512, AVX2); where it does not run, rows not 64
// bytes apart, the ISA says (k.wide_slabs_from_memory).
//
// Slabs by rows (slabs_by_rows) serve AVX2's softmax too, and its slabs from
// memory where the column blocks do not pipeline: there by rows softmax and
// log-softmax ran +16-118% over the blocks ([64, 100, 1000], [16, 300, 1000]).
//
// Past kColBlock columns, from memory, where the column blocks' pipeline does
// not run (rows not 64 bytes apart) and slabs would go by rows: slabs by rows
// of each outer index's column chunks (slab_width columns each, the last one
// narrower), one chunk's slabs across the outer indices in one pipeline.
// Against the column blocks one by one (A/B, 1 thread, Intel family 6 model
// 207): [8, 100, 3000] +43-75%, [4, 300, 2500] +11-39%, log-softmax
// [2, 1000, 1100] +6-23%; [16, 64, 1500], [32, 50, 2000], [8, 30, 5000] -4 to
// +12%, AVX2's softmax at [16, 64, 1500] -11%.
inline std::size_t slab_width(std::size_t inner) {
  return inner <= kColBlock ? inner : ceil_div(ceil_div(inner, ceil_div(inner, kColBlock)), 64) * 64;
}
inline bool softmax_slabs(const kernel_table &k, bool soft, std::size_t outer, std::size_t n, std::size_t inner,
                          std::size_t total, int threads, const float *out) {
  const column_blocks cb(n, inner, out);
  if (inner <= cb.width) return true;
  if (!whole_rows(outer, threads)) return false;
  if (inner > kColBlock)
    return total > kColdElements && slabs_by_rows(k, n, slab_width(inner), total) && !cb.aligned_rows;
  const bool rows = slabs_by_rows(k, n, inner, total);
  if (soft && !k.softmax_chunk_write && !rows) return false;
  return total <= kColdElements || ((k.wide_slabs_from_memory || rows) && !cb.aligned_rows);
}

// Whether short columns' output goes around the caches: from memory, where
// its rows start on 64 bytes.
inline bool short_columns_stream(std::size_t total, const float *out, std::size_t inner) {
  return total > kColdElements && reinterpret_cast<std::uintptr_t>(out) % 64 == 0 && (inner * sizeof(float)) % 64 == 0;
}

}  // namespace softkit

#endif  // SOFTKIT_SRC_DRIVER_COMMON_H
