// libFuzzer harness: softkit_softmax_f32 and softkit_log_softmax_f32 (see fuzz_common.hpp).
// Input: op, ISA, threads, shape, placement of y (disjoint, in place, partial
// overlap either way, NULL x or y), alignment, values with specials.
#include "fuzz_common.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t *data, std::size_t size) {
  FuzzedDataProvider in(data, size);
  const tu::Op op = in.ConsumeBool() ? tu::Op::LogSoftmax : tu::Op::Softmax;
  fz::decode_isa(in);
  fz::decode_threads(in);
  const fz::Shape sh = fz::decode_shape(in);
  fz::Place place = fz::decode_place(in);
  const std::size_t misalign_x = in.ConsumeIntegralInRange<std::size_t>(0, 3);
  const std::size_t misalign_y = in.ConsumeIntegralInRange<std::size_t>(0, 3);
  const std::size_t total = sh.huge ? 16 : sh.total();
  if (total < 2 && (place == fz::Place::PartialAfter || place == fz::Place::PartialBefore)) place = fz::Place::Disjoint;
  const std::size_t shift = total >= 2 ? in.ConsumeIntegralInRange<std::size_t>(1, total - 1) : 1;
  const std::vector<float> x = fz::decode_values(in, total);

  fz::Arena arena;
  const fz::Buffers buf = fz::place_buffers(arena, place, total, total, shift, misalign_x, misalign_y);
  float *xp = buf.in, *yp = buf.out;
  if (yp && yp != xp)
    for (std::size_t i = 0; i < total; ++i) yp[i] = tu::kSentinel;
  if (xp && total) std::memcpy(xp, x.data(), total * sizeof(float));

  const bool zero = sh.outer == 0 || sh.n == 0 || sh.inner == 0;
  fz::Expect e;
  if (!zero) {
    e.add(SOFTKIT_ERROR_SIZE_OVERFLOW, fz::overflows(sh.outer, sh.n, sh.inner, sizeof(float)));
    e.add(SOFTKIT_ERROR_NULL_POINTER, !xp || !yp);
    e.add(SOFTKIT_ERROR_INVALID_ARGUMENT,
          place == fz::Place::PartialAfter || place == fz::Place::PartialBefore);
  }
  if (yp && !sh.huge) arena.declare_output(yp, total * sizeof(float));
  arena.snapshot();
  const softkit_status st = tu::op_fn(op)(xp, yp, sh.outer, sh.n, sh.inner);
  const std::string what = fz::shape_str(tu::op_name(op), sh.outer, sh.n, sh.inner);
  e.check(st, what);
  arena.verify(st == SOFTKIT_OK && !zero, what);
  if (st != SOFTKIT_OK || zero) return 0;

  const std::vector<float> got(yp, yp + total);
  const auto stats = ref::stats(x.data(), sh.outer, sh.n, sh.inner);
  const auto want = tu::reference(op, x, sh.outer, sh.n, sh.inner, stats);
  fz::require_clean(tu::compare(op, x, got, want, stats, sh.outer, sh.n, sh.inner, "vs reference"), what.c_str(), "");
  if (softkit_get_isa() != SOFTKIT_ISA_SCALAR) {
    const std::vector<float> scalar = fz::on_scalar([&] {
      std::vector<float> y(total);
      if (tu::op_fn(op)(x.data(), y.data(), sh.outer, sh.n, sh.inner) != SOFTKIT_OK) fz::fail("scalar run failed");
      return y;
    });
    const std::vector<fz::ld> want_s = tu::scalar_or_reference(scalar, want);
    fz::require_clean(tu::compare(op, x, got, want_s, stats, sh.outer, sh.n, sh.inner, "vs scalar"), what.c_str(), "");
  }
  return 0;
}
