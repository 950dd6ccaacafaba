#include "tuning.h"

#include <cstdlib>
#include <cstring>

namespace softkit {
namespace {

// Log-softmax's long rows in cache: on Intel the shifted passes did better
// below 4 rows (1 x 50257 by 5%, 1 x 262144 by 9%), the stats with the writes
// a row behind from there on. On Zen 5 the stats and a write from x did better
// from one row on (AVX-512, 1 thread: 1 x 50257 +10%, 2 x 100000 +12%,
// 3 x 50257 +18%, 1 x 262144 even; AVX2 alike, 1 x 262144 -3%).
// Softmax taking its exps again from x gained 13-21% on Intel at 8 to 64 rows
// of 50257, and lost 12-16% there on Zen 5 against storing and scaling them.
// Every AMD CPU takes zen: Zen 5 is the only one measured.
constexpr cpu_tuning kGeneric{"generic", true, true};
constexpr cpu_tuning kZen{"zen", false, false};

const cpu_tuning &detect() {
  if (const char *env = std::getenv("SOFTKIT_TUNING")) {
    if (std::strcmp(env, kGeneric.name) == 0) return kGeneric;
    if (std::strcmp(env, kZen.name) == 0) return kZen;
  }
#if defined(__x86_64__) || defined(__i386__)
  __builtin_cpu_init();
  if (__builtin_cpu_is("amd")) return kZen;
#endif
  return kGeneric;
}

}  // namespace

const cpu_tuning &active_tuning() {
  static const cpu_tuning &chosen = detect();  // thread-safe, once
  return chosen;
}

}  // namespace softkit
