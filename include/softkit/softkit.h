/*
 * softkit: SIMD CPU kernels for softmax, log-softmax, logsumexp and cross-entropy.
 *
 * The C API is the ABI contract of libsoftkit. It is C99 and C++ clean, nothing
 * C++ crosses it, and option structs are size-prefixed so that they can grow in
 * a minor version without breaking callers compiled against an older header.
 *
 * Layout: every tensor is contiguous and seen as [outer, n, inner]; the op runs
 * along n. Last-dim softmax is inner = 1. PyTorch's (N, C, d1, ..) cross-entropy
 * is outer = N, classes = C, inner = d1 * ...
 *
 * Errors: every entry point returns a softkit_status. On any status other than
 * SOFTKIT_OK no output element has been written.
 */
#ifndef SOFTKIT_SOFTKIT_H
#define SOFTKIT_SOFTKIT_H

#include <stddef.h>
#include <stdint.h>

#define SOFTKIT_VERSION_MAJOR 1
#define SOFTKIT_VERSION_MINOR 0
#define SOFTKIT_VERSION_PATCH 0

/* SOFTKIT_API marks the exported C API. libsoftkit is compiled with
 * -fvisibility=hidden and linked with a version script (abi/softkit.map), so
 * these functions, all named softkit_*, are its only dynamic symbols. The
 * attribute is also on the declarations a consumer sees, so that including this
 * header under "#pragma GCC visibility push(hidden)" still links. */
#if defined(_WIN32)
#  define SOFTKIT_API /* Windows is not a supported target (no dllexport) */
#elif defined(__GNUC__) && __GNUC__ >= 4
#  define SOFTKIT_API __attribute__((visibility("default")))
#else
#  define SOFTKIT_API
#endif

#ifdef __cplusplus
extern "C" {
#endif

typedef enum softkit_status {
  SOFTKIT_OK = 0,
  SOFTKIT_ERROR_NULL_POINTER = 1,        /* a pointer needed for the work is NULL */
  SOFTKIT_ERROR_INVALID_ARGUMENT = 2,    /* bad option, partial overlap, classes == 0, ... */
  SOFTKIT_ERROR_TARGET_OUT_OF_RANGE = 3, /* a target outside [0, classes) that is not ignore_index */
  SOFTKIT_ERROR_SIZE_OVERFLOW = 4,       /* outer * n * inner (or its byte size) overflows size_t */
  SOFTKIT_ERROR_UNSUPPORTED_ISA = 5      /* the ISA is unknown, or this CPU or build lacks it */
} softkit_status;

typedef enum softkit_isa {
  SOFTKIT_ISA_SCALAR = 0,
  SOFTKIT_ISA_AVX2 = 1,   /* AVX2 + FMA */
  SOFTKIT_ISA_AVX512 = 2, /* AVX-512 F, BW, DQ, VL */
  SOFTKIT_ISA_NEON = 3    /* AArch64 Advanced SIMD */
} softkit_isa;

typedef enum softkit_reduction {
  SOFTKIT_REDUCTION_MEAN = 0,
  SOFTKIT_REDUCTION_SUM = 1,
  SOFTKIT_REDUCTION_NONE = 2
} softkit_reduction;

typedef struct softkit_cross_entropy_options {
  size_t struct_size;          /* sizeof(softkit_cross_entropy_options) as the caller compiled it */
  softkit_reduction reduction; /* default MEAN */
  int64_t ignore_index;        /* default -100 */
  float label_smoothing;       /* default 0, in [0, 1] */
  const float *class_weights;  /* NULL, or one weight per class */
} softkit_cross_entropy_options;

/* The defaults, as PyTorch's torch.nn.functional.cross_entropy has them. */
#define SOFTKIT_CROSS_ENTROPY_OPTIONS_INIT \
  { sizeof(softkit_cross_entropy_options), SOFTKIT_REDUCTION_MEAN, -100, 0.0f, NULL }

static inline softkit_cross_entropy_options softkit_cross_entropy_options_default(void) {
  softkit_cross_entropy_options o = SOFTKIT_CROSS_ENTROPY_OPTIONS_INIT;
  return o;
}

/* "MAJOR.MINOR.PATCH" of the library that is loaded (not of this header). */
SOFTKIT_API const char *softkit_version(void);
/* A static string for every status; never NULL, also for unknown values. */
SOFTKIT_API const char *softkit_status_string(softkit_status status);

/* The ISA the kernels run on. Chosen at first use as the best the CPU, the OS and
 * the build support, capped by the environment variable SOFTKIT_ISA
 * (scalar|avx2|avx512|neon). */
SOFTKIT_API softkit_isa softkit_get_isa(void);
/* Forces an ISA; SOFTKIT_ERROR_UNSUPPORTED_ISA if it is unknown or this CPU or
 * build lacks it. Thread-safe: calls already running finish on the ISA they began with. */
SOFTKIT_API softkit_status softkit_set_isa(softkit_isa isa);
/* "scalar", "avx2", "avx512", "neon"; "unknown" for any other value. */
SOFTKIT_API const char *softkit_isa_name(softkit_isa isa);

/* Threads used by one call; n <= 0 restores OpenMP's default (omp_get_max_threads()).
 * Results are bitwise identical for every thread count. */
SOFTKIT_API void softkit_set_num_threads(int n);
SOFTKIT_API int softkit_get_num_threads(void);

/* y = softmax(x) along n. x == y (in place) is allowed; any other overlap is refused. */
SOFTKIT_API softkit_status softkit_softmax_f32(const float *x, float *y, size_t outer, size_t n, size_t inner);
/* y = x - max - log(sum(exp(x - max))) along n. x == y allowed. */
SOFTKIT_API softkit_status softkit_log_softmax_f32(const float *x, float *y, size_t outer, size_t n,
                                                   size_t inner);
/* out[outer, inner] = max + log(sum(exp(x - max))) along n; -inf when n == 0. */
SOFTKIT_API softkit_status softkit_logsumexp_f32(const float *x, float *out, size_t outer, size_t n,
                                                 size_t inner);
/* logits [outer, classes, inner]; targets [outer, inner]; loss: 1 float for MEAN and
 * SUM, [outer * inner] for NONE. opts == NULL means the defaults. Follows
 * torch.nn.functional.cross_entropy (weights, ignore_index, label smoothing). */
SOFTKIT_API softkit_status softkit_cross_entropy_f32(const float *logits, const int64_t *targets, size_t outer,
                                                     size_t classes, size_t inner,
                                                     const softkit_cross_entropy_options *opts, float *loss);

/* --- Gradients (PyTorch 1.13's autograd of the ops above) and soft targets. */

/* dlogits [outer, classes, inner] = d(loss) / d(logits) of softkit_cross_entropy_f32
 * with the same logits, targets and options, times the incoming gradient dloss:
 * 1 float for MEAN and SUM, [outer * inner] for NONE. Per sample i with target t,
 * p = softmax of its logits, e = label_smoothing, w the class weights (1 without),
 * W = sum_c w[c], C = classes:
 *   dlogits[i, j] = g_i * ((1 - e) * w[t] * (p[j] - [j == t]) + (e / C) * (W * p[j] - w[j]))
 * with g_i = dloss[i] (NONE), dloss[0] (SUM), dloss[0] / D (MEAN), D the sum of
 * w[t] over the samples that are not ignored (their count without weights). An
 * ignored sample's row is 0 (NaN where its logits make p NaN, as in PyTorch),
 * also for MEAN when every sample is ignored (D = 0: the loss is NaN, its
 * gradient 0). With label smoothing and a class weight that is inf or NaN, an
 * ignored sample's row is NaN: PyTorch masks the smoothing term after
 * multiplying by the weights, and 0 * inf is NaN.
 * Rows whose logits hold NaN or +inf, or are all -inf, are NaN.
 * Errors as softkit_cross_entropy_f32 (a bad target is refused before anything
 * is written); dlogits must not overlap logits, targets, dloss or the weights
 * at all (not even in place). No work (a zero dimension) is SOFTKIT_OK, even
 * with NULL pointers. */
SOFTKIT_API softkit_status softkit_cross_entropy_backward_f32(const float *logits, const int64_t *targets,
                                                              size_t outer, size_t classes, size_t inner,
                                                              const softkit_cross_entropy_options *opts,
                                                              const float *dloss, float *dlogits);
/* Cross-entropy with class-probability ("soft") targets: target_probs has the
 * layout of logits, [outer, classes, inner]. As torch.nn.functional.cross_entropy
 * with a float target: per sample sum_c w[c] * t'[c] * -log_softmax(x)[c] with
 * t' = (1 - e) * t + e / C; MEAN divides the sum by the number of samples
 * outer * inner (not by a weight sum); an empty batch is NaN for MEAN, 0 for SUM.
 * ignore_index does not apply (it is not read). loss must not overlap an input. */
SOFTKIT_API softkit_status softkit_cross_entropy_probs_f32(const float *logits, const float *target_probs,
                                                           size_t outer, size_t classes, size_t inner,
                                                           const softkit_cross_entropy_options *opts, float *loss);
/* With y = softkit_softmax_f32(x) and dy = d(loss)/dy, all [outer, n, inner]:
 * dx = y * (dy - sum_n(dy * y)). dx == y or dx == dy (in place) is allowed; any
 * other overlap of dx with an input is refused. */
SOFTKIT_API softkit_status softkit_softmax_backward_f32(const float *y, const float *dy, float *dx, size_t outer,
                                                        size_t n, size_t inner);
/* With y = softkit_log_softmax_f32(x): dx = dy - exp(y) * sum_n(dy). Same aliasing rules. */
SOFTKIT_API softkit_status softkit_log_softmax_backward_f32(const float *y, const float *dy, float *dx,
                                                            size_t outer, size_t n, size_t inner);

#ifdef __cplusplus
} /* extern "C" */
#endif

#endif /* SOFTKIT_SOFTKIT_H */
