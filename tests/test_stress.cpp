// Stress (issue 8): several threads call softkit with random shapes and ops
// while another thread keeps switching the ISA. A call runs on the ISA it began
// with, so every result must be bitwise the result of a quiet, single-threaded
// run on one of the supported ISAs. Runs under ThreadSanitizer in scripts/test.sh.
#include <catch2/catch.hpp>

#include <atomic>
#include <cstdint>
#include <cstring>
#include <mutex>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "softkit/softkit.h"
#include "test_util.hpp"

namespace {

enum class StressOp { Softmax, LogSoftmax, LogSumExp, CrossEntropy, CrossEntropyNone };

struct Case {
  StressOp op;
  std::size_t outer, n, inner;
  std::vector<float> x, weights;
  std::vector<std::int64_t> targets;
  softkit_cross_entropy_options opts = SOFTKIT_CROSS_ENTROPY_OPTIONS_INIT;
  std::vector<std::vector<float>> expected;  // one per supported ISA

  std::size_t out_size() const {
    switch (op) {
      case StressOp::Softmax:
      case StressOp::LogSoftmax: return outer * n * inner;
      case StressOp::LogSumExp:
      case StressOp::CrossEntropyNone: return outer * inner;
      default: return 1;
    }
  }
  softkit_status run(float *out) const {
    switch (op) {
      case StressOp::Softmax: return softkit_softmax_f32(x.data(), out, outer, n, inner);
      case StressOp::LogSoftmax: return softkit_log_softmax_f32(x.data(), out, outer, n, inner);
      case StressOp::LogSumExp: return softkit_logsumexp_f32(x.data(), out, outer, n, inner);
      default: return softkit_cross_entropy_f32(x.data(), targets.data(), outer, n, inner, &opts, out);
    }
  }
};


// Random cases: short and long rows (the chunk path), columns, and sizes above
// the threading grain (OpenMP teams inside the callers' threads).
std::vector<Case> make_cases(std::uint64_t seed, std::size_t count) {
  std::mt19937_64 rng(seed);
  std::normal_distribution<float> nd(0.0f, 5.0f);
  std::vector<Case> cases;
  const std::size_t shapes[][3] = {{1, 70001, 1}, {2, 17000, 1}, {64, 1000, 1}, {300, 7, 1},  {3, 100, 250},
                                   {1, 33, 2100}, {8, 512, 1},   {1, 1, 1},     {2, 9000, 4}, {5, 4097, 1}};
  for (std::size_t k = 0; k < count; ++k) {
    Case c;
    c.op = static_cast<StressOp>(rng() % 5);
    const auto &s = shapes[rng() % (sizeof shapes / sizeof shapes[0])];
    c.outer = s[0];
    c.n = s[1];
    c.inner = s[2];
    c.x.resize(c.outer * c.n * c.inner);
    for (float &v : c.x) v = nd(rng);
    if (rng() % 4 == 0) c.x[rng() % c.x.size()] = tu::kNaN;
    if (rng() % 4 == 0) c.x[rng() % c.x.size()] = -tu::kInf;
    if (c.op == StressOp::CrossEntropy || c.op == StressOp::CrossEntropyNone) {
      c.targets.resize(c.outer * c.inner);
      for (auto &t : c.targets) t = rng() % 9 == 0 ? -100 : static_cast<std::int64_t>(rng() % c.n);
      c.opts.reduction = c.op == StressOp::CrossEntropyNone ? SOFTKIT_REDUCTION_NONE
                                                            : (rng() & 1 ? SOFTKIT_REDUCTION_MEAN : SOFTKIT_REDUCTION_SUM);
      c.opts.label_smoothing = rng() & 1 ? 0.1f : 0.0f;
      if (rng() & 1) {
        c.weights.resize(c.n);
        for (float &w : c.weights) w = 0.5f + static_cast<float>(rng() % 100) / 50.0f;
        c.opts.class_weights = c.weights.data();
      }
    }
    cases.push_back(std::move(c));
  }
  return cases;
}

}  // namespace

TEST_CASE("stress: concurrent callers while another thread switches the ISA", "[stress][threads]") {
  const softkit_isa start = softkit_get_isa();
  const std::vector<softkit_isa> isas = tu::supported_isas();
  std::vector<Case> cases = make_cases(8, 24);

  // Quiet, single-threaded results on every ISA.
  softkit_set_num_threads(1);
  for (Case &c : cases)
    for (softkit_isa isa : isas) {
      REQUIRE(softkit_set_isa(isa) == SOFTKIT_OK);
      std::vector<float> out(c.out_size(), tu::kSentinel);
      REQUIRE(c.run(out.data()) == SOFTKIT_OK);
      c.expected.push_back(std::move(out));
    }
  softkit_set_num_threads(0);
  REQUIRE(softkit_set_isa(start) == SOFTKIT_OK);

  constexpr int kWorkers = 4, kCalls = 200;
  std::atomic<bool> done{false};
  std::atomic<int> bad{0}, switches{0};
  std::mutex first_mutex;
  std::string first;

  std::thread switcher([&] {
    std::mt19937 rng(1);
    while (!done.load(std::memory_order_relaxed)) {
      if (softkit_set_isa(isas[rng() % isas.size()]) != SOFTKIT_OK) bad.fetch_add(1);
      if (softkit_set_isa((softkit_isa)99) != SOFTKIT_ERROR_UNSUPPORTED_ISA) bad.fetch_add(1);
      switches.fetch_add(1, std::memory_order_relaxed);
      std::this_thread::yield();
    }
  });
  std::vector<std::thread> workers;
  for (int w = 0; w < kWorkers; ++w)
    workers.emplace_back([&, w] {
      std::mt19937 rng(100 + w);
      for (int call = 0; call < kCalls; ++call) {
        const Case &c = cases[rng() % cases.size()];
        if (rng() % 8 == 0) softkit_set_num_threads(1 + static_cast<int>(rng() % 3));
        std::vector<float> out(c.out_size(), tu::kSentinel);
        const softkit_status s = c.run(out.data());
        bool match = false;
        for (const auto &e : c.expected) {
          bool same = e.size() == out.size();
          for (std::size_t i = 0; same && i < out.size(); ++i) same = tu::same_bits(e[i], out[i]);
          if (same) {
            match = true;
            break;
          }
        }
        if (s != SOFTKIT_OK || !match) {
          if (bad.fetch_add(1) == 0) {
            std::lock_guard<std::mutex> lock(first_mutex);
            first = "worker " + std::to_string(w) + " call " + std::to_string(call) + " op " +
                    std::to_string((int)c.op) + " " + tu::shape_label(c.outer, c.n, c.inner) + ": status " +
                    softkit_status_string(s) + (match ? "" : ", result bitwise equal to no ISA's");
          }
        }
      }
    });
  for (auto &t : workers) t.join();
  done = true;
  switcher.join();
  softkit_set_num_threads(0);
  REQUIRE(softkit_set_isa(start) == SOFTKIT_OK);
  INFO("ISA switches: " << switches.load() << "; first failure: " << first);
  CHECK(bad.load() == 0);
  CHECK(switches.load() > 0);
}
