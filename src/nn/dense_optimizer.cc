#include "nn/dense_optimizer.h"

#include <cmath>

namespace embark {

Result<DenseOptKind> ParseDenseOpt(const std::string& s) {
  if (s == "sgd") return DenseOptKind::kSgd;
  if (s == "adam") return DenseOptKind::kAdam;
  if (s == "adagrad") return DenseOptKind::kAdagrad;
  return Status::InvalidArgument("unknown dense optimizer '" + s + "' (expected sgd, adam or adagrad)");
}

Result<LrDecay> ParseLrDecay(const std::string& s) {
  if (s == "none") return LrDecay::kNone;
  if (s == "linear") return LrDecay::kLinear;
  if (s == "cosine") return LrDecay::kCosine;
  return Status::InvalidArgument("unknown lr decay '" + s + "' (expected none, linear or cosine)");
}

DenseOptimizer::DenseOptimizer(const DenseOptimizerConfig& cfg, size_t n) : cfg_(cfg), n_(n) {
  int slots = cfg.kind == DenseOptKind::kAdam ? 2 : cfg.kind == DenseOptKind::kAdagrad ? 1 : 0;
  slots_.assign(slots, std::vector<float>(n, 0.0f));
}

float DenseOptimizer::CurrentLr() const {
  const double s = static_cast<double>(step_);  // steps taken so far
  double lr = cfg_.lr;
  if (cfg_.warmup_steps > 0 && s < cfg_.warmup_steps) return static_cast<float>(lr * (s + 1) / cfg_.warmup_steps);
  if (cfg_.decay != LrDecay::kNone && cfg_.decay_steps > 0) {
    double t = std::min(1.0, (s - cfg_.warmup_steps) / static_cast<double>(cfg_.decay_steps));
    double f = cfg_.decay == LrDecay::kLinear ? 1 - t : 0.5 * (1 + std::cos(M_PI * t));
    lr *= cfg_.min_lr_ratio + (1 - cfg_.min_lr_ratio) * f;
  }
  return static_cast<float>(lr);
}

void DenseOptimizer::Step(float* w, const float* g) {
  const float lr = CurrentLr();
  ++step_;
  const size_t n = n_;
  switch (cfg_.kind) {
    case DenseOptKind::kSgd:
      for (size_t i = 0; i < n; ++i) w[i] -= lr * (g[i] + cfg_.weight_decay * w[i]);
      break;
    case DenseOptKind::kAdagrad: {
      float* a = slots_[0].data();
      for (size_t i = 0; i < n; ++i) {
        float gi = g[i] + cfg_.weight_decay * w[i];
        a[i] += gi * gi;
        w[i] -= lr * gi / (std::sqrt(a[i]) + cfg_.eps);
      }
      break;
    }
    case DenseOptKind::kAdam: {
      float* m = slots_[0].data();
      float* v = slots_[1].data();
      const float c1 = 1.0f - static_cast<float>(std::pow(cfg_.beta1, static_cast<double>(step_)));
      const float c2 = 1.0f - static_cast<float>(std::pow(cfg_.beta2, static_cast<double>(step_)));
      const float step = lr / c1;
      const float inv_c2 = 1.0f / c2;
      for (size_t i = 0; i < n; ++i) {
        float gi = g[i] + cfg_.weight_decay * w[i];
        m[i] = cfg_.beta1 * m[i] + (1 - cfg_.beta1) * gi;
        v[i] = cfg_.beta2 * v[i] + (1 - cfg_.beta2) * gi * gi;
        w[i] -= step * m[i] / (std::sqrt(v[i] * inv_c2) + cfg_.eps);
      }
      break;
    }
  }
}

}  // namespace embark
