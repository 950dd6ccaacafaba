// AVX2 + FMA kernels. Compiled with -mavx2 -mfma: reached only through
// avx2_kernels() after dispatch.cpp has checked the CPU and the OS.
#include <immintrin.h>

#include <cmath>
#include <cstddef>
#include <cstdint>
#include <type_traits>
#include <utility>
#include <xsimd/xsimd.hpp>

#include "kernels.h"

namespace softkit {
namespace avx2_impl {

using arch = xsimd::fma3<xsimd::avx2>;

struct isa_ops {
  static constexpr bool kRowReduce = false;  // no reduce_rows: tiny rows go one by one
  using vf = xsimd::batch<float, arch>;
  using vd = xsimd::batch<double, arch>;
  static __m256i mask(std::size_t k) {
    return _mm256_cmpgt_epi32(_mm256_set1_epi32(static_cast<int>(k)), _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7));
  }
  // vmaskmovps never touches the masked-off lanes' memory, so a tail at the end
  // of a page cannot fault.
  static vf load_tail(const float *p, std::size_t k, float fill) {
    const __m256i m = mask(k);
    return _mm256_blendv_ps(_mm256_set1_ps(fill), _mm256_maskload_ps(p, m), _mm256_castsi256_ps(m));
  }
  static void store_tail(float *p, vf v, std::size_t k) { _mm256_maskstore_ps(p, mask(k), v); }
  static float hmax(vf v) {
    __m128 m = _mm_max_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    m = _mm_max_ps(m, _mm_movehl_ps(m, m));
    m = _mm_max_ss(m, _mm_movehdup_ps(m));
    return _mm_cvtss_f32(m);
  }
  // Descending (see the AVX-512 isa_ops) gained 7-12% from memory here too,
  // but cost 4-9% on logsumexp and cross-entropy rows in cache (Zen 4), when
  // those still pipelined.
  static constexpr bool kDescendBehindSide = false;
  // Sides from a 32-byte boundary gained nothing on softmax rows (a 32-byte
  // access splits a line only every other time), and the head as a field,
  // even at 0, cost them 4-8% (256 x 1024, whose rows are all aligned, too).
  static constexpr bool kAlignSides = false;
  // Log-softmax rows of 5 to 8 vectors in registers (see log_softmax_short).
  static constexpr bool kLogShortRows = false;
  // Not as AVX-512 (see there): log-softmax at [16, 300, 1000] -42%,
  // [64, 100, 1000] -18% in groups of 4 vectors; by rows (below) they do.
  static constexpr bool kWideSlabsFromMemory = false;
  // Wide slabs by rows (see slabs_by_rows in driver_common.h): its 16
  // registers spill the groups' maxima, sums and factors anyway.
  static constexpr slab_rows kSlabRows = slab_rows::large;
  // Softmax keeps its exps: taken again, slabs spill (see slab_mode), and
  // long rows past L2 ran 23-35% slower (8 x 50257, 32 x 50257, 16 x 20000).
  static constexpr bool kExpAgain = false;
  // Columns of up to 8 rows keep a vector of each in registers (see short_cols):
  // 16 would not fit in 16 registers.
  static constexpr std::size_t kShortColumns = 8;
  // The backward's short columns (short_cols_backward): up to 24 rows, as
  // AVX-512 (+14-32% over the column blocks at [8, 12, 16384], -6 to +15% at
  // 16 and 21 rows). They take a whole line of each row a step: with half a
  // line they ran ten times slower from 17 rows on (Intel family 6 model 207).
  // Softmax's short columns past kShortColumns (short_cols_any), in cache:
  // up to 24 rows, as AVX-512 (+10-45% at [8, 21, 2000], [64, 20, 1024] and
  // [256, 17, 256]).
  static constexpr std::size_t kShortSoftmaxRows = 24;
  static constexpr std::size_t kShortBackwardRows = 24;
  // The one-pass sums' highest max (see max_sum_one_pass): where a lane is
  // below -86.5 the exp scales through scale_pow2_bits, which takes 2^k for
  // k <= 63 only (x < 43.6).
  static constexpr float kOnePassHigh = 40.0f;
  static void store_stream(float *p, vf v) { _mm256_stream_ps(p, v); }  // p 32-byte aligned
  static void stream_fence() { _mm_sfence(); }
  // Max and sum across the lanes, broadcast to every lane (fixed tree order).
  static vf all_max(vf v) {
    v = _mm256_max_ps(v, _mm256_permute2f128_ps(v, v, 1));
    v = _mm256_max_ps(v, _mm256_permute_ps(v, _MM_SHUFFLE(1, 0, 3, 2)));
    return _mm256_max_ps(v, _mm256_permute_ps(v, _MM_SHUFFLE(2, 3, 0, 1)));
  }
  static vf all_sum(vf v) {
    v = _mm256_add_ps(v, _mm256_permute2f128_ps(v, v, 1));
    v = _mm256_add_ps(v, _mm256_permute_ps(v, _MM_SHUFFLE(1, 0, 3, 2)));
    return _mm256_add_ps(v, _mm256_permute_ps(v, _MM_SHUFFLE(2, 3, 0, 1)));
  }
  static vd widen_lo(vf v) { return _mm256_cvtps_pd(_mm256_castps256_ps128(v)); }
  static vd widen_hi(vf v) { return _mm256_cvtps_pd(_mm256_extractf128_ps(v, 1)); }
  static vf scale_pow2(vf p, vf k, vf t);
  static std::size_t nll_sum(const float *x, const int64_t *targets, std::size_t count, std::size_t sample_stride,
                             std::size_t class_stride, std::size_t classes, int64_t ignore_index, const float *max,
                             const float *log_sum, loss_sum *acc);
  template <bool Sum = false>
  static vf exp(vf x);
};

#include "simd/kernels_simd.inl"
#include "simd/backward_simd.inl"

inline vf isa_ops::scale_pow2(vf p, vf, vf t) { return scale_pow2_bits(p, t); }

// The polynomial exp, with 2^k added into the exponent bits when every lane is
// at least -86.5: no result is subnormal then, and an integer add on any pipe
// replaces the two multiplies of the gradual-underflow scaling on the two FMA
// pipes (the same bits either way: both scalings are exact). A lane below,
// -inf or NaN takes the full path. There the lanes below -104, whose exp rounds
// to 0, take x = 0 and then 0: a multiply whose result underflows takes a
// microcode assist of about 150 cycles on Intel (family 6 model 207), and the
// -inf padding of every row's last vector paid it (rows of 100 floats ran about 2
// times slower than rows of 96). NaN is not below and stays NaN.
template <bool Sum>
__attribute__((always_inline)) inline vf exp_full(vf x) {
  const __m256 zero = _mm256_setzero_ps(), low = _mm256_cmp_ps(x, _mm256_set1_ps(-104.0f), _CMP_LT_OQ);
  return _mm256_andnot_ps(low, exp_nonpos_poly<Sum>(_mm256_blendv_ps(x, zero, low)));
}

template <bool Sum>
__attribute__((always_inline)) inline vf isa_ops::exp(vf x) {
  if (_mm256_movemask_ps(_mm256_cmp_ps(x, _mm256_set1_ps(-86.5f), _CMP_NGE_UQ)) != 0) return exp_full<Sum>(x);
  const exp_parts e = exp_poly_parts<Sum>(x);
  return _mm256_castsi256_ps(
      _mm256_add_epi32(_mm256_castps_si256(e.p), _mm256_slli_epi32(_mm256_castps_si256(e.t), 23)));
}

// kernel_table::nll_sum, 4 samples at a time (their int64 targets in one
// vector, one gather), the 4 lanes keeping their own sums; the last 1 to 3 are
// the driver's. AVX2 multiplies 32-bit halves only: a target times
// class_stride is exact while both are below 2^32, which a tensor of fewer
// than 2^32 classes and a stride below 2^32 guarantee; beyond, it takes none.
std::size_t isa_ops::nll_sum(const float *x, const int64_t *targets, std::size_t count, std::size_t sample_stride,
                             std::size_t class_stride, std::size_t classes, int64_t ignore_index, const float *max,
                             const float *log_sum, loss_sum *acc) {
  if (classes >= (std::size_t{1} << 32) || class_stride >= (std::size_t{1} << 32)) return 0;
  const __m256i ignore = _mm256_set1_epi64x(ignore_index), sign = _mm256_set1_epi64x(INT64_MIN);
  const __m256i limit = _mm256_xor_si256(_mm256_set1_epi64x(static_cast<int64_t>(classes)), sign);
  const __m256i cstride = _mm256_set1_epi64x(static_cast<int64_t>(class_stride));
  const __m256i step = _mm256_set1_epi64x(static_cast<int64_t>(4 * sample_stride));
  const __m256i halves = _mm256_setr_epi32(0, 2, 4, 6, 0, 2, 4, 6);  // a 64-bit lane mask to 32-bit lanes
  const int64_t s = static_cast<int64_t>(sample_stride);
  __m256i first = _mm256_setr_epi64x(0, s, 2 * s, 3 * s);
  __m256d loss = _mm256_setzero_pd();
  int bad = 0;
  std::size_t kept = 0, i = 0;
  for (; i + 4 <= count; i += 4, first = _mm256_add_epi64(first, step)) {
    const __m256i t = _mm256_loadu_si256(reinterpret_cast<const __m256i *>(targets + i));
    const __m256i keep = _mm256_xor_si256(_mm256_cmpeq_epi64(t, ignore), _mm256_set1_epi64x(-1));
    const __m256i in_range = _mm256_cmpgt_epi64(limit, _mm256_xor_si256(t, sign));  // unsigned t < classes
    bad |= _mm256_movemask_pd(_mm256_castsi256_pd(_mm256_andnot_si256(in_range, keep)));
    const __m256i use = _mm256_and_si256(keep, in_range);
    const __m256i at = _mm256_add_epi64(first, _mm256_mul_epu32(t, cstride));
    const __m128 use32 = _mm256_castps256_ps128(_mm256_castsi256_ps(_mm256_permutevar8x32_epi32(use, halves)));
    const __m128 xt = _mm256_mask_i64gather_ps(_mm_setzero_ps(), x, at, use32, 4);
    const __m256d l = _mm256_add_pd(_mm256_sub_pd(_mm256_cvtps_pd(_mm_loadu_ps(max + i)), _mm256_cvtps_pd(xt)),
                                    _mm256_cvtps_pd(_mm_loadu_ps(log_sum + i)));
    // A lane not kept adds +0, even where its l is NaN.
    loss = _mm256_add_pd(loss, _mm256_and_pd(l, _mm256_castsi256_pd(keep)));
    kept += static_cast<std::size_t>(__builtin_popcount(_mm256_movemask_pd(_mm256_castsi256_pd(keep))));
  }
  alignas(32) double lanes[4];
  _mm256_store_pd(lanes, loss);
  acc->loss += (lanes[0] + lanes[1]) + (lanes[2] + lanes[3]);
  acc->weight += static_cast<double>(kept);
  acc->bad_target = acc->bad_target || bad != 0;
  return i;
}

constexpr kernel_table kTable = make_table(SOFTKIT_ISA_AVX2);

}  // namespace avx2_impl

const kernel_table *avx2_kernels() { return &avx2_impl::kTable; }

}  // namespace softkit
