// The SIMD kernels, written once over an xsimd arch and instantiated by each ISA
// file (avx2/, avx512/, neon/). This file is included INSIDE that file's own
// namespace (one definition rule: a helper compiled with -mavx512f must never be
// merged with its AVX2 twin), after the file has defined:
//
//   using arch = xsimd::...;
//   struct isa_ops {
//     static vf load_tail(const float *p, size_t k, float fill);   // k < W lanes, rest = fill
//     static void store_tail(float *p, vf v, size_t k);
//     static float hmax(vf v);
//     static vd widen_lo(vf v), widen_hi(vf v);                      // float halves -> double
//     static vf scale_pow2(vf p, vf k, vf t);  // p * 2^k, k in [-150, 63], t = k + 1.5 * 2^23
//     static constexpr bool kDescendBehindSide;  // see exp_sum_pass
//     static constexpr float kOnePassHigh;       // see max_sum_one_pass
//     static constexpr bool kAlignSides;         // see span_head
//     static constexpr bool kLogShortRows, kRowReduce, kExpAgain;  // see their uses
//   };
//
// Conventions: every sum of exp values runs in float vector accumulators for a
// block of at most 16 terms per lane and is then added to double accumulators,
// so a row of 2^18+ elements keeps ~1 ulp; a sum is >= 1 because the max
// element contributes exp(0) = 1. Tails use masked loads and stores, never a
// scalar loop.
//
// Within a block, each float add onto a partial sum that holds a term near 1
// (the max's) may round by half an ulp of it: terms just above or below half
// an ulp of 1 (x - max about -16.6) all round the same way, and 15 such adds in
// a row cost a log-softmax up to 1.8 times its bound (found by fuzzing). So a
// row pass adds its kUnroll vectors of a step as a tree, (e0 + e1) + (e2 + e3),
// into one accumulator, kRowSteps steps per block: a lane's partial sum takes
// kRowSteps adds, not 16 (at most 2.5 ulp of it in all): the adds are as
// many as four accumulators took, and long rows lost 0-3%. The forward column
// passes, whose lanes each add one column's rows in order, move to double
// every kColFlush rows instead (7 adds, 3.5 ulp: 0.86 of the log-softmax
// bound at worst in the tests; blocks of 4 cost slabs 15-25%, 8 nothing
// measurable). The backward passes keep kFlush: their terms are products
// of both signs, bounded otherwise (see the README's accuracy section).

using vf = xsimd::batch<float, arch>;
using vd = xsimd::batch<double, arch>;
using vi = xsimd::batch<int32_t, arch>;
constexpr std::size_t W = vf::size;
constexpr std::size_t kUnroll = 4;      // vectors per step of a row pass
constexpr std::size_t kRowSteps = 4;    // steps of a row pass per float block
constexpr std::size_t kFlush = 16;      // float steps per lane before moving to double (backward)
constexpr std::size_t kColFlush = 8;    // the same for the forward column passes
constexpr float kNegInf = -__builtin_huge_valf();
constexpr std::size_t kLineVectors = 64 / sizeof(vf);  // vectors in a 64-byte line

inline std::size_t min_size(std::size_t a, std::size_t b) { return a < b ? a : b; }

// Software prefetch this far ahead of a streaming pass's loads and stores. The
// hardware prefetchers alone fell behind the passes whose exps keep the core
// busy (Intel Xeon, family 6 model 207, as this project's machine was on
// 2026-11-26): from L3, logsumexp and cross-entropy at 16384 x 1000 ran 2.7
// times faster with it, softmax there 1.3 and at 32 x 50257 1.1 times, the
// AVX2 passes alike, the backward passes from L3 by 0-18%; rows in L2 moved
// by -5 to +5%. 2 KiB gave about the same, 1 KiB clearly less. A prefetch
// never faults, so one past a span's end is harmless.
constexpr std::size_t kPrefetchBytes = 4096;
// Prefetch (for a read, or with Write for a store) the `bytes` bytes from p
// on, `ahead` bytes further on a pass's way (down with Down). In integers:
// the address may lie outside the array, where pointer arithmetic may not go.
template <bool Down = false, bool Write = false>
__attribute__((always_inline)) inline void prefetch_region(const float *p, std::size_t bytes,
                                                           std::size_t ahead = kPrefetchBytes) {
  const std::uintptr_t from = reinterpret_cast<std::uintptr_t>(p);
  const std::uintptr_t at = Down ? from - ahead : from + ahead;
  for (std::size_t b = 0; b < bytes; b += 64) __builtin_prefetch(reinterpret_cast<const void *>(at + b), Write, 3);
}
// The same for the Vectors vectors a step of a pass takes.
template <bool Down = false, bool Write = false, std::size_t Vectors = kUnroll>
__attribute__((always_inline)) inline void prefetch_step(const float *p) {
  prefetch_region<Down, Write>(p, Vectors * sizeof(vf));
}

// ---------------------------------------------------------------------------
// exp for x <= 0 (and NaN): Cody-Waite reduction x = k ln2 + r, |r| <= ln2/2, a
// degree-6 polynomial for e^r (Chebyshev fit, ~0.2 ulp before rounding), then
// 2^k applied with gradual underflow, so results down to 2^-149 are subnormals
// rather than 0. max(-104, x) keeps NaN (NaN is the second operand) and sends
// -inf to a value whose exp rounds to 0.
//
// Two kinds of exp (the template flag Sum, here and in each isa_ops):
// - exps that are output (softmax's y) reduce by ln2 in two parts: within 2 ulp
//   of the correctly rounded result over [-104, 0];
// - exps that are only summed (log-softmax, logsumexp, cross-entropy, the sums
//   of the backward passes) reduce by ln2 rounded to float, one FMA less on
//   the pipes the exp is bound by. ln2 - float(ln2) = 1.9e-9, so e^x is off
//   by at most |x| 2^-28 relatively on top of the 2 ulp: 5% of the error that
//   rounding x - max to float already brings, and in a sum the terms far from
//   the max, where it grows, are the ones that weigh nothing.
constexpr float kLn2Float = 0x1.62e430p-1f;
struct exp_parts {
  vf p, k, t;  // e^r, k, and t = k + 1.5 * 2^23 (k in t's low mantissa bits)
};
template <bool Sum = false>
__attribute__((always_inline)) inline exp_parts exp_poly_parts(vf x) {
  const vf magic(12582912.0f);  // 1.5 * 2^23: adding it rounds to an integer
  const vf t = xsimd::fma(x, vf(1.44269504088896341f), magic);
  const vf k = t - magic;
  vf r;
  if (Sum) {
    r = xsimd::fma(k, vf(-kLn2Float), x);
  } else {
    r = xsimd::fma(k, vf(-0.693359375f), x);
    r = xsimd::fma(k, vf(2.12194440e-4f), r);
  }
  // 1 + r + r^2 (c2 + c3 r + r^2 (c4 + c5 r + c6 r^2)): the same six FMA-unit
  // operations as Horner's scheme, in a chain of four instead of six, so
  // that fewer operations wait in the scheduler for their inputs.
  const vf r2 = r * r;
  const vf lo = xsimd::fma(vf(0x1.555404p-3f), r, vf(0.5f));
  const vf hi = xsimd::fma(vf(0x1.127p-7f), r, vf(0x1.5554acp-5f));
  const vf q = xsimd::fma(xsimd::fma(vf(0x1.6d758cp-10f), r2, hi), r2, lo);
  return {xsimd::fma(r2, q, r) + vf(1.0f), k, t};
}
template <bool Sum = false>
__attribute__((always_inline)) inline vf exp_nonpos_poly(vf x) {
  const exp_parts e = exp_poly_parts<Sum>(xsimd::max(vf(-104.0f), x));
  return isa_ops::scale_pow2(e.p, e.k, e.t);
}

// The exp every kernel uses: the ISA's own when it has one (isa_ops::exp),
// else the polynomial above. Always inlined, as are its parts: GCC's inliner
// otherwise gives up on it inside the larger pass templates, and a call there
// costs the pass its vector registers (all caller-saved) on every vector.
template <class Ops, bool Sum>
__attribute__((always_inline)) inline auto exp_of(vf x, int) -> decltype(Ops::template exp<Sum>(x)) {
  return Ops::template exp<Sum>(x);
}
template <class Ops, bool Sum>
__attribute__((always_inline)) inline vf exp_of(vf x, long) {
  return exp_nonpos_poly<Sum>(x);
}
template <bool Sum = false>
__attribute__((always_inline)) inline vf exp_nonpos(vf x) {
  return exp_of<isa_ops, Sum>(x, 0);
}

// The unclamped exp where the ISA has one (isa_ops::exp_unclamped), else the
// clamped one; kFastExp says which.
template <class Ops>
constexpr auto has_fast_exp(int) -> decltype(Ops::exp_unclamped(vf(0.0f)), true) {
  return true;
}
template <class Ops>
constexpr bool has_fast_exp(long) {
  return false;
}
constexpr bool kFastExp = has_fast_exp<isa_ops>(0);
template <class Ops, bool Sum>
__attribute__((always_inline)) inline auto exp_fast_of(vf x, int) -> decltype(Ops::template exp_unclamped<Sum>(x)) {
  return Ops::template exp_unclamped<Sum>(x);
}
template <class Ops, bool Sum>
__attribute__((always_inline)) inline vf exp_fast_of(vf x, long) {
  return exp_nonpos<Sum>(x);
}
template <bool Fast, bool Sum = false>
__attribute__((always_inline)) inline vf exp_pass(vf x) {
  return Fast ? exp_fast_of<isa_ops, Sum>(x, 0) : exp_nonpos<Sum>(x);
}

// Shared by the ISAs without a scale instruction: 2^k from the exponent bits,
// k in [-150, 63]. 2^(k + 64) is always a normal float and p * 2^(k + 64) is
// exact (p < 2); the second multiply by 2^-64 rounds once, into the subnormals
// when k < -126. No branch on the rare subnormal lanes.
inline vf scale_pow2_bits(vf p, vf t) {  // t = k + 1.5 * 2^23
  const vi biased = xsimd::bitwise_cast<vi>(t) - vi(0x4B400000 - 127 - 64);
  return (p * xsimd::bitwise_cast<vf>(biased << 23)) * vf(0x1p-64f);
}

// log for s >= 1, 0, +inf or NaN (sums of exp(x - max); 0 for a row of only
// -inf): s = 2^e * m, m in [sqrt(1/2), sqrt(2)), Cephes' polynomial for log(m).
inline vf log_ge1(vf s) {
  const vi bits = xsimd::bitwise_cast<vi>(s);
  const vi e = (bits >> 23) - vi(127);
  vf m = xsimd::bitwise_cast<vf>((bits & vi(0x007FFFFF)) | vi(0x3F800000));
  const auto big = m > vf(1.41421356f);
  m = xsimd::select(big, m * vf(0.5f), m);
  vf ef = xsimd::to_float(e);
  ef = xsimd::select(big, ef + vf(1.0f), ef);
  const vf f = m - vf(1.0f);
  vf p = vf(7.0376836292e-2f);
  p = xsimd::fma(p, f, vf(-1.1514610310e-1f));
  p = xsimd::fma(p, f, vf(1.1676998740e-1f));
  p = xsimd::fma(p, f, vf(-1.2420140846e-1f));
  p = xsimd::fma(p, f, vf(1.4249322787e-1f));
  p = xsimd::fma(p, f, vf(-1.6668057665e-1f));
  p = xsimd::fma(p, f, vf(2.0000714765e-1f));
  p = xsimd::fma(p, f, vf(-2.4999993993e-1f));
  p = xsimd::fma(p, f, vf(3.3333331174e-1f));
  const vf f2 = f * f;
  vf y = p * f2 * f;
  y = xsimd::fma(ef, vf(-2.12194440e-4f), y);
  y = xsimd::fma(f2, vf(-0.5f), y);
  y = f + y;
  y = xsimd::fma(ef, vf(0.693359375f), y);
  y = xsimd::select(s > vf(0.0f), y, vf(kNegInf));
  return xsimd::select(s < vf(__builtin_huge_valf()), y, s);  // +inf and NaN pass through
}

// ---------------------------------------------------------------------------
// Double accumulator of float blocks.
// Declared as `wide_sum acc{}` (zero); arrays of them are left uninitialized,
// since a column block's arrays are sized for the widest block and zeroing all
// of them costs more than a narrow block's work.
struct wide_sum {
  vd lo, hi;
  void add(vf v) {
    lo += isa_ops::widen_lo(v);
    hi += isa_ops::widen_hi(v);
  }
  double total() const { return xsimd::hadd(lo + hi); }
};

// ---------------------------------------------------------------------------
// Row passes (inner == 1).

// Work that rides along an exp pass. That pass is bound by the exp's
// arithmetic; a side's work is loads, stores and one cheap op per vector, so
// the core overlaps the two and the side costs next to nothing. A side gets
// block(i) for each block of kUnroll vectors the exp pass does at i (it skips
// the blocks past its own end), then finish() for the rest of its span. Each
// side computes exactly what its stand-alone pass would, bit for bit.
struct no_side {
  bool pipelined() const { return false; }
  void block(std::size_t) {}
  void finish() {}
};

// head: the elements before a span's first vector boundary, where the ISA's
// sides start there (isa_ops::kAlignSides; 0 if the span is not float
// aligned). A vector load or store across a cache line costs a second access:
// a side's loads and stores compete with its pass's own, and rows n floats
// apart (n not a multiple of 16) put most of them across lines. The sides
// below work from the boundary of the span they load (side_max) or store
// (side_write), and take the head before it in one masked access. Their
// results do not depend on the order they take the elements in, so neither on
// the address.
template <bool Align = isa_ops::kAlignSides>
struct span_head {
  std::size_t head;
  span_head(const void *p, std::size_t n) {
    const std::uintptr_t a = reinterpret_cast<std::uintptr_t>(p);
    head = a % sizeof(float) ? 0 : min_size((sizeof(vf) - a % sizeof(vf)) % sizeof(vf) / sizeof(float), n);
  }
};
// Elsewhere a constant: a member slowed AVX2's softmax rows by 4-8% even at 0.
template <>
struct span_head<false> {
  static constexpr std::size_t head = 0;
  span_head(const void *, std::size_t) {}
};

// The max of another span (the row or chunk that comes next), as row_max has
// it. A side_max makes its pass a pipelined one (see exp_sum_pass), also on the
// last span of a range, which has no next span (n = 0): the order of the sums
// must not depend on where the threads' ranges end. (A constant of the type,
// not a member: a member slowed AVX2's softmax chunks by 7%, as code layout.)
// block(i) takes the vectors at head + i: the span's blocks from its first
// vector boundary on.
struct side_max : span_head<> {
  const float *x;
  std::size_t n, done = 0;
  vf m0, m1, m2, m3;
  float result = kNegInf;
  side_max(const float *x_, std::size_t n_)
      : span_head(x_, n_), x(x_), n(n_), m0(kNegInf), m1(kNegInf), m2(kNegInf), m3(kNegInf) {}
  static constexpr bool pipelined() { return true; }
  // The head goes first, with block 0 or at the start of finish: one stream,
  // as the hardware prefetchers like it.
  void take_head() {
    if (head) m2 = xsimd::max(m2, isa_ops::load_tail(x, head, kNegInf));
  }
  void take(std::size_t i) {
    const float *p = x + head + i;
    prefetch_step(p);
    m0 = xsimd::max(m0, vf::load_unaligned(p));
    m1 = xsimd::max(m1, vf::load_unaligned(p + W));
    m2 = xsimd::max(m2, vf::load_unaligned(p + 2 * W));
    m3 = xsimd::max(m3, vf::load_unaligned(p + 3 * W));
    done = i + kUnroll * W;
  }
  void block(std::size_t i) {
    if (head + i + kUnroll * W > n) return;
    if (i == 0) take_head();
    take(i);
  }
  void finish() {
    if (n == 0) return;
    if (done == 0) take_head();
    std::size_t i = done;
    for (; head + i + kUnroll * W <= n; i += kUnroll * W) take(i);
    for (i += head; i + W <= n; i += W) m0 = xsimd::max(m0, vf::load_unaligned(x + i));
    if (i < n) m1 = xsimd::max(m1, isa_ops::load_tail(x + i, n - i, kNegInf));
    result = isa_ops::hmax(xsimd::max(xsimd::max(m0, m1), xsimd::max(m2, m3)));
  }
};

// The last pass of a finished span: y *= a (softmax); y = (x - a) - b
// (log-softmax: two roundings, so the error follows |x - max| rather than
// |max|); y -= b (log-softmax from the shifted x a first pass left in y); or
// y = exp(x - a) * b (softmax from x, a the max and b 1 / sum).
// From y's first vector boundary on, as side_max.
enum write_mode { kScale, kLogFromX, kSubtract, kExpFromX };
template <int Mode>
struct side_write : span_head<> {
  const float *x;
  float *y;
  std::size_t n, done = 0;
  vf a, b;
  side_write(const float *x_, float *y_, std::size_t n_, float a_, float b_)
      : span_head(y_, n_), x(x_), y(y_), n(n_), a(a_), b(b_) {}
  vf of(vf v) const {
    if constexpr (Mode == kExpFromX) return exp_nonpos(v - a) * b;
    return Mode == kLogFromX ? (v - a) - b : Mode == kSubtract ? v - b : v * a;
  }
  static constexpr bool kFromX = Mode == kLogFromX || Mode == kExpFromX;
  const float *src() const { return kFromX ? x : y; }
  bool pipelined() const { return false; }
  // The head goes first, as side_max's does: one stream of stores.
  void take_head() {
    if (head) isa_ops::store_tail(y, of(isa_ops::load_tail(src(), head, 0.0f)), head);
  }
  void step(std::size_t k) {
    prefetch_step<false, !kFromX>(src() + k);
    if (kFromX) prefetch_step<false, true>(y + k);
    for (std::size_t v = 0; v < kUnroll; ++v) of(vf::load_unaligned(src() + k + v * W)).store_unaligned(y + k + v * W);
  }
  void block(std::size_t i) {
    if (head + i + kUnroll * W > n) return;
    if (i == 0) take_head();
    step(head + i);
    done = i + kUnroll * W;
  }
  void finish() {
    if (done == 0) take_head();
    std::size_t i = head + done;
    for (; i + kUnroll * W <= n; i += kUnroll * W) step(i);
    for (; i + W <= n; i += W) of(vf::load_unaligned(src() + i)).store_unaligned(y + i);
    if (i < n) isa_ops::store_tail(y + i, of(isa_ops::load_tail(src() + i, n - i, 0.0f)), n - i);
  }
};

template <class A, class B>
struct side_pair {
  A first;
  B second;
  bool pipelined() const { return first.pipelined() || second.pipelined(); }
  void block(std::size_t i) {
    first.block(i);
    second.block(i);
  }
  void finish() {
    first.finish();
    second.finish();
  }
};
template <class A, class B>
side_pair<A, B> sides(const A &a, const B &b) {
  return {a, b};
}

inline float row_max(const float *x, std::size_t n) {
  side_max s(x, n);
  s.finish();
  return s.result;
}

// Sum of exp(x - m); with Store, also y = exp(x - m). The side's work rides
// along. Fast: the unclamped exp (see exp_unclamped).
enum store_what { kStoreNone, kStoreExp, kStoreShifted };  // y = nothing, exp(x - m), x - m

// What a row pass takes the exp of: arg(v) of each vector v of x (what
// kStoreShifted stores), then exp<Fast>(arg) (Fast: unclamped).
// x - m, by the exp of outputs or of sums (Sum):
template <bool Sum>
struct minus_max {
  vf vm;
  template <int>
  vf arg(vf v) {
    return v - vm;
  }
  template <bool Fast>
  vf exp(vf d) const {
    return exp_pass<Fast, Sum>(d);
  }
};

template <int Store, bool Fast, bool Backward, class Arg, class Side>
inline double exp_sum_blocks(const float *x, float *y, std::size_t n, Arg &arg_out, Side &&side_out) {
  // Local copies: their accumulators then stay in registers through the loop.
  typename std::decay<Side>::type side = side_out;
  Arg f = arg_out;
  wide_sum acc{};
  constexpr std::size_t step = kUnroll * W;
  const std::size_t blocks = n / step;
  // i: the block the pass takes, going up or down; j: the side's, always up.
  std::size_t i = Backward && blocks ? (blocks - 1) * step : 0, j = 0;
  while (j + step <= n) {
    const std::size_t end = j + min_size((n - j) / step, kRowSteps) * step;
    vf a(0.0f);
    for (; j < end; j += step, i = Backward ? i - step : i + step) {
      prefetch_step<Backward>(x + i);
      if (Store != kStoreNone) prefetch_step<Backward, true>(y + i);
      const vf d0 = f.template arg<0>(vf::load_unaligned(x + i));
      const vf d1 = f.template arg<1>(vf::load_unaligned(x + i + W));
      const vf d2 = f.template arg<2>(vf::load_unaligned(x + i + 2 * W));
      const vf d3 = f.template arg<3>(vf::load_unaligned(x + i + 3 * W));
      const vf e0 = f.template exp<Fast>(d0), e1 = f.template exp<Fast>(d1);
      const vf e2 = f.template exp<Fast>(d2), e3 = f.template exp<Fast>(d3);
      if (Store != kStoreNone) {
        (Store == kStoreExp ? e0 : d0).store_unaligned(y + i);
        (Store == kStoreExp ? e1 : d1).store_unaligned(y + i + W);
        (Store == kStoreExp ? e2 : d2).store_unaligned(y + i + 2 * W);
        (Store == kStoreExp ? e3 : d3).store_unaligned(y + i + 3 * W);
      }
      side.block(j);
      a += (e0 + e1) + (e2 + e3);
    }
    acc.add(a);
  }
  vf a(0.0f);
  i = blocks * step;
  for (; i + W <= n; i += W) {
    const vf d = f.template arg<0>(vf::load_unaligned(x + i)), e = f.template exp<Fast>(d);
    if (Store != kStoreNone) (Store == kStoreExp ? e : d).store_unaligned(y + i);
    a += e;
  }
  if (i < n) {
    // The tail's padding is -inf: the clamped exp, whose zeros cost nothing (see isa_ops::exp).
    const vf d = f.template arg<1>(isa_ops::load_tail(x + i, n - i, kNegInf)), e = f.template exp<false>(d);
    if (Store != kStoreNone) isa_ops::store_tail(y + i, Store == kStoreExp ? e : d, n - i);
    a += e;
  }
  acc.add(a);
  side.finish();
  side_out = side;
  arg_out = f;
  return acc.total();
}
template <int Store, bool Fast, bool Backward, class Side>
inline double exp_sum_blocks(const float *x, float *y, std::size_t n, float m, Side &&side) {
  minus_max<Store != kStoreExp> f{vf(m)};  // exps that are not output: the exp of sums
  return exp_sum_blocks<Store, Fast, Backward>(x, y, n, f, side);
}

// In a pipeline, where a side_max reads the next span (from memory, say), an
// ISA with isa_ops::kDescendBehindSide takes the pass's own blocks from the
// last to the first: the side's loads are then the one ascending stream, which
// the hardware prefetchers follow. Outside (the passes over data from memory,
// one after the other) the blocks go up: there, stores going down ran at half
// speed. The order of the sums follows; which passes pipeline is the shape's
// choice alone, never the threads'.
template <int Store, bool Fast, class Side>
inline double exp_sum_pass(const float *x, float *y, std::size_t n, float m, Side &&side) {
  if constexpr (isa_ops::kDescendBehindSide)
    if (side.pipelined()) return exp_sum_blocks<Store, Fast, true>(x, y, n, m, side);
  return exp_sum_blocks<Store, Fast, false>(x, y, n, m, side);
}

// Not -inf, +inf or NaN: the test of a sum of the unclamped exp (below).
inline bool finite_sum(double s) { return s >= 0.0 && s <= __DBL_MAX__; }
inline bool finite_sum(vf s) { return xsimd::all(xsimd::abs(s) <= vf(__FLT_MAX__)); }

// The sum (and with Store the exps) by the unclamped exp where there is one: a
// finite sum proves every exp equal to the clamped one's (the unclamped exp's
// failures are -inf or NaN, never a wrong finite value, and every exp is >= 0,
// so one failure makes the sum -inf or NaN). Otherwise (an input beyond the
// reduction, a NaN) the pass runs again, clamped; the side's work was done by
// the first pass. In place, the first pass would have overwritten its input:
// clamped from the start.
template <int Store, class Side = no_side>
inline double row_exp_sum(const float *x, float *y, std::size_t n, float m, Side &&side = Side{}) {
  if (kFastExp && !(Store != kStoreNone && x == y)) {
    const double s = exp_sum_pass<Store, true>(x, y, n, m, side);
    if (finite_sum(s)) return s;
    return exp_sum_pass<Store, false>(x, y, n, m, no_side{});
  }
  return exp_sum_pass<Store, false>(x, y, n, m, side);
}

struct max_sum {
  float max;
  double sum;
};

// Max and sum of exp(x - max) of a span whose max m is known (row_max), the
// side's work along. A span with nothing above -inf reports NaN if it holds
// one, else (lowest float, 0): then it adds nothing when combined with others.
template <class Side = no_side>
inline max_sum max_sum_known(const float *x, std::size_t n, float m, Side &&side = Side{}) {
  if (m == kNegInf) {
    side.finish();
    for (std::size_t i = 0; i < n; ++i)
      if (x[i] != x[i]) return {x[i], static_cast<double>(x[i])};
    return {-__FLT_MAX__, 0.0};
  }
  return {m, row_exp_sum<kStoreNone>(x, nullptr, n, m, side)};
}

inline void row_scale(float *y, std::size_t n, float factor) { side_write<kScale>(nullptr, y, n, factor, 0.0f).finish(); }

inline void row_log_write(const float *x, float *y, std::size_t n, float m, float log_sum) {
  side_write<kLogFromX>(x, y, n, m, log_sum).finish();
}

// Sum over c of w[c] * (m - x[c]) (w = 1 when weights is null), in double
// from the first term: with logits near the float range, one m - x or a few
// terms added up would overflow a float (and the smoothing path is not hot).
inline void add_smooth_terms(wide_sum &acc, vf m, vf x, vf w) {
  acc.lo += (isa_ops::widen_lo(m) - isa_ops::widen_lo(x)) * isa_ops::widen_lo(w);
  acc.hi += (isa_ops::widen_hi(m) - isa_ops::widen_hi(x)) * isa_ops::widen_hi(w);
}

inline double row_smooth_sum(const float *x, std::size_t n, const float *w, float m) {
  const vf vm(m), one(1.0f);
  wide_sum acc{};
  std::size_t i = 0;
  for (; i + W <= n; i += W) add_smooth_terms(acc, vm, vf::load_unaligned(x + i), w ? vf::load_unaligned(w + i) : one);
  if (i < n)  // the padding: x = m, w = 0
    add_smooth_terms(acc, vm, isa_ops::load_tail(x + i, n - i, m), w ? isa_ops::load_tail(w + i, n - i, 0.0f) : one);
  return acc.total();
}

// A NaN sum means the row holds NaN or +inf, or is all -inf; logsumexp then
// follows PyTorch: NaN if any NaN, else +inf if any +inf, else -inf.
inline float logsumexp_special(const float *x, std::size_t n, std::size_t stride) {
  bool pos_inf = false;
  for (std::size_t i = 0; i < n; ++i) {
    const float v = x[i * stride];
    if (v != v) return v;
    if (v == __builtin_huge_valf()) pos_inf = true;
  }
  return pos_inf ? __builtin_huge_valf() : kNegInf;
}

// ---------------------------------------------------------------------------
// One-pass max and sum, for the passes that only sum their exps.
//
// The pass adds exp(x) itself while it finds the max m, and moves the sum to
// the max afterwards, in double: one read of x and no subtraction per element,
// where two passes (or a pipeline with the next row) read it twice. It holds
// while m is in [kOnePassLow, isa_ops::kOnePassHigh]:
// - above kOnePassLow, exp(m) is a normal float: the terms that come out
//   subnormal or 0 are below e^-23 of it, and their error below 2^-58 of the sum;
// - below kOnePassHigh, 16 terms of a float partial sum stay finite, and the
//   ISA's exp scales by 2^k for every k the row needs.
// The exp of sums reduces by float(ln2) (see exp_poly_parts), so it computes
// e^(beta x), beta = 1 - (float(ln2) - ln2) log2(e), within 6e-11 beyond its
// rounding: moving the sum by e^(-beta m) rather than e^(-m) leaves
// e^(beta (x - m)), the |x - m| 2^-28 of the two-pass sums, not |x| 2^-28.
// Outside (a max beyond, +-inf or NaN, an input too low for the unclamped exp:
// the sum is then not finite or the max out of range), the caller takes two passes.
constexpr float kOnePassLow = -80.0f;
// Below this length the double exp per row costs more than the pass it saves
// (soft-target cross-entropy rows of 8 and 16 classes: -3 to -6%).
constexpr std::size_t kOnePassShortest = 64;
constexpr double kSumExpBeta = 1.0 - (static_cast<double>(kLn2Float) - 0.693147180559945309417) * 1.44269504088896340736;

// The pass itself: the max and the raw sum of exp(x) (before one_pass_sum
// moves it to the max), false where the pass does not hold (see above).
template <class Side = no_side>
inline bool one_pass_raw(const float *x, std::size_t n, float *max, double *raw, Side &&side_out = Side{}) {
  typename std::decay<Side>::type side = side_out;
  constexpr std::size_t step = kUnroll * W;
  vf m0(kNegInf), m1(kNegInf), m2(kNegInf), m3(kNegInf);
  wide_sum acc{};
  std::size_t i = 0;
  while (i + step <= n) {
    const std::size_t end = i + min_size((n - i) / step, kRowSteps) * step;
    vf a(0.0f);
    for (; i < end; i += step) {
      const vf v0 = vf::load_unaligned(x + i), v1 = vf::load_unaligned(x + i + W);
      const vf v2 = vf::load_unaligned(x + i + 2 * W), v3 = vf::load_unaligned(x + i + 3 * W);
      prefetch_step(x + i);
      m0 = xsimd::max(m0, v0);
      m1 = xsimd::max(m1, v1);
      m2 = xsimd::max(m2, v2);
      m3 = xsimd::max(m3, v3);
      a += (exp_pass<kFastExp, true>(v0) + exp_pass<kFastExp, true>(v1)) +
           (exp_pass<kFastExp, true>(v2) + exp_pass<kFastExp, true>(v3));
      side.block(i);
    }
    acc.add(a);
  }
  side.finish();
  side_out = side;
  vf a(0.0f);
  for (; i + W <= n; i += W) {
    const vf v = vf::load_unaligned(x + i);
    m0 = xsimd::max(m0, v);
    a += exp_pass<kFastExp, true>(v);
  }
  if (i < n) {
    const vf v = isa_ops::load_tail(x + i, n - i, kNegInf);
    m1 = xsimd::max(m1, v);
    a += exp_nonpos<true>(v);  // -inf padding: as in exp_sum_blocks
  }
  acc.add(a);
  const float m = isa_ops::hmax(xsimd::max(xsimd::max(m0, m1), xsimd::max(m2, m3)));
  const double sum = acc.total();
  if (!(m >= kOnePassLow && m <= isa_ops::kOnePassHigh) || !finite_sum(sum)) return false;
  *max = m;
  *raw = sum;
  return true;
}

// The sum of exp(x - max) from the pass's raw sum. The max's own term counts
// exactly 1, as exp(0) does in the two passes (a row of one finite value among
// -inf then has log-softmax 0 there, and every sum is >= 1): the raw sum less
// that term as the pass computed it (the other terms all 0 leave exactly that
// term), moved to the max, plus 1. Lane by lane, for W rows at once.
inline vd one_pass_sums(vd raw, vd own, vd m) { return vd(1.0) + (raw - own) * xsimd::exp(vd(-kSumExpBeta) * m); }
inline double one_pass_sum(float m, double raw) {
  const double own = exp_pass<kFastExp, true>(vf(m)).get(0);
  return 1.0 + (raw - own) * std::exp(-kSumExpBeta * m);
}

template <class Side = no_side>
inline bool max_sum_one_pass(const float *x, std::size_t n, max_sum *out, Side &&side_out = Side{}) {
  float m;
  double raw;
  if (!one_pass_raw(x, n, &m, &raw, std::forward<Side>(side_out))) return false;
  *out = {m, one_pass_sum(m, raw)};
  return true;
}

// max[r] and sum[r] = sum of exp(x - max) (in float) for rows of any length.
// The one-pass rows move their sums to their maxima kBatch rows at a time, W
// lanes of the vector exps at once: a libm exp per row cost rows of 1000
// floats 8% (Zen 5).
inline void long_rows_max_sum(const float *x, std::size_t rows, std::size_t n, float *m, float *s) {
  constexpr std::size_t kBatch = 4 * W;
  constexpr std::size_t D = W / 2;  // doubles in a vd
  alignas(64) float mb[kBatch];  // the one-pass rows' maxima, in [kOnePassLow, kOnePassHigh]
  alignas(64) double raw[kBatch], moved[kBatch];
  bool two[kBatch];
  for (std::size_t r0 = 0; r0 < rows; r0 += kBatch) {
    const std::size_t count = min_size(kBatch, rows - r0);
    for (std::size_t i = 0; i < count; ++i) {
      const float *xr = x + (r0 + i) * n;
      two[i] = !one_pass_raw(xr, n, &mb[i], &raw[i]);
      if (two[i]) {
        const max_sum ms = max_sum_known(xr, n, row_max(xr, n));
        m[r0 + i] = ms.max;
        s[r0 + i] = static_cast<float>(ms.sum);
      } else {
        m[r0 + i] = mb[i];
      }
    }
    // The lanes of other rows are computed and not read: from 0, not from a
    // max that may be +-inf or NaN, whose exp converts out of range in xsimd.
    for (std::size_t i = 0; i < kBatch; ++i)
      if (i >= count || two[i]) mb[i] = 0.0f, raw[i] = 1.0;
    for (std::size_t i = 0; i < count; i += W) {
      const vf mv = vf::load_aligned(mb + i);
      const vf own = exp_pass<kFastExp, true>(mv);
      one_pass_sums(vd::load_aligned(raw + i), isa_ops::widen_lo(own), isa_ops::widen_lo(mv)).store_aligned(moved + i);
      one_pass_sums(vd::load_aligned(raw + i + D), isa_ops::widen_hi(own), isa_ops::widen_hi(mv))
          .store_aligned(moved + i + D);
    }
    for (std::size_t i = 0; i < count; ++i)
      if (!two[i]) s[r0 + i] = static_cast<float>(moved[i]);
  }
}

// s[r] = log(s[r]), W at a time: the logs of a batch of rows overlap instead
// of each row waiting on its own.
inline void logs_in_place(float *s, std::size_t count) {
  std::size_t i = 0;
  for (; i + W <= count; i += W) log_ge1(vf::load_unaligned(s + i)).store_unaligned(s + i);
  if (i < count) isa_ops::store_tail(s + i, log_ge1(isa_ops::load_tail(s + i, count - i, 1.0f)), count - i);
}

// The short rows' sums of N <= 16 vectors: up to 8 in one float partial (7
// adds, 3.5 ulp: 0.84 of the log-softmax bound at worst in the tests), more
// in four, then a tree (16 in a row put log_softmax at 1.4 times its bound on
// NEON's rows of 64; see the conventions at the top). Two partials for rows
// of 5 to 8 vectors cost AVX2's rows of 64 floats 12-15%.
template <std::size_t N>
struct short_sum {
  static constexpr std::size_t K = N <= 8 ? 1 : 4;
  vf s[K];
  short_sum() {
    for (std::size_t k = 0; k < K; ++k) s[k] = vf(0.0f);
  }
  void add(std::size_t i, vf e) { s[i % K] += e; }
  vf total() const {
    if constexpr (K == 1) return s[0];
    else return (s[0] + s[1]) + (s[2] + s[3]);
  }
};

// Short rows (n <= kShortVecs * W): the row stays in registers, x is read once,
// and the sums stay in float (at most kShortVecs terms per lane, in short_sum).
// 128 floats: 8 vectors of AVX-512, 16 of AVX2 (spilled in part, still faster
// than the row passes there), at most 16 elsewhere.
constexpr std::size_t kShortVecs = 128 / W < 16 ? 128 / W : 16;

template <std::size_t NV>
struct short_row {
  vf v[NV];
  short_row(const float *x, std::size_t n) {
    prefetch_region(x, NV * sizeof(vf));
    for (std::size_t i = 0; i + 1 < NV; ++i) v[i] = vf::load_unaligned(x + i * W);
    v[NV - 1] = isa_ops::load_tail(x + (NV - 1) * W, n - (NV - 1) * W, kNegInf);
  }
  static void store(float *y, std::size_t n, const vf (&out)[NV]) {
    for (std::size_t i = 0; i + 1 < NV; ++i) out[i].store_unaligned(y + i * W);
    isa_ops::store_tail(y + (NV - 1) * W, out[NV - 1], n - (NV - 1) * W);
  }
  vf max() const {
    vf m = v[0];
    for (std::size_t i = 1; i < NV; ++i) m = xsimd::max(m, v[i]);
    return isa_ops::all_max(m);
  }
  // e = exp(x - m) (Sum: exps that are only summed, see exp_poly_parts).
  template <bool Sum = false>
  vf exp_sum(vf m, vf (&e)[NV]) const {
    short_sum<NV> s;
    for (std::size_t i = 0; i < NV; ++i) {
      e[i] = exp_nonpos<Sum>(v[i] - m);
      s.add(i, e[i]);
    }
    return isa_ops::all_sum(s.total());
  }
};

// NV = ceil(n / W): the last vector holds 1..W elements, through load_tail.
template <class F>
inline bool with_short_count(std::size_t n, F &&f) {
  switch ((n + W - 1) / W) {
    case 1: return f(std::integral_constant<std::size_t, 1>{}), true;
    case 2: return f(std::integral_constant<std::size_t, 2>{}), true;
    case 3: return f(std::integral_constant<std::size_t, 3>{}), true;
    case 4: return f(std::integral_constant<std::size_t, 4>{}), true;
    case 5: return f(std::integral_constant<std::size_t, 5>{}), true;
    case 6: return f(std::integral_constant<std::size_t, 6>{}), true;
    case 7: return f(std::integral_constant<std::size_t, 7>{}), true;
    case 8: return f(std::integral_constant<std::size_t, 8>{}), true;
    default: break;
  }
  if (kShortVecs < 16) return false;
  switch ((n + W - 1) / W) {
    case 9: return f(std::integral_constant<std::size_t, 9>{}), true;
    case 10: return f(std::integral_constant<std::size_t, 10>{}), true;
    case 11: return f(std::integral_constant<std::size_t, 11>{}), true;
    case 12: return f(std::integral_constant<std::size_t, 12>{}), true;
    case 13: return f(std::integral_constant<std::size_t, 13>{}), true;
    case 14: return f(std::integral_constant<std::size_t, 14>{}), true;
    case 15: return f(std::integral_constant<std::size_t, 15>{}), true;
    case 16: return f(std::integral_constant<std::size_t, 16>{}), true;
    default: return false;
  }
}

// Short rows W at a time, where the ISA can reduce W vectors across at once
// and transpose them (isa_ops::kRowReduce): one butterfly of shuffles gives all
// W maxima, another all W sums, instead of two shuffle trees per row. The last
// block is padded, so that every row takes the same tree whatever rows a
// thread's range starts at.
template <class Ops, bool = Ops::kRowReduce>
struct tiny_rows {
  static bool softmax(const float *, float *, std::size_t, std::size_t) { return false; }
  template <std::size_t NV>
  static bool max_sum(const float *, std::size_t, std::size_t, float *, float *) {
    return false;
  }
};

// max[r] and sum[r] = sum of exp(x - max) (float) for `rows` short rows.
template <std::size_t NV>
void short_rows_max_sum(const float *x, std::size_t rows, std::size_t n, float *max, float *sum);

template <class Ops>
struct tiny_rows<Ops, true> {
  static bool softmax(const float *x, float *y, std::size_t rows, std::size_t n) {
    if (n > W) return false;
    for (std::size_t r0 = 0; r0 < rows; r0 += W) {
      const std::size_t count = min_size(W, rows - r0);
      prefetch_region(x + r0 * n, W * n * sizeof(float));
      prefetch_region<false, true>(y + r0 * n, W * n * sizeof(float));
      vf v[W];
      for (std::size_t r = 0; r < W; ++r)
        v[r] = r < count ? Ops::load_tail(x + (r0 + r) * n, n, kNegInf) : vf(0.0f);
      const vf m = Ops::rows_max(v);
      for (std::size_t r = 0; r < W; ++r) v[r] = exp_nonpos(v[r] - Ops::row_lane(m, r));
      const vf inv = vf(1.0f) / Ops::rows_sum(v);
      for (std::size_t r = 0; r < count; ++r)
        Ops::store_tail(y + (r0 + r) * n, v[r] * Ops::row_lane(inv, r), n);
    }
    return true;
  }
  // max[r] and sum[r] = sum of exp(x - max) (float) for count <= W rows of NV
  // vectors each.
  // `rows` rows of NV vectors each, W at a time; the last group may be partial.
  template <std::size_t NV>
  static bool max_sum(const float *x, std::size_t rows, std::size_t n, float *max, float *sum) {
    const std::size_t full = rows / W, rest = rows % W, r0 = full * W;
    if (NV == 1) {
      if (n <= W / 2) transposed_groups<W / 2>(x, full, n, max, sum);
      else transposed_groups<W>(x, full, n, max, sum);
      if (rest) transposed_max_sum<W, false>(x + r0 * n, rest, n, max + r0, sum + r0);
      return true;
    }
    for (std::size_t g = 0; g < full; ++g) group_max_sum<NV, true>(x + g * W * n, W, n, max + g * W, sum + g * W);
    if (rest) group_max_sum<NV, false>(x + r0 * n, rest, n, max + r0, sum + r0);
    return true;
  }
  // Rows of at most W floats: transposed, each lane is a row, and the row's
  // reductions are lane-wise, with the results in row order. The columns past
  // n hold -inf (exp 0): the loops run over a fixed NC columns and unroll into
  // trees, where a loop over n would chain all its steps.
  template <std::size_t NC, bool Full>
  static vf load_transposed(const float *x, std::size_t count, std::size_t n, vf (&c)[W]) {
    prefetch_region(x, W * n * sizeof(float));
#pragma GCC unroll 16
    for (std::size_t r = 0; r < W; ++r) c[r] = Full || r < count ? Ops::load_tail(x + r * n, n, kNegInf) : vf(0.0f);
    Ops::transpose(c);
    return max_tree<NC>(c);
  }
  template <std::size_t NC, bool Full>
  static void transposed_max_sum(const float *x, std::size_t count, std::size_t n, float *max, float *sum) {
    vf c[W];
    const vf m = load_transposed<NC, Full>(x, count, n, c);
    Ops::store_tail(max, m, count);
    Ops::store_tail(sum, exp_sum_tree<NC>(c, m), count);
  }
  // Full groups in a pipeline: group g + 1 is loaded, transposed (into the
  // other buffer) and reduced to its maxima along group g's exps, so that one
  // group's chain of dependent steps overlaps the next group's work.
  template <std::size_t NC>
  static void transposed_groups(const float *x, std::size_t groups, std::size_t n, float *max, float *sum) {
    if (groups == 0) return;
    vf buf[2][W];
    vf m = load_transposed<NC, true>(x, W, n, buf[0]);
    for (std::size_t g = 0; g < groups; ++g) {
      const vf m_next = g + 1 < groups ? load_transposed<NC, true>(x + (g + 1) * W * n, W, n, buf[(g + 1) & 1]) : m;
      m.store_unaligned(max + g * W);
      exp_sum_tree<NC>(buf[g & 1], m).store_unaligned(sum + g * W);
      m = m_next;
    }
  }
  template <std::size_t N>
  static vf max_tree(const vf *v) {
    if constexpr (N == 1) return v[0];
    else return xsimd::max(max_tree<N / 2>(v), max_tree<N / 2>(v + N / 2));
  }
  template <std::size_t N>
  static vf exp_sum_tree(const vf *v, vf m) {
    if constexpr (N == 1) return exp_nonpos<true>(v[0] - m);
    else return exp_sum_tree<N / 2>(v, m) + exp_sum_tree<N / 2>(v + N / 2, m);
  }
  // Full: count == W, so that the loops over the rows unroll with no test.
  template <std::size_t NV, bool Full>
  static void group_max_sum(const float *x, std::size_t count, std::size_t n, float *max, float *sum) {
    vf v[W];
    for (std::size_t r = 0; r < W; ++r) v[r] = Full || r < count ? vertical_max<NV>(x + r * n, n) : vf(0.0f);
    const vf m = Ops::rows_max(v);
    vf s = exp_sums<NV, Full, kFastExp>(x, count, n, m);
    // The unclamped exp's sums are right when finite (see row_exp_sum).
    if (kFastExp && !finite_sum(s)) s = exp_sums<NV, Full, false>(x, count, n, m);
    // In row order, stored whole: the caller's vector loads of them, behind a
    // store per row, waited for those stores to reach the cache.
    const vf mr = Ops::in_row_order(m), sr = Ops::in_row_order(s);
    if (Full) {
      mr.store_unaligned(max);
      sr.store_unaligned(sum);
    } else {
      Ops::store_tail(max, mr, count);
      Ops::store_tail(sum, sr, count);
    }
  }
  template <std::size_t NV>
  static vf vertical_max(const float *x, std::size_t n) {
    vf m = Ops::load_tail(x + (NV - 1) * W, n - (NV - 1) * W, kNegInf);
    for (std::size_t i = 0; i + 1 < NV; ++i) m = xsimd::max(m, vf::load_unaligned(x + i * W));
    return m;
  }
  template <std::size_t NV, bool Full, bool Fast>
  static vf exp_sums(const float *x, std::size_t count, std::size_t n, vf m) {
    vf v[W];
    for (std::size_t r = 0; r < W; ++r)
      v[r] = Full || r < count ? vertical_exp_sum<NV, Fast>(x + r * n, n, Ops::row_lane(m, r)) : vf(0.0f);
    return Ops::rows_sum(v);
  }
  template <std::size_t NV, bool Fast>
  static vf vertical_exp_sum(const float *x, std::size_t n, vf m) {
    // The last vector's padding is -inf: clamped, so that its exps are 0.
    short_sum<NV> s;
    s.add(NV - 1, exp_nonpos<true>(Ops::load_tail(x + (NV - 1) * W, n - (NV - 1) * W, kNegInf) - m));
    for (std::size_t i = 0; i + 1 < NV; ++i) s.add(i, exp_pass<Fast, true>(vf::load_unaligned(x + i * W) - m));
    return s.total();
  }
};

// Short rows too long to sit in registers two at a time (more than 8 vectors:
// AVX2's rows of 65 to 128 floats): groups of 8 rows in three passes from L1,
// each pass a set of independent chains, one per row, that the core overlaps.
// (At 8 vectors, AVX-512's 128 floats, the pairs in registers are faster.)
template <std::size_t NV>
void softmax_short_group(const float *x, float *y, std::size_t rows, std::size_t n) {
  constexpr std::size_t G = 8;
  for (std::size_t r0 = 0; r0 < rows; r0 += G) {
    const std::size_t count = min_size(G, rows - r0);
    const float *xg = x + r0 * n;
    float *yg = y + r0 * n;
    vf m[G], inv[G];
    for (std::size_t r = 0; r < count; ++r) m[r] = short_row<NV>(xg + r * n, n).max();
    for (std::size_t r = 0; r < count; ++r) {
      const float *xr = xg + r * n;
      float *yr = yg + r * n;
      short_sum<NV> s;
      for (std::size_t i = 0; i + 1 < NV; ++i) {
        const vf e = exp_nonpos(vf::load_unaligned(xr + i * W) - m[r]);
        e.store_unaligned(yr + i * W);
        s.add(i, e);
      }
      const vf e = exp_nonpos(isa_ops::load_tail(xr + (NV - 1) * W, n - (NV - 1) * W, kNegInf) - m[r]);
      isa_ops::store_tail(yr + (NV - 1) * W, e, n - (NV - 1) * W);
      s.add(NV - 1, e);
      inv[r] = vf(1.0f) / isa_ops::all_sum(s.total());
    }
    for (std::size_t r = 0; r < count; ++r) {
      float *yr = yg + r * n;
      for (std::size_t i = 0; i + 1 < NV; ++i) (vf::load_unaligned(yr + i * W) * inv[r]).store_unaligned(yr + i * W);
      isa_ops::store_tail(yr + (NV - 1) * W, isa_ops::load_tail(yr + (NV - 1) * W, n - (NV - 1) * W, 0.0f) * inv[r],
                          n - (NV - 1) * W);
    }
  }
}

template <std::size_t NV>
void softmax_short(const float *x, float *y, std::size_t rows, std::size_t n) {
  if (NV > 8) return softmax_short_group<NV>(x, y, rows, n);
  // Two rows at a time: a row's max, sum and division are a chain of dependent
  // steps, and a second row's independent chain fills the waits.
  std::size_t r = 0;
  for (; r + 2 <= rows; r += 2, x += 2 * n, y += 2 * n) {
    const short_row<NV> a(x, n), b(x + n, n);
    vf ea[NV], eb[NV];
    const vf ma = a.max(), mb = b.max();
    const vf ia = vf(1.0f) / a.exp_sum(ma, ea), ib = vf(1.0f) / b.exp_sum(mb, eb);
    for (std::size_t i = 0; i < NV; ++i) {
      ea[i] *= ia;
      eb[i] *= ib;
    }
    short_row<NV>::store(y, n, ea);
    short_row<NV>::store(y + n, n, eb);
  }
  if (r < rows) {
    const short_row<NV> row(x, n);
    vf e[NV];
    const vf inv = vf(1.0f) / row.exp_sum(row.max(), e);
    for (std::size_t i = 0; i < NV; ++i) e[i] *= inv;
    short_row<NV>::store(y, n, e);
  }
}

// y = (x - m) - log_sum along a short row of NV vectors, from x (in L1).
template <std::size_t NV>
inline void short_row_log_write(const float *x, float *y, std::size_t n, vf m, vf log_sum) {
#pragma GCC unroll 16
  for (std::size_t i = 0; i + 1 < NV; ++i) ((vf::load_unaligned(x + i * W) - m) - log_sum).store_unaligned(y + i * W);
  const std::size_t tail = n - (NV - 1) * W;
  isa_ops::store_tail(y + (NV - 1) * W, (isa_ops::load_tail(x + (NV - 1) * W, tail, 0.0f) - m) - log_sum, tail);
}

// Log-softmax of short rows of 5 to 8 vectors, 16 rows at a time: each row's
// max and sum with the row in registers, two rows at a time as softmax_short,
// then the 16 logs in one vector, then the writes from x, still in L1. AVX-512
// only (isa_ops::kLogShortRows). Against the batches below, which read x twice
// more: rows of 100 and 128 +17-24%, of 64 +3%; their transposes stay faster
// for rows of 2 vectors (rows of 20: -47%), and AVX2's rows of 64 lost 4%
// (two rows in its 16 registers spill). A log per row, the write right after
// it from the registers, left 4096 x 128 at 1.7 times oneDNN against
// softmax's 2.0: the 16 logs at once gained 3-10% there, 30% at 256 x 128 and
// 22% at rows of 80 (Intel family 6 model 207).
template <std::size_t NV>
void log_softmax_short(const float *x, float *y, std::size_t rows, std::size_t n) {
  constexpr std::size_t G = 16;
  for (std::size_t r0 = 0; r0 < rows; r0 += G, x += G * n, y += G * n) {
    const std::size_t count = min_size(G, rows - r0);
    alignas(64) float m[G], log_sum[G];
    std::size_t r = 0;
    for (; r + 2 <= count; r += 2) {
      const short_row<NV> a(x + r * n, n), b(x + (r + 1) * n, n);
      vf ea[NV], eb[NV];
      const vf ma = a.max(), mb = b.max();
      const vf sa = a.template exp_sum<true>(ma, ea), sb = b.template exp_sum<true>(mb, eb);
      m[r] = ma.get(0);
      m[r + 1] = mb.get(0);
      log_sum[r] = sa.get(0);
      log_sum[r + 1] = sb.get(0);
    }
    if (r < count) {
      const short_row<NV> a(x + r * n, n);
      vf ea[NV];
      const vf ma = a.max();
      m[r] = ma.get(0);
      log_sum[r] = a.template exp_sum<true>(ma, ea).get(0);
    }
    logs_in_place(log_sum, count);
    for (r = 0; r < count; ++r) short_row_log_write<NV>(x + r * n, y + r * n, n, vf(m[r]), vf(log_sum[r]));
  }
}

// Log-softmax of short rows of 5 to 16 vectors outside log_softmax_short
// (AVX2's rows of 33 to 128 floats, NEON's of 17 to 64), as
// softmax_short_group: groups of 8 rows in three passes from L1, the maxima,
// the sums, then the writes, with the 8 logs taken at once between. Against
// the batches below (a row held in registers for its max and sum, the write a
// loop over n), AVX2 ran 8-12% faster at 4096 x 128 and 20-29% at rows of 50
// to 100 (Intel family 6 model 207); its rows of 4 vectors or fewer stay in
// the batches (rows of 12: -8%).
template <std::size_t NV>
void log_softmax_short_group(const float *x, float *y, std::size_t rows, std::size_t n) {
  constexpr std::size_t G = 8;
  for (std::size_t r0 = 0; r0 < rows; r0 += G) {
    const std::size_t count = min_size(G, rows - r0);
    const float *xg = x + r0 * n;
    float *yg = y + r0 * n;
    vf m[G];
    alignas(64) float log_sum[G];
    for (std::size_t r = 0; r < count; ++r) m[r] = short_row<NV>(xg + r * n, n).max();
    for (std::size_t r = 0; r < count; ++r) {
      const float *xr = xg + r * n;
      short_sum<NV> s;
#pragma GCC unroll 16
      for (std::size_t i = 0; i + 1 < NV; ++i) s.add(i, exp_nonpos<true>(vf::load_unaligned(xr + i * W) - m[r]));
      s.add(NV - 1, exp_nonpos<true>(isa_ops::load_tail(xr + (NV - 1) * W, n - (NV - 1) * W, kNegInf) - m[r]));
      log_sum[r] = isa_ops::all_sum(s.total()).get(0);
    }
    logs_in_place(log_sum, count);
    for (std::size_t r = 0; r < count; ++r) {
      // y's lines ahead, for the write (AVX2 4096 x 128: +6%; x is past L2
      // there). AVX-512's log_softmax_short lost 7-11% to the same.
      prefetch_region<false, true>(yg + r * n, n * sizeof(float));
      short_row_log_write<NV>(xg + r * n, yg + r * n, n, m[r], vf(log_sum[r]));
    }
  }
}

template <std::size_t NV>
void short_rows_max_sum(const float *x, std::size_t rows, std::size_t n, float *max, float *sum) {
  if (tiny_rows<isa_ops>::template max_sum<NV>(x, rows, n, max, sum)) return;
  for (std::size_t r = 0; r < rows; ++r) {
    const short_row<NV> row(x + r * n, n);
    const vf m = row.max();
    vf e[NV];
    max[r] = m.get(0);
    sum[r] = row.template exp_sum<true>(m, e).get(0);
  }
}

// max[r] and log(sum exp(x - max))[r] for `rows` rows of any length: all the
// sums first, then their logs W at a time.
inline void rows_max_logsum(const float *x, std::size_t rows, std::size_t n, float *max, float *log_sum) {
  if (!with_short_count(n, [&](auto nv) { short_rows_max_sum<decltype(nv)::value>(x, rows, n, max, log_sum); }))
    long_rows_max_sum(x, rows, n, max, log_sum);
  logs_in_place(log_sum, rows);
}

// Rows shorter than this that neither log_softmax_short nor
// log_softmax_short_group takes go through log-softmax in batches: their maxima and
// log sums live on the stack, and the logs take W rows at a time. A batch
// holds about 8 KiB of rows, which are still in L1 for the write. Longer rows
// take one scalar log each (negligible there) in the row pipeline.
constexpr std::size_t kGroupLogBelow = 256;
constexpr std::size_t kLogBatch = 256;  // rows at most
inline std::size_t log_batch_rows(std::size_t n) {
  const std::size_t rows = 2048 / n / W * W;
  return rows < W ? W : min_size(rows, kLogBatch);
}

// ---------------------------------------------------------------------------
// Kernel entry points: rows.

// Longer rows in a pipeline: row r's exp pass also finds row r + 1's max and
// writes row r - 1's output, so the memory-bound passes hide behind the exps.
void softmax_rows(const float *x, float *y, std::size_t rows, std::size_t n, bool from_memory) {
  if (tiny_rows<isa_ops>::softmax(x, y, rows, n)) return;
  if (with_short_count(n, [&](auto nv) { softmax_short<decltype(nv)::value>(x, y, rows, n); })) return;
  if (rows == 0) return;
  if (from_memory) {  // separate passes, each one stream
    for (std::size_t r = 0; r < rows; ++r, x += n, y += n) {
      const double s = row_exp_sum<kStoreExp>(x, y, n, row_max(x, n));
      row_scale(y, n, static_cast<float>(1.0 / s));
    }
    return;
  }
  float max = row_max(x, n), factor = 0.0f;
  for (std::size_t r = 0; r < rows; ++r) {
    auto side = sides(side_max(x + (r + 1) * n, r + 1 < rows ? n : 0),
                      side_write<kScale>(nullptr, r > 0 ? y + (r - 1) * n : y, r > 0 ? n : 0, factor, 0.0f));
    const double s = row_exp_sum<kStoreExp>(x + r * n, y + r * n, n, max, side);
    max = side.first.result;
    factor = static_cast<float>(1.0 / s);
  }
  row_scale(y + (rows - 1) * n, n, factor);
}

// A log-softmax row's exp pass, max m known: leaves x - m in y and the log of
// the sum in *log_sum, and returns true: y - log_sum is then the output, the
// same two roundings as (x - m) - log_sum. A row with nothing above -inf is
// written at once, from x (returns false).
template <class Side>
inline bool log_softmax_first_pass(const float *x, float *y, std::size_t n, float m, Side &&side, float *log_sum) {
  if (m == kNegInf) {
    const max_sum ms = max_sum_known(x, n, m, side);
    row_log_write(x, y, n, ms.max, static_cast<float>(std::log(ms.sum)));
    return false;
  }
  *log_sum = static_cast<float>(std::log(row_exp_sum<kStoreShifted>(x, y, n, m, side)));
  return true;
}

// A log-softmax row outside the one-pass sums: the exp pass leaves x - max in
// y, and the write subtracts the log of the sum there (from memory the exp
// pass is then the one that waits for y's lines, behind its exps).
inline void log_softmax_two_passes(const float *x, float *y, std::size_t n) {
  float log_sum = 0.0f;
  if (log_softmax_first_pass(x, y, n, row_max(x, n), no_side{}, &log_sum))
    side_write<kSubtract>(nullptr, y, n, 0.0f, log_sum).finish();
}

void log_softmax_rows(const float *x, float *y, std::size_t rows, std::size_t n, bool from_memory) {
  if (rows == 0) return;
  if (isa_ops::kLogShortRows && n > 4 * W && n <= 8 * W &&
      with_short_count(n, [&](auto nv) { log_softmax_short<decltype(nv)::value>(x, y, rows, n); }))
    return;
  if (n > 4 * W && with_short_count(n, [&](auto nv) {
        if constexpr (decltype(nv)::value > 4) log_softmax_short_group<decltype(nv)::value>(x, y, rows, n);
      }))
    return;
  if (n < kGroupLogBelow) {
    alignas(64) float m[kLogBatch], ls[kLogBatch];
    const std::size_t batch = log_batch_rows(n);
    for (std::size_t r0 = 0; r0 < rows; r0 += batch) {
      const std::size_t count = min_size(batch, rows - r0);
      rows_max_logsum(x + r0 * n, count, n, m, ls);
      for (std::size_t r = 0; r < count; ++r) row_log_write(x + (r0 + r) * n, y + (r0 + r) * n, n, m[r], ls[r]);
    }
    return;
  }
  if (from_memory) {  // separate passes: x read once from memory, then the write from L1
    for (std::size_t r = 0; r < rows; ++r, x += n, y += n) {
      max_sum ms;
      if (max_sum_one_pass(x, n, &ms))
        row_log_write(x, y, n, ms.max, static_cast<float>(std::log(ms.sum)));
      else
        log_softmax_two_passes(x, y, n);
    }
    return;
  }
  // In cache, row r's one pass also writes row r - 1 from x (from memory that
  // side cost 25-30%). A row outside the one-pass range takes its two passes
  // at once and leaves nothing pending.
  std::size_t pending = 0;  // n while row r - 1 waits for its write
  float prev_max = 0.0f, prev_log_sum = 0.0f;
  for (std::size_t r = 0; r < rows; ++r) {
    const float *xr = x + r * n, *xp = x + (r > 0 ? r - 1 : 0) * n;
    float *yr = y + r * n, *yp = y + (r > 0 ? r - 1 : 0) * n;
    max_sum ms;
    const bool one = max_sum_one_pass(xr, n, &ms, side_write<kLogFromX>(xp, yp, pending, prev_max, prev_log_sum));
    pending = 0;
    if (one) {
      pending = n;
      prev_max = ms.max;
      prev_log_sum = static_cast<float>(std::log(ms.sum));
    } else {
      log_softmax_two_passes(xr, yr, n);
    }
  }
  if (pending) row_log_write(x + (rows - 1) * n, y + (rows - 1) * n, n, prev_max, prev_log_sum);
}

void logsumexp_rows(const float *x, float *out, std::size_t rows, std::size_t n) {
  alignas(64) float m[kLogBatch], ls[kLogBatch];
  for (std::size_t r0 = 0; r0 < rows; r0 += kLogBatch) {
    const std::size_t count = min_size(kLogBatch, rows - r0);
    rows_max_logsum(x + r0 * n, count, n, m, ls);
    for (std::size_t r = 0; r < count; ++r) {
      const float v = m[r] + ls[r];
      out[r0 + r] = v == v ? v : logsumexp_special(x + (r0 + r) * n, n, 1);
    }
  }
}

void stats_rows(const float *x, std::size_t rows, std::size_t n, const float *weights, bool smooth, float *max,
                float *log_sum, double *smooth_sum) {
  rows_max_logsum(x, rows, n, max, log_sum);
  if (smooth)
    for (std::size_t r = 0; r < rows; ++r) smooth_sum[r] = row_smooth_sum(x + r * n, n, weights, max[r]);
}

// ---------------------------------------------------------------------------
// Kernel entry points: chunks of a long row.

// A chunk's max, NaN if the chunk holds NaN and nothing above -inf: the driver
// skips all -inf chunks when it combines them, and must not skip a NaN.
inline float nan_if_all_low(const float *x, std::size_t n, float m) {
  if (m == kNegInf)
    for (std::size_t i = 0; i < n; ++i)
      if (x[i] != x[i]) return x[i];
  return m;
}

float chunk_max(const float *x, std::size_t n) { return nan_if_all_low(x, n, row_max(x, n)); }

// Runs f with the chunk_side's write (the last pass of the chunk before) as
// its side: softmax's scaling or log-softmax's y -= shift.
template <class F>
inline auto with_chunk_write(const chunk_side &cs, F &&f) {
  if (cs.write_x) return f(side_write<kSubtract>(nullptr, cs.write_y, cs.write_n, 0.0f, cs.c));
  return f(side_write<kScale>(nullptr, cs.write_y, cs.write_n, cs.a, cs.b));
}

// Runs f with the chunk_side's work as a side of its exp pass.
template <class F>
inline auto with_chunk_side(chunk_side *cs, F &&f) {
  // Outside a pipeline the walk leaves the side nothing to do (no next chunk,
  // no write): no_side, whose pass keeps to ascending order. Only where the
  // order differs: elsewhere one instance of f is less code.
  if constexpr (isa_ops::kDescendBehindSide)
    if (!cs || !cs->pipelined) return f(no_side{});
  chunk_side none;
  if (!cs) cs = &none;
  const side_max next(cs->next, cs->next_n);
  const auto run = [&](auto out) {
    auto side = sides(next, out);
    const auto result = f(side);
    if (cs->next_n) cs->next_max = nan_if_all_low(cs->next, cs->next_n, side.first.result);
    return result;
  };
  return with_chunk_write(*cs, run);
}

double softmax_chunk_exp(const float *x, float *y, std::size_t n, float max, chunk_side *side) {
  return with_chunk_side(side, [&](auto &&s) { return row_exp_sum<kStoreExp>(x, y, n, max, s); });
}

// A long row's chunk whose max is not known beforehand, where the ISA has
// isa_ops::exp_scaled (kernel_table::softmax_chunk_exp_scaled): y = exp(x) *
// 2^-k, k from the max of the chunk's first step, and the chunk's max found in
// the same pass (a vmaxps per vector, on the x it loads anyway). Reading the
// next chunk's max along, as softmax_chunk_exp's pipeline does, a second
// stream of loads, had cost more than that and the subtraction it saves.
// AVX-512 softmax (A/B, 1 thread): 1 x 262144 +10-19%, 1 x 50257 +9-14%,
// 2 x 100000 +12-20%, 4 x 50257 +20%, 1 x 4194304 +4-11%; 2 threads +4-14%.
// k comes from the chunk's own values and the pass always goes up: the
// results do not depend on the threads nor on the address. The side's write
// (the chunk of the row before) rides along as in softmax_chunk_exp.
template <class Ops>
struct times_pow2 {
  typename Ops::exp_scaled e;
  vf m[kUnroll];  // one per vector of a step: maxima that do not wait on each other
  template <int V>
  vf arg(vf v) {
    m[V] = xsimd::max(m[V], v);
    return v;
  }
  float max() const { return isa_ops::hmax(xsimd::max(xsimd::max(m[0], m[1]), xsimd::max(m[2], m[3]))); }
  template <bool Fast>
  vf exp(vf v) const {
    return e.template of<!Fast>(v);
  }
};
// Taken where k ln2 lies within kScaledFirst of 0 (2^-k then scales the
// table exactly), and kept where the sum is finite: else the chunk's values
// climbed e^88 above the first step's (or it holds +inf or NaN), and it takes
// softmax_chunk_exp with its max.
constexpr float kScaledFirst = 80.0f;
template <class Ops = isa_ops>
double softmax_chunk_exp_scaled(const float *x, float *y, std::size_t n, float *max, double *shift,
                                chunk_side *side) {
  const float first = row_max(x, min_size(n, kUnroll * W));
  if (x != y && first >= -kScaledFirst && first <= kScaledFirst) {
    const int k = static_cast<int>(std::lrint(first * 1.4426950408889634f));
    const double k_ln2 = k * 0.6931471805599453;
    const times_pow2<Ops> start{typename Ops::exp_scaled(k), {vf(kNegInf), vf(kNegInf), vf(kNegInf), vf(kNegInf)}};
    times_pow2<Ops> f = start;
    const auto pass = [&](auto &&w) { return exp_sum_blocks<kStoreExp, true, false>(x, y, n, f, w); };
    double s = side && side->write_n ? with_chunk_write(*side, pass) : pass(no_side{});
    if (!finite_sum(s)) {  // -inf, or far below the first: clamped (see row_exp_sum)
      f = start;
      s = exp_sum_blocks<kStoreExp, false, false>(x, y, n, f, no_side{});
    }
    if (finite_sum(s)) {
      *max = f.max();
      *shift = k_ln2;
      return s;
    }
    side = nullptr;  // its write is done
  }
  *max = *shift = chunk_max(x, n);
  return side ? softmax_chunk_exp(x, y, n, *max, side) : row_exp_sum<kStoreExp>(x, y, n, *max);
}
using scaled_chunk_exp_fn = double (*)(const float *, float *, std::size_t, float *, double *, chunk_side *);
template <class Ops, class = typename Ops::exp_scaled>
constexpr scaled_chunk_exp_fn scaled_chunk_exp(int) {
  return &softmax_chunk_exp_scaled<Ops>;
}
template <class Ops>
constexpr scaled_chunk_exp_fn scaled_chunk_exp(long) {
  return nullptr;
}

void scale(float *y, std::size_t n, float factor) { row_scale(y, n, factor); }

span_stats stats_chunk(const float *x, std::size_t n, const float *weights, bool smooth, const chunk_side *write) {
  max_sum ms;
  const auto along = [&](auto side) { return max_sum_one_pass(x, n, &ms, side); };
  const bool one = !write ? max_sum_one_pass(x, n, &ms)
                   : write->exp_write
                       ? along(side_write<kExpFromX>(write->write_x, write->write_y, write->write_n, write->a, write->b))
                       : along(side_write<kLogFromX>(write->write_x, write->write_y, write->write_n, write->a, write->b));
  if (!one) ms = max_sum_known(x, n, chunk_max(x, n));
  span_stats st;
  st.max = ms.max;
  st.sum = ms.sum;
  st.smooth = smooth ? row_smooth_sum(x, n, weights, st.max) : 0.0;
  return st;
}

// The shifted x goes to y during the exp pass (a store, hidden there); the last
// pass is then y -= shift in place, cheaper than reading x and writing y.
double log_shift_chunk(const float *x, float *y, std::size_t n, float max, chunk_side *side) {
  return with_chunk_side(side, [&](auto &&s) {
    if (max == kNegInf) {  // nothing above -inf: no sum, and y is the caller's to fill
      s.finish();
      return 0.0;
    }
    return row_exp_sum<kStoreShifted>(x, y, n, max, s);
  });
}

void log_shifted_write(const float *, float *y, std::size_t n, float, float, float shift) {
  side_write<kSubtract>(nullptr, y, n, 0.0f, shift).finish();
}

void log_softmax_chunk_write(const float *x, float *y, std::size_t n, float max, float log_sum) {
  row_log_write(x, y, n, max, log_sum);
}

void softmax_chunk_write(const float *x, float *y, std::size_t n, float max, float inv_sum) {
  side_write<kExpFromX>(x, y, n, max, inv_sum).finish();
}

// ---------------------------------------------------------------------------
// Column blocks (inner > 1): each lane is one softmax row. With scratch, the
// block is first copied row by row into a contiguous buffer, one run of n
// vectors per vector of columns: a power-of-two inner otherwise maps every row
// to the same cache set, and the passes would thrash. Without scratch (very long
// columns), the passes walk x directly.

// Full: the caller knows lanes == W, and the loop carries no test per vector.
struct col_vec {
  const float *x;
  std::size_t stride, lanes;  // lanes <= W; fewer means a masked tail
  template <bool Full = false>
  vf load(std::size_t row, float fill) const {
    return Full || lanes == W ? vf::load_unaligned(x + row * stride) : isa_ops::load_tail(x + row * stride, lanes, fill);
  }
};

template <bool Full = false>
inline void col_store(float *y, vf v, std::size_t lanes) {
  if (Full || lanes == W)
    v.store_unaligned(y);
  else
    isa_ops::store_tail(y, v, lanes);
}

// Per-lane sum of exp(x - m) as double halves; with Store, also stores the exps
// in y (same layout as c). Each lane adds its rows in order, kColFlush at a
// time in float (see the conventions at the top), as col_exp_sum4,
// col_run_pass and slab_pass do: a column's sum is the same bits whichever
// takes it, so wherever the block boundaries fall.
template <bool Store>
inline wide_sum col_exp_sum(const col_vec &c, std::size_t n, vf m, float *y) {
  wide_sum acc{};
  for (std::size_t r = 0; r < n;) {
    const std::size_t end = r + min_size(n - r, kColFlush);
    vf a(0.0f);
    for (; r < end; ++r) {
      const vf e = exp_nonpos<!Store>(c.load(r, kNegInf) - m);
      if (Store) col_store(y + r * c.stride, e, c.lanes);
      a += e;
    }
    acc.add(a);
  }
  return acc;
}

// The same for four vectors of columns at once: short columns (a softmax over
// 21 classes) leave one column too few exps to hide exp's latency. With
// ahead, each row also prefetches the four vectors at ahead + r * ahead_stride.
template <bool Store, bool Full>
inline void col_exp_sum4(const col_vec *c, std::size_t n, const vf *m, float *const *y, wide_sum *acc,
                         const float *ahead = nullptr, std::size_t ahead_stride = 0) {
  acc[0] = acc[1] = acc[2] = acc[3] = wide_sum{};
  for (std::size_t r = 0; r < n;) {
    const std::size_t end = r + min_size(n - r, kColFlush);
    vf a0(0.0f), a1(0.0f), a2(0.0f), a3(0.0f);
    for (; r < end; ++r) {
      if (ahead)
        for (std::size_t g = 0; g < 4; ++g) __builtin_prefetch(ahead + r * ahead_stride + g * W);
      const vf e0 = exp_nonpos<!Store>(c[0].template load<Full>(r, kNegInf) - m[0]);
      const vf e1 = exp_nonpos<!Store>(c[1].template load<Full>(r, kNegInf) - m[1]);
      const vf e2 = exp_nonpos<!Store>(c[2].template load<Full>(r, kNegInf) - m[2]);
      const vf e3 = exp_nonpos<!Store>(c[3].template load<Full>(r, kNegInf) - m[3]);
      if (Store) {
        col_store<Full>(y[0] + r * c[0].stride, e0, c[0].lanes);
        col_store<Full>(y[1] + r * c[1].stride, e1, c[1].lanes);
        col_store<Full>(y[2] + r * c[2].stride, e2, c[2].lanes);
        col_store<Full>(y[3] + r * c[3].stride, e3, c[3].lanes);
      }
      a0 += e0;
      a1 += e1;
      a2 += e2;
      a3 += e3;
    }
    acc[0].add(a0);
    acc[1].add(a1);
    acc[2].add(a2);
    acc[3].add(a3);
  }
}

// Per-lane sum of w[r] * (m - x[r]) (w = 1 without weights), as double halves.
inline wide_sum col_smooth_sum(const col_vec &c, std::size_t n, vf m, const float *weights) {
  wide_sum acc{};
  for (std::size_t r = 0; r < n; ++r) add_smooth_terms(acc, m, c.load(r, 0.0f), vf(weights ? weights[r] : 1.0f));
  return acc;
}

// The per-lane sums, rounded to float. widen_lo holds lanes [0, W/2), widen_hi the rest.
inline void wide_lanes(const wide_sum &acc, double *out) {
  acc.lo.store_unaligned(out);
  acc.hi.store_unaligned(out + W / 2);
}
inline vf col_sums_f32(const wide_sum &acc) {
  alignas(64) double d[W];
  wide_lanes(acc, d);
  alignas(64) float s[W];
  for (std::size_t i = 0; i < W; ++i) s[i] = static_cast<float>(d[i]);
  return vf::load_aligned(s);
}

// A block of up to kColBlock columns as `vecs` vectors of columns.
struct col_block {
  static constexpr std::size_t kMaxVecs = kColBlock / W;
  const float *x;
  std::size_t n, stride, width, vecs;
  float *scratch;  // n * width floats, or nullptr
  col_block(const float *x_, std::size_t n_, std::size_t stride_, std::size_t width_, float *scratch_)
      : x(x_), n(n_), stride(stride_), width(width_), vecs((width_ + W - 1) / W), scratch(scratch_) {}
  std::size_t lanes(std::size_t v) const { return min_size(W, width - v * W); }
  col_vec direct(const float *base, std::size_t v) const { return col_vec{base + v * W, stride, lanes(v)}; }
  float *run(std::size_t v) const { return scratch + v * n * W; }
  // Where the passes read vector-of-columns v: the buffer or x itself.
  col_vec source(std::size_t v) const { return scratch ? col_vec{run(v), W, W} : direct(x, v); }
  // m[v] = each vector's column max; with scratch, also copies the block. Four
  // vectors of columns walk down the rows together (a contiguous 256 bytes per
  // row), their maxima in registers: a max kept in memory would wait on
  // store-to-load forwarding every row.
  void max(vf *m) const {
    std::size_t v = 0;
    for (; v + 4 <= vecs; v += 4) {
      if (lanes(v + 3) == W) max4<true>(v, m + v);
      else max4<false>(v, m + v);  // the block's last vector is partial
    }
    for (; v < vecs; ++v) {
      const col_vec c = direct(x, v);
      vf m0(kNegInf);
      for (std::size_t r = 0; r < n; ++r) {
        const vf a = c.load(r, kNegInf);
        if (scratch) a.store_unaligned(run(v) + r * W);
        m0 = xsimd::max(m0, a);
      }
      m[v] = m0;
    }
  }
  template <bool Full>
  void max4(std::size_t v, vf *m) const {
    vf m0(kNegInf), m1(kNegInf), m2(kNegInf), m3(kNegInf);
    const col_vec last = direct(x, v + 3);
    for (std::size_t r = 0; r < n; ++r) {
      const float *row = x + r * stride + v * W;
      const float *ahead = x + (r + 4 < n ? r + 4 : n - 1) * stride + v * W;
      __builtin_prefetch(ahead);
      __builtin_prefetch(ahead + W);
      __builtin_prefetch(ahead + 2 * W);
      __builtin_prefetch(ahead + 3 * W);
      const vf a0 = vf::load_unaligned(row), a1 = vf::load_unaligned(row + W), a2 = vf::load_unaligned(row + 2 * W);
      const vf a3 = last.template load<Full>(r, kNegInf);
      if (scratch) {
        a0.store_unaligned(run(v) + r * W);
        a1.store_unaligned(run(v + 1) + r * W);
        a2.store_unaligned(run(v + 2) + r * W);
        a3.store_unaligned(run(v + 3) + r * W);
      }
      m0 = xsimd::max(m0, a0);
      m1 = xsimd::max(m1, a1);
      m2 = xsimd::max(m2, a2);
      m3 = xsimd::max(m3, a3);
    }
    m[0] = m0;
    m[1] = m1;
    m[2] = m2;
    m[3] = m3;
  }
  // acc[v] = per-lane sums of exp(x - m[v]); with exps_to, the exps are kept
  // (in the buffer, or in exps_to itself when there is none). With
  // prefetch_next, the pass also prefetches the next block (the columns after
  // this one, in the same rows) for the passes that have no write pass to do it.
  void exp_sums(const vf *m, float *exps_to, wide_sum *acc, bool prefetch_next = false) const {
    std::size_t v = 0;
    for (; v + 4 <= vecs; v += 4) {
      const col_vec c[4] = {source(v), source(v + 1), source(v + 2), source(v + 3)};
      float *y[4] = {nullptr, nullptr, nullptr, nullptr};
      const float *ahead = prefetch_next ? x + width + v * W : nullptr;
      const bool full = c[3].lanes == W;
      if (exps_to) {
        for (std::size_t g = 0; g < 4; ++g) y[g] = scratch ? run(v + g) : exps_to + (v + g) * W;
        if (full) col_exp_sum4<true, true>(c, n, m + v, y, acc + v, ahead, stride);
        else col_exp_sum4<true, false>(c, n, m + v, y, acc + v, ahead, stride);
      } else {
        if (full) col_exp_sum4<false, true>(c, n, m + v, y, acc + v, ahead, stride);
        else col_exp_sum4<false, false>(c, n, m + v, y, acc + v, ahead, stride);
      }
    }
    for (; v < vecs; ++v)
      acc[v] = exps_to ? col_exp_sum<true>(source(v), n, m[v], scratch ? run(v) : exps_to + v * W)
                       : col_exp_sum<false>(source(v), n, m[v], nullptr);
  }
  // y[r, v] = f(r, v, the value the passes left for (r, v)), row by row.
  // While it writes, it prefetches the next block's rows (the columns after
  // this block, in the same rows): a walk 4 KiB or more apart per row is one
  // the hardware prefetchers lose. Prefetches never fault, past the end neither.
  // With scratch (a strided block of a big tensor) the output goes around the
  // caches when it can: the rows of a block, a power of two apart, share one
  // cache set, and would evict each other before the next block reads its own.
  template <class F>
  void write(float *y, const float *left, bool from_memory, F &&f) const {
    const bool stream = from_memory && scratch && reinterpret_cast<std::uintptr_t>(y) % sizeof(vf) == 0 &&
                        (stride * sizeof(float)) % sizeof(vf) == 0;
    if (stream) write_rows<true>(y, left, f);
    else write_rows<false>(y, left, f);
  }
  // Stream: from the buffer, the whole vectors around the caches (a partial
  // last one through the cache).
  template <bool Stream, class F>
  void write_rows(float *y, const float *left, F &&f) const {
    const std::uintptr_t next = reinterpret_cast<std::uintptr_t>(x + width);
    const std::size_t whole = Stream ? width / W : 0;
    for (std::size_t r = 0; r < n; ++r) {
      std::size_t v = 0;
      for (; v < whole; ++v) {
        __builtin_prefetch(reinterpret_cast<const void *>(next + (r * stride + v * W) * sizeof(float)));
        isa_ops::store_stream(y + r * stride + v * W, f(r, v, vf::load_unaligned(run(v) + r * W)));
      }
      for (; v < vecs; ++v) {
        __builtin_prefetch(reinterpret_cast<const void *>(next + (r * stride + v * W) * sizeof(float)));
        const vf e = scratch ? vf::load_unaligned(run(v) + r * W) : direct(left, v).load(r, 0.0f);
        col_store(y + r * stride + v * W, f(r, v, e), lanes(v));
      }
    }
    if (Stream) isa_ops::stream_fence();
  }
};

void softmax_cols(const float *x, float *y, std::size_t n, std::size_t stride, std::size_t width, float *scratch,
                  bool stream) {
  const col_block b(x, n, stride, width, scratch);
  vf m[col_block::kMaxVecs], inv[col_block::kMaxVecs];
  wide_sum acc[col_block::kMaxVecs];
  b.max(m);
  b.exp_sums(m, y, acc);  // the exps go to the buffer, or straight to y
  for (std::size_t v = 0; v < b.vecs; ++v) inv[v] = vf(1.0f) / col_sums_f32(acc[v]);
  b.write(y, y, stream, [&](std::size_t, std::size_t v, vf e) { return e * inv[v]; });
}

void log_softmax_cols(const float *x, float *y, std::size_t n, std::size_t stride, std::size_t width,
                      float *scratch, bool stream) {
  const col_block b(x, n, stride, width, scratch);
  vf m[col_block::kMaxVecs], ls[col_block::kMaxVecs];
  wide_sum acc[col_block::kMaxVecs];
  b.max(m);
  b.exp_sums(m, nullptr, acc);
  for (std::size_t v = 0; v < b.vecs; ++v) ls[v] = log_ge1(col_sums_f32(acc[v]));
  b.write(y, x, stream, [&](std::size_t, std::size_t v, vf xv) { return (xv - m[v]) - ls[v]; });
}

// A vector of columns' stats, as stats_cols gives them: max, log of the sum of
// exp(x - max), and with smooth the sum of w * (max - x) (c: where the block's
// x is, lanes: the columns it holds).
inline void col_stats_out(const col_vec &c, std::size_t n, vf m, const wide_sum &acc, const float *weights,
                          bool smooth, std::size_t lanes, float *max, float *log_sum, double *smooth_sum) {
  const vf ls = log_ge1(col_sums_f32(acc));
  if (smooth) {
    alignas(64) double sv[W];
    wide_lanes(col_smooth_sum(c, n, m, weights), sv);
    for (std::size_t l = 0; l < lanes; ++l) smooth_sum[l] = sv[l];
  }
  // Whole vectors stored as such: the caller's vector loads of them, behind
  // a store per lane, waited for those stores to reach the cache.
  col_store(max, m, lanes);
  col_store(log_sum, ls, lanes);
}

// ---------------------------------------------------------------------------
// Column blocks in a run, pipelined as slabs are: block i's exp pass (over its
// copy in scratch) also copies block i + 1 into the next scratch slot, finding
// its column maxima, and writes block i - 1 from its slot (for logsumexp and
// cross-entropy: hands block i's stats on). Three passes, each bound by
// something else (the copy by x's latency from memory, the exps by the FMA
// units, the write by the stores), then overlap. Each block's arithmetic is
// softmax_cols's (log_softmax_cols's, stats_cols'): the same bits as block by
// block, wherever a thread's run starts.
struct col_stage {
  static constexpr std::size_t kMax = col_block::kMaxVecs;
  const float *x = nullptr;
  float *y = nullptr, *slot = nullptr;  // slot: vector v's n rows at slot + v * n * W
  std::size_t width = 0, vecs = 0;
  bool stream = false;  // whole vectors of y go around the caches
  vf m[kMax], a[kMax], b[kMax];  // column maxima; the write's y = e * a or (x - a) - b
  std::size_t lanes(std::size_t v) const { return min_size(W, width - v * W); }
  float *run(std::size_t n, std::size_t v) const { return slot + v * n * W; }
};

// Row r of vectors v0 .. v0 + 3 of the neighbours (those they have): the copy
// of the next block (its maxima in nm) and the write of the previous one.
template <bool Log, bool Full>
__attribute__((always_inline)) inline void col_run_side(std::size_t n, std::size_t stride, std::size_t r,
                                                        std::size_t v0, const col_stage *next, vf *nm,
                                                        const col_stage *prev, const float *ahead) {
  if (next) {
    const std::size_t nv = Full ? 4 : (next->vecs > v0 ? min_size(4, next->vecs - v0) : 0);
    for (std::size_t k = 0; k < nv; ++k) {
      if (ahead) __builtin_prefetch(ahead + r * stride + (v0 + k) * W, 0, 2);  // to L2: see cols_run_impl
      const col_vec c{next->x + (v0 + k) * W, stride, Full ? W : next->lanes(v0 + k)};
      const vf v = c.template load<Full>(r, kNegInf);
      v.store_unaligned(next->run(n, v0 + k) + r * W);
      nm[k] = xsimd::max(nm[k], v);
    }
  }
  if (prev) {
    const std::size_t nv = Full ? 4 : (prev->vecs > v0 ? min_size(4, prev->vecs - v0) : 0);
    for (std::size_t k = 0; k < nv; ++k) {
      const std::size_t v = v0 + k;
      const vf e = vf::load_unaligned(prev->run(n, v) + r * W);
      const vf out = Log ? (e - prev->a[v]) - prev->b[v] : e * prev->a[v];
      float *at = prev->y + r * stride + v * W;
      if (prev->stream && (Full || prev->lanes(v) == W)) isa_ops::store_stream(at, out);
      else col_store<Full>(at, out, prev->lanes(v));
    }
  }
}

// The maxima the side found for vectors v0 .. v0 + 3 of the next block (those it has).
inline void col_run_maxima(col_stage *next, std::size_t v0, const vf *nm) {
  if (next)
    for (std::size_t k = 0; k < 4 && v0 + k < next->vecs; ++k) next->m[v0 + k] = nm[k];
}

// The exp pass over vectors v0 .. v0 + nv - 1 of cur (nv <= 4), with the side
// on the same rows. Full: nv == 4, and every block there has 4 whole vectors.
template <bool Log, bool Full>
inline void col_run_pass(std::size_t n, std::size_t stride, col_stage &cur, std::size_t v0, std::size_t nv,
                         col_stage *next, const col_stage *prev, const float *ahead, wide_sum *acc) {
  if (Full) nv = 4;
  vf nm[4] = {vf(kNegInf), vf(kNegInf), vf(kNegInf), vf(kNegInf)};
  for (std::size_t k = 0; k < nv; ++k) acc[k] = wide_sum{};
  for (std::size_t r = 0; r < n;) {
    const std::size_t end = r + min_size(n - r, kColFlush);
    vf s[4] = {vf(0.0f), vf(0.0f), vf(0.0f), vf(0.0f)};
    for (; r < end; ++r) {
      for (std::size_t k = 0; k < nv; ++k) {
        float *at = cur.run(n, v0 + k) + r * W;
        const vf e = exp_nonpos<Log>(vf::load_unaligned(at) - cur.m[v0 + k]);
        if (!Log) e.store_unaligned(at);
        s[k] += e;
      }
      col_run_side<Log, Full>(n, stride, r, v0, next, nm, prev, ahead);
    }
    for (std::size_t k = 0; k < nv; ++k) acc[k].add(s[k]);
  }
  col_run_maxima(next, v0, nm);
}

// What a run of blocks does with each: softmax's or log-softmax's write, or
// stats handed to the caller (as stats_cols has them).
enum col_run_mode { kRunSoftmax, kRunLogSoftmax, kRunStats };
struct col_stats_sink {
  const float *weights;
  bool smooth;
  col_stats_fn done;
  void *ctx;
};

template <int Mode>
void cols_run_impl(const float *x, float *y, std::size_t n, std::size_t stride, col_place_fn place,
                   const void *blocks, std::size_t begin, std::size_t end, float *scratch, std::size_t slot_size,
                   bool stream, const col_stats_sink *sink) {
  constexpr bool kLog = Mode != kRunSoftmax;  // the exps are only summed
  col_stage stage[kColRunSlots];
  const auto setup = [&](std::size_t it) -> col_stage & {
    col_stage &s = stage[it % kColRunSlots];
    const col_place p = place(blocks, it);
    s.x = x + p.offset;
    s.y = y ? y + p.offset : nullptr;
    s.width = p.width;
    s.vecs = (p.width + W - 1) / W;
    s.slot = scratch + (it % kColRunSlots) * slot_size;
    s.stream = stream && reinterpret_cast<std::uintptr_t>(s.y) % sizeof(vf) == 0 &&
               (stride * sizeof(float)) % sizeof(vf) == 0;
    return s;
  };
  col_stage *prev = nullptr;  // the block whose write is due (none for stats)
  col_stage *cur = &setup(begin);
  col_block(cur->x, n, stride, cur->width, cur->slot).max(cur->m);
  wide_sum acc[col_stage::kMax];
  for (std::size_t it = begin; it < end; ++it) {
    col_stage *next = it + 1 < end ? &setup(it + 1) : nullptr;
    // The block after next, on its way to L2 while next is copied. Not to L1:
    // its rows, a power of two apart, share L1 sets and evicted each other
    // before the copy (softmax and log-softmax at [8, 21, 16384] and
    // [4, 21, 65536] ran at 91-95% of memcpy against 84-87%, AVX-512).
    const float *ahead = it + 2 < end ? x + place(blocks, it + 2).offset : nullptr;
    const std::size_t groups = (cur->vecs + 3) / 4;
    const std::size_t next_groups = next ? (next->vecs + 3) / 4 : 0, prev_groups = prev ? (prev->vecs + 3) / 4 : 0;
    const std::size_t side_groups = next_groups > prev_groups ? next_groups : prev_groups;
    for (std::size_t g = 0; g < groups; ++g) {
      const std::size_t v0 = 4 * g, nv = min_size(4, cur->vecs - v0);
      const auto whole = [&](const col_stage *s) { return !s || (s->vecs >= v0 + 4 && s->lanes(v0 + 3) == W); };
      if (nv == 4 && whole(cur) && whole(next) && whole(prev))
        col_run_pass<kLog, true>(n, stride, *cur, v0, nv, next, prev, ahead, acc + v0);
      else
        col_run_pass<kLog, false>(n, stride, *cur, v0, nv, next, prev, ahead, acc + v0);
    }
    // A neighbour wider than this block (after a narrow first block of a row): its rest.
    for (std::size_t g = groups; g < side_groups; ++g) {
      vf nm[4] = {vf(kNegInf), vf(kNegInf), vf(kNegInf), vf(kNegInf)};
      for (std::size_t r = 0; r < n; ++r) col_run_side<kLog, false>(n, stride, r, 4 * g, next, nm, prev, ahead);
      col_run_maxima(next, 4 * g, nm);
    }
    if (Mode == kRunStats) {
      float max[kColBlock], log_sum[kColBlock];
      double smooth_sum[kColBlock];
      for (std::size_t v = 0; v < cur->vecs; ++v)
        col_stats_out(col_vec{cur->run(n, v), W, W}, n, cur->m[v], acc[v], sink->weights, sink->smooth,
                      cur->lanes(v), max + v * W, log_sum + v * W, sink->smooth ? smooth_sum + v * W : nullptr);
      sink->done(sink->ctx, it, max, log_sum, sink->smooth ? smooth_sum : nullptr);
    } else {
      for (std::size_t v = 0; v < cur->vecs; ++v) {
        if (kLog) {
          cur->a[v] = cur->m[v];
          cur->b[v] = log_ge1(col_sums_f32(acc[v]));
        } else {
          cur->a[v] = vf(1.0f) / col_sums_f32(acc[v]);
        }
      }
      prev = cur;
    }
    cur = next;
  }
  if (Mode == kRunStats) return;
  // The last block's write, on its own.
  vf unused[4];
  for (std::size_t v0 = 0; v0 < prev->vecs; v0 += 4)
    for (std::size_t r = 0; r < n; ++r) col_run_side<kLog, false>(n, stride, r, v0, nullptr, unused, prev, nullptr);
  isa_ops::stream_fence();
}

void cols_run(const float *x, float *y, std::size_t n, std::size_t stride, col_place_fn place, const void *blocks,
              std::size_t begin, std::size_t end, float *scratch, std::size_t slot_size, bool stream, bool log) {
  if (log) cols_run_impl<kRunLogSoftmax>(x, y, n, stride, place, blocks, begin, end, scratch, slot_size, stream, nullptr);
  else cols_run_impl<kRunSoftmax>(x, y, n, stride, place, blocks, begin, end, scratch, slot_size, stream, nullptr);
}

void stats_cols_run(const float *x, std::size_t n, std::size_t stride, col_place_fn place, const void *blocks,
                    std::size_t begin, std::size_t end, const float *weights, bool smooth, float *scratch,
                    std::size_t slot_size, col_stats_fn done, void *ctx) {
  const col_stats_sink sink{weights, smooth, done, ctx};
  cols_run_impl<kRunStats>(x, nullptr, n, stride, place, blocks, begin, end, scratch, slot_size, false, &sink);
}

// ---------------------------------------------------------------------------
// Slabs: whole [n, inner] tensors in a row, pipelined as rows are. One pass
// over a group of up to 4 vectors of columns of slab s: per lane sums of
// exp(x - m), and along the same rows the next slab's column maxima and the
// previous slab's write. The same arithmetic as softmax_cols.
struct slab_group {
  std::size_t inner, v0, nv;  // vectors v0 .. v0 + nv - 1 of each row, nv <= 4
  std::size_t lanes(std::size_t k) const { return min_size(W, inner - (v0 + k) * W); }
  const float *at(const float *p, std::size_t r, std::size_t k) const { return p + r * inner + (v0 + k) * W; }
  float *at(float *p, std::size_t r, std::size_t k) const { return p + r * inner + (v0 + k) * W; }
  // Full: the group is 4 whole vectors, known to the compiler.
  template <bool Full>
  vf load(const float *p, std::size_t r, std::size_t k, float fill) const {
    return Full || lanes(k) == W ? vf::load_unaligned(at(p, r, k)) : isa_ops::load_tail(at(p, r, k), lanes(k), fill);
  }
};

// How a slab's write gets its values, y = f(src, a, b):
//   log-softmax   src = x,    (x - a) - b         a = max, b = log of the sum
//   softmax, kept src = exps, exps * a            a = 1 / sum
//   softmax, exp  src = x,    exp(x - a) * b      a = max, b = 1 / sum
// Kept: the exp pass stores the exps (in y in cache; from memory, in scratch,
// two slabs' worth, so that y is written once). Exp (isa_ops::kExpAgain):
// the write takes each exp again, the same bits, and nothing is stored but y.
// On AVX-512 (Intel, family 6 model 207) a store per vector that misses L1 cost
// more than an exp: 64 x 1000 x 64 +25%, slabs in cache +15-45%; AVX2's 16
// registers spill it instead (-20 to -33%).
enum slab_mode { kSlabLog, kSlabKept, kSlabExp };

template <int Mode>
inline vf slab_out(vf v, vf a, vf b) {
  return Mode == kSlabLog ? (v - a) - b : Mode == kSlabKept ? v * a : exp_nonpos<false>(v - a) * b;
}
constexpr float slab_fill(int mode) { return mode == kSlabExp ? kNegInf : 0.0f; }  // a write's tail padding

template <int Mode, bool Full>
inline vf slab_value(const slab_group &g, const float *src, std::size_t r, std::size_t k, vf a, vf b) {
  return slab_out<Mode>(g.template load<Full>(src, r, k, slab_fill(Mode)), a, b);
}

template <bool Full, bool Stream>
inline void slab_put(const slab_group &g, float *y, std::size_t r, std::size_t k, vf v) {
  if (Stream && (Full || g.lanes(k) == W))
    isa_ops::store_stream(g.at(y, r, k), v);
  else
    col_store<Full>(g.at(y, r, k), v, g.lanes(k));
}

// What one pass over slab s reads and writes, in locals of their own: with
// the pointers inside a struct behind a reference, every store through y made
// the compiler load them again.
struct slab_step {
  const float *x;       // slab s
  float *exps;          // kSlabKept: where slab s's exps go
  const float *next_x;  // slab s + 1 (slab s itself for the last: its maxima are not used)
  const float *prev;    // the previous slab's src (see slab_mode)
  float *prev_y;        // its output
};

// Prev: there is a previous slab to write. The maxima, the next maxima and the
// write's factors stay in registers: the next maxima in an array behind a
// pointer went to memory and back every row.
template <int Mode, bool Full, bool Prev, bool Stream>
inline void slab_pass(const slab_group &g, std::size_t n, const slab_step st, const vf *m_in, wide_sum *acc,
                      vf *next_m, const vf *a_in, const vf *b_in) {
  const std::size_t nv = Full ? 4 : g.nv;
  vf m[4], nm[4], a[4], b[4];
  for (std::size_t k = 0; k < 4; ++k) {
    const bool live = k < nv;
    m[k] = live ? m_in[k] : vf(0.0f);
    nm[k] = vf(kNegInf);
    a[k] = Prev && live ? a_in[k] : vf(0.0f);
    b[k] = Prev && live ? b_in[k] : vf(0.0f);
    acc[k] = wide_sum{};
  }
  for (std::size_t r = 0; r < n;) {
    const std::size_t end = r + min_size(n - r, kColFlush);
    vf s[4] = {vf(0.0f), vf(0.0f), vf(0.0f), vf(0.0f)};
    for (; r < end; ++r)
      for (std::size_t k = 0; k < nv; ++k) {
        const vf e = exp_nonpos<Mode == kSlabLog>(g.template load<Full>(st.x, r, k, kNegInf) - m[k]);
        if (Mode == kSlabKept) col_store<Full>(g.at(st.exps, r, k), e, g.lanes(k));
        s[k] += e;
        // 4 KiB ahead: the next slab comes from memory at the exps' pace, and
        // the hardware prefetcher alone falls behind.
        __builtin_prefetch(g.at(st.next_x, r, k) + 1024);
        nm[k] = xsimd::max(nm[k], g.template load<Full>(st.next_x, r, k, kNegInf));
        if (Prev) slab_put<Full, Stream>(g, st.prev_y, r, k, slab_value<Mode, Full>(g, st.prev, r, k, a[k], b[k]));
      }
    for (std::size_t k = 0; k < nv; ++k) acc[k].add(s[k]);
  }
  for (std::size_t k = 0; k < nv; ++k) next_m[k] = nm[k];
}

template <int Mode, bool Full>
void slab_pass_of(bool prev, bool stream, const slab_group &g, std::size_t n, const slab_step &st, const vf *m,
                  wide_sum *acc, vf *next_m, const vf *a, const vf *b) {
  if (!prev) slab_pass<Mode, Full, false, false>(g, n, st, m, acc, next_m, a, b);
  else if (stream) slab_pass<Mode, Full, true, true>(g, n, st, m, acc, next_m, a, b);
  else slab_pass<Mode, Full, true, false>(g, n, st, m, acc, next_m, a, b);
}

template <int Mode>
void slabs_of(const float *x, float *y, std::size_t count, std::size_t n, std::size_t inner, float *scratch) {
  constexpr std::size_t kMax = col_block::kMaxVecs;
  const std::size_t vecs = (inner + W - 1) / W, size = n * inner;
  // From memory (scratch given), whole vectors of y go around the caches.
  const bool stream = scratch && reinterpret_cast<std::uintptr_t>(y) % sizeof(vf) == 0 &&
                      (inner * sizeof(float)) % sizeof(vf) == 0;
  const auto exps_of = [&](std::size_t s) { return scratch ? scratch + (s % 2) * size : y + s * size; };
  const auto src_of = [&](std::size_t s) -> const float * { return Mode == kSlabKept ? exps_of(s) : x + s * size; };
  vf m[kMax], next_m[kMax], a[kMax], b[kMax];
  wide_sum acc[kMax];
  col_block(x, n, inner, inner, nullptr).max(m);
  for (std::size_t s = 0; s < count; ++s) {
    const float *xs = x + s * size;
    const slab_step st{xs, exps_of(s), s + 1 < count ? xs + size : xs, s > 0 ? src_of(s - 1) : nullptr,
                       s > 0 ? y + (s - 1) * size : nullptr};
    for (std::size_t v0 = 0; v0 < vecs; v0 += 4) {
      const slab_group g{inner, v0, min_size(4, vecs - v0)};
      if (g.nv == 4 && g.lanes(3) == W)
        slab_pass_of<Mode, true>(s > 0, stream, g, n, st, m + v0, acc + v0, next_m + v0, a + v0, b + v0);
      else
        slab_pass_of<Mode, false>(s > 0, stream, g, n, st, m + v0, acc + v0, next_m + v0, a + v0, b + v0);
    }
    for (std::size_t v = 0; v < vecs; ++v) {
      const vf sum = col_sums_f32(acc[v]);
      a[v] = Mode == kSlabKept ? vf(1.0f) / sum : m[v];
      b[v] = Mode == kSlabLog ? log_ge1(sum) : vf(1.0f) / sum;
      m[v] = next_m[v];
    }
  }
  // The last slab's write, on its own.
  const float *src = src_of(count - 1);
  float *yl = y + (count - 1) * size;
  for (std::size_t v0 = 0; v0 < vecs; v0 += 4) {
    const slab_group g{inner, v0, min_size(4, vecs - v0)};
    for (std::size_t r = 0; r < n; ++r)
      for (std::size_t k = 0; k < g.nv; ++k) {
        const vf v = slab_value<Mode, false>(g, src, r, k, a[v0 + k], b[v0 + k]);
        if (stream) slab_put<false, true>(g, yl, r, k, v);
        else slab_put<false, false>(g, yl, r, k, v);
      }
  }
  if (stream) isa_ops::stream_fence();
}

// Slabs row by row: the same pipeline and the same arithmetic as slabs_of,
// each pass taking the slab's rows in order, whole, with the columns' maxima,
// sums and factors in arrays (in L1) rather than registers. Contiguous
// streams, which the next slab's reads and the previous slab's writes
// prefetch kPrefetchBytes ahead, as the row passes do; slabs_of's groups of
// 4 vectors walk the rows a row apart, too far apart for any prefetcher, and
// from memory ran at a fifth of memcpy (Intel family 6 model 207). AVX2's
// softmax, which also stores its exps, ran 11-20% slower with the prefetches
// and goes without.
struct slab_column {
  vf m, next_m, a, b;
  vf part;  // the float block of the column's sum
  wide_sum acc;
};
struct slab_row_state {
  slab_column c[col_block::kMaxVecs];
};

template <int Mode, bool Prev>
void slab_rows_pass(const slab_step st, std::size_t n, std::size_t width, std::size_t stride, slab_row_state &z) {
  const std::size_t full = width / W, tail = width % W, vecs = full + (tail != 0);
  // Rows `stride` floats apart, stride > width: a chunk of a wider tensor's
  // columns, whose prefetches go a row ahead (kPrefetchBytes ahead would land
  // in the other chunks' columns).
  const std::size_t ahead = stride > width ? stride * sizeof(float) : kPrefetchBytes;
  for (std::size_t v = 0; v < vecs; ++v) {
    z.c[v].next_m = vf(kNegInf);
    z.c[v].acc = wide_sum{};
  }
  for (std::size_t r = 0; r < n;) {
    const std::size_t end = r + min_size(n - r, kColFlush);
    for (std::size_t v = 0; v < vecs; ++v) z.c[v].part = vf(0.0f);
    for (; r < end; ++r) {
      const std::size_t at = r * stride;
      const auto one = [&](std::size_t v, auto load, auto store) {
        const vf e = exp_nonpos<Mode == kSlabLog>(load(st.x + at + v * W, kNegInf) - z.c[v].m);
        if (Mode == kSlabKept) store(st.exps + at + v * W, e);
        z.c[v].part += e;
        if (Mode != kSlabKept && v % kLineVectors == 0) {  // see slabs_by_rows
          prefetch_region(st.next_x + at + v * W, 64, ahead);
          if (Prev) prefetch_region<false, true>(st.prev_y + at + v * W, 64, ahead);
        }
        z.c[v].next_m = xsimd::max(z.c[v].next_m, load(st.next_x + at + v * W, kNegInf));
        if (Prev) {
          const vf p = load(st.prev + at + v * W, slab_fill(Mode));
          store(st.prev_y + at + v * W, slab_out<Mode>(p, z.c[v].a, z.c[v].b));
        }
      };
      for (std::size_t v = 0; v < full; ++v)
        one(v, [](const float *p, float) { return vf::load_unaligned(p); }, [](float *p, vf e) { e.store_unaligned(p); });
      if (tail)
        one(full, [tail](const float *p, float fill) { return isa_ops::load_tail(p, tail, fill); },
            [tail](float *p, vf e) { isa_ops::store_tail(p, e, tail); });
    }
    for (std::size_t v = 0; v < vecs; ++v) z.c[v].acc.add(z.c[v].part);
  }
}

template <int Mode>
void slabs_by_rows(const float *x, float *y, std::size_t count, std::size_t n, std::size_t width, std::size_t stride,
                   float *scratch) {
  const std::size_t full = width / W, tail = width % W, vecs = full + (tail != 0), size = n * stride;
  const auto exps_of = [&](std::size_t s) { return scratch ? scratch + (s % 2) * size : y + s * size; };
  const auto src_of = [&](std::size_t s) -> const float * { return Mode == kSlabKept ? exps_of(s) : x + s * size; };
  slab_row_state z;
  for (std::size_t v = 0; v < vecs; ++v) z.c[v].m = vf(kNegInf);
  for (std::size_t r = 0; r < n; ++r) {
    for (std::size_t v = 0; v < full; ++v) z.c[v].m = xsimd::max(z.c[v].m, vf::load_unaligned(x + r * stride + v * W));
    if (tail) z.c[full].m = xsimd::max(z.c[full].m, isa_ops::load_tail(x + r * stride + full * W, tail, kNegInf));
  }
  for (std::size_t s = 0; s < count; ++s) {
    const float *xs = x + s * size;
    const slab_step st{xs, exps_of(s), s + 1 < count ? xs + size : xs, s > 0 ? src_of(s - 1) : nullptr,
                       s > 0 ? y + (s - 1) * size : nullptr};
    if (s > 0) slab_rows_pass<Mode, true>(st, n, width, stride, z);
    else slab_rows_pass<Mode, false>(st, n, width, stride, z);
    for (std::size_t v = 0; v < vecs; ++v) {
      const vf sum = col_sums_f32(z.c[v].acc);
      z.c[v].a = Mode == kSlabKept ? vf(1.0f) / sum : z.c[v].m;
      z.c[v].b = Mode == kSlabLog ? log_ge1(sum) : vf(1.0f) / sum;
      z.c[v].m = z.c[v].next_m;
    }
  }
  // The last slab's write, on its own.
  const float *src = src_of(count - 1);
  float *yl = y + (count - 1) * size;
  for (std::size_t r = 0; r < n; ++r)
    for (std::size_t v = 0; v < vecs; ++v) {
      const std::size_t at = r * stride + v * W, lanes = v < full ? W : tail;
      const vf p = lanes == W ? vf::load_unaligned(src + at) : isa_ops::load_tail(src + at, lanes, slab_fill(Mode));
      col_store(yl + at, slab_out<Mode>(p, z.c[v].a, z.c[v].b), lanes);
    }
}

void slabs(const float *x, float *y, std::size_t count, std::size_t n, std::size_t inner, std::size_t stride,
           bool log, bool by_rows, float *scratch) {
  if constexpr (isa_ops::kSlabRows != slab_rows::never) {
    if (by_rows) {
      if (log) slabs_by_rows<kSlabLog>(x, y, count, n, inner, stride, scratch);
      else if (isa_ops::kExpAgain) slabs_by_rows<kSlabExp>(x, y, count, n, inner, stride, scratch);
      else slabs_by_rows<kSlabKept>(x, y, count, n, inner, stride, scratch);
      return;
    }
  }
  if (log) slabs_of<kSlabLog>(x, y, count, n, inner, scratch);
  else if (isa_ops::kExpAgain) slabs_of<kSlabExp>(x, y, count, n, inner, scratch);
  else slabs_of<kSlabKept>(x, y, count, n, inner, scratch);
}

// ---------------------------------------------------------------------------
// Short columns (n <= isa_ops::kShortColumns, inner > 1: a softmax over a few
// classes of an image): each vector of columns keeps its n rows in registers,
// so x is read once and y written once, with no copy and no second pass. The
// arithmetic is softmax_cols' (log_softmax_cols'): the max and the sum of a
// column's rows in order, in float kColFlush at a time and then in double,
// 1 / sum, or x - max - log of the sum.

// The sum of e[0 .. N), as col_exp_sum takes it.
template <std::size_t N>
__attribute__((always_inline)) inline vf short_col_sum(const vf *e) {
  if constexpr (N <= kColFlush) {  // one float block: the double sum is the float one
    vf s = e[0];
    for (std::size_t r = 1; r < N; ++r) s += e[r];
    return s;
  } else {
    wide_sum acc{};
    for (std::size_t r0 = 0; r0 < N; r0 += kColFlush) {
      vf s = e[r0];
      for (std::size_t r = r0 + 1; r < N && r < r0 + kColFlush; ++r) s += e[r];
      acc.add(s);
    }
    return col_sums_f32(acc);
  }
}

// v[r] = a vector of row r's columns from x on (lanes of them, -inf past
// them), each prefetched kPrefetchBytes ahead; returns their max.
template <std::size_t N, bool Full>
__attribute__((always_inline)) inline vf short_col_rows(const float *x, std::size_t inner, std::size_t lanes,
                                                        vf *v) {
  vf m(kNegInf);
  for (std::size_t r = 0; r < N; ++r) {
    prefetch_region(x + r * inner, sizeof(vf));
    v[r] = Full ? vf::load_unaligned(x + r * inner) : isa_ops::load_tail(x + r * inner, lanes, kNegInf);
    m = xsimd::max(m, v[r]);
  }
  return m;
}

template <std::size_t N, bool Log, bool Stream, bool Full>
__attribute__((always_inline)) inline void short_cols_step(const float *x, float *y, std::size_t inner,
                                                           std::size_t lanes) {
  vf v[N];
  const vf m = short_col_rows<N, Full>(x, inner, lanes, v);
  vf e[N];
  for (std::size_t r = 0; r < N; ++r) {
    v[r] = v[r] - m;
    e[r] = exp_nonpos<Log>(v[r]);
  }
  const vf s = short_col_sum<N>(e);
  const vf f = Log ? log_ge1(s) : vf(1.0f) / s;
  if (!Log)
    for (std::size_t r = 0; r < N; ++r) v[r] = e[r];
  for (std::size_t r = 0; r < N; ++r) {
    const vf out = Log ? v[r] - f : v[r] * f;
    if (Stream && Full) isa_ops::store_stream(y + r * inner, out);
    else col_store<Full>(y + r * inner, out, lanes);
  }
}

// Past the rows a step keeps in registers (n > isa_ops::kShortColumns, a
// run-time count; the driver takes these in cache only): two 64-byte lines of
// each row a step (V vectors), copied to c as the max is taken, then two walks
// over the copy: the exps and their sum (softmax's exps replace the copy),
// and the write. Rows a power of two apart share an L1 set with too few ways
// to keep them for the later walks: from the contiguous copy, [8, 21, 2048]
// ran 10-25% faster than from x. The arithmetic is short_cols_step's, so
// the bits are too.
template <bool Log, bool Full, std::size_t V>
__attribute__((always_inline)) inline void short_cols_any_step(const float *x, float *y, std::size_t n,
                                                               std::size_t inner, std::size_t lanes, vf *c) {
  auto load = [&](const float *p) { return Full ? vf::load_unaligned(p) : isa_ops::load_tail(p, lanes, kNegInf); };
  vf m[V];
  for (std::size_t v = 0; v < V; ++v) m[v] = vf(kNegInf);
  for (std::size_t r = 0; r < n; ++r) {
    prefetch_region(x + r * inner, V * sizeof(vf));
    for (std::size_t v = 0; v < V; ++v) {
      c[r * V + v] = load(x + r * inner + v * W);
      m[v] = xsimd::max(m[v], c[r * V + v]);
    }
  }
  wide_sum acc[V] = {};
  for (std::size_t r = 0; r < n;) {  // as short_col_sum: kColFlush rows in float, then double
    const std::size_t end = r + min_size(n - r, kColFlush);
    vf s[V];
    for (std::size_t v = 0; v < V; ++v) s[v] = vf(0.0f);
    for (; r < end; ++r)
      for (std::size_t v = 0; v < V; ++v) {
        const vf e = exp_nonpos<Log>(c[r * V + v] - m[v]);
        if (!Log) c[r * V + v] = e;
        s[v] += e;
      }
    for (std::size_t v = 0; v < V; ++v) acc[v].add(s[v]);
  }
  vf f[V];
  for (std::size_t v = 0; v < V; ++v) {
    const vf sum = col_sums_f32(acc[v]);
    f[v] = Log ? log_ge1(sum) : vf(1.0f) / sum;
  }
  for (std::size_t r = 0; r < n; ++r)
    for (std::size_t v = 0; v < V; ++v) {
      const vf out = Log ? (c[r * V + v] - m[v]) - f[v] : c[r * V + v] * f[v];
      col_store<Full>(y + r * inner + v * W, out, lanes);
    }
}

template <bool Log>
void short_cols_any(const float *x, float *y, std::size_t n, std::size_t inner, std::size_t width) {
  constexpr std::size_t V = 2 * kLineVectors;
  alignas(64) vf c[isa_ops::kShortSoftmaxRows * V];
  std::size_t j = 0;
  for (; j + V * W <= width; j += V * W) short_cols_any_step<Log, true, V>(x + j, y + j, n, inner, W, c);
  for (; j + W <= width; j += W) short_cols_any_step<Log, true, 1>(x + j, y + j, n, inner, W, c);
  if (j < width) short_cols_any_step<Log, false, 1>(x + j, y + j, n, inner, width - j, c);
}

template <std::size_t N, bool Log, bool Stream>
void short_cols_of(const float *x, float *y, std::size_t inner, std::size_t width) {
  std::size_t j = 0;
  for (; j + W <= width; j += W) short_cols_step<N, Log, Stream, true>(x + j, y + j, inner, W);
  if (j < width) short_cols_step<N, Log, Stream, false>(x + j, y + j, inner, width - j);
  if (Stream) isa_ops::stream_fence();
}

template <std::size_t N>
void short_cols_n(const float *x, float *y, std::size_t inner, std::size_t width, bool log, bool stream) {
  if (log) stream ? short_cols_of<N, true, true>(x, y, inner, width) : short_cols_of<N, true, false>(x, y, inner, width);
  else stream ? short_cols_of<N, false, true>(x, y, inner, width) : short_cols_of<N, false, false>(x, y, inner, width);
}

// The stats of short columns, as stats_cols has them without smoothing: each
// column's max and the log of its sum of exp(x - max). For the cross-entropy
// (+18-48% at [16, 5, 20000], [16, 2, 65536], [4096, 4, 16]: the logits its
// losses read are then in cache); logsumexp, which reads no more, lost 5% here.
template <std::size_t N>
void short_col_stats_n(const float *x, std::size_t inner, std::size_t width, float *max, float *log_sum) {
  for (std::size_t j = 0; j < width; j += W) {
    const std::size_t lanes = min_size(W, width - j);
    vf v[N], e[N];
    const vf m = lanes == W ? short_col_rows<N, true>(x + j, inner, W, v) : short_col_rows<N, false>(x + j, inner, lanes, v);
    for (std::size_t r = 0; r < N; ++r) e[r] = exp_nonpos<true>(v[r] - m);
    col_store(max + j, m, lanes);
    col_store(log_sum + j, log_ge1(short_col_sum<N>(e)), lanes);
  }
}

// f(std::integral_constant<N>) for N = n, 1 <= n <= isa_ops::kShortColumns.
template <class F, std::size_t... I>
void with_short_rows(std::size_t n, F &&f, std::index_sequence<I...>) {
  ((n == I + 1 ? (f(std::integral_constant<std::size_t, I + 1>{}), 0) : 0), ...);
}
template <class F>
void with_short_rows(std::size_t n, F &&f) {
  with_short_rows(n, f, std::make_index_sequence<isa_ops::kShortColumns>{});
}

void short_col_stats(const float *x, std::size_t n, std::size_t inner, std::size_t width, float *max,
                     float *log_sum) {
  with_short_rows(n, [&](auto rows) { short_col_stats_n<decltype(rows)::value>(x, inner, width, max, log_sum); });
}

void short_cols(const float *x, float *y, std::size_t n, std::size_t inner, std::size_t width, bool log,
                bool stream) {
  if (n > isa_ops::kShortColumns) return log ? short_cols_any<true>(x, y, n, inner, width)
                                             : short_cols_any<false>(x, y, n, inner, width);
  with_short_rows(n, [&](auto rows) { short_cols_n<decltype(rows)::value>(x, y, inner, width, log, stream); });
}

void logsumexp_cols(const float *x, float *out, std::size_t n, std::size_t stride, std::size_t width,
                    float *scratch) {
  const col_block b(x, n, stride, width, scratch);
  vf m[col_block::kMaxVecs];
  wide_sum acc[col_block::kMaxVecs];
  b.max(m);
  b.exp_sums(m, nullptr, acc, true);
  for (std::size_t v = 0; v < b.vecs; ++v) {
    alignas(64) float lse[W];
    (m[v] + log_ge1(col_sums_f32(acc[v]))).store_aligned(lse);
    for (std::size_t l = 0; l < b.lanes(v); ++l) {
      const std::size_t j = v * W + l;
      out[j] = lse[l] == lse[l] ? lse[l] : logsumexp_special(x + j, n, stride);
    }
  }
}

void stats_cols(const float *x, std::size_t n, std::size_t stride, std::size_t width, const float *weights,
                bool smooth, float *max, float *log_sum, double *smooth_sum, float *scratch) {
  const col_block b(x, n, stride, width, scratch);
  vf m[col_block::kMaxVecs];
  wide_sum acc[col_block::kMaxVecs];
  b.max(m);
  b.exp_sums(m, nullptr, acc, true);
  for (std::size_t v = 0; v < b.vecs; ++v)
    col_stats_out(b.source(v), n, m[v], acc[v], weights, smooth, b.lanes(v), max + v * W, log_sum + v * W,
                  smooth ? smooth_sum + v * W : nullptr);
}

template <bool Sum>
void exp_array(const float *x, float *y, std::size_t n) {
  std::size_t i = 0;
  for (; i + W <= n; i += W) exp_nonpos<Sum>(vf::load_unaligned(x + i)).store_unaligned(y + i);
  if (i < n) isa_ops::store_tail(y + i, exp_nonpos<Sum>(isa_ops::load_tail(x + i, n - i, 0.0f)), n - i);
}
void exp_nonpositive(const float *x, float *y, std::size_t n) { exp_array<false>(x, y, n); }
void exp_summed(const float *x, float *y, std::size_t n) { exp_array<true>(x, y, n); }

// make_table: at the end of backward_simd.inl, which lists these entry points and its own.
