// A C++17 consumer of the installed softkit: the C API and the header-only
// wrapper softkit.hpp.
#include <cmath>
#include <cstdio>
#include <string>
#include <vector>

#include <softkit/softkit.h>
#include <softkit/softkit.hpp>

int main() {
  int failures = 0;
  auto check = [&](bool ok, const char *what) {
    if (!ok) {
      std::fprintf(stderr, "consumer.cpp: FAILED: %s\n", what);
      ++failures;
    }
  };

  std::printf("softkit %s, isa %s\n", softkit_version(), softkit_isa_name(softkit_get_isa()));
  check(std::string(softkit_version()).rfind(std::to_string(SOFTKIT_VERSION_MAJOR) + ".", 0) == 0,
        "the library's major version is the header's");

  const std::vector<float> x = {1.0f, 2.0f, 3.0f, -1.0f, 0.0f, 1.0f};
  std::vector<float> y(x.size());
  softkit::softmax(x.data(), y.data(), {2, 3}, -1);
  check(std::fabs(y[0] + y[1] + y[2] - 1.0f) < 1e-5f, "softmax rows sum to 1");

  std::vector<float> c(x.size());
  check(softkit_softmax_f32(x.data(), c.data(), 2, 3, 1) == SOFTKIT_OK, "C API softmax");
  check(c == y, "the wrapper and the C API agree");

  bool threw = false;
  try {
    softkit::softmax(x.data(), y.data(), {2, 3}, 2);  // no dim 2
  } catch (const softkit::error &e) {
    threw = e.status() == SOFTKIT_ERROR_INVALID_ARGUMENT;
  }
  check(threw, "a bad dim throws softkit::error");

  if (failures == 0) std::printf("consumer.cpp: OK\n");
  return failures == 0 ? 0 : 1;
}
