// The one small interface every implementation (scalar, avx2, avx512, neon)
// provides. The driver (driver.cpp) validates arguments, splits the work into
// rows, column blocks and chunks whose boundaries depend on the shape alone, and
// threads over them; a kernel only ever sees one contiguous piece.
//
// Pieces:
//   rows   - `rows` whole rows of n contiguous floats (inner == 1, n <= kRowChunk)
//   chunk  - one span of a long row (inner == 1, n > kRowChunk); the driver
//            combines the chunks' (max, sum) pairs
//   cols   - an [n, width] block of a tensor with inner > 1, rows `stride` floats
//            apart, width <= kColBlock; each column is one softmax row. The
//            caller lends scratch for a contiguous copy of the block.
#ifndef SOFTKIT_SRC_KERNELS_H
#define SOFTKIT_SRC_KERNELS_H

#include <cstddef>
#include <cstdint>

#include "softkit/softkit.h"

namespace softkit {

// Rows longer than this are processed in chunks of at most this many elements
// (of one length per row: chunking in driver_common.h). A chunk
// (64 KiB) stays in L2 between the passes over it.
constexpr std::size_t kRowChunk = std::size_t{1} << 14;
// The softmax and log-softmax passes over rows are pipelined (a row's exp pass
// also reads the next row's max and writes the previous row) while the data
// sit in cache. Above this many elements per call they come from memory, where
// separate passes, each one stream, are faster.
constexpr std::size_t kColdElements = std::size_t{1} << 21;
// Column blocks hold at most this many columns; the driver narrows them (down to
// 64) until the block, n * width floats, fits kColScratchL1, and lends scratch
// for a copy of the block when it fits kColScratch.
constexpr std::size_t kColBlock = 1024;
constexpr std::size_t kColScratchL1 = std::size_t{1} << 12;  // floats: 16 KiB
constexpr std::size_t kColScratch = std::size_t{1} << 18;    // floats: 1 MiB
// Shorter columns take their blocks one by one: kernel_table::cols_run lost
// 10-21% (log-softmax) at n = 8 on two threads.
constexpr std::size_t kColRunShortest = 12;
// Which slabs an ISA takes by rows (kernel_table::slabs, by_rows): none, the
// tall ones, or the large ones (see slabs_by_rows in driver_common.h).
enum class slab_rows : unsigned char { never, tall, large };
// The columns a thread's item of short_cols takes at once.
constexpr std::size_t kShortColumnSpan = 4096;
// A pipelined run of column blocks keeps this many blocks' copies in scratch:
// the one being copied, the one in its exp pass, the one being written.
constexpr std::size_t kColRunSlots = 3;

// Where column block `item` of a tensor lies: its first float and its width.
struct col_place {
  std::size_t offset, width;
};
using col_place_fn = col_place (*)(const void *blocks, std::size_t item);
// A finished column block's stats, its width of each (smooth_sum null without smoothing).
using col_stats_fn = void (*)(void *ctx, std::size_t item, const float *max, const float *log_sum,
                              const double *smooth_sum);

// Statistics of a span for the cross-entropy: sum of exp(x - max) and, when
// smoothing, sum over c of w[c] * (max - x[c]) (w[c] = 1 without weights).
struct span_stats {
  float max;
  double sum;
  double smooth;
};

// A sum of cross-entropy losses and of their weights; bad_target: a target
// outside [0, classes) that is not ignore_index was seen.
struct loss_sum {
  double loss = 0.0, weight = 0.0;
  bool bad_target = false;
};

// Cross-entropy gradient of one sample (one row of logits, p its softmax):
//   dx[j] = a * p[j] - b * w[j] - (j == t ? c : 0)      (w[j] = 1 without weights)
// An ignored sample has a = b = c = 0 and t = -1 (zeros, NaN where p is NaN, as PyTorch).
struct ce_grad {
  float a, b, c;
  int64_t t;
};
// The same for a span of columns, one lane per column: t the target's row as
// a float (exact where n <= short_columns), -1 for none; smooth: b may be
// nonzero (label smoothing), else it is not read.
struct ce_grad_lanes {
  const float *a, *b, *c, *t;
  bool smooth;
};

// Statistics of a span for soft-target cross-entropy, t'[c] = keep * t[c] + add:
// max, sum of exp(x - max), sum of w[c] t'[c] (max - x[c]) and sum of w[c] t'[c].
struct soft_stats {
  float max;
  double sum;
  double dist;
  double mass;
};

// Work a chunk's pass does along the way (its loads and stores hide behind
// the exps): the max of the chunk the caller processes next (next_n > 0; the
// result, as chunk_max has it, in next_max), and the last pass of a chunk whose
// row is complete (write_n > 0): softmax's write_y *= a, or with write_x
// log-softmax's log_shifted_write(write_x, write_y, write_n, a, b, c).
// (stats_chunk takes writes of its own kinds: see there.)
// The results are those of the separate passes.
struct chunk_side {
  const float *next = nullptr;
  std::size_t next_n = 0;
  float next_max = 0.0f;
  const float *write_x = nullptr;
  float *write_y = nullptr;
  std::size_t write_n = 0;
  float a = 0.0f, b = 0.0f, c = 0.0f;
  bool exp_write = false;  // stats_chunk's write is softmax_chunk_write's
  // The pass is one of a pipeline over the chunks (the driver's choice, by
  // shape): its blocks may go in another order, and so its sum's roundings.
  // Outside a pipeline there is no next chunk and no write.
  bool pipelined = false;
};

struct kernel_table {
  softkit_isa isa;

  // y = exp(x) for x <= 0 or NaN: the exp the kernels use, exposed for tests.
  // exp_nonpositive is the one whose values are output (softmax); exp_summed
  // the one of the passes that only sum their exps (see exp_poly_parts in
  // simd/kernels_simd.inl).
  void (*exp_nonpositive)(const float *x, float *y, std::size_t n);
  void (*exp_summed)(const float *x, float *y, std::size_t n);
  // exp_summed also holds its bound on [0, one_pass_high]: the one-pass sums
  // take exp(x) itself for rows whose max is at most that (see
  // max_sum_one_pass in simd/kernels_simd.inl). 0 where there are none.
  float one_pass_high;

  // --- whole rows, inner == 1
  // from_memory: the tensor is larger than kColdElements (the caller's choice,
  // by shape): separate passes rather than the pipeline.
  void (*softmax_rows)(const float *x, float *y, std::size_t rows, std::size_t n, bool from_memory);
  void (*log_softmax_rows)(const float *x, float *y, std::size_t rows, std::size_t n, bool from_memory);
  void (*logsumexp_rows)(const float *x, float *out, std::size_t rows, std::size_t n);
  // Per row: max, float log(sum exp(x - max)) and, if smooth, the smoothing sum.
  void (*stats_rows)(const float *x, std::size_t rows, std::size_t n, const float *weights, bool smooth,
                     float *max, float *log_sum, double *smooth_sum);

  // The plain cross-entropy (no weights, no smoothing) of `count` samples whose
  // max and log_sum are known: sample i's logits start at x + i * sample_stride,
  // its classes class_stride apart; adds (max[i] - x[t]) + log_sum[i] in double
  // and a weight of 1 per sample whose target t is not ignore_index, and flags
  // a target out of range. Returns how many samples, from the first, it took:
  // the driver's scalar loop does the rest, and all where the ISA has no
  // gather (nullptr).
  std::size_t (*nll_sum)(const float *x, const int64_t *targets, std::size_t count, std::size_t sample_stride,
                         std::size_t class_stride, std::size_t classes, int64_t ignore_index, const float *max,
                         const float *log_sum, loss_sum *acc);

  // --- one chunk of a long row, inner == 1
  // The chunk's max; NaN if it holds NaN and nothing above -inf.
  float (*chunk_max)(const float *x, std::size_t n);
  // y = exp(x - max), max = chunk_max(x); returns the sum of y. side may be null.
  double (*softmax_chunk_exp)(const float *x, float *y, std::size_t n, float max, chunk_side *side);
  // The same without the max beforehand: y = exp(x - shift), the chunk's max
  // (as chunk_max has it) in *max, the shift (the max, or k ln2 for an
  // integer k) in *shift; returns the sum of y. The walk gives it no next
  // chunk (side->next is not read): only a write rides along. Null where the
  // ISA has no isa_ops::exp_scaled.
  double (*softmax_chunk_exp_scaled)(const float *x, float *y, std::size_t n, float *max, double *shift,
                                     chunk_side *side);
  void (*scale)(float *y, std::size_t n, float factor);
  // The chunk's max (as chunk_max has it), sum of exp(x - max) and, if smooth,
  // smoothing sum. write: null, or another chunk for the pass to write along
  // the way, as log_softmax_chunk_write(write_x, write_y, write_n, a, b) would,
  // or with exp_write softmax_chunk_write (its other fields unused).
  span_stats (*stats_chunk)(const float *x, std::size_t n, const float *weights, bool smooth,
                            const chunk_side *write);
  // y = (x - max) - log_sum
  void (*log_softmax_chunk_write)(const float *x, float *y, std::size_t n, float max, float log_sum);
  // y = exp(x - max) * inv_sum: softmax's last pass taking each exp again,
  // from x. Null where the ISA keeps its exps instead (isa_ops::kExpAgain).
  void (*softmax_chunk_write)(const float *x, float *y, std::size_t n, float max, float inv_sum);
  // Log-softmax of a row that a thread takes alone, in cache, in two passes.
  // The first, over a chunk with max = chunk_max(x), returns the sum of
  // exp(x - max) and may leave x - max in y; for max = -inf it returns 0 and
  // leaves y alone (the caller fills it). The last writes y = (x - row_max) -
  // log_sum, from x, or from what the first left in y as y - shift, shift =
  // (row_max - max) + log_sum rounded once (then x is not read: y may have
  // overwritten it). A chunk_side's log-softmax write is this last pass.
  double (*log_shift_chunk)(const float *x, float *y, std::size_t n, float max, chunk_side *side);
  void (*log_shifted_write)(const float *x, float *y, std::size_t n, float row_max, float log_sum, float shift);

  // --- column blocks, inner > 1. scratch: n * width floats of the caller's,
  // or nullptr when even a narrow block is too large (the kernel then walks x).
  // stream: the tensor comes from memory, and the output (with scratch) may go
  // around the caches; in cache it stays there, where the caller reads it.
  void (*softmax_cols)(const float *x, float *y, std::size_t n, std::size_t stride, std::size_t width,
                       float *scratch, bool stream);
  void (*log_softmax_cols)(const float *x, float *y, std::size_t n, std::size_t stride, std::size_t width,
                           float *scratch, bool stream);
  // Blocks [begin, end) of a tensor (softmax or, with log, log-softmax), laid
  // out by place(blocks, i), pipelined: a block's exp pass also copies the
  // next block and writes the one before. The same bits as the calls above,
  // block by block. scratch: kColRunSlots * slot_size floats, slot_size >=
  // n * width of every block. Null where there is none (scalar): the driver calls the above.
  void (*cols_run)(const float *x, float *y, std::size_t n, std::size_t stride, col_place_fn place,
                   const void *blocks, std::size_t begin, std::size_t end, float *scratch, std::size_t slot_size,
                   bool stream, bool log);
  // `count` whole slabs [n, inner] one after another (inner <= kColBlock: one
  // block each): softmax or, with log, log-softmax, pipelined so that a slab's
  // exp pass also finds the next slab's column maxima and writes the previous
  // slab. scratch: null (data in cache, or column chunks: the exps stay in y
  // where the ISA keeps them), or 2 * n * inner floats for tensors from
  // memory: the exps stay there (see slab_mode), and the output is written
  // once, around the caches.
  // by_rows: each pass takes the slabs' rows in order, whole, and writes
  // through the caches (only where slabs_by_rows below says so).
  // stride: inner, or with by_rows, the row stride of a wider tensor whose
  // columns [0, inner) from x the slabs are (n * stride floats apart).
  void (*slabs)(const float *x, float *y, std::size_t count, std::size_t n, std::size_t inner, std::size_t stride,
                bool log, bool by_rows, float *scratch);
  // Which of the ISA's slabs go by rows (see slabs_by_rows in driver_common.h).
  slab_rows slabs_by_rows;
  // Slabs wider than a column block also from memory, where the rows are not
  // 64 bytes apart and the column blocks' pipeline does not run (see
  // softmax_slabs in driver_common.h).
  bool wide_slabs_from_memory;
  // Columns [0, width) of one [n, inner] tensor, n <= short_softmax_rows:
  // softmax or log-softmax. Up to short_columns rows each vector of columns
  // stays in registers (one read of x, one write of y); past them two lines
  // of each row a step go through a copy on the stack. stream: whole vectors
  // of y around the caches (y's rows 64-byte aligned), up to short_columns
  // rows. Null where there is none (scalar).
  void (*short_cols)(const float *x, float *y, std::size_t n, std::size_t inner, std::size_t width, bool log,
                     bool stream);
  // stats_cols of such columns without smoothing: max and log_sum, the same bits.
  void (*short_col_stats)(const float *x, std::size_t n, std::size_t inner, std::size_t width, float *max,
                          float *log_sum);
  std::size_t short_columns;       // the most rows short_col_stats takes, and short_cols in registers (0: none)
  std::size_t short_softmax_rows;  // the most rows short_cols takes (0: none)
  void (*logsumexp_cols)(const float *x, float *out, std::size_t n, std::size_t stride, std::size_t width,
                         float *scratch);
  void (*stats_cols)(const float *x, std::size_t n, std::size_t stride, std::size_t width, const float *weights,
                     bool smooth, float *max, float *log_sum, double *smooth_sum, float *scratch);
  // stats_cols of blocks [begin, end), pipelined as cols_run is (a block's exp
  // pass also copies the next block), each block's handed to done as it is
  // finished. Null where there is none (scalar).
  void (*stats_cols_run)(const float *x, std::size_t n, std::size_t stride, col_place_fn place, const void *blocks,
                         std::size_t begin, std::size_t end, const float *weights, bool smooth, float *scratch,
                         std::size_t slot_size, col_stats_fn done, void *ctx);

  // --- cross-entropy gradient (g: one ce_grad per row, or per column of the block)
  void (*ce_grad_rows)(const float *x, float *dx, std::size_t rows, std::size_t n, const float *weights,
                       const ce_grad *g);
  // y = y * s - b * w (w = 1 when weights is null): a chunk of a long row whose
  // exps softmax_chunk_exp left in y, moved to the row's scale.
  void (*ce_grad_scale)(float *y, std::size_t n, const float *weights, float s, float b);
  // scratch and stream as for softmax_cols.
  void (*ce_grad_cols)(const float *x, float *dx, std::size_t n, std::size_t stride, std::size_t width,
                       const float *weights, const ce_grad *g, float *scratch, bool stream);
  // Columns [0, width) of one [n, inner] tensor, n <= short_columns, each
  // vector of them in registers as short_cols takes them; g's lanes one per
  // column, stream as there. Null where there is none (scalar).
  void (*ce_grad_short_cols)(const float *x, float *dx, std::size_t n, std::size_t inner, std::size_t width,
                             const float *weights, const ce_grad_lanes *g, bool stream);

  // --- softmax / log-softmax backward; log selects log-softmax. With y the
  // forward output: softmax dx = y * (dy - sum(dy * y)), log-softmax
  // dx = dy - exp(y) * sum(dy). dx may be y or dy (elementwise write).
  void (*softmax_backward_rows)(const float *y, const float *dy, float *dx, std::size_t rows, std::size_t n,
                                bool log);
  // A chunk's sum(dy * y) (softmax) or sum(dy) (log-softmax), and the write with the row's sum.
  double (*softmax_backward_chunk_sum)(const float *y, const float *dy, std::size_t n, bool log);
  void (*softmax_backward_chunk_write)(const float *y, const float *dy, float *dx, std::size_t n, double sum,
                                       bool log);
  // scratch: 2 * n * width floats for copies of y's and dy's block, or null
  // (the kernel then walks them twice); stream as for softmax_cols.
  void (*softmax_backward_cols)(const float *y, const float *dy, float *dx, std::size_t n, std::size_t stride,
                                std::size_t width, bool log, float *scratch, bool stream);
  // Columns [0, width) of one [n, inner] tensor, n <= short_backward_rows, a
  // 64-byte line of each row a step (two past the rows the ISA unrolls): y
  // and dy read once from memory (the write finds them in L1), stream as for
  // short_cols. Null where there is none (scalar).
  void (*short_cols_backward)(const float *y, const float *dy, float *dx, std::size_t n, std::size_t inner,
                              std::size_t width, bool log, bool stream);
  std::size_t short_backward_rows;  // the most rows short_cols_backward takes (0: none)

  // --- soft-target (class probability) cross-entropy: per-row loss
  // sum_c w[c] t'[c] (log_sum_exp(x) - x[c]), t'[c] = keep * t[c] + add.
  void (*soft_ce_rows)(const float *x, const float *t, std::size_t rows, std::size_t n, const float *weights,
                       float keep, float add, double *loss);
  soft_stats (*soft_ce_chunk)(const float *x, const float *t, std::size_t n, const float *weights, float keep,
                              float add);
  void (*soft_ce_cols)(const float *x, const float *t, std::size_t n, std::size_t stride, std::size_t width,
                       const float *weights, float keep, float add, double *loss, float *scratch);
};

// Each implementation's table; nullptr when the build does not contain it.
const kernel_table *scalar_kernels();
const kernel_table *avx2_kernels();
const kernel_table *avx512_kernels();
const kernel_table *neon_kernels();

}  // namespace softkit

#endif  // SOFTKIT_SRC_KERNELS_H
