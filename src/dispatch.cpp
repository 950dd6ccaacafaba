// Picks the kernel table. Our own table rather than xsimd::dispatch, which can be
// neither capped (SOFTKIT_ISA) nor forced (softkit_set_isa) from outside.
#include "dispatch.h"

#include <atomic>
#include <cstdlib>
#include <cstring>

namespace softkit {
namespace {

// CPU and OS support. GCC's __builtin_cpu_supports reads cpuid and, for AVX and
// AVX-512, XGETBV, so a kernel that does not save the wide registers reads as "no".
bool cpu_runs(softkit_isa isa) {
  switch (isa) {
    case SOFTKIT_ISA_SCALAR:
      return true;
#if defined(__x86_64__) || defined(__i386__)
    case SOFTKIT_ISA_AVX2:
      __builtin_cpu_init();
      return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
    case SOFTKIT_ISA_AVX512:
      __builtin_cpu_init();
      return cpu_runs(SOFTKIT_ISA_AVX2) && __builtin_cpu_supports("avx512f") &&
             __builtin_cpu_supports("avx512bw") && __builtin_cpu_supports("avx512dq") &&
             __builtin_cpu_supports("avx512vl");
#endif
#if defined(__aarch64__)
    case SOFTKIT_ISA_NEON:
      return true;  // baseline on AArch64
#endif
    default:
      return false;
  }
}

const kernel_table *built_table(softkit_isa isa) {
  switch (isa) {
    case SOFTKIT_ISA_SCALAR:
      return scalar_kernels();
#ifdef SOFTKIT_HAVE_AVX2
    case SOFTKIT_ISA_AVX2:
      return avx2_kernels();
#endif
#ifdef SOFTKIT_HAVE_AVX512
    case SOFTKIT_ISA_AVX512:
      return avx512_kernels();
#endif
#ifdef SOFTKIT_HAVE_NEON
    case SOFTKIT_ISA_NEON:
      return neon_kernels();
#endif
    default:
      return nullptr;
  }
}

// Best first. A cap allows itself and the ISAs below it in its own family.
constexpr softkit_isa kPreference[] = {SOFTKIT_ISA_AVX512, SOFTKIT_ISA_AVX2, SOFTKIT_ISA_NEON, SOFTKIT_ISA_SCALAR};

bool within_cap(softkit_isa isa, softkit_isa cap) {
  if (isa == SOFTKIT_ISA_SCALAR || isa == cap) return true;
  return cap == SOFTKIT_ISA_AVX512 && isa == SOFTKIT_ISA_AVX2;
}

bool parse_isa(const char *s, softkit_isa *out) {
  static const struct {
    const char *name;
    softkit_isa isa;
  } names[] = {{"scalar", SOFTKIT_ISA_SCALAR}, {"avx2", SOFTKIT_ISA_AVX2}, {"avx512", SOFTKIT_ISA_AVX512},
               {"neon", SOFTKIT_ISA_NEON}};
  for (const auto &n : names)
    if (std::strcmp(s, n.name) == 0) return *out = n.isa, true;
  return false;
}

const kernel_table *initial_table() {
  softkit_isa cap = SOFTKIT_ISA_AVX512;
  bool capped = false;
  if (const char *env = std::getenv("SOFTKIT_ISA")) capped = parse_isa(env, &cap);
  for (softkit_isa isa : kPreference)
    if ((!capped || within_cap(isa, cap)))
      if (const kernel_table *t = kernels_for(isa)) return t;
  return scalar_kernels();
}

std::atomic<const kernel_table *> g_active{nullptr};

}  // namespace

const kernel_table *kernels_for(softkit_isa isa) { return cpu_runs(isa) ? built_table(isa) : nullptr; }

const kernel_table *active_kernels() {
  const kernel_table *t = g_active.load(std::memory_order_acquire);
  if (t) return t;
  // Racing first calls compute the same table; the first store wins.
  const kernel_table *fresh = initial_table();
  g_active.compare_exchange_strong(t, fresh, std::memory_order_acq_rel);
  return g_active.load(std::memory_order_acquire);
}

softkit_status set_active_isa(softkit_isa isa) {
  const kernel_table *t = kernels_for(isa);
  if (!t) return SOFTKIT_ERROR_UNSUPPORTED_ISA;
  g_active.store(t, std::memory_order_release);
  return SOFTKIT_OK;
}

}  // namespace softkit
