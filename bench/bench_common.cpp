#include "bench_common.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <random>

namespace skbench {

const char *op_name(Op op) {
  switch (op) {
    case Op::softmax: return "softmax";
    case Op::log_softmax: return "log_softmax";
    case Op::logsumexp: return "logsumexp";
    case Op::cross_entropy: return "cross_entropy";
    case Op::cross_entropy_fwbw: return "cross_entropy_fwbw";
    case Op::softmax_backward: return "softmax_backward";
    case Op::log_softmax_backward: return "log_softmax_backward";
  }
  return "?";
}

std::vector<Op> all_ops() {
  return {Op::softmax,           Op::log_softmax,      Op::logsumexp,           Op::cross_entropy,
          Op::cross_entropy_fwbw, Op::softmax_backward, Op::log_softmax_backward};
}

bool op_from_name(const std::string &s, Op *op) {
  for (Op o : all_ops()) {
    if (s == op_name(o)) {
      *op = o;
      return true;
    }
  }
  return false;
}

std::string Shape::str() const {
  return std::to_string(outer) + "x" + std::to_string(n) + "x" + std::to_string(inner);
}

double op_bytes(Op op, const Shape &s) {
  const double e = static_cast<double>(s.elements()), r = static_cast<double>(s.rows());
  switch (op) {
    case Op::softmax:
    case Op::log_softmax: return 8.0 * e;                    // read x, write y
    case Op::logsumexp: return 4.0 * e + 4.0 * r;            // read x, write one per row
    case Op::cross_entropy: return 4.0 * e + 8.0 * r;        // read x and the targets
    case Op::cross_entropy_fwbw: return 8.0 * e + 8.0 * r;   // read x, targets; write dx
    case Op::softmax_backward:
    case Op::log_softmax_backward: return 12.0 * e;          // read y and dy, write dx
  }
  return 0;
}

const Inputs &inputs_for(const Shape &s) {
  static std::unique_ptr<Inputs> cached;
  if (cached && cached->shape.outer == s.outer && cached->shape.n == s.n && cached->shape.inner == s.inner)
    return *cached;
  cached.reset();  // free the previous shape first: the largest is 64 MB
  auto in = std::make_unique<Inputs>();
  in->shape = s;
  in->x = AlignedArray<float>(s.elements());
  in->target = AlignedArray<int64_t>(s.rows());
  // Fixed seed per shape, so that every run of a shape sees the same data.
  std::mt19937_64 rng(0x50f7c17 ^ (s.outer * 1000003u) ^ (s.n * 7919u) ^ s.inner);
  std::normal_distribution<float> normal(0.0f, 1.0f);
  for (size_t i = 0; i < s.elements(); ++i) in->x.data()[i] = normal(rng);
  std::uniform_int_distribution<int64_t> cls(0, static_cast<int64_t>(s.n) - 1);
  for (size_t i = 0; i < s.rows(); ++i) in->target.data()[i] = cls(rng);
  cached = std::move(in);
  return *cached;
}

const BackwardInputs &backward_inputs_for(const Shape &s) {
  static std::unique_ptr<BackwardInputs> cached;
  if (cached && cached->shape.outer == s.outer && cached->shape.n == s.n && cached->shape.inner == s.inner)
    return *cached;
  cached.reset();
  const Inputs &in = inputs_for(s);
  auto b = std::make_unique<BackwardInputs>();
  b->shape = s;
  b->y_softmax = AlignedArray<float>(s.elements());
  b->y_log_softmax = AlignedArray<float>(s.elements());
  b->dy = AlignedArray<float>(s.elements());
  for (size_t r = 0; r < s.rows(); ++r) {
    size_t base = (r / s.inner) * s.n * s.inner + r % s.inner;
    double m = -INFINITY, sum = 0;
    for (size_t k = 0; k < s.n; ++k) m = std::max(m, (double)in.x.data()[base + k * s.inner]);
    for (size_t k = 0; k < s.n; ++k) sum += std::exp((double)in.x.data()[base + k * s.inner] - m);
    double lse = m + std::log(sum);
    for (size_t k = 0; k < s.n; ++k) {
      double v = (double)in.x.data()[base + k * s.inner] - lse;
      b->y_log_softmax.data()[base + k * s.inner] = (float)v;
      b->y_softmax.data()[base + k * s.inner] = (float)std::exp(v);
    }
  }
  std::mt19937_64 rng(0xd1f7 ^ (s.outer * 1000003u) ^ (s.n * 7919u) ^ s.inner);
  std::normal_distribution<float> normal(0.0f, 1.0f);
  for (size_t i = 0; i < s.elements(); ++i) b->dy.data()[i] = normal(rng);
  cached = std::move(b);
  return *cached;
}

}  // namespace skbench
