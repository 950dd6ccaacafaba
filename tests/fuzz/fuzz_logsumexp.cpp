// libFuzzer harness: softkit_logsumexp_f32 (see fuzz_common.hpp). Input: ISA,
// threads, shape (n == 0 too: -inf), placement of out (disjoint, at x, inside
// x, x inside out, NULL x or out), alignment, values with specials.
#include <algorithm>

#include "fuzz_common.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t *data, std::size_t size) {
  FuzzedDataProvider in(data, size);
  const tu::Op op = tu::Op::LogSumExp;
  fz::decode_isa(in);
  fz::decode_threads(in);
  const fz::Shape sh = fz::decode_shape(in);
  fz::Place place = fz::decode_place(in);
  const std::size_t misalign_x = in.ConsumeIntegralInRange<std::size_t>(0, 3);
  const std::size_t misalign_y = in.ConsumeIntegralInRange<std::size_t>(0, 3);
  const std::size_t total = sh.huge ? 16 : sh.total();
  const std::size_t results = sh.huge ? 16 : sh.outer * sh.inner;
  const bool partial = place == fz::Place::PartialAfter || place == fz::Place::PartialBefore;
  if (partial && (total == 0 || results == 0)) place = fz::Place::Disjoint;
  const std::size_t span = place == fz::Place::PartialAfter ? total : results;
  const std::size_t shift = span >= 2 ? in.ConsumeIntegralInRange<std::size_t>(1, span - 1) : 0;
  const std::vector<float> x = fz::decode_values(in, total);

  fz::Arena arena;
  const fz::Buffers buf = fz::place_buffers(arena, place, total, results, shift, misalign_x, misalign_y);
  float *xp = buf.in, *op_ = buf.out;
  if (op_)
    for (std::size_t i = 0; i < results; ++i) op_[i] = tu::kSentinel;
  if (xp && total) std::memcpy(xp, x.data(), total * sizeof(float));

  const bool no_results = sh.outer == 0 || sh.inner == 0;
  const bool has_x = sh.n != 0 && !no_results;
  fz::Expect e;
  if (!no_results) {
    e.add(SOFTKIT_ERROR_SIZE_OVERFLOW, fz::overflows(sh.outer, sh.n, sh.inner, sizeof(float)) ||
                                           fz::overflows(sh.outer, 1, sh.inner, sizeof(float)));
    e.add(SOFTKIT_ERROR_NULL_POINTER, !op_ || (has_x && !xp));
    e.add(SOFTKIT_ERROR_INVALID_ARGUMENT, has_x && xp && op_ && place != fz::Place::Disjoint);
  }
  if (op_ && !sh.huge) arena.declare_output(op_, results * sizeof(float));
  arena.snapshot();
  const softkit_status st = softkit_logsumexp_f32(xp, op_, sh.outer, sh.n, sh.inner);
  const std::string what = fz::shape_str("logsumexp", sh.outer, sh.n, sh.inner);
  e.check(st, what);
  arena.verify(st == SOFTKIT_OK && !no_results, what);
  if (st != SOFTKIT_OK || no_results) return 0;

  const std::vector<float> got(op_, op_ + results);
  if (sh.n == 0) {  // log of an empty sum
    for (std::size_t i = 0; i < results; ++i)
      if (!(got[i] == -tu::kInf)) fz::fail("%s: out[%zu] = %g, want -inf", what.c_str(), i, (double)got[i]);
    return 0;
  }
  const auto stats = ref::stats(x.data(), sh.outer, sh.n, sh.inner);
  const auto want = tu::reference(op, x, sh.outer, sh.n, sh.inner, stats);
  fz::require_clean(tu::compare(op, x, got, want, stats, sh.outer, sh.n, sh.inner, "vs reference"), what.c_str(), "");
  if (softkit_get_isa() != SOFTKIT_ISA_SCALAR) {
    const std::vector<float> scalar = fz::on_scalar([&] {
      std::vector<float> y(results);
      if (softkit_logsumexp_f32(x.data(), y.data(), sh.outer, sh.n, sh.inner) != SOFTKIT_OK) fz::fail("scalar run failed");
      return y;
    });
    const std::vector<fz::ld> want_s = tu::scalar_or_reference(scalar, want);
    fz::require_clean(tu::compare(op, x, got, want_s, stats, sh.outer, sh.n, sh.inner, "vs scalar"), what.c_str(), "");
  }
  return 0;
}
