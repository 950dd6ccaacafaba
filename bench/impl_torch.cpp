// libtorch peer (ATen): at::_softmax_out, at::_log_softmax_out, at::logsumexp_out,
// at::cross_entropy_loss (mean, ignore_index -100, no smoothing),
// at::_softmax_backward_data_out, at::_log_softmax_backward_data_out, and the
// cross-entropy forward+backward through autograd, as training code runs it
// (grad set to None, loss.backward()). Forward ops run under c10::InferenceMode.
// Inputs are wrapped with at::from_blob: [outer, n] when inner == 1, else
// [outer, n, inner]; the op runs along dim 1. Threads: at::set_num_threads.
#include "bench_common.h"

#ifdef SOFTKIT_BENCH_HAVE_TORCH

#include <ATen/ATen.h>
#include <ATen/Parallel.h>
#include <ATen/Version.h>
#include <benchmark/benchmark.h>
#include <c10/core/InferenceMode.h>
#include <torch/version.h>

#include <cstring>

namespace skbench {
namespace {

struct TorchRunner : Runner {
  Problem p;
  at::Tensor x, t, out, grad, y, dy;
  float loss = 0.0f;

  explicit TorchRunner(const Problem &pr) : p(pr) {
    const Shape &s = p.shape;
    std::vector<int64_t> xs, ts;
    if (s.inner == 1) {
      xs = {(int64_t)s.outer, (int64_t)s.n};
      ts = {(int64_t)s.outer};
    } else {
      xs = {(int64_t)s.outer, (int64_t)s.n, (int64_t)s.inner};
      ts = {(int64_t)s.outer, (int64_t)s.inner};
    }
    x = at::from_blob(const_cast<float *>(p.in->x.data()), xs, at::TensorOptions().dtype(at::kFloat));
    t = at::from_blob(const_cast<int64_t *>(p.in->target.data()), ts, at::TensorOptions().dtype(at::kLong));
    if (is_backward(p.op)) {
      const bool log = p.op == Op::log_softmax_backward;
      y = at::from_blob(const_cast<float *>(log ? p.bw->y_log_softmax.data() : p.bw->y_softmax.data()), xs,
                        at::TensorOptions().dtype(at::kFloat));
      dy = at::from_blob(const_cast<float *>(p.bw->dy.data()), xs, at::TensorOptions().dtype(at::kFloat));
      out = at::zeros(xs, at::kFloat);
    } else if (p.op == Op::softmax || p.op == Op::log_softmax) {
      out = at::zeros(xs, at::kFloat);
    } else if (p.op == Op::logsumexp) {
      std::vector<int64_t> os = xs;
      os.erase(os.begin() + 1);
      out = at::zeros(os, at::kFloat);
    } else if (p.op == Op::cross_entropy_fwbw) {
      x = x.detach().set_requires_grad(true);  // a leaf, as a model's logits would be after .detach()
    }
  }

  void run() override {
    if (p.op == Op::cross_entropy_fwbw) {
      x.mutable_grad() = at::Tensor();  // optimizer.zero_grad(set_to_none=True)
      at::Tensor l = at::cross_entropy_loss(x, t, {}, at::Reduction::Mean, -100, 0.0);
      l.backward();
      grad = x.grad();
      loss = l.item<float>();
      benchmark::ClobberMemory();
      return;
    }
    c10::InferenceMode guard;
    switch (p.op) {
      case Op::softmax: at::_softmax_out(out, x, 1, false); break;
      case Op::log_softmax: at::_log_softmax_out(out, x, 1, false); break;
      case Op::logsumexp: at::logsumexp_out(out, x, {1}, false); break;
      case Op::cross_entropy:
        loss = at::cross_entropy_loss(x, t, {}, at::Reduction::Mean, -100, 0.0).item<float>();
        break;
      case Op::cross_entropy_fwbw: break;
      case Op::softmax_backward: at::_softmax_backward_data_out(out, dy, y, 1, at::kFloat); break;
      case Op::log_softmax_backward: at::_log_softmax_backward_data_out(out, dy, y, 1, at::kFloat); break;
    }
    benchmark::ClobberMemory();
  }
  const float *output() const override {
    if (p.op == Op::cross_entropy) return &loss;
    if (p.op == Op::cross_entropy_fwbw) return grad.defined() ? grad.data_ptr<float>() : nullptr;
    return out.data_ptr<float>();
  }
  const float *output_loss() const override { return &loss; }
};

}  // namespace

std::string torch_version_string() {
  static const std::string cached = [] {
  std::string v = TORCH_VERSION;
  // "CPU capability usage: AVX512" from the build configuration, if present.
  std::string cfg = at::show_config();
  const std::string key = "CPU capability usage: ";
  size_t at_ = cfg.find(key);
  if (at_ != std::string::npos) {
    size_t end = cfg.find('\n', at_);
    v += " (cpu capability " + cfg.substr(at_ + key.size(), end - at_ - key.size()) + ")";
  }
  return v;
  }();
  return cached;
}

void add_torch_impls(const Options &, std::vector<Impl> *out, std::vector<std::string> *) {
  Impl im;
  im.name = "torch";
  im.isa = "auto";
  im.has = [](Op, const Shape &) { return true; };
  im.prepare = [](int threads) { at::set_num_threads(threads); };
  im.make = [](const Problem &p, std::string *why) -> std::unique_ptr<Runner> {
    try {
      return std::make_unique<TorchRunner>(p);
    } catch (const c10::Error &e) {
      *why = std::string("libtorch: ") + e.what_without_backtrace();
      return nullptr;
    }
  };
  out->push_back(im);
}

}  // namespace skbench

#else  // !SOFTKIT_BENCH_HAVE_TORCH

namespace skbench {
std::string torch_version_string() { return ""; }
void add_torch_impls(const Options &, std::vector<Impl> *, std::vector<std::string> *skipped) {
  skipped->push_back("torch: not built (libtorch-dev was not found at configure time)");
}
}  // namespace skbench

#endif
