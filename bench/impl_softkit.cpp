// softkit through its C API, one Impl per ISA this CPU and build support.
#include <softkit/softkit.h>

#include <benchmark/benchmark.h>

#include <cstring>
#include <stdexcept>

#include "bench_common.h"

namespace skbench {
namespace {

bool isa_from_name(const std::string &s, softkit_isa *isa) {
  static const softkit_isa all[] = {SOFTKIT_ISA_SCALAR, SOFTKIT_ISA_AVX2, SOFTKIT_ISA_AVX512, SOFTKIT_ISA_NEON};
  for (softkit_isa i : all) {
    if (s == softkit_isa_name(i)) {
      *isa = i;
      return true;
    }
  }
  return false;
}

void check(softkit_status st, const char *what) {
  if (st != SOFTKIT_OK) throw std::runtime_error(std::string(what) + ": " + softkit_status_string(st));
}

struct SoftkitRunner : Runner {
  Problem p;
  AlignedArray<float> out;
  float loss = 0.0f;
  explicit SoftkitRunner(const Problem &pr) : p(pr) {
    size_t count = (p.op == Op::logsumexp) ? p.shape.rows()
                   : (p.op == Op::cross_entropy) ? 1
                                                  : p.shape.elements();
    out = AlignedArray<float>(count);
    std::memset(out.data(), 0, count * sizeof(float));
  }
  void run() override {
    const Shape &s = p.shape;
    const float *x = p.in->x.data();
    switch (p.op) {
      case Op::softmax: check(softkit_softmax_f32(x, out.data(), s.outer, s.n, s.inner), "softmax"); break;
      case Op::log_softmax:
        check(softkit_log_softmax_f32(x, out.data(), s.outer, s.n, s.inner), "log_softmax");
        break;
      case Op::logsumexp: check(softkit_logsumexp_f32(x, out.data(), s.outer, s.n, s.inner), "logsumexp"); break;
      case Op::cross_entropy:
        check(softkit_cross_entropy_f32(x, p.in->target.data(), s.outer, s.n, s.inner, nullptr, out.data()),
              "cross_entropy");
        break;
      case Op::cross_entropy_fwbw:
        // Forward (the mean loss) and backward (d(mean loss)/dlogits, dloss = 1), as
        // training code runs them: two calls over the logits.
        {
          const float one = 1.0f;
          check(softkit_cross_entropy_f32(x, p.in->target.data(), s.outer, s.n, s.inner, nullptr, &loss),
                "cross_entropy");
          check(softkit_cross_entropy_backward_f32(x, p.in->target.data(), s.outer, s.n, s.inner, nullptr, &one,
                                                   out.data()),
                "cross_entropy_backward");
        }
        break;
      case Op::softmax_backward:
        check(softkit_softmax_backward_f32(p.bw->y_softmax.data(), p.bw->dy.data(), out.data(), s.outer, s.n,
                                           s.inner),
              "softmax_backward");
        break;
      case Op::log_softmax_backward:
        check(softkit_log_softmax_backward_f32(p.bw->y_log_softmax.data(), p.bw->dy.data(), out.data(), s.outer,
                                               s.n, s.inner),
              "log_softmax_backward");
        break;
    }
    benchmark::ClobberMemory();
  }
  const float *output() const override { return out.data(); }
  const float *output_loss() const override { return &loss; }
};

bool softkit_has_op(Op) { return true; }

}  // namespace

std::string softkit_version_string() { return softkit_version(); }

void add_softkit_impls(const Options &opt, std::vector<Impl> *out, std::vector<std::string> *skipped) {
  const softkit_isa initial = softkit_get_isa();
  for (const std::string &name : opt.softkit_isas) {
    softkit_isa isa;
    if (!isa_from_name(name, &isa)) {
      skipped->push_back("softkit/" + name + ": unknown ISA name");
      continue;
    }
    softkit_status st = softkit_set_isa(isa);
    if (st != SOFTKIT_OK) {
      skipped->push_back("softkit/" + name + ": " + softkit_status_string(st) + " (this CPU or build lacks it)");
      continue;
    }
    Impl im;
    im.name = "softkit";
    im.isa = name;
    im.has = [](Op op, const Shape &) { return softkit_has_op(op); };
    im.prepare = [isa](int threads) {
      check(softkit_set_isa(isa), "softkit_set_isa");
      softkit_set_num_threads(threads);
    };
    im.make = [](const Problem &p, std::string *) -> std::unique_ptr<Runner> {
      return std::make_unique<SoftkitRunner>(p);
    };
    out->push_back(im);
  }
  softkit_set_isa(initial);
}

}  // namespace skbench
