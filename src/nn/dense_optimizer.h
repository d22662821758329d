// Optimizers for the dense parameters, applied once per step to the
// gradient combined across threads, with learning-rate warm-up and decay.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

#include "util/status.h"

namespace embark {

enum class DenseOptKind { kSgd, kAdam, kAdagrad };
enum class LrDecay { kNone, kLinear, kCosine };

struct DenseOptimizerConfig {
  DenseOptKind kind = DenseOptKind::kAdam;
  float lr = 0.001f;
  float beta1 = 0.9f, beta2 = 0.999f, eps = 1e-8f;
  float weight_decay = 0.0f;
  int64_t warmup_steps = 0;  // linear ramp from 0 to lr
  LrDecay decay = LrDecay::kNone;
  int64_t decay_steps = 0;   // steps after warm-up to decay to lr * min_lr_ratio
  float min_lr_ratio = 0.0f;
};

Result<DenseOptKind> ParseDenseOpt(const std::string& s);
Result<LrDecay> ParseLrDecay(const std::string& s);

class DenseOptimizer {
 public:
  DenseOptimizer(const DenseOptimizerConfig& cfg, size_t n);
  // One step on params[0..n) with gradient g.
  void Step(float* params, const float* g);
  float CurrentLr() const;
  int64_t step() const { return step_; }
  // State for checkpoints: step count and slot vectors.
  std::vector<float>& slot(int i) { return slots_[i]; }
  int num_slots() const { return static_cast<int>(slots_.size()); }
  void set_step(int64_t s) { step_ = s; }

 private:
  DenseOptimizerConfig cfg_;
  size_t n_;
  int64_t step_ = 0;
  std::vector<std::vector<float>> slots_;
};

}  // namespace embark
