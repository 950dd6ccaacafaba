// libFuzzer harness: the gradients and soft targets (see fuzz_common.hpp):
// softkit_softmax_backward_f32, softkit_log_softmax_backward_f32,
// softkit_cross_entropy_backward_f32 and softkit_cross_entropy_probs_f32.
// Input: op, ISA, threads, shape, options (as fuzz_cross_entropy), targets,
// placement of the output (disjoint, the allowed in-place cases dx == y and
// dx == dy, partial overlaps, inside any input, NULL pointers), values with specials.
#include <algorithm>
#include <cstring>

#include "bw_util.hpp"
#include "fuzz_common.hpp"

namespace {

enum class Op { SoftmaxBw, LogSoftmaxBw, CeBw, CeProbs };

struct Options {
  softkit_cross_entropy_options o = SOFTKIT_CROSS_ENTROPY_OPTIONS_INIT;
  int reduction = SOFTKIT_REDUCTION_MEAN;  // o.reduction as an int, what the library sees
  bool null_opts = false, weighted = false, bad = false;
};

Options decode_options(FuzzedDataProvider &in, std::size_t classes) {
  const float smoothings[] = {0.0f, 0.0f, 0.0f, 0.1f, 0.5f, 1.0f, -0.0f, 0.999f, -0.1f, 1.0001f, tu::kNaN, tu::kInf};
  const fz::CeOptions c = fz::decode_ce_options(in, classes, smoothings, false);
  Options r;
  r.o = c.o;
  r.null_opts = c.null_opts;
  r.weighted = in.ConsumeIntegralInRange<int>(0, 2) == 0;
  const softkit_cross_entropy_options &o = r.o;
  r.bad = !r.null_opts && (o.struct_size < fz::kOptionsV1 ||
                           (c.reduction != SOFTKIT_REDUCTION_MEAN && c.reduction != SOFTKIT_REDUCTION_SUM &&
                            c.reduction != SOFTKIT_REDUCTION_NONE) ||
                           !(o.label_smoothing >= 0.0f && o.label_smoothing <= 1.0f));
  r.reduction = r.null_opts ? SOFTKIT_REDUCTION_MEAN : c.reduction;
  if (r.null_opts) r.o = SOFTKIT_CROSS_ENTROPY_OPTIONS_INIT;
  return r;
}

// Where the output goes: 0 disjoint, 1 at input A, 2 at input B, 3 inside A, 4 inside B,
// 5 inside C (targets / weights), 6 NULL output, 7 NULL input A, 8 NULL input B.
int decode_at(FuzzedDataProvider &in) {
  const int p = in.ConsumeIntegralInRange<int>(0, 23);
  return p < 12 ? 0 : p - 12 < 9 ? p - 12 + (p - 12 == 0 ? 1 : 0) : 0;
}

void check_result(const std::vector<float> &got, const bw::Ref &want, const std::vector<float> &scalar,
                  const std::string &what) {
  fz::require_clean(bw::compare(got, want, "vs reference"), what.c_str(), "");
  if (scalar.empty()) return;
  // Where the scalar path gives what only the reference's own rules allow (an
  // infinity for a finite value beyond the float range, NaN for an infinity
  // that nan_ok excuses, a non-finite value that nonfinite_ok excuses), the
  // other ISA answers to the reference alone.
  bw::Ref s = want;
  for (std::size_t j = 0; j < scalar.size(); ++j) {
    const bool nan_excused = !want.nan_ok.empty() && want.nan_ok[j] && std::isnan(scalar[j]);
    const bool past_range = (std::isinf(scalar[j]) && std::isfinite(want.want[j])) ||
                            (!want.nonfinite_ok.empty() && want.nonfinite_ok[j] && !std::isfinite(scalar[j]));
    if (!nan_excused && !past_range) s.want[j] = scalar[j];
  }
  fz::require_clean(bw::compare(got, s, "vs scalar", 2.0), what.c_str(), "");
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t *data, std::size_t size) {
  FuzzedDataProvider in(data, size);
  const Op op = static_cast<Op>(in.ConsumeIntegralInRange<int>(0, 3));
  fz::decode_isa(in);
  fz::decode_threads(in);
  const fz::Shape sh = fz::decode_shape(in);
  const std::size_t outer = sh.outer, n = sh.n, inner = sh.inner;
  const std::size_t total = sh.huge ? 8 : outer * n * inner;
  const std::size_t samples = sh.huge ? 8 : outer * inner;
  const int at = decode_at(in);
  const std::size_t pick = in.ConsumeIntegral<std::uint32_t>();
  const std::size_t misalign = in.ConsumeIntegralInRange<std::size_t>(0, 3);
  const bool scalar_check = softkit_get_isa() != SOFTKIT_ISA_SCALAR;
  fz::Arena arena;
  fz::Expect e;
  const bool zero = outer == 0 || n == 0 || inner == 0;

  if (op == Op::SoftmaxBw || op == Op::LogSoftmaxBw) {
    const bool log = op == Op::LogSoftmaxBw;
    const bool same_inputs = in.ConsumeIntegralInRange<int>(0, 7) == 0;  // y == dy: allowed
    const std::vector<float> y = fz::decode_values(in, total, log ? -30.0f : 0.0f, log ? 0.0f : 1.0f);
    const std::vector<float> dy = same_inputs ? y : fz::decode_values(in, total);
    const std::size_t room = 2 * total + 1;
    float *yp = at == 7 ? nullptr : arena.alloc_n<float>(room, misalign);
    float *dyp = at == 8 ? nullptr : same_inputs && yp ? yp : arena.alloc_n<float>(room);
    if (yp && total) std::memcpy(yp, y.data(), total * sizeof(float));
    if (dyp && total) std::memcpy(dyp, dy.data(), total * sizeof(float));
    float *dx = nullptr;
    bool partial = false;
    const std::size_t shift = total >= 2 ? 1 + pick % (total - 1) : 0;
    switch (at) {
      case 1: dx = yp; break;
      case 2: dx = dyp; break;
      case 3: dx = yp ? yp + shift : nullptr; partial = shift != 0; break;
      case 4: dx = dyp ? dyp + shift : nullptr; partial = shift != 0; break;
      case 6: break;
      default: dx = arena.alloc_n<float>(total, pick % 4); break;
    }
    if (dx && dx != yp && dx != dyp)
      for (std::size_t i = 0; i < total; ++i) dx[i] = tu::kSentinel;
    if (!zero) {
      e.add(SOFTKIT_ERROR_SIZE_OVERFLOW, fz::overflows(outer, n, inner, sizeof(float)));
      e.add(SOFTKIT_ERROR_NULL_POINTER, !yp || !dyp || !dx);
      e.add(SOFTKIT_ERROR_INVALID_ARGUMENT, partial && yp && dyp);
    }
    if (dx && !sh.huge) arena.declare_output(dx, total * sizeof(float));
    arena.snapshot();
    const auto fn = log ? softkit_log_softmax_backward_f32 : softkit_softmax_backward_f32;
    const softkit_status st = fn(yp, dyp, dx, outer, n, inner);
    const std::string what = fz::shape_str(log ? "log_softmax_backward" : "softmax_backward", outer, n, inner) +
                             " at " + std::to_string(at);
    e.check(st, what);
    arena.verify(st == SOFTKIT_OK && !zero, what);
    if (st != SOFTKIT_OK || zero) return 0;
    const std::vector<float> got(dx, dx + total);
    std::vector<float> scalar;
    if (scalar_check)
      scalar = fz::on_scalar([&] {
        std::vector<float> d(total);
        if (fn(y.data(), dy.data(), d.data(), outer, n, inner) != SOFTKIT_OK) fz::fail("scalar run failed");
        return d;
      });
    check_result(got, bw::softmax_backward(log, y.data(), dy.data(), outer, n, inner), scalar, what);
    return 0;
  }

  // --- cross-entropy backward, soft targets
  const bool probs = op == Op::CeProbs;
  const std::size_t classes = n;
  Options ro = decode_options(in, classes);
  softkit_cross_entropy_options &o = ro.o;
  const std::size_t wcount = sh.huge ? 8 : classes;
  const std::vector<float> x = fz::decode_values(in, total);
  std::vector<float> w;
  if (ro.weighted) {
    w = fz::decode_values(in, wcount, 0.0f, 4.0f);
    for (float &v : w)  // mostly sane weights: specials only where placed, at most a few
      if (!(v >= 0.0f) || v > 1e4f) v = in.ConsumeIntegralInRange<int>(0, 7) == 0 ? v : 1.0f;
  }
  std::vector<float> tprob;
  std::vector<std::int64_t> t;
  if (probs) {
    tprob = fz::decode_values(in, total, 0.0f, 1.0f);
  } else {
    t.resize(samples);
    std::mt19937_64 rng(in.ConsumeIntegral<std::uint16_t>());
    const unsigned ignore_rate = in.ConsumeIntegralInRange<unsigned>(0, 8);
    for (auto &v : t) v = (rng() % 8) < ignore_rate ? o.ignore_index : classes ? (std::int64_t)(rng() % classes) : 0;
    if (samples && in.ConsumeIntegralInRange<int>(0, 6) == 0)
      t[in.ConsumeIntegral<std::uint32_t>() % samples] =
          in.ConsumeBool() ? -1 : (std::int64_t)classes + in.ConsumeIntegralInRange<std::int64_t>(0, 5);
  }
  const bool none = ro.reduction == SOFTKIT_REDUCTION_NONE;
  const std::size_t dloss_count = none ? samples : 1;
  std::vector<float> dloss = fz::decode_values(in, dloss_count, -2.0f, 2.0f);
  const std::size_t out_count = probs ? (none ? samples : 1) : total;

  unsigned char *opts_mem = arena.alloc(sizeof(o) + 64);
  std::memcpy(opts_mem, &o, sizeof(o));
  auto *op_ = ro.null_opts ? nullptr : reinterpret_cast<softkit_cross_entropy_options *>(opts_mem);
  float *xp = at == 7 ? nullptr : arena.alloc_n<float>(total + out_count, misalign);
  // B: targets (backward) or target probabilities; C: dloss (backward) or weights.
  void *bp = at == 8 ? nullptr
             : probs ? (void *)arena.alloc_n<float>(total + out_count)
                     : (void *)arena.alloc_n<std::int64_t>(samples + out_count);
  float *dlp = probs ? nullptr : arena.alloc_n<float>(dloss_count + out_count);
  float *wp = ro.weighted ? arena.alloc_n<float>(wcount + out_count) : nullptr;
  if (xp && total) std::memcpy(xp, x.data(), total * sizeof(float));
  if (bp && probs && total) std::memcpy(bp, tprob.data(), total * sizeof(float));
  if (bp && !probs && samples) std::memcpy(bp, t.data(), samples * sizeof(std::int64_t));
  if (dlp && dloss_count) std::memcpy(dlp, dloss.data(), dloss_count * sizeof(float));
  if (wp && wcount) std::memcpy(wp, w.data(), wcount * sizeof(float));
  if (op_) op_->class_weights = wp;
  float *out = nullptr;
  bool overlap = false;
  const std::size_t bcount = probs ? total : 2 * samples;  // in floats
  switch (at) {
    case 1: case 3: out = xp ? xp + (at == 3 && total ? pick % total : 0) : nullptr; overlap = total != 0; break;
    case 2: case 4:
      out = bp ? (float *)bp + (at == 4 && bcount ? pick % bcount : 0) : nullptr;
      overlap = bcount != 0;
      break;
    case 5:
      if (!probs && dlp && dloss_count) {
        out = dlp + pick % dloss_count;
        overlap = dloss_count != 0;
      } else if (wp && wcount) {
        out = wp + pick % wcount;
        overlap = op_ != nullptr;
      } else {
        out = arena.alloc_n<float>(out_count);
      }
      break;
    case 6: break;
    default: out = arena.alloc_n<float>(out_count, pick % 4); break;
  }
  if (out && !overlap)
    for (std::size_t i = 0; i < out_count; ++i) out[i] = tu::kSentinel;

  const bool no_samples = outer == 0 || inner == 0;
  const softkit_cross_entropy_options eff = o;
  bool bad_target = false;
  if (!probs && !sh.huge)
    for (std::int64_t v : t) bad_target |= v != eff.ignore_index && (v < 0 || (std::uint64_t)v >= classes);
  e.add(SOFTKIT_ERROR_INVALID_ARGUMENT, ro.bad || classes == 0);
  if (!no_samples && classes != 0) {
    const bool over = fz::overflows(outer, classes, inner, sizeof(float)) ||
                      (!probs && fz::overflows(outer, 1, inner, sizeof(std::int64_t)));
    e.add(SOFTKIT_ERROR_SIZE_OVERFLOW, over);
    e.add(SOFTKIT_ERROR_NULL_POINTER, !xp || !bp || !out);
    if (!over) {
      e.add(SOFTKIT_ERROR_INVALID_ARGUMENT, overlap && xp && bp && out);
      e.add(SOFTKIT_ERROR_TARGET_OUT_OF_RANGE, bad_target);
    }
  }
  const bool writes = !sh.huge && (probs ? !no_samples || !none : !no_samples);
  if (out && writes) arena.declare_output(out, out_count * sizeof(float));
  arena.snapshot();
  const softkit_status st =
      probs ? softkit_cross_entropy_probs_f32(xp, (const float *)bp, outer, classes, inner, op_, out)
            : softkit_cross_entropy_backward_f32(xp, (const std::int64_t *)bp, outer, classes, inner, op_, dlp, out);
  const std::string what = fz::shape_str(probs ? "cross_entropy_probs" : "cross_entropy_backward", outer, classes, inner) +
                           " reduction " + std::to_string(ro.reduction) + (ro.null_opts ? " (NULL opts)" : "") +
                           " smoothing " + std::to_string(o.label_smoothing) + (ro.weighted ? " weighted" : "") +
                           " at " + std::to_string(at);
  e.check(st, what);
  arena.verify(st == SOFTKIT_OK && writes, what);
  if (st != SOFTKIT_OK || !out || no_samples) {
    if (st == SOFTKIT_OK && out && no_samples && probs && !none) {
      if (eff.reduction == SOFTKIT_REDUCTION_MEAN && !std::isnan(out[0])) fz::fail("%s: empty MEAN is %g", what.c_str(), out[0]);
      if (eff.reduction == SOFTKIT_REDUCTION_SUM && !(out[0] == 0.0f)) fz::fail("%s: empty SUM is %g", what.c_str(), out[0]);
    }
    return 0;
  }
  const std::vector<float> got(out, out + out_count);
  softkit_cross_entropy_options so = eff;
  so.class_weights = ro.weighted && op_ ? w.data() : nullptr;
  std::vector<float> scalar;
  if (scalar_check)
    scalar = fz::on_scalar([&] {
      std::vector<float> r(out_count);
      const softkit_status s2 =
          probs ? softkit_cross_entropy_probs_f32(x.data(), tprob.data(), outer, classes, inner, op_ ? &so : nullptr, r.data())
                : softkit_cross_entropy_backward_f32(x.data(), t.data(), outer, classes, inner, op_ ? &so : nullptr,
                                                     dloss.data(), r.data());
      if (s2 != SOFTKIT_OK) fz::fail("scalar run failed");
      return r;
    });
  const bw::Ref want = probs ? bw::ce_probs(x.data(), tprob.data(), outer, classes, inner, so)
                             : bw::ce_backward(x.data(), t.data(), outer, classes, inner, so, dloss.data());
  check_result(got, want, scalar, what);
  return 0;
}
