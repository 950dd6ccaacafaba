// Choices between paths that give results within the same bounds but whose
// speed follows the microarchitecture rather than the ISA, each measured on a
// machine of that kind. Picked once, from the CPU's vendor; the environment
// variable SOFTKIT_TUNING=generic|zen forces one (the tests run both).
#ifndef SOFTKIT_SRC_TUNING_H
#define SOFTKIT_SRC_TUNING_H

namespace softkit {

struct cpu_tuning {
  const char *name;
  // Softmax over many long rows past L2 takes each exp again in its write
  // (rows_from_stats in driver.cpp) rather than storing the exps and scaling
  // them in y.
  bool softmax_exp_again;
  // Log-softmax over fewer long rows in cache than driver.cpp's kRowsBehind
  // takes the shifted passes, rather than the chunk stats and a write from x.
  bool log_shifted_few_rows;
};

// generic: measured on Intel (Xeon, family 6 model 207), and what every CPU
// not recognised takes. zen: measured on AMD (EPYC, family 26 model 2: Zen 5).
const cpu_tuning &active_tuning();

}  // namespace softkit

#endif  // SOFTKIT_SRC_TUNING_H
