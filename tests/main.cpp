// Catch2 runner of softkit_tests and softkit_torch_tests.
// SOFTKIT_TEST_ISA=scalar|avx2|avx512|neon forces the ISA; exit code 77 (ctest's
// SKIP_RETURN_CODE) when this CPU or build lacks it.
#include <cstdio>
#include <cstdlib>

#include "catch_session.hpp"
#include "softkit/softkit.h"
#include "test_util.hpp"

int main(int argc, char **argv) {
  const char *want = std::getenv("SOFTKIT_TEST_ISA");
  if (want != nullptr && *want != '\0') {
    softkit_isa isa;
    if (!tu::parse_isa(want, &isa)) {
      std::fprintf(stderr, "SOFTKIT_TEST_ISA=%s is not one of scalar|avx2|avx512|neon\n", want);
      return 2;
    }
    const softkit_status s = softkit_set_isa(isa);
    if (s == SOFTKIT_ERROR_UNSUPPORTED_ISA) {
      std::printf("skipping: %s not supported here\n", want);
      return 77;
    }
    if (s != SOFTKIT_OK) {
      std::fprintf(stderr, "softkit_set_isa(%s) failed: %s\n", want, softkit_status_string(s));
      return 1;
    }
  }
  std::printf("softkit %s, active ISA: %s, reference in %s\n", softkit_version(), softkit_isa_name(softkit_get_isa()),
              sizeof(ref::ld) == sizeof(double) ? "double" : "long double");
  std::fflush(stdout);
  const int failed = run_catch_session(argc, argv);
  tu::print_worst_table(stdout);
  return failed == 0 ? 0 : 1;
}
