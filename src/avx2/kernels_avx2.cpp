// AVX2 + FMA kernels. Compiled with -mavx2 -mfma: reached only through
// avx2_kernels() after dispatch.cpp has checked the CPU and the OS.
#include <immintrin.h>

#include <cmath>
#include <cstddef>
#include <cstdint>
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
// -inf or NaN takes the full path.
template <bool Sum>
__attribute__((always_inline)) inline vf exp_full(vf x) {
  return exp_nonpos_poly<Sum>(x);
}

template <bool Sum>
__attribute__((always_inline)) inline vf isa_ops::exp(vf x) {
  if (_mm256_movemask_ps(_mm256_cmp_ps(x, _mm256_set1_ps(-86.5f), _CMP_NGE_UQ)) != 0) return exp_full<Sum>(x);
  const exp_parts e = exp_poly_parts<Sum>(x);
  return _mm256_castsi256_ps(
      _mm256_add_epi32(_mm256_castps_si256(e.p), _mm256_slli_epi32(_mm256_castps_si256(e.t), 23)));
}

constexpr kernel_table kTable = make_table(SOFTKIT_ISA_AVX2);

}  // namespace avx2_impl

const kernel_table *avx2_kernels() { return &avx2_impl::kTable; }

}  // namespace softkit
