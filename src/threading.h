// OpenMP helpers for the driver. The split of the work into items depends on
// the shape alone; threads only decide who computes which item, so results are
// bitwise identical for any thread count.
#ifndef SOFTKIT_SRC_THREADING_H
#define SOFTKIT_SRC_THREADING_H

#include <omp.h>

#include <cstddef>

namespace softkit {

// Below this many elements per thread, waking another thread costs more than it saves.
constexpr std::size_t kGrainElements = 32768;

int configured_threads();           // softkit_get_num_threads()
void configure_threads(int n);      // softkit_set_num_threads()

// Threads for a call touching `elements` floats: 1 inside the host's own
// parallel region (no oversubscription), else at most one per grain.
inline int threads_for(std::size_t elements) {
  if (omp_in_parallel()) return 1;
  const std::size_t by_work = elements / kGrainElements;
  const int want = configured_threads();
  if (by_work < 2 || want < 2) return 1;
  return by_work < static_cast<std::size_t>(want) ? static_cast<int>(by_work) : want;
}

// Calls f(begin, end) on contiguous ranges of [0, items), one per thread.
template <class F>
void parallel_ranges(std::size_t items, int threads, F &&f) {
  if (threads > static_cast<int>(items)) threads = static_cast<int>(items);
  if (threads <= 1) {
    if (items) f(std::size_t{0}, items);
    return;
  }
#pragma omp parallel num_threads(threads)
  {
    const std::size_t t = static_cast<std::size_t>(omp_get_thread_num());
    const std::size_t nt = static_cast<std::size_t>(omp_get_num_threads());
    const std::size_t begin = items * t / nt, end = items * (t + 1) / nt;
    if (begin < end) f(begin, end);
  }
}

}  // namespace softkit

#endif  // SOFTKIT_SRC_THREADING_H
