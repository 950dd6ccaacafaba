// libFuzzer harness: softkit_cross_entropy_f32 (see fuzz_common.hpp). Input:
// ISA, threads, shape [outer, classes, inner], options (NULL, struct_size
// smaller / equal / larger, every reduction and invalid ones, ignore_index,
// label smoothing in and out of [0, 1] and NaN, class weights), targets (in
// range, ignored, out of range), placement of loss (disjoint, inside the
// logits, the targets or the weights, NULL pointers), values with specials.
#include <algorithm>
#include <cstring>

#include "ce_util.hpp"
#include "fuzz_common.hpp"

namespace {

enum class LossAt { Disjoint, InLogits, InTargets, InWeights, NullLogits, NullTargets, NullLoss };

LossAt decode_loss_at(FuzzedDataProvider &in) {
  const int p = in.ConsumeIntegralInRange<int>(0, 19);
  if (p < 13) return LossAt::Disjoint;
  return static_cast<LossAt>(p - 12);
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t *data, std::size_t size) {
  FuzzedDataProvider in(data, size);
  fz::decode_isa(in);
  fz::decode_threads(in);
  const fz::Shape sh = fz::decode_shape(in);
  const std::size_t outer = sh.outer, classes = sh.n, inner = sh.inner;

  // --- options
  const float smoothings[] = {0.0f, 0.0f, 0.0f, 0.1f, 0.5f, 1.0f, -0.0f, 1e-30f, 0.999f,
                              -0.1f, 1.0001f, tu::kNaN, tu::kInf, -tu::kInf};
  const fz::CeOptions opts = fz::decode_ce_options(in, classes, smoothings, true);
  softkit_cross_entropy_options o = opts.o;
  const int reduction = opts.reduction;
  const bool null_opts = opts.null_opts;
  const std::size_t v1 = fz::kOptionsV1;
  const bool weighted = in.ConsumeIntegralInRange<int>(0, 2) == 0;

  // --- data
  const LossAt at = decode_loss_at(in);
  const std::size_t samples = sh.huge ? 8 : outer * inner;
  const std::size_t total = sh.huge ? 8 : outer * classes * inner;
  const std::size_t wcount = sh.huge ? 8 : classes;
  std::vector<float> x = fz::decode_values(in, total);
  std::vector<float> w;
  if (weighted) {
    w.resize(wcount);
    std::mt19937 rng(in.ConsumeIntegral<std::uint16_t>());
    std::uniform_real_distribution<float> u(0.0f, 4.0f);
    for (float &v : w) v = u(rng);
    const int specials = in.ConsumeIntegralInRange<int>(0, 3);
    for (int k = 0; k < specials && wcount; ++k)
      w[in.ConsumeIntegral<std::uint16_t>() % wcount] = fz::special(in.ConsumeIntegralInRange<int>(0, fz::kSpecials - 1));
  }
  std::vector<std::int64_t> t(samples);
  {
    std::mt19937_64 rng(in.ConsumeIntegral<std::uint16_t>());
    const unsigned ignore_rate = in.ConsumeIntegralInRange<unsigned>(0, 8);  // of 8
    for (auto &v : t)
      v = (rng() % 8) < ignore_rate ? o.ignore_index : classes ? (std::int64_t)(rng() % classes) : 0;
    const int bad = in.ConsumeIntegralInRange<int>(0, 6) == 0 ? in.ConsumeIntegralInRange<int>(1, 3) : 0;
    const std::int64_t bads[] = {-1, (std::int64_t)classes, (std::int64_t)classes + 1000, std::numeric_limits<std::int64_t>::min(),
                                 std::numeric_limits<std::int64_t>::max(), -100};
    for (int k = 0; k < bad && samples; ++k)
      t[in.ConsumeIntegral<std::uint32_t>() % samples] = bads[in.ConsumeIntegralInRange<int>(0, 5)];
  }
  const bool none = reduction == SOFTKIT_REDUCTION_NONE && !null_opts;
  const std::size_t loss_count = none ? samples : 1;
  const std::size_t misalign = in.ConsumeIntegralInRange<std::size_t>(0, 3);

  // --- buffers
  fz::Arena arena;
  unsigned char *opts_mem = arena.alloc(sizeof(o) + 64);
  std::memcpy(opts_mem, &o, sizeof(o));
  auto *op = null_opts ? nullptr : reinterpret_cast<softkit_cross_entropy_options *>(opts_mem);
  float *xp = at == LossAt::NullLogits ? nullptr : arena.alloc_n<float>(total + loss_count, misalign);
  std::int64_t *tp = at == LossAt::NullTargets ? nullptr : arena.alloc_n<std::int64_t>(samples + loss_count);
  float *wp = weighted ? arena.alloc_n<float>(wcount + loss_count) : nullptr;
  if (xp && total) std::memcpy(xp, x.data(), total * sizeof(float));
  if (tp && samples) std::memcpy(tp, t.data(), samples * sizeof(std::int64_t));
  if (wp && wcount) std::memcpy(wp, w.data(), wcount * sizeof(float));
  if (op) op->class_weights = wp;
  float *lp = nullptr;
  bool overlap = false;
  const std::size_t pick = in.ConsumeIntegral<std::uint32_t>();
  switch (at) {
    case LossAt::InLogits:
      lp = xp ? xp + (total ? pick % total : 0) : nullptr;
      overlap = total != 0;
      break;
    case LossAt::InTargets:
      lp = tp ? reinterpret_cast<float *>(tp) + (samples ? pick % (2 * samples) : 0) : nullptr;
      overlap = samples != 0;
      break;
    case LossAt::InWeights:
      if (wp && wcount) {
        lp = wp + pick % wcount;
        overlap = op != nullptr;  // the weights are read only through the options
      } else {
        lp = arena.alloc_n<float>(loss_count);
      }
      break;
    case LossAt::NullLoss: break;
    default: lp = arena.alloc_n<float>(loss_count, misalign); break;
  }
  if (lp && !overlap)
    for (std::size_t i = 0; i < loss_count; ++i) lp[i] = tu::kSentinel;

  // --- the expected status
  const softkit_cross_entropy_options eff = op ? *op : softkit_cross_entropy_options(SOFTKIT_CROSS_ENTROPY_OPTIONS_INIT);
  const bool bad_opts = op && (op->struct_size < v1 || (reduction != SOFTKIT_REDUCTION_MEAN && reduction != SOFTKIT_REDUCTION_SUM &&
                                                        reduction != SOFTKIT_REDUCTION_NONE) ||
                               !(o.label_smoothing >= 0.0f && o.label_smoothing <= 1.0f));
  const bool no_samples = outer == 0 || inner == 0;
  bool bad_target = false;
  if (!sh.huge)
    for (std::int64_t v : t) bad_target |= v != eff.ignore_index && (v < 0 || (std::uint64_t)v >= classes);
  fz::Expect e;
  e.add(SOFTKIT_ERROR_INVALID_ARGUMENT, bad_opts || classes == 0);
  if (!no_samples && classes != 0) {
    const bool over = fz::overflows(outer, classes, inner, sizeof(float)) || fz::overflows(outer, 1, inner, sizeof(std::int64_t));
    e.add(SOFTKIT_ERROR_SIZE_OVERFLOW, over);
    e.add(SOFTKIT_ERROR_NULL_POINTER, !xp || !tp || !lp);
    if (!over) {
      e.add(SOFTKIT_ERROR_INVALID_ARGUMENT, overlap && xp && tp && lp);
      e.add(SOFTKIT_ERROR_TARGET_OUT_OF_RANGE, bad_target);
    }
  }
  const bool writes = !sh.huge && (!no_samples || !none);
  if (lp && writes) arena.declare_output(lp, loss_count * sizeof(float));
  arena.snapshot();
  const softkit_status st = softkit_cross_entropy_f32(xp, tp, outer, classes, inner, op, lp);
  const std::string what = fz::shape_str("cross_entropy", outer, classes, inner) + " reduction " +
                           std::to_string(reduction) + (null_opts ? " (NULL opts)" : "") + " smoothing " +
                           std::to_string(o.label_smoothing) + (weighted ? " weighted" : "") + " ignore_index " +
                           std::to_string(eff.ignore_index);
  e.check(st, what);
  arena.verify(st == SOFTKIT_OK && writes, what);
  if (st != SOFTKIT_OK || !lp) return 0;
  if (no_samples) {  // PyTorch on an empty batch: MEAN NaN, SUM 0, NONE nothing
    if (eff.reduction == SOFTKIT_REDUCTION_MEAN && !std::isnan(lp[0])) fz::fail("%s: empty MEAN is %g", what.c_str(), lp[0]);
    if (eff.reduction == SOFTKIT_REDUCTION_SUM && !(lp[0] == 0.0f)) fz::fail("%s: empty SUM is %g", what.c_str(), lp[0]);
    return 0;
  }

  const std::vector<float> got(lp, lp + loss_count);
  const ref::CrossEntropyOptions ro = tu::to_ref(op ? &eff : nullptr);
  const ref::CrossEntropyResult want = ref::cross_entropy(x.data(), t.data(), outer, classes, inner, ro);
  const std::vector<double> scale = tu::ce_scales(x, t, outer, classes, inner, ro);
  const std::vector<char> nan_ok = tu::ce_nan_ok(x, t, outer, classes, inner, ro);
  fz::require_clean(tu::compare_ce(got, want.loss, scale, want.divisor, ro.reduction, "vs reference", 1.0, &nan_ok),
                    what.c_str(), "");
  if (softkit_get_isa() != SOFTKIT_ISA_SCALAR) {
    const std::vector<float> scalar = fz::on_scalar([&] {
      std::vector<float> l(loss_count);
      softkit_cross_entropy_options so = eff;
      so.class_weights = weighted ? w.data() : nullptr;
      if (softkit_cross_entropy_f32(x.data(), t.data(), outer, classes, inner, op ? &so : nullptr, l.data()) != SOFTKIT_OK)
        fz::fail("scalar run failed");
      return l;
    });
    const std::vector<fz::ld> want_s(scalar.begin(), scalar.end());
    fz::require_clean(tu::compare_ce(got, want_s, scale, want.divisor, ro.reduction, "vs scalar", 2.0, &nan_ok), what.c_str(), "");
  }
  return 0;
}
