#include "embedding/sparse_optimizer.h"

#include <cmath>

namespace embark {

Result<SparseOptKind> ParseSparseOpt(const std::string& name) {
  if (name == "sgd") return SparseOptKind::kSgd;
  if (name == "adagrad") return SparseOptKind::kAdagrad;
  if (name == "rowwise_adagrad") return SparseOptKind::kRowwiseAdagrad;
  if (name == "adam") return SparseOptKind::kAdam;
  if (name == "ftrl") return SparseOptKind::kFtrl;
  return Status::InvalidArgument("unknown sparse optimizer '" + name +
                                 "' (expected sgd, adagrad, rowwise_adagrad, adam or ftrl)");
}

const char* SparseOptName(SparseOptKind k) {
  switch (k) {
    case SparseOptKind::kSgd: return "sgd";
    case SparseOptKind::kAdagrad: return "adagrad";
    case SparseOptKind::kRowwiseAdagrad: return "rowwise_adagrad";
    case SparseOptKind::kAdam: return "adam";
    case SparseOptKind::kFtrl: return "ftrl";
  }
  return "?";
}

int SparseStateSize(SparseOptKind kind, int dim) {
  switch (kind) {
    case SparseOptKind::kSgd: return 0;
    case SparseOptKind::kAdagrad: return dim;
    case SparseOptKind::kRowwiseAdagrad: return 1;
    case SparseOptKind::kAdam: return 2 * dim + 1;  // m, v, step count of this row
    case SparseOptKind::kFtrl: return 2 * dim;      // z, n
  }
  return 0;
}

void InitSparseState(const SparseOptimizerConfig& cfg, int dim, float* state) {
  int n = SparseStateSize(cfg.kind, dim);
  float v = (cfg.kind == SparseOptKind::kAdagrad || cfg.kind == SparseOptKind::kRowwiseAdagrad)
                ? cfg.initial_accumulator
                : 0.0f;
  for (int i = 0; i < n; ++i) state[i] = v;
}

void ApplySparseUpdate(const SparseOptimizerConfig& cfg, int dim, float* w, float* s, const float* g) {
  const float lr = cfg.lr;
  switch (cfg.kind) {
    case SparseOptKind::kSgd:
      for (int i = 0; i < dim; ++i) w[i] -= lr * (g[i] + cfg.l2 * w[i]);
      break;
    case SparseOptKind::kAdagrad:
      for (int i = 0; i < dim; ++i) {
        float gi = g[i] + cfg.l2 * w[i];
        s[i] += gi * gi;
        w[i] -= lr * gi / (std::sqrt(s[i]) + cfg.eps);
      }
      break;
    case SparseOptKind::kRowwiseAdagrad: {
      float sq = 0;
      for (int i = 0; i < dim; ++i) {
        float gi = g[i] + cfg.l2 * w[i];
        sq += gi * gi;
      }
      s[0] += sq / static_cast<float>(dim);
      float scale = lr / (std::sqrt(s[0]) + cfg.eps);
      for (int i = 0; i < dim; ++i) w[i] -= scale * (g[i] + cfg.l2 * w[i]);
      break;
    }
    case SparseOptKind::kAdam: {
      float* m = s;
      float* v = s + dim;
      float& t = s[2 * dim];
      t += 1;
      const float c1 = 1.0f - std::pow(cfg.beta1, t);
      const float c2 = 1.0f - std::pow(cfg.beta2, t);
      for (int i = 0; i < dim; ++i) {
        float gi = g[i] + cfg.l2 * w[i];
        m[i] = cfg.beta1 * m[i] + (1 - cfg.beta1) * gi;
        v[i] = cfg.beta2 * v[i] + (1 - cfg.beta2) * gi * gi;
        w[i] -= lr * (m[i] / c1) / (std::sqrt(v[i] / c2) + cfg.eps);
      }
      break;
    }
    case SparseOptKind::kFtrl: {
      // FTRL-Proximal (McMahan et al. 2013), per coordinate; lr plays alpha.
      float* z = s;
      float* n = s + dim;
      for (int i = 0; i < dim; ++i) {
        float gi = g[i];
        float n_new = n[i] + gi * gi;
        float sigma = (std::sqrt(n_new) - std::sqrt(n[i])) / lr;
        z[i] += gi - sigma * w[i];
        n[i] = n_new;
        if (std::fabs(z[i]) <= cfg.l1) {
          w[i] = 0;
        } else {
          float sign = z[i] < 0 ? -1.0f : 1.0f;
          w[i] = -(z[i] - sign * cfg.l1) / ((cfg.ftrl_beta + std::sqrt(n[i])) / lr + cfg.l2);
        }
      }
      break;
    }
  }
}

}  // namespace embark
