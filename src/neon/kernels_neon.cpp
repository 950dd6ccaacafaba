// AArch64 Advanced SIMD kernels. NEON is baseline on AArch64: no extra flags.
#include <arm_neon.h>

#include <cmath>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <type_traits>
#include <utility>
#include <xsimd/xsimd.hpp>

#include "kernels.h"

namespace softkit {
namespace neon_impl {

using arch = xsimd::neon64;

struct isa_ops {
  static constexpr bool kRowReduce = false;  // no reduce_rows: tiny rows go one by one
  using vf = xsimd::batch<float, arch>;
  using vd = xsimd::batch<double, arch>;
  // No masked loads on NEON: a tail goes through a 4-lane buffer.
  static vf load_tail(const float *p, std::size_t k, float fill) {
    float buf[4] = {fill, fill, fill, fill};
    std::memcpy(buf, p, k * sizeof(float));
    return vld1q_f32(buf);
  }
  static void store_tail(float *p, vf v, std::size_t k) {
    float buf[4];
    vst1q_f32(buf, v);
    std::memcpy(p, buf, k * sizeof(float));
  }
  static void store_stream(float *p, vf v) { v.store_aligned(p); }  // no cache-bypassing store here
  static void stream_fence() {}
  static constexpr bool kDescendBehindSide = false;  // not measured on hardware
  static constexpr bool kAlignSides = false;         // likewise
  static constexpr bool kLogShortRows = false;       // likewise (see log_softmax_short)
  static constexpr bool kWideSlabsFromMemory = false;  // likewise (as AVX2)
  static constexpr slab_rows kSlabRows = slab_rows::never;  // not measured on hardware
  // Softmax keeps its exps, in slabs and long rows (not measured on hardware).
  static constexpr bool kExpAgain = false;
  // Columns of up to 8 rows keep a vector of each in registers (see short_cols).
  static constexpr std::size_t kShortColumns = 8;
  // Softmax's short columns past kShortColumns: as AVX2 and AVX-512 (not
  // measured on NEON).
  static constexpr std::size_t kShortSoftmaxRows = 24;
  static constexpr std::size_t kShortBackwardRows = 8;  // as kShortColumns (not measured on NEON)
  // The one-pass sums' highest max (see max_sum_one_pass): scale_pow2_bits
  // takes 2^k for k <= 63 only (x < 43.6).
  static constexpr float kOnePassHigh = 40.0f;
  static float hmax(vf v) { return vmaxvq_f32(v); }
  static vf all_max(vf v) { return vdupq_n_f32(vmaxvq_f32(v)); }
  static vf all_sum(vf v) { return vdupq_n_f32(vaddvq_f32(v)); }
  static vd widen_lo(vf v) { return vcvt_f64_f32(vget_low_f32(v)); }
  static vd widen_hi(vf v) { return vcvt_high_f64_f32(v); }
  static vf scale_pow2(vf p, vf k, vf t);
  static constexpr std::nullptr_t nll_sum = nullptr;  // no gather: the driver's loop
};

#include "simd/kernels_simd.inl"
#include "simd/backward_simd.inl"

vf isa_ops::scale_pow2(vf p, vf, vf t) { return scale_pow2_bits(p, t); }

constexpr kernel_table kTable = make_table(SOFTKIT_ISA_NEON);

}  // namespace neon_impl

const kernel_table *neon_kernels() { return &neon_impl::kTable; }

}  // namespace softkit
