// softkit_bench: softkit against oneDNN, libtorch, a naive C++ baseline and the
// memory floors, in one process, on the shapes of issue 3.
//
// Benchmark names: <op>/<impl>/<isa>/t<threads>/<outer>x<n>x<inner>
//   op    softmax | log_softmax | logsumexp | cross_entropy | cross_entropy_fwbw |
//         softmax_backward | log_softmax_backward
//   impl  softkit | onednn | torch | naive | memcpy | readsum | add   (the last three are floors)
//   isa   softkit: scalar | avx2 | avx512; peers: auto (their own choice) or their cap
// Google Benchmark appends "/real_time" (every case is timed in wall-clock time);
// a '$' at the end of --benchmark_filter is taken to mean the end of the part above.
//
// Options of our own (everything else goes to Google Benchmark):
//   --sk_quick              a handful of cases: 3 shapes, forward ops, best ISA
//   --sk_ops=a,b            ops (default: all)
//   --sk_shapes=AxBxC,...   shapes as outer x n x inner (default: the nine)
//   --sk_isa=a,b            softkit ISAs (default: all; unsupported ones are skipped)
//   --sk_threads=1,2        thread counts (default: 1 and all cores)
//   --sk_impls=a,b          implementations (default: all that were built)
//   --sk_no_check           do not check results against the double-precision reference
//   --sk_cold_mib=N         inputs of N MiB or more are timed cold (default 32; 0: every case warm)
//
// Cold cases: before each timed run, outside the timing, a read of kSweepBytes of
// other memory pushes the run's input and output out of every cache level. Without
// it a 64 MB input half fits the L3 of a 32 MiB-L3 CPU across runs, and a
// read-only sum then gains more from it than a kernel that computes.
#include <benchmark/benchmark.h>
#include <omp.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <map>
#include <regex>
#include <set>
#include <sstream>
#include <string>
#include <vector>

#include "bench_common.h"

namespace skbench {
namespace {

std::vector<std::string> split(const std::string &s, char sep) {
  std::vector<std::string> out;
  std::string cur;
  std::istringstream is(s);
  while (std::getline(is, cur, sep))
    if (!cur.empty()) out.push_back(cur);
  return out;
}

const std::vector<Shape> &default_shapes() {
  static const std::vector<Shape> s = {
      {1, 50257, 1},     {1, 262144, 1},  {32, 50257, 1},   // LLM decode steps, a small batch
      {256, 1024, 1},    {4096, 128, 1},                     // attention rows
      {65536, 16, 1},                                        // tiny rows
      {16384, 1000, 1},                                      // 64 MB, out of cache
      {8, 21, 16384},    {64, 1000, 64},                     // along axis 1 of [8,21,16384], [64,1000,64]
      {16, 5, 65536},                                        // 5 classes of a [16, 5, 256, 256] segmentation
  };
  return s;
}

const std::vector<Shape> quick_shapes = {{1, 50257, 1}, {32, 50257, 1}, {4096, 128, 1}};

bool parse_shape(const std::string &str, Shape *s) {
  unsigned long long a, b, c;
  char tail;
  if (std::sscanf(str.c_str(), "%llux%llux%llu%c", &a, &b, &c, &tail) == 3 && a && b && c) {
    *s = {a, b, c};
    return true;
  }
  if (std::sscanf(str.c_str(), "%llux%llu%c", &a, &b, &tail) == 2 && a && b) {
    *s = {a, b, 1};
    return true;
  }
  return false;
}

std::string cpu_model() {
  std::ifstream f("/proc/cpuinfo");
  std::string line;
  while (std::getline(f, line)) {
    if (line.rfind("model name", 0) == 0) {
      size_t c = line.find(':');
      if (c != std::string::npos) return line.substr(line.find_first_not_of(" \t", c + 1));
    }
  }
  return "unknown";
}

// ---------------------------------------------------------------- result checks

struct RowRef {
  double max, lse;
};
RowRef row_ref(const Inputs &in, size_t r) {
  const Shape &s = in.shape;
  size_t o = r / s.inner, i = r % s.inner;
  const float *x = in.x.data() + o * s.n * s.inner + i;
  double m = -INFINITY, sum = 0;
  for (size_t k = 0; k < s.n; ++k) m = std::max(m, (double)x[k * s.inner]);
  for (size_t k = 0; k < s.n; ++k) sum += std::exp((double)x[k * s.inner] - m);
  return {m, m + std::log(sum)};
}

double mean_loss_ref(const Inputs &in) {
  static std::map<std::string, double> cache;
  auto it = cache.find(in.shape.str());
  if (it != cache.end()) return it->second;
  const Shape &s = in.shape;
  double total = 0;
  for (size_t r = 0; r < s.rows(); ++r) {
    size_t o = r / s.inner, i = r % s.inner;
    total += row_ref(in, r).lse - in.x.data()[o * s.n * s.inner + (size_t)in.target.data()[r] * s.inner + i];
  }
  double v = total / (double)s.rows();
  cache[s.str()] = v;
  return v;
}

bool close(double got, double want, double rel, double abs_) {
  return std::isfinite(got) && std::fabs(got - want) <= rel * std::fabs(want) + abs_;
}

// "" when the runner's output agrees with a double-precision reference on a few rows
// (all rows for the mean loss), else what is wrong. Tolerances catch broken kernels,
// not last-bit differences.
std::string check_output(const Problem &p, const Runner &r) {
  const float *y = r.output();
  if (!y) return "";
  const Inputs &in = *p.in;
  const Shape &s = p.shape;
  char buf[256];
  if (p.op == Op::cross_entropy || p.op == Op::cross_entropy_fwbw) {
    const float *l = p.op == Op::cross_entropy ? y : r.output_loss();
    double want = mean_loss_ref(in);
    if (l && !close(*l, want, 1e-4, 1e-5)) {
      std::snprintf(buf, sizeof buf, "wrong result: mean loss %.7g, reference %.7g", (double)*l, want);
      return buf;
    }
    if (p.op == Op::cross_entropy) return "";
  }
  std::set<size_t> rows = {0, s.rows() / 2, s.rows() - 1};
  if (is_backward(p.op)) {
    const float *yv = p.op == Op::softmax_backward ? p.bw->y_softmax.data() : p.bw->y_log_softmax.data();
    const float *dy = p.bw->dy.data();
    for (size_t row : rows) {
      size_t base = (row / s.inner) * s.n * s.inner + row % s.inner;
      double acc = 0, ymax = 0;
      for (size_t k = 0; k < s.n; ++k) {
        size_t at = base + k * s.inner;
        acc += p.op == Op::softmax_backward ? (double)dy[at] * yv[at] : (double)dy[at];
        ymax = std::max(ymax, std::fabs((double)yv[at]));
      }
      for (size_t k = 0; k < s.n; ++k) {
        size_t at = base + k * s.inner;
        double want, abs_;
        if (p.op == Op::softmax_backward) {
          want = yv[at] * ((double)dy[at] - acc);
          abs_ = 1e-4 * ymax;
        } else {
          want = (double)dy[at] - std::exp((double)yv[at]) * acc;
          abs_ = 1e-4 * (1.0 + std::fabs(acc));
        }
        if (!close(y[at], want, 1e-3, abs_)) {
          std::snprintf(buf, sizeof buf, "wrong result: row %zu element %zu is %.7g, reference %.7g", row, k,
                        (double)y[at], want);
          return buf;
        }
      }
    }
    return "";
  }
  for (size_t row : rows) {
    RowRef ref = row_ref(in, row);
    size_t o = row / s.inner, i = row % s.inner;
    if (p.op == Op::logsumexp) {
      if (!close(y[row], ref.lse, 1e-5, 1e-5)) {
        std::snprintf(buf, sizeof buf, "wrong result: row %zu logsumexp %.7g, reference %.7g", row, (double)y[row],
                      ref.lse);
        return buf;
      }
      continue;
    }
    const double scale = 1.0 / (double)s.rows();
    for (size_t k = 0; k < s.n; ++k) {
      size_t at = o * s.n * s.inner + k * s.inner + i;
      double x = in.x.data()[at], want = 0, rel = 1e-3, abs_ = 0;
      switch (p.op) {
        case Op::softmax: want = std::exp(x - ref.lse); abs_ = 1e-7; break;
        case Op::log_softmax: want = x - ref.lse; rel = 1e-5; abs_ = 1e-4; break;
        case Op::cross_entropy_fwbw:
          want = (std::exp(x - ref.lse) - (in.target.data()[row] == (int64_t)k ? 1.0 : 0.0)) * scale;
          abs_ = 1e-7 * scale;
          break;
        default: break;
      }
      if (!close(y[at], want, rel, abs_)) {
        std::snprintf(buf, sizeof buf, "wrong result: row %zu element %zu is %.7g, reference %.7g", row, k,
                      (double)y[at], want);
        return buf;
      }
    }
  }
  return "";
}

// ---------------------------------------------------------------- progress

// One line per case: [k/N] name  G elements/s  time per call (the best repetition).
class ProgressReporter : public benchmark::BenchmarkReporter {
 public:
  explicit ProgressReporter(size_t total, std::string header) : total_(total), header_(std::move(header)) {}
  bool ReportContext(const Context &ctx) override {
    std::ostream &out = GetOutputStream();
    PrintBasicContext(&out, ctx);
    out << header_ << std::flush;
    return true;
  }
  // Called once per case, with all its repetitions: one line, with the best of them.
  void ReportRuns(const std::vector<Run> &runs) override {
    std::ostream &out = GetOutputStream();
    const Run *best = nullptr, *failed = nullptr;
    size_t reps = 0;
    for (const Run &r : runs) {
      if (r.run_type != Run::RT_Iteration) continue;
      ++reps;
      if (r.error_occurred) {
        failed = &r;
        continue;
      }
      if (!best || r.real_accumulated_time / (double)r.iterations <
                       best->real_accumulated_time / (double)best->iterations)
        best = &r;
    }
    const Run *r = best ? best : failed;
    if (!r) return;
    ++done_;
    std::string name = r->benchmark_name();
    const std::string suffix = "/real_time";
    if (name.size() > suffix.size() && name.compare(name.size() - suffix.size(), suffix.size(), suffix) == 0)
      name.erase(name.size() - suffix.size());
    char head[64];
    std::snprintf(head, sizeof head, "[%*zu/%zu] ", (int)std::to_string(total_).size(), done_, total_);
    out << head << name;
    if (!best) {
      out << "  skipped: " << failed->error_message << "\n" << std::flush;
      return;
    }
    double sec = best->real_accumulated_time / (double)best->iterations;
    auto it = best->counters.find("items_per_second");
    double geps = it != best->counters.end() ? it->second.value / 1e9 : 0.0;
    char tail[160];
    const char *unit = "s";
    double t = sec;
    if (t < 1e-3) {
      t *= 1e6;
      unit = "us";
    } else if (t < 1) {
      t *= 1e3;
      unit = "ms";
    }
    std::snprintf(tail, sizeof tail, "%*s%9.3f G elem/s %9.2f %s/call%s\n",
                  (int)(name.size() < 44 ? 44 - name.size() : 1), "", geps, t, unit,
                  reps > 1 ? " (best of repetitions)" : "");
    out << tail << std::flush;
  }

 private:
  size_t total_, done_ = 0;
  std::string header_;
};

// Google Benchmark's own filter rule (v1.7): regex_search, a leading '-' negates, "all" is ".".
bool matches_filter(const std::string &filter, const std::string &full_name) {
  std::string spec = filter;
  bool neg = false;
  if (!spec.empty() && spec[0] == '-') {
    spec.erase(0, 1);
    neg = true;
  }
  if (spec.empty() || spec == "all") spec = ".";
  try {
    bool m = std::regex_search(full_name, std::regex(spec, std::regex::extended));
    return m != neg;
  } catch (const std::regex_error &) {
    return true;  // Google Benchmark reports the bad regex itself
  }
}

// An unescaped '$' becomes "(/real_time)?$", so that "...x1$" matches ".../real_time".
std::string anchor_filter(const std::string &f) {
  std::string out;
  for (size_t i = 0; i < f.size(); ++i) {
    if (f[i] == '\\' && i + 1 < f.size()) {
      out += f[i];
      out += f[++i];
    } else if (f[i] == '$') {
      out += "(/real_time)?$";
    } else {
      out += f[i];
    }
  }
  return out;
}

// Reads far more memory than any L3 holds, so that the next run starts cold.
// Clean lines only: nothing is left to write back during the timed run.
constexpr size_t kSweepBytes = size_t(512) << 20;
void sweep_caches() {
  static AlignedArray<uint64_t> buf = [] {
    AlignedArray<uint64_t> a(kSweepBytes / sizeof(uint64_t));
    for (size_t i = 0; i < a.size(); ++i) a.data()[i] = i;
    return a;
  }();
  uint64_t s = 0;
  for (size_t i = 0; i < buf.size(); i += 8) s += buf.data()[i];  // one load per 64-byte line
  benchmark::DoNotOptimize(s);
}

}  // namespace
}  // namespace skbench

int main(int argc, char **argv) {
  using namespace skbench;
  bool quick = false, do_check = true, have_min_time = false;
  std::string ops_arg, shapes_arg, isa_arg, threads_arg, impls_arg, cold_arg = "32";
  std::vector<char *> rest = {argv[0]};
  for (int i = 1; i < argc; ++i) {
    std::string a = argv[i];
    auto val = [&](const char *key, std::string *dst) {
      std::string k = std::string(key) + "=";
      if (a.rfind(k, 0) == 0) {
        *dst = a.substr(k.size());
        return true;
      }
      return false;
    };
    if (a == "--sk_quick") quick = true;
    else if (a == "--sk_no_check") do_check = false;
    else if (val("--sk_ops", &ops_arg) || val("--sk_shapes", &shapes_arg) || val("--sk_isa", &isa_arg) ||
             val("--sk_threads", &threads_arg) || val("--sk_impls", &impls_arg) || val("--sk_cold_mib", &cold_arg)) {
    } else if (a.rfind("--sk_", 0) == 0) {
      std::fprintf(stderr, "softkit_bench: unknown option %s (see the top of bench/bench_main.cpp)\n", a.c_str());
      return 2;
    } else {
      if (a.rfind("--benchmark_min_time", 0) == 0) have_min_time = true;
      rest.push_back(argv[i]);
    }
  }
  char *cold_end = nullptr;
  const unsigned long cold_mib = std::strtoul(cold_arg.c_str(), &cold_end, 10);
  if (cold_arg.empty() || *cold_end != '\0') {
    std::fprintf(stderr, "softkit_bench: --sk_cold_mib wants a whole number of MiB, not '%s'\n", cold_arg.c_str());
    return 2;
  }
  const size_t cold_bytes = size_t(cold_mib) << 20;
  std::string min_time = quick ? "--benchmark_min_time=0.05" : "--benchmark_min_time=0.1";
  if (!have_min_time) rest.push_back(&min_time[0]);
  int bargc = (int)rest.size();
  rest.push_back(nullptr);
  benchmark::Initialize(&bargc, rest.data());
  if (benchmark::ReportUnrecognizedArguments(bargc, rest.data())) return 2;
  benchmark::SetBenchmarkFilter(anchor_filter(benchmark::GetBenchmarkFilter()));

  // What to run.
  std::vector<Op> ops;
  if (ops_arg.empty()) {
    ops = all_ops();
    if (quick) ops = {Op::softmax, Op::log_softmax, Op::logsumexp, Op::cross_entropy};  // forward ops only
  } else {
    for (const std::string &s : split(ops_arg, ',')) {
      Op op;
      if (!op_from_name(s, &op)) {
        std::fprintf(stderr, "softkit_bench: unknown op '%s'\n", s.c_str());
        return 2;
      }
      ops.push_back(op);
    }
  }
  std::vector<Shape> shapes;
  if (shapes_arg.empty()) {
    shapes = quick ? quick_shapes : default_shapes();
  } else {
    for (const std::string &s : split(shapes_arg, ',')) {
      Shape sh;
      if (!parse_shape(s, &sh)) {
        std::fprintf(stderr, "softkit_bench: bad shape '%s' (want OUTERxNxINNER)\n", s.c_str());
        return 2;
      }
      shapes.push_back(sh);
    }
  }
  const int ncpu = omp_get_num_procs();
  std::vector<int> threads;
  if (threads_arg.empty()) {
    threads = {1};
    if (ncpu > 1) threads.push_back(ncpu);
  } else {
    for (const std::string &s : split(threads_arg, ',')) {
      int t = s == "all" ? ncpu : std::atoi(s.c_str());
      if (t < 1) {
        std::fprintf(stderr, "softkit_bench: bad thread count '%s'\n", s.c_str());
        return 2;
      }
      if (std::find(threads.begin(), threads.end(), t) == threads.end()) threads.push_back(t);
    }
  }
  Options opt;
  opt.softkit_isas = isa_arg.empty() ? std::vector<std::string>{"scalar", "avx2", "avx512"} : split(isa_arg, ',');

  std::vector<Impl> impls;
  std::vector<std::string> skipped;
  add_softkit_impls(opt, &impls, &skipped);
  if (quick && isa_arg.empty()) {  // quick: softkit's best ISA only
    std::vector<Impl> keep;
    const Impl *best = nullptr;
    for (const Impl &im : impls)
      if (im.name == "softkit") best = &im;
    for (const Impl &im : impls)
      if (im.name != "softkit" || &im == best) keep.push_back(im);
    impls = keep;
  }
  add_onednn_impls(opt, &impls, &skipped);
  add_torch_impls(opt, &impls, &skipped);
  add_reference_impls(opt, &impls, &skipped);
  if (!impls_arg.empty()) {
    std::vector<std::string> want = split(impls_arg, ',');
    std::vector<Impl> keep;
    for (const Impl &im : impls) {
      bool w = std::find(want.begin(), want.end(), im.name) != want.end() ||
               (im.is_floor && std::find(want.begin(), want.end(), "floors") != want.end());
      if (w) keep.push_back(im);
    }
    impls = keep;
  }

  // Register: shape, then op, then threads, then implementation, so that the cases
  // compared in one table row run close together and each shape's input is made once.
  const std::string filter = benchmark::GetBenchmarkFilter();
  size_t total = 0;
  for (const Shape &shape : shapes) {
    for (Op op : ops) {
      for (int t : threads) {
        for (const Impl &im : impls) {
          if (!im.has(op, shape)) continue;
          std::string name = std::string(op_name(op)) + "/" + im.name + "/" + im.isa + "/t" + std::to_string(t) +
                             "/" + shape.str();
          auto checked = std::make_shared<bool>(!do_check);
          const bool cold = cold_bytes > 0 && shape.elements() * sizeof(float) >= cold_bytes;
          benchmark::RegisterBenchmark(name.c_str(), [im, op, shape, t, checked, cold](benchmark::State &state) {
            try {
              omp_set_num_threads(t);
              im.prepare(t);
              const Inputs &in = inputs_for(shape);
              Problem p{op, shape, t, &in, is_backward(op) ? &backward_inputs_for(shape) : nullptr};
              std::string why;
              std::unique_ptr<Runner> r = im.make(p, &why);
              if (!r) {
                state.SkipWithError(why.c_str());
                return;
              }
              r->run();  // warm-up, and the result to check
              if (!*checked) {
                std::string bad = check_output(p, *r);
                if (!bad.empty()) {
                  state.SkipWithError(bad.c_str());
                  return;
                }
                *checked = true;
              }
              for (auto _ : state) {
                if (cold) {
                  state.PauseTiming();
                  sweep_caches();
                  state.ResumeTiming();
                }
                r->run();
              }
              state.SetItemsProcessed(state.iterations() * (int64_t)shape.elements());
              state.SetBytesProcessed(state.iterations() * (int64_t)op_bytes(op, shape));
            } catch (const std::exception &e) {
              state.SkipWithError(e.what());
            }
          })->UseRealTime();
          if (matches_filter(filter, name + "/real_time")) ++total;
        }
      }
    }
  }

  std::string sk_isas, thr;
  for (const Impl &im : impls)
    if (im.name == "softkit") sk_isas += (sk_isas.empty() ? "" : ",") + im.isa;
  for (int t : threads) thr += (thr.empty() ? "" : ",") + std::to_string(t);
  std::string onednn_isa;
  for (const Impl &im : impls)
    if (im.name == "onednn") onednn_isa = im.isa;
  std::string skipped_str;
  for (const std::string &s : skipped) skipped_str += (skipped_str.empty() ? "" : "; ") + s;

  benchmark::AddCustomContext("softkit_version", softkit_version_string());
  benchmark::AddCustomContext("onednn_version", onednn_version_string());
  benchmark::AddCustomContext("onednn_isa", onednn_isa);
  benchmark::AddCustomContext("torch_version", torch_version_string());
  benchmark::AddCustomContext("cpu_model", cpu_model());
  benchmark::AddCustomContext("softkit_isas", sk_isas);
  benchmark::AddCustomContext("threads", thr);
  benchmark::AddCustomContext("skipped", skipped_str);
  benchmark::AddCustomContext("cold_from_mib", std::to_string(cold_mib));

  std::ostringstream header;
  header << "CPU: " << cpu_model() << "\n"
         << "softkit " << softkit_version_string() << " (ISAs: " << (sk_isas.empty() ? "none" : sk_isas) << ")";
  if (!onednn_version_string().empty()) header << ", oneDNN " << onednn_version_string() << " (ISA " << onednn_isa << ")";
  if (!torch_version_string().empty()) header << ", libtorch " << torch_version_string();
  header << "\nthreads: " << thr << "\n";
  if (cold_bytes) header << "inputs of " << cold_mib << " MiB or more timed cold (caches swept before each run)\n";
  for (const std::string &s : skipped) header << "skipped: " << s << "\n";
  header << total << " cases\n";

  ProgressReporter progress(total, header.str());
  benchmark::RunSpecifiedBenchmarks(&progress);
  benchmark::Shutdown();
  return 0;
}
