// Shared pieces of softkit_bench: the ops, the shapes, the inputs, and the small
// interface every implementation (softkit, the peers, the floors) provides.
//
// A benchmark is one (op, implementation, ISA label, threads, shape). Its name is
//   <op>/<impl>/<isa>/t<threads>/<outer>x<n>x<inner>
// e.g. softmax/softkit/avx512/t1/1x50257x1, softmax/onednn/auto/t2/32x50257x1,
// softmax/memcpy/auto/t1/1x50257x1. bench/report.py parses exactly this.
#ifndef SOFTKIT_BENCH_COMMON_H
#define SOFTKIT_BENCH_COMMON_H

#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <functional>
#include <memory>
#include <new>
#include <string>
#include <vector>

namespace skbench {

enum class Op {
  softmax,
  log_softmax,
  logsumexp,
  cross_entropy,       // forward, mean reduction, no weights, ignore_index -100
  cross_entropy_fwbw,  // forward + gradient of the logits
  softmax_backward,      // dx from y = softmax(x) and dy
  log_softmax_backward,  // dx from y = log_softmax(x) and dy
};
inline bool is_backward(Op op) { return op == Op::softmax_backward || op == Op::log_softmax_backward; }

const char *op_name(Op op);
bool op_from_name(const std::string &s, Op *op);
std::vector<Op> all_ops();

struct Shape {
  size_t outer, n, inner;
  size_t elements() const { return outer * n * inner; }
  size_t rows() const { return outer * inner; }
  std::string str() const;  // "32x50257x1"
};

// Bytes an op has to move at the least (inputs read once, outputs written once).
double op_bytes(Op op, const Shape &s);

// 64-byte aligned, uninitialised storage.
template <class T>
struct AlignedArray {
  T *p = nullptr;
  size_t count = 0;
  AlignedArray() = default;
  explicit AlignedArray(size_t n) : count(n) {
    size_t bytes = (n * sizeof(T) + 63) / 64 * 64;
    p = static_cast<T *>(std::aligned_alloc(64, bytes ? bytes : 64));
    if (!p) throw std::bad_alloc();
  }
  AlignedArray(const AlignedArray &) = delete;
  AlignedArray &operator=(const AlignedArray &) = delete;
  AlignedArray(AlignedArray &&o) noexcept : p(o.p), count(o.count) { o.p = nullptr; o.count = 0; }
  AlignedArray &operator=(AlignedArray &&o) noexcept {
    std::swap(p, o.p);
    std::swap(count, o.count);
    return *this;
  }
  ~AlignedArray() { std::free(p); }
  T *data() const { return p; }
  size_t size() const { return count; }
};

// Inputs of one shape: random normal logits (fixed seed) and random targets.
struct Inputs {
  Shape shape;
  AlignedArray<float> x;         // [outer, n, inner]
  AlignedArray<int64_t> target;  // [outer, inner], in [0, n)
};
// The inputs of a shape, made on first use; only the most recent shape is kept.
const Inputs &inputs_for(const Shape &s);

// Inputs of the backward ops: y = softmax(x) and log_softmax(x) of inputs_for(s).x,
// and a random normal dy. Made on first use; only the most recent shape is kept.
struct BackwardInputs {
  Shape shape;
  AlignedArray<float> y_softmax, y_log_softmax, dy;
};
const BackwardInputs &backward_inputs_for(const Shape &s);

// What a run computes; one instance per benchmark run, made outside the timed loop.
struct Runner {
  virtual ~Runner() = default;
  virtual void run() = 0;
  // After run(): the values to check. softmax/log_softmax: [outer, n, inner];
  // logsumexp: [outer, inner]; cross_entropy: 1 float (the mean loss);
  // cross_entropy_fwbw, softmax_backward, log_softmax_backward: the gradient [outer, n, inner]
  // (output_loss() gives the loss). nullptr: nothing to check (floors).
  virtual const float *output() const { return nullptr; }
  virtual const float *output_loss() const { return nullptr; }
};

struct Problem {
  Op op;
  Shape shape;
  int threads;
  const Inputs *in;
  const BackwardInputs *bw;  // the backward ops only, else nullptr
};

// One implementation under one ISA label.
struct Impl {
  std::string name;  // softkit, onednn, torch, naive, memcpy, readsum, add
  std::string isa;   // softkit: scalar|avx2|avx512; peers: auto, or the ISA they are capped to
  bool is_floor = false;
  std::function<bool(Op, const Shape &)> has;
  // Called before make(), every run: ISA and thread count of the runtime.
  std::function<void(int threads)> prepare;
  // nullptr and *why set when the case can not run.
  std::function<std::unique_ptr<Runner>(const Problem &, std::string *why)> make;
};

// Options given to the implementation modules.
struct Options {
  std::vector<std::string> softkit_isas;  // wanted; the unsupported ones are dropped
};

// Each module appends its implementations; modules that are not built append nothing
// and say why in *skipped.
void add_softkit_impls(const Options &, std::vector<Impl> *, std::vector<std::string> *skipped);
void add_reference_impls(const Options &, std::vector<Impl> *, std::vector<std::string> *skipped);
void add_onednn_impls(const Options &, std::vector<Impl> *, std::vector<std::string> *skipped);
void add_torch_impls(const Options &, std::vector<Impl> *, std::vector<std::string> *skipped);

// Versions for the JSON context ("" when not built).
std::string softkit_version_string();
std::string onednn_version_string();
std::string torch_version_string();

}  // namespace skbench

#endif  // SOFTKIT_BENCH_COMMON_H
