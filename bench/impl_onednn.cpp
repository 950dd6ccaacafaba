// oneDNN peer: softmax_forward and logsoftmax_forward primitives (oneDNN 2.x API), and
// softmax_backward / logsoftmax_backward (hinted by a forward_training primitive),
// plain layout (ab for [outer, n], abc for [outer, n, inner]), axis 1, forward_inference.
// Threads: oneDNN's OpenMP runtime, omp_set_num_threads() before the primitive is made.
//
// ISA: oneDNN picks the best the CPU has, unless ONEDNN_MAX_CPU_ISA (or the older
// DNNL_MAX_CPU_ISA) caps it; the variable is read once, at oneDNN's first use, so
// the capped runs are a second process: scripts/bench.sh runs
//   ONEDNN_MAX_CPU_ISA=AVX2 softkit_bench --sk_impls=onednn
// and the benchmarks of that process carry the cap as their ISA label
// (softmax/onednn/avx2/...); uncapped ones are softmax/onednn/auto/...
#include "bench_common.h"

#ifdef SOFTKIT_BENCH_HAVE_ONEDNN

#include <benchmark/benchmark.h>
#include <omp.h>
#include <oneapi/dnnl/dnnl.hpp>

#include <algorithm>
#include <cctype>
#include <cstdlib>
#include <cstring>

namespace skbench {
namespace {

struct OnednnRunner : Runner {
  dnnl::engine eng;
  dnnl::stream strm;
  dnnl::memory src, dst, ddst;  // backward: src is y, ddst is dy, dst is dx
  dnnl::primitive prim;
  bool backward = false;
  AlignedArray<float> out;

  explicit OnednnRunner(const Problem &p) : eng(dnnl::engine::kind::cpu, 0), strm(eng), out(p.shape.elements()) {
    using tag = dnnl::memory::format_tag;
    using dt = dnnl::memory::data_type;
    const Shape &s = p.shape;
    dnnl::memory::desc md =
        s.inner == 1
            ? dnnl::memory::desc({(dnnl::memory::dim)s.outer, (dnnl::memory::dim)s.n}, dt::f32, tag::ab)
            : dnnl::memory::desc(
                  {(dnnl::memory::dim)s.outer, (dnnl::memory::dim)s.n, (dnnl::memory::dim)s.inner}, dt::f32,
                  tag::abc);
    std::memset(out.data(), 0, s.elements() * sizeof(float));
    dst = dnnl::memory(md, eng, out.data());
    if (is_backward(p.op)) {
      backward = true;
      const bool log = p.op == Op::log_softmax_backward;
      src = dnnl::memory(md, eng, const_cast<float *>(log ? p.bw->y_log_softmax.data() : p.bw->y_softmax.data()));
      ddst = dnnl::memory(md, eng, const_cast<float *>(p.bw->dy.data()));
      if (!log) {
        dnnl::softmax_forward::primitive_desc hint(
            dnnl::softmax_forward::desc(dnnl::prop_kind::forward_training, md, 1), eng);
        dnnl::softmax_backward::desc d(md, md, 1);
        prim = dnnl::softmax_backward(dnnl::softmax_backward::primitive_desc(d, eng, hint));
      } else {
        dnnl::logsoftmax_forward::primitive_desc hint(
            dnnl::logsoftmax_forward::desc(dnnl::prop_kind::forward_training, md, 1), eng);
        dnnl::logsoftmax_backward::desc d(md, md, 1);
        prim = dnnl::logsoftmax_backward(dnnl::logsoftmax_backward::primitive_desc(d, eng, hint));
      }
      return;
    }
    src = dnnl::memory(md, eng, const_cast<float *>(p.in->x.data()));
    if (p.op == Op::softmax) {
      dnnl::softmax_forward::desc d(dnnl::prop_kind::forward_inference, md, 1);
      prim = dnnl::softmax_forward(dnnl::softmax_forward::primitive_desc(d, eng));
    } else {
      dnnl::logsoftmax_forward::desc d(dnnl::prop_kind::forward_inference, md, 1);
      prim = dnnl::logsoftmax_forward(dnnl::logsoftmax_forward::primitive_desc(d, eng));
    }
  }
  void run() override {
    if (backward)
      prim.execute(strm, {{DNNL_ARG_DST, src}, {DNNL_ARG_DIFF_DST, ddst}, {DNNL_ARG_DIFF_SRC, dst}});
    else
      prim.execute(strm, {{DNNL_ARG_SRC, src}, {DNNL_ARG_DST, dst}});
    strm.wait();
    benchmark::ClobberMemory();
  }
  const float *output() const override { return out.data(); }
};

std::string isa_label() {
  const char *cap = std::getenv("ONEDNN_MAX_CPU_ISA");
  if (!cap || !*cap) cap = std::getenv("DNNL_MAX_CPU_ISA");
  if (!cap || !*cap || std::string(cap) == "ALL" || std::string(cap) == "all") return "auto";
  std::string s(cap);
  for (char &c : s) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  // AVX512_CORE, AVX512_CORE_AMX, ... are all "avx512" to the report.
  if (s.rfind("avx512", 0) == 0) return "avx512";
  return s;
}

}  // namespace

std::string onednn_version_string() {
  const dnnl_version_t *v = dnnl_version();
  std::string s = std::to_string(v->major) + "." + std::to_string(v->minor) + "." + std::to_string(v->patch);
  const char *isa = "?";
  switch (dnnl::get_effective_cpu_isa()) {
    case dnnl::cpu_isa::sse41: isa = "sse41"; break;
    case dnnl::cpu_isa::avx: isa = "avx"; break;
    case dnnl::cpu_isa::avx2: isa = "avx2"; break;
    case dnnl::cpu_isa::avx2_vnni: isa = "avx2_vnni"; break;
    case dnnl::cpu_isa::avx512_core: isa = "avx512_core"; break;
    case dnnl::cpu_isa::avx512_core_vnni: isa = "avx512_core_vnni"; break;
    case dnnl::cpu_isa::avx512_core_bf16: isa = "avx512_core_bf16"; break;
    case dnnl::cpu_isa::avx512_core_amx: isa = "avx512_core_amx"; break;
    default: break;
  }
  return s + " (max ISA " + isa + ")";
}

void add_onednn_impls(const Options &, std::vector<Impl> *out, std::vector<std::string> *) {
  Impl im;
  im.name = "onednn";
  im.isa = isa_label();
  im.has = [](Op op, const Shape &) {
    return op == Op::softmax || op == Op::log_softmax || is_backward(op);
  };
  im.prepare = [](int threads) { omp_set_num_threads(threads); };
  im.make = [](const Problem &p, std::string *why) -> std::unique_ptr<Runner> {
    try {
      return std::make_unique<OnednnRunner>(p);
    } catch (const dnnl::error &e) {
      *why = std::string("oneDNN: ") + e.what();
      return nullptr;
    }
  };
  out->push_back(im);
}

}  // namespace skbench

#else  // !SOFTKIT_BENCH_HAVE_ONEDNN

namespace skbench {
std::string onednn_version_string() { return ""; }
void add_onednn_impls(const Options &, std::vector<Impl> *, std::vector<std::string> *skipped) {
  skipped->push_back("onednn: not built (libdnnl-dev was not found at configure time)");
}
}  // namespace skbench

#endif
