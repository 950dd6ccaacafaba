// The gradients and the soft-target cross-entropy against libtorch (ATen +
// autograd): softkit_cross_entropy_backward_f32 against x.grad after
// at::cross_entropy_loss(...).backward(dloss) for every option combination
// (reduction x weights x ignore_index x label smoothing x the (N, C) and
// (N, C, d1, d2) layouts) and edge cases (every target ignored, -inf logits,
// NaN rows); softkit_cross_entropy_probs_f32 against at::cross_entropy_loss with
// a float target; softmax / log-softmax backward against
// at::_softmax_backward_data / at::_log_softmax_backward_data.
// Both sides are float approximations: finite values agree within twice
// softkit's bound plus torch's float summation error over the row, specials exactly.
#include <ATen/ATen.h>

#include "bw_util.hpp"

using namespace tu;

namespace {

at::Tensor tensor_of(const std::vector<float> &x, const std::vector<int64_t> &sizes) {
  return at::from_blob(const_cast<float *>(x.data()), sizes, at::kFloat).clone();
}

std::vector<float> vec_of(const at::Tensor &t) {
  const at::Tensor c = t.contiguous().to(at::kFloat);
  return std::vector<float>(c.data_ptr<float>(), c.data_ptr<float>() + c.numel());
}

int64_t aten_reduction(softkit_reduction r) {
  return r == SOFTKIT_REDUCTION_MEAN ? 1 : r == SOFTKIT_REDUCTION_SUM ? 2 : 0;
}

// dims: the logits' shape, (N, C) or (N, C, d1, ...). Returns x.grad.
std::vector<float> torch_ce_grad(const std::vector<float> &x, const std::vector<std::int64_t> &t,
                                 const std::vector<int64_t> &dims, const softkit_cross_entropy_options &o,
                                 const std::vector<float> &dloss) {
  std::vector<int64_t> tdims = dims;
  tdims.erase(tdims.begin() + 1);
  at::Tensor xt = tensor_of(x, dims).set_requires_grad(true);
  const at::Tensor tt = at::from_blob(const_cast<std::int64_t *>(t.data()), tdims, at::kLong).clone();
  c10::optional<at::Tensor> w;
  if (o.class_weights) w = tensor_of(std::vector<float>(o.class_weights, o.class_weights + dims[1]), {dims[1]});
  at::Tensor loss =
      at::cross_entropy_loss(xt, tt, w, aten_reduction(o.reduction), o.ignore_index, (double)o.label_smoothing);
  const at::Tensor g = o.reduction == SOFTKIT_REDUCTION_NONE ? tensor_of(dloss, tdims) : at::full({}, dloss[0], at::kFloat);
  loss.backward(g);
  return vec_of(xt.grad());
}

std::size_t prod(const std::vector<int64_t> &d, std::size_t from) {
  std::size_t p = 1;
  for (std::size_t i = from; i < d.size(); ++i) p *= (std::size_t)d[i];
  return p;
}

// tol = 2 * softkit's bound + torch's float summation error over the row (n * 2^-24 of the scale).
Compare versus(const std::vector<float> &mine, const std::vector<float> &theirs, const bw::Ref &r, std::size_t n,
               const std::string &label) {
  bw::Ref widened = r;
  for (auto &s : widened.scale) s *= 1.0 + (double)n / 8;  // 4 * 2^-23 * n / 8 = n * 2^-24
  const std::vector<ld> want(theirs.begin(), theirs.end());
  widened.want = want;
  return bw::compare(mine, widened, label, 2.0);
}

void ce_grad_case(const std::vector<float> &x, const std::vector<std::int64_t> &t, const std::vector<int64_t> &dims,
                  const softkit_cross_entropy_options &o, const std::vector<float> &dloss, const std::string &label) {
  const std::size_t outer = (std::size_t)dims[0], classes = (std::size_t)dims[1], inner = prod(dims, 2);
  const auto mine = bw::run_backward(x, t, outer, classes, inner, o, dloss);
  const auto theirs = torch_ce_grad(x, t, dims, o, dloss);
  REQUIRE(mine.size() == theirs.size());
  const bw::Ref r = bw::ce_backward(x.data(), t.data(), outer, classes, inner, o, dloss.data());
  const Compare c = versus(mine, theirs, r, classes, label);
  {
    INFO("ce_backward vs torch, " << label << ": " << c.bad << " of " << c.checked << " differ; first: " << c.first_bad);
    CHECK(c.bad == 0);
  }
  note_worst("ce_backward vs torch", c);
  // The long double reference agrees with torch too (its formula is PyTorch's).
  const Compare ct = bw::compare(theirs, [&] {
    bw::Ref w = r;
    for (auto &s : w.scale) s *= 1.0 + (double)classes / 8;
    return w;
  }(), label + " (torch vs reference)", 2.0);
  INFO("torch vs the reference, " << label << ": " << ct.bad << " of " << ct.checked << " differ; first: " << ct.first_bad);
  CHECK(ct.bad == 0);
}

const softkit_reduction kReductions[] = {SOFTKIT_REDUCTION_MEAN, SOFTKIT_REDUCTION_SUM, SOFTKIT_REDUCTION_NONE};

}  // namespace

TEST_CASE("cross_entropy_backward vs torch autograd: every option", "[torch][backward]") {
  const std::vector<std::vector<int64_t>> shapes = {{16, 10}, {4, 1000}, {2, 20000}, {3, 5, 4, 6}, {2, 33, 8, 9},
                                                    {2, 7, 64, 40}, {5, 1}};
  std::uint64_t seed = 60;
  for (const auto &dims : shapes) {
    const std::size_t outer = (std::size_t)dims[0], classes = (std::size_t)dims[1], inner = prod(dims, 2);
    const auto x = make_tensor(Dist::Normal30, outer, classes, inner, seed);
    const auto w = bw::uniform(classes, 0.05f, 3.0f, seed + 1);
    for (std::int64_t ignore : {(std::int64_t)-100, (std::int64_t)0, (std::int64_t)3}) {
      const auto t = bw::targets(outer * inner, classes, ignore, 0.2, seed + 2);
      for (softkit_reduction red : kReductions)
        for (float e : {0.0f, 0.1f, 1.0f})
          for (bool weighted : {false, true}) {
            const auto o = tu::ce_opts(red, ignore, e, weighted ? w.data() : nullptr);
            const auto dl = red == SOFTKIT_REDUCTION_NONE ? bw::uniform(outer * inner, -2.0f, 2.0f, seed + 3)
                                                          : std::vector<float>{0.75f};
            std::ostringstream lab;
            lab << "dims " << dims.size() << "d " << shape_label(outer, classes, inner) << " red " << (int)red
                << " ignore " << ignore << " e " << e << (weighted ? " weighted" : "");
            ce_grad_case(x, t, dims, o, dl, lab.str());
          }
    }
    ++seed;
  }
}

TEST_CASE("cross_entropy_backward vs torch autograd: edge cases", "[torch][backward]") {
  // Rows: -inf logit at the target, NaN, all -inf, +inf, ordinary.
  const std::vector<float> x = {1, -kInf, 3, 0.5f, 0.25f, 2, kNaN, 1, 1, -kInf, -kInf, -kInf, kInf, 0, 0, 1, 2, 3};
  const std::vector<float> w = {0.5f, 2.0f, 1.0f};
  for (const std::vector<std::int64_t> &t :
       {std::vector<std::int64_t>{1, 2, -100, -100, -100, 0}, std::vector<std::int64_t>{1, 2, 0, 1, 2, 0},
        std::vector<std::int64_t>(6, -100), std::vector<std::int64_t>{0, 1, -100, -100, -100, -100}})
    for (softkit_reduction red : kReductions)
      for (float e : {0.0f, 0.2f, 1.0f})
        for (bool weighted : {false, true}) {
          const auto o = tu::ce_opts(red, -100, e, weighted ? w.data() : nullptr);
          const auto dl = red == SOFTKIT_REDUCTION_NONE ? bw::uniform(6, -2.0f, 2.0f, 1) : std::vector<float>{1.0f};
          std::ostringstream lab;
          lab << "edge targets " << t[0] << "," << t[1] << "," << t[2] << ",.. red " << (int)red << " e " << e
              << (weighted ? " weighted" : "");
          ce_grad_case(x, t, {6, 3}, o, dl, lab.str());
        }
  // Every target ignored, MEAN: the loss is NaN and its gradient exactly 0.
  const auto xs = make_tensor(Dist::Normal1, 4, 10, 3, 2);
  const std::vector<std::int64_t> all_ignored(12, -100);
  for (bool weighted : {false, true}) {
    const auto wv = bw::uniform(10, 0.1f, 2.0f, 9);
    const auto o = tu::ce_opts(SOFTKIT_REDUCTION_MEAN, -100, 0.1f, weighted ? wv.data() : nullptr);
    const auto theirs = torch_ce_grad(xs, all_ignored, {4, 10, 3}, o, {1.0f});
    const auto mine = bw::run_backward(xs, all_ignored, 4, 10, 3, o, {1.0f});
    for (std::size_t j = 0; j < mine.size(); ++j) {
      REQUIRE(theirs[j] == 0.0f);
      REQUIRE(same_bits(mine[j], theirs[j]));
    }
  }
}

// A class weight of inf or NaN, on a class that targets name or not, with
// ignored samples: rows, columns and long rows, with and without smoothing.
TEST_CASE("cross_entropy_backward vs torch autograd: non-finite class weights", "[torch][backward]") {
  const std::vector<std::vector<int64_t>> shapes = {{6, 5}, {3, 5, 7}, {2, 20000}};
  for (const auto &dims : shapes) {
    const std::size_t outer = (std::size_t)dims[0], classes = (std::size_t)dims[1], inner = prod(dims, 2);
    auto x = make_tensor(Dist::Normal1, outer, classes, inner, 70);
    // Long rows: a chunk of only -inf in each row, where p is 0 (inf * 0 = NaN).
    for (std::size_t o = 0; o < outer && classes > 16384; ++o)
      for (std::size_t k = 16384; k < classes; ++k) x[o * classes + k] = -kInf;
    std::vector<std::int64_t> t(outer * inner);
    for (std::size_t j = 0; j < t.size(); ++j) t[j] = j % 3 == 0 ? -100 : (std::int64_t)(j % 2 ? 1 : 4);
    for (float bad : {kInf, kNaN})
      for (std::size_t bad_class : {std::size_t(1), std::size_t(2)}) {  // named by targets, or not
        auto w = bw::uniform(classes, 0.5f, 2.0f, 71);
        w[bad_class] = bad;
        for (softkit_reduction red : {SOFTKIT_REDUCTION_SUM, SOFTKIT_REDUCTION_NONE})
          for (float e : {0.0f, 0.2f}) {
            const auto o = tu::ce_opts(red, -100, e, w.data());
            const auto dl = red == SOFTKIT_REDUCTION_NONE ? bw::uniform(outer * inner, -2.0f, 2.0f, 72)
                                                          : std::vector<float>{1.0f};
            std::ostringstream lab;
            lab << shape_label(outer, classes, inner) << " weight " << bad << " at class " << bad_class << " red "
                << (int)red << " e " << e;
            ce_grad_case(x, t, dims, o, dl, lab.str());
          }
      }
  }
}

TEST_CASE("cross_entropy_probs vs torch (class-probability targets)", "[torch][backward]") {
  const std::vector<std::vector<int64_t>> shapes = {{16, 10}, {4, 1000}, {2, 20000}, {3, 5, 4, 6}, {2, 33, 8, 9}};
  std::uint64_t seed = 80;
  for (const auto &dims : shapes) {
    const std::size_t outer = (std::size_t)dims[0], classes = (std::size_t)dims[1], inner = prod(dims, 2);
    const auto x = make_tensor(Dist::Normal30, outer, classes, inner, seed);
    const auto tp = bw::probs(outer, classes, inner, seed + 1);
    const auto w = bw::uniform(classes, 0.05f, 3.0f, seed + 2);
    for (softkit_reduction red : kReductions)
      for (float e : {0.0f, 0.1f, 1.0f})
        for (bool weighted : {false, true}) {
          const auto o = tu::ce_opts(red, -100, e, weighted ? w.data() : nullptr);
          const auto mine = bw::run_probs(x, tp, outer, classes, inner, o);
          c10::optional<at::Tensor> wt;
          if (weighted) wt = tensor_of(w, {(int64_t)classes});
          const auto theirs = vec_of(at::cross_entropy_loss(tensor_of(x, dims), tensor_of(tp, dims), wt,
                                                            aten_reduction(red), -100, (double)e));
          REQUIRE(mine.size() == theirs.size());
          const bw::Ref r = bw::ce_probs(x.data(), tp.data(), outer, classes, inner, o);
          std::ostringstream lab;
          lab << "probs " << shape_label(outer, classes, inner) << " red " << (int)red << " e " << e
              << (weighted ? " weighted" : "");
          const Compare c = versus(mine, theirs, r, 1, lab.str());
          INFO("ce_probs vs torch, " << lab.str() << ": " << c.bad << " of " << c.checked << " differ; first: "
                                     << c.first_bad);
          CHECK(c.bad == 0);
          note_worst("ce_probs vs torch", c);
        }
    ++seed;
  }
  // -inf logits where the target is 0 give NaN (0 * inf), as in torch.
  const std::vector<float> x = {1, -kInf, 3, 0.5f, 0.25f, 2};
  const std::vector<float> tp = {0.5f, 0.0f, 0.5f, 0.2f, 0.3f, 0.5f};
  for (softkit_reduction red : kReductions) {
    const auto o = tu::ce_opts(red);
    const auto mine = bw::run_probs(x, tp, 2, 3, 1, o);
    const auto theirs = vec_of(at::cross_entropy_loss(tensor_of(x, {2, 3}), tensor_of(tp, {2, 3}), {}, aten_reduction(red), -100, 0.0));
    for (std::size_t j = 0; j < mine.size(); ++j) {
      INFO("reduction " << (int)red << " [" << j << "] mine " << mine[j] << " torch " << theirs[j]);
      CHECK(std::isnan(mine[j]) == std::isnan(theirs[j]));
      if (!std::isnan(theirs[j])) CHECK(mine[j] == Approx(theirs[j]).epsilon(1e-5));
    }
  }
}

TEST_CASE("softmax / log_softmax backward vs torch", "[torch][backward]") {
  const std::size_t shapes[][3] = {{7, 3, 1}, {64, 17, 1}, {2, 1000, 1}, {1, 50257, 1}, {3, 17, 5}, {2, 1000, 64},
                                   {1, 21, 4096}, {5, 33, 19}};
  std::uint64_t seed = 90;
  for (const auto &s : shapes) {
    const std::size_t outer = s[0], n = s[1], inner = s[2];
    const auto x = make_tensor(Dist::Normal1, outer, n, inner, seed);
    const auto dy = bw::uniform(x.size(), -1.0f, 1.0f, seed + 1);
    const std::vector<int64_t> dims = {(int64_t)outer, (int64_t)n, (int64_t)inner};
    for (bool log : {false, true}) {
      std::vector<float> y(x.size());
      REQUIRE((log ? softkit_log_softmax_f32 : softkit_softmax_f32)(x.data(), y.data(), outer, n, inner) == SOFTKIT_OK);
      const auto mine = bw::run_sm_backward(log, y, dy, outer, n, inner);
      const at::Tensor g = tensor_of(dy, dims), out = tensor_of(y, dims);
      const auto theirs = vec_of(log ? at::_log_softmax_backward_data(g, out, 1, at::kFloat)
                                     : at::_softmax_backward_data(g, out, 1, at::kFloat));
      const bw::Ref r = bw::softmax_backward(log, y.data(), dy.data(), outer, n, inner);
      const std::string lab = std::string(log ? "log_softmax" : "softmax") + "_backward " + shape_label(outer, n, inner);
      const Compare c = versus(mine, theirs, r, n, lab);
      INFO(lab << " vs torch: " << c.bad << " of " << c.checked << " differ; first: " << c.first_bad);
      CHECK(c.bad == 0);
      note_worst(std::string(log ? "log_softmax" : "softmax") + "_backward vs torch", c);
    }
    ++seed;
  }
}
