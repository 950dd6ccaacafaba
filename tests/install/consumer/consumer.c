/* A C99 consumer of the installed softkit: the version of the loaded library,
 * a softmax, a log-softmax and a cross-entropy with the default options. */
#include <stdio.h>
#include <string.h>

#include <softkit/softkit.h>

#define STR2(x) #x
#define STR(x) STR2(x)
#define HEADER_VERSION STR(SOFTKIT_VERSION_MAJOR) "." STR(SOFTKIT_VERSION_MINOR) "." STR(SOFTKIT_VERSION_PATCH)

static int failures = 0;

static float absf(float v) { return v < 0.0f ? -v : v; }

static void check(int ok, const char *what) {
  if (!ok) {
    fprintf(stderr, "consumer.c: FAILED: %s\n", what);
    ++failures;
  }
}

int main(void) {
  const float x[6] = {1.0f, 2.0f, 3.0f, -1.0f, 0.0f, 1.0f};
  const int64_t targets[2] = {2, 0};
  float y[6], ly[6], loss = 0.0f;
  softkit_cross_entropy_options opts = SOFTKIT_CROSS_ENTROPY_OPTIONS_INIT;
  size_t i;
  float sum0 = 0.0f, sum1 = 0.0f;

  printf("softkit %s (header %s), isa %s\n", softkit_version(), HEADER_VERSION,
         softkit_isa_name(softkit_get_isa()));
  check(strncmp(softkit_version(), STR(SOFTKIT_VERSION_MAJOR) ".", strlen(STR(SOFTKIT_VERSION_MAJOR)) + 1) == 0,
        "the library's major version is the header's");
  check(strcmp(softkit_status_string(SOFTKIT_OK), "") != 0, "softkit_status_string");

  check(softkit_softmax_f32(x, y, 2, 3, 1) == SOFTKIT_OK, "softmax status");
  for (i = 0; i < 3; ++i) {
    sum0 += y[i];
    sum1 += y[3 + i];
  }
  check(absf(sum0 - 1.0f) < 1e-5f && absf(sum1 - 1.0f) < 1e-5f, "softmax rows sum to 1");
  check(y[2] > y[1] && y[1] > y[0], "softmax is increasing");

  check(softkit_log_softmax_f32(x, ly, 2, 3, 1) == SOFTKIT_OK, "log_softmax status");
  for (i = 0; i < 6; ++i) check(ly[i] < 0.0f, "log_softmax is negative");
  check(absf((ly[2] - ly[0]) - (x[2] - x[0])) < 1e-5f, "log_softmax differences are those of x");

  check(softkit_cross_entropy_f32(x, targets, 2, 3, 1, &opts, &loss) == SOFTKIT_OK, "cross_entropy status");
  check(absf(loss - 0.5f * (-ly[2] - ly[3])) < 1e-5f, "cross_entropy is the mean of -log_softmax[target]");
  check(softkit_softmax_f32(NULL, y, 2, 3, 1) == SOFTKIT_ERROR_NULL_POINTER, "NULL is refused");

  if (failures == 0) printf("consumer.c: OK\n");
  return failures == 0 ? 0 : 1;
}
