// AVX-512 (F, BW, DQ, VL) kernels. Compiled with -mavx512*: reached only through
// avx512_kernels() after dispatch.cpp has checked the CPU and the OS.
#include <immintrin.h>

#include <cmath>
#include <cstddef>
#include <cstdint>
#include <type_traits>
#include <utility>
#include <xsimd/xsimd.hpp>

#include "kernels.h"

namespace softkit {
namespace avx512_impl {

using arch = xsimd::avx512bw;

struct isa_ops {
  using vf = xsimd::batch<float, arch>;
  using vd = xsimd::batch<double, arch>;
  static __mmask16 mask(std::size_t k) { return static_cast<__mmask16>((1u << k) - 1u); }
  static vf load_tail(const float *p, std::size_t k, float fill) {
    return _mm512_mask_loadu_ps(_mm512_set1_ps(fill), mask(k), p);
  }
  static void store_tail(float *p, vf v, std::size_t k) { _mm512_mask_storeu_ps(p, mask(k), v); }
  // A store that bypasses the caches (p 64-byte aligned), for output the
  // caller will not read back soon; stream_fence orders it before returning.
  static void store_stream(float *p, vf v) { _mm512_stream_ps(p, v); }
  static void stream_fence() { _mm_sfence(); }
  static float hmax(vf v) { return _mm512_reduce_max_ps(v); }
  // Two ascending streams a row apart, one of them hitting L1 (a pass and its
  // side reading the next row), lose the prefetchers (Zen 4): descending, the
  // pass gained 2-8% on the softmax pipelines in L3 (256 x 1024, 32 x 50257)
  // and lost at most 3% on rows in L2. (It gained 15-28% on cross-entropy and
  // logsumexp at 16384 x 1000 from memory while those pipelined; they now take
  // one pass, max_sum_one_pass.)
  static constexpr bool kDescendBehindSide = true;
  // Sides from their span's first 64-byte boundary (see span_head): softmax,
  // log_softmax and the backward passes at 32 x 50257 +5-8% with the equal
  // chunks; rows on 64-byte boundaries unchanged.
  static constexpr bool kAlignSides = true;
  // The one-pass sums' highest max (see max_sum_one_pass): vscalefps takes any
  // 2^k, and kFlush terms of e^80 stay finite in a float sum.
  static constexpr float kOnePassHigh = 80.0f;
  // Log-softmax rows of 5 to 8 vectors in registers (see log_softmax_short).
  static constexpr bool kLogShortRows = true;
  // Slabs of up to kColBlock columns from memory where the rows are not 64
  // bytes apart (softmax_slabs): [64, 100, 1000], [16, 300, 1000],
  // [128, 40, 500], [32, 64, 1000], [256, 30, 300] +14-136% over the column
  // blocks block by block.
  static constexpr bool kWideSlabsFromMemory = true;
  // Softmax takes each exp again in its write where the exps would not stay
  // in L1: slabs (see slab_mode) and long rows past L2 (softmax_chunk_write).
  static constexpr bool kExpAgain = true;
  // Slabs by rows where they are tall (see slabs_by_rows in driver_common.h);
  // shorter ones keep their groups of 4 vectors, whose maxima, sums and
  // factors stay in registers.
  static constexpr slab_rows kSlabRows = slab_rows::tall;
  // Columns of up to 16 rows keep a vector of each in registers (see short_cols).
  static constexpr std::size_t kShortColumns = 16;
  // The backward's short columns (short_cols_backward): up to 24 rows, +30%
  // over the column blocks at [8, 21, 16384], +10% at 24 rows; none at 32 and
  // -30% at 64 (rows a power of two apart: 2 x 64 lines of one L1 set).
  // Softmax's short columns past kShortColumns (short_cols_any), in cache:
  // up to 24 rows, +10-60% over the column blocks at [8, 21, 2000],
  // [64, 20, 1024] and [256, 17, 256].
  static constexpr std::size_t kShortSoftmaxRows = 24;
  static constexpr std::size_t kShortBackwardRows = 24;
  // 16 rows of one vector each reduced at once, by a butterfly of shuffles:
  // lane 4j + p of the result is row j + 4p. Each row's tree is the same
  // whatever the other rows are.
  static constexpr bool kRowReduce = true;
  template <class Op>
  __attribute__((always_inline)) static vf reduce_rows(const vf *v, Op op) {
    __m512 c[8], d[4], e[2];
    for (int i = 0; i < 8; ++i)
      c[i] = op(_mm512_shuffle_f32x4(v[2 * i], v[2 * i + 1], 0x44), _mm512_shuffle_f32x4(v[2 * i], v[2 * i + 1], 0xEE));
    for (int i = 0; i < 4; ++i)
      d[i] = op(_mm512_shuffle_f32x4(c[2 * i], c[2 * i + 1], 0x88), _mm512_shuffle_f32x4(c[2 * i], c[2 * i + 1], 0xDD));
    for (int i = 0; i < 2; ++i)
      e[i] = op(_mm512_shuffle_ps(d[2 * i], d[2 * i + 1], 0x44), _mm512_shuffle_ps(d[2 * i], d[2 * i + 1], 0xEE));
    return op(_mm512_shuffle_ps(e[0], e[1], 0x88), _mm512_shuffle_ps(e[0], e[1], 0xDD));
  }
  __attribute__((always_inline)) static vf rows_max(const vf *v) {
    return reduce_rows(v, [](__m512 a, __m512 b) { return _mm512_max_ps(a, b); });
  }
  __attribute__((always_inline)) static vf rows_sum(const vf *v) {
    return reduce_rows(v, [](__m512 a, __m512 b) { return _mm512_add_ps(a, b); });
  }
  // Where row r's value is in a rows_max / rows_sum result; that value in every
  // lane; all of them, row r's in lane r.
  static std::size_t lane_of_row(std::size_t r) { return 4 * (r % 4) + r / 4; }
  static vf in_row_order(vf reduced) {
    return _mm512_permutexvar_ps(_mm512_setr_epi32(0, 4, 8, 12, 1, 5, 9, 13, 2, 6, 10, 14, 3, 7, 11, 15), reduced);
  }
  static vf row_lane(vf reduced, std::size_t r) {
    return _mm512_permutexvar_ps(_mm512_set1_epi32(static_cast<int>(lane_of_row(r))), reduced);
  }
  // v[r] lane j becomes v[j] lane r: rows of at most 16 floats turn into
  // columns, so that per-row reductions become lane-wise ones.
  static void transpose(vf (&v)[16]) {
    __m512 t[16], u[16];
    for (int i = 0; i < 16; i += 2) {  // lanes in each 128-bit block: (i, i+1) interleaved
      t[i] = _mm512_unpacklo_ps(v[i], v[i + 1]);
      t[i + 1] = _mm512_unpackhi_ps(v[i], v[i + 1]);
    }
    for (int g = 0; g < 16; g += 4) {  // u[g + q] block k: rows g..g+3 of column 4k + q
      const __m512d a = _mm512_castps_pd(t[g]), b = _mm512_castps_pd(t[g + 1]);
      const __m512d c = _mm512_castps_pd(t[g + 2]), d = _mm512_castps_pd(t[g + 3]);
      u[g] = _mm512_castpd_ps(_mm512_unpacklo_pd(a, c));
      u[g + 1] = _mm512_castpd_ps(_mm512_unpackhi_pd(a, c));
      u[g + 2] = _mm512_castpd_ps(_mm512_unpacklo_pd(b, d));
      u[g + 3] = _mm512_castpd_ps(_mm512_unpackhi_pd(b, d));
    }
    for (int q = 0; q < 4; ++q) {  // a 4 x 4 transpose of 128-bit blocks
      const __m512 v0 = _mm512_shuffle_f32x4(u[q], u[4 + q], 0x44), v1 = _mm512_shuffle_f32x4(u[q], u[4 + q], 0xEE);
      const __m512 v2 = _mm512_shuffle_f32x4(u[8 + q], u[12 + q], 0x44);
      const __m512 v3 = _mm512_shuffle_f32x4(u[8 + q], u[12 + q], 0xEE);
      v[q] = _mm512_shuffle_f32x4(v0, v2, 0x88);
      v[4 + q] = _mm512_shuffle_f32x4(v0, v2, 0xDD);
      v[8 + q] = _mm512_shuffle_f32x4(v1, v3, 0x88);
      v[12 + q] = _mm512_shuffle_f32x4(v1, v3, 0xDD);
    }
  }
  // Max and sum across the lanes, broadcast to every lane (fixed tree order).
  static vf all_max(vf v) {
    v = _mm512_max_ps(v, _mm512_shuffle_f32x4(v, v, _MM_SHUFFLE(1, 0, 3, 2)));
    v = _mm512_max_ps(v, _mm512_shuffle_f32x4(v, v, _MM_SHUFFLE(2, 3, 0, 1)));
    v = _mm512_max_ps(v, _mm512_permute_ps(v, _MM_SHUFFLE(1, 0, 3, 2)));
    return _mm512_max_ps(v, _mm512_permute_ps(v, _MM_SHUFFLE(2, 3, 0, 1)));
  }
  static vf all_sum(vf v) {
    v = _mm512_add_ps(v, _mm512_shuffle_f32x4(v, v, _MM_SHUFFLE(1, 0, 3, 2)));
    v = _mm512_add_ps(v, _mm512_shuffle_f32x4(v, v, _MM_SHUFFLE(2, 3, 0, 1)));
    v = _mm512_add_ps(v, _mm512_permute_ps(v, _MM_SHUFFLE(1, 0, 3, 2)));
    return _mm512_add_ps(v, _mm512_permute_ps(v, _MM_SHUFFLE(2, 3, 0, 1)));
  }
  static vd widen_lo(vf v) { return _mm512_cvtps_pd(_mm512_castps512_ps256(v)); }
  static vd widen_hi(vf v) { return _mm512_cvtps_pd(_mm512_extractf32x8_ps(v, 1)); }
  // kernel_table::nll_sum, 8 samples at a time: their int64 targets are the
  // lanes of one vector, checked at once, and turned into the addresses of
  // the target logits for one gather. The 8 lanes keep their own sums. Takes
  // every sample (a masked last group).
  static std::size_t nll_sum(const float *x, const int64_t *targets, std::size_t count, std::size_t sample_stride,
                             std::size_t class_stride, std::size_t classes, int64_t ignore_index, const float *max,
                             const float *log_sum, loss_sum *acc) {
    const __m512i ignore = _mm512_set1_epi64(ignore_index), limit = _mm512_set1_epi64(static_cast<int64_t>(classes));
    const __m512i cstride = _mm512_set1_epi64(static_cast<int64_t>(class_stride));
    const __m512i step = _mm512_set1_epi64(static_cast<int64_t>(8 * sample_stride));
    __m512i first = _mm512_mullo_epi64(_mm512_setr_epi64(0, 1, 2, 3, 4, 5, 6, 7),
                                       _mm512_set1_epi64(static_cast<int64_t>(sample_stride)));
    __m512d loss = _mm512_setzero_pd();
    __mmask8 bad = 0;
    std::size_t kept = 0;
    for (std::size_t i = 0; i < count; i += 8, first = _mm512_add_epi64(first, step)) {
      const __mmask8 lanes = count - i >= 8 ? 0xFF : static_cast<__mmask8>((1u << (count - i)) - 1u);
      const __m512i t = _mm512_maskz_loadu_epi64(lanes, targets + i);
      const __mmask8 keep = _mm512_mask_cmpneq_epi64_mask(lanes, t, ignore);
      const __mmask8 in_range = _mm512_cmplt_epu64_mask(t, limit);
      bad |= keep & static_cast<__mmask8>(~in_range);
      const __m512i at = _mm512_add_epi64(first, _mm512_mullo_epi64(t, cstride));
      const __m256 xt = _mm512_mask_i64gather_ps(_mm256_setzero_ps(), keep & in_range, at, x, 4);
      const __m512d m = _mm512_cvtps_pd(_mm256_maskz_loadu_ps(lanes, max + i));
      const __m512d ls = _mm512_cvtps_pd(_mm256_maskz_loadu_ps(lanes, log_sum + i));
      loss = _mm512_mask_add_pd(loss, keep, loss, _mm512_add_pd(_mm512_sub_pd(m, _mm512_cvtps_pd(xt)), ls));
      kept += static_cast<std::size_t>(__builtin_popcount(keep));
    }
    acc->loss += _mm512_reduce_add_pd(loss);
    acc->weight += static_cast<double>(kept);
    acc->bad_target = acc->bad_target || bad != 0;
    return count;
  }
  // vscalefps: p * 2^floor(k) with correct rounding into the subnormals.
  static vf scale_pow2(vf p, vf k, vf) { return _mm512_scalef_ps(p, k); }
  // exp for x <= 0 or NaN with three FMAs less than the polynomial:
  // x = (k/32) ln2 + r, |r| <= ln2/64; 2^((k mod 32)/32) from a 32-entry table
  // held in two registers (one vpermt2ps), e^r by a quadratic (minimax, 5.3e-8
  // relative), 2^floor(k/32) by vscalefps (which floors its argument itself
  // and rounds gradually into the subnormals). Adding 1.5 * 2^18, whose ulp is
  // 1/32, rounds x/ln2 to k/32 and leaves k mod 32 in the low 5 bits, which is
  // all vpermt2ps reads of an index. Within 2 ulp of the correctly rounded
  // result over [-104, 0] (1.74 ulp of the exact value; a 16-entry table and
  // a cubic, one FMA more, gave 1.07): softmax rows +8-12%, the exp pass being
  // most of them (Intel family 6 model 207).
  //
  // Outputs reduce by ln2 in two parts; the exps that are only summed (Sum)
  // by ln2 rounded to float in one FMA (see exp_poly_parts): one FMA less
  // again on the pipes the exp is bound by (+5-12% on the summing passes).
  //
  // Below -104, where the exp rounds to 0 (e^-104 < 2^-150), the lane is masked
  // off rather than clamped: a vscalefps whose result underflows takes a
  // microcode assist of about 150 cycles on Intel (family 6 model 207), and
  // the -inf padding of every row's last vector paid it: rows of 100 floats ran
  // 3.5 times slower than rows of 96. Masked-off lanes take none. NaN passes
  // the mask (not-less-than is true unordered) and stays NaN.
  template <bool Sum = false>
  static vf exp(vf x) {
    return exp_lanes<Sum>(x, _mm512_cmp_ps_mask(x, _mm512_set1_ps(-104.0f), _CMP_NLT_UQ));
  }
  // Without the mask: identical for x >= -104, and +-0 below down to about
  // -1e20, and for -inf. Further down the reduction fails and the result is
  // -inf or NaN (-1e25: -inf; -3e38: NaN). For passes that check that their
  // sum is finite, and redo the rare failures clamped. Masking here too cost
  // the long rows' passes 4-5% (one more operation on the exp's ports).
  template <bool Sum = false>
  static vf exp_unclamped(vf v) {
    return exp_lanes<Sum>(v, 0xFFFF);
  }
  // The table, 2^(j/32) for j = 0..31, in two registers.
  struct exp_table {
    __m512 lo, hi;
  };
  static exp_table table() {
    return {_mm512_setr_ps(0x1.000000p+0f, 0x1.059b0ep+0f, 0x1.0b5586p+0f, 0x1.11301ep+0f, 0x1.172b84p+0f,
                           0x1.1d4874p+0f, 0x1.2387a6p+0f, 0x1.29e9e0p+0f, 0x1.306fe0p+0f, 0x1.371a74p+0f,
                           0x1.3dea64p+0f, 0x1.44e086p+0f, 0x1.4bfdaep+0f, 0x1.5342b6p+0f, 0x1.5ab07ep+0f,
                           0x1.6247ecp+0f),
            _mm512_setr_ps(0x1.6a09e6p+0f, 0x1.71f75ep+0f, 0x1.7a1148p+0f, 0x1.82589ap+0f, 0x1.8ace54p+0f,
                           0x1.93737cp+0f, 0x1.9c4918p+0f, 0x1.a5503cp+0f, 0x1.ae89fap+0f, 0x1.b7f770p+0f,
                           0x1.c199bep+0f, 0x1.cb720ep+0f, 0x1.d5818ep+0f, 0x1.dfc974p+0f, 0x1.ea4afap+0f,
                           0x1.f50766p+0f)};
  }
  // The exp of the lanes in keep, 0 in the others; from a table times 2^-k,
  // exp(x) * 2^-k.
  template <bool Sum = false>
  static vf exp_lanes(vf v, __mmask16 keep, const exp_table &tab = table()) {
    const __m512 magic = _mm512_set1_ps(393216.0f);  // 1.5 * 2^18: rounds to k / 32
    const __m512 t = _mm512_fmadd_ps(v, _mm512_set1_ps(1.44269504f), magic);
    const __m512 k32 = _mm512_sub_ps(t, magic);
    __m512 r = _mm512_fnmadd_ps(k32, _mm512_set1_ps(0x1.62e430p-1f), v);       // float(ln2)
    if (!Sum) r = _mm512_fnmadd_ps(k32, _mm512_set1_ps(-0x1.05c610p-29f), r);  // ln2 - float(ln2)
    const __m512 table_j = _mm512_permutex2var_ps(tab.lo, _mm512_castps_si512(t), tab.hi);
    const __m512 q = _mm512_fmadd_ps(r, _mm512_set1_ps(0x1.00004ap-1f), _mm512_set1_ps(0x1.0000f6p+0f));
    const __m512 p = _mm512_fmadd_ps(_mm512_mul_ps(table_j, r), q, table_j);
    return _mm512_maskz_scalef_ps(keep, p, k32);
  }
  // exp(x) * 2^-k, |k| <= 126, for the exps softmax outputs, taken from x
  // itself rather than x - max: the exp's own reduction works from x, so the
  // result is as close as the exp is (no rounding of x - max), and 2^-k rides
  // in the table (a power of two: exact). The pass saves its subtraction, and
  // needs no max beforehand (see softmax_chunk_exp_scaled). Unclamped: below
  // k ln2 - 104 the lanes go as exp_unclamped's below -104; clamped: 0 there.
  struct exp_scaled {
    exp_table tab;
    __m512 low;
    explicit exp_scaled(int k) : tab(table()), low(_mm512_set1_ps(static_cast<float>(k * 0.6931471805599453 - 104.0))) {
      const __m512 minus_k = _mm512_set1_ps(static_cast<float>(-k));
      tab.lo = _mm512_scalef_ps(tab.lo, minus_k);
      tab.hi = _mm512_scalef_ps(tab.hi, minus_k);
    }
    template <bool Clamped>
    vf of(vf x) const {
      return exp_lanes<false>(x, Clamped ? _mm512_cmp_ps_mask(x, low, _CMP_NLT_UQ) : __mmask16(0xFFFF), tab);
    }
  };
};

#include "simd/kernels_simd.inl"
#include "simd/backward_simd.inl"

constexpr kernel_table kTable = make_table(SOFTKIT_ISA_AVX512);

}  // namespace avx512_impl

const kernel_table *avx512_kernels() { return &avx512_impl::kTable; }

}  // namespace softkit
