// AVX-512 (F, BW, DQ, VL) kernels. Compiled with -mavx512*: reached only through
// avx512_kernels() after dispatch.cpp has checked the CPU and the OS.
#include <immintrin.h>

#include <cmath>
#include <cstddef>
#include <cstdint>
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
  static float hmax(vf v) { return _mm512_reduce_max_ps(v); }
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
  // vscalefps: p * 2^floor(k) with correct rounding into the subnormals.
  static vf scale_pow2(vf p, vf k, vf) { return _mm512_scalef_ps(p, k); }
};

#include "simd/kernels_simd.inl"

constexpr kernel_table kTable = make_table(SOFTKIT_ISA_AVX512);

}  // namespace avx512_impl

const kernel_table *avx512_kernels() { return &avx512_impl::kTable; }

}  // namespace softkit
