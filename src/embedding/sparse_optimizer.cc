#include "embedding/sparse_optimizer.h"

#include <algorithm>
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

namespace {

using Params = SparseUpdater::Params;

Params ParamsOf(const SparseOptimizerConfig& cfg, int dim) {
  Params p;
  p.lr = cfg.lr;
  p.eps = cfg.eps;
  p.l1 = cfg.l1;
  p.l2 = cfg.l2;
  p.beta1 = cfg.beta1;
  p.beta2 = cfg.beta2;
  p.ftrl_beta = cfg.ftrl_beta;
  p.initial_accumulator = cfg.initial_accumulator;
  p.dim = dim;
  return p;
}

// The update loops, one per optimizer, for rows of D floats (0: p.dim).
// Each writes out the textbook formula with the settings in locals and the
// row, state and gradient marked as not aliasing, so that the compiler
// vectorises it; the operations and their order are those of the original
// per-element code, so vectorising does not change a result.
template <int D>
int Dim(const Params& p) {
  return D > 0 ? D : p.dim;
}

template <int D>
void Sgd(const Params& p, float* __restrict w, float* /*state*/, const float* __restrict g) {
  const int d = Dim<D>(p);
  const float lr = p.lr, l2 = p.l2;
  for (int i = 0; i < d; ++i) w[i] -= lr * (g[i] + l2 * w[i]);
}

template <int D>
void Adagrad(const Params& p, float* __restrict w, float* __restrict s, const float* __restrict g) {
  const int d = Dim<D>(p);
  const float lr = p.lr, l2 = p.l2, eps = p.eps;
  for (int i = 0; i < d; ++i) {
    const float gi = g[i] + l2 * w[i];
    const float si = s[i] + gi * gi;
    s[i] = si;
    w[i] -= lr * gi / (std::sqrt(si) + eps);
  }
}

template <int D>
void RowwiseAdagrad(const Params& p, float* __restrict w, float* __restrict s, const float* __restrict g) {
  const int d = Dim<D>(p);
  const float lr = p.lr, l2 = p.l2;
  float sq = 0;  // summed in order (not vectorised), as before
  for (int i = 0; i < d; ++i) {
    const float gi = g[i] + l2 * w[i];
    sq += gi * gi;
  }
  s[0] += sq / static_cast<float>(d);
  const float scale = lr / (std::sqrt(s[0]) + p.eps);
  for (int i = 0; i < d; ++i) w[i] -= scale * (g[i] + l2 * w[i]);
}

// Adam's bias corrections at (float) step t: from the table when t is a
// tabled whole step, 1.0f past a saturated table, else from powf.
inline void AdamBias(const Params& p, float t, float* c1, float* c2) {
  if (t >= 1.0f && t <= static_cast<float>(p.bias_steps)) {
    const int i = static_cast<int>(t);
    if (static_cast<float>(i) == t) {
      *c1 = p.bias[2 * i];
      *c2 = p.bias[2 * i + 1];
      return;
    }
  } else if (p.bias_saturates && t > static_cast<float>(p.bias_steps)) {
    *c1 = *c2 = 1.0f;
    return;
  }
  *c1 = 1.0f - std::pow(p.beta1, t);
  *c2 = 1.0f - std::pow(p.beta2, t);
}

template <int D>
void Adam(const Params& p, float* __restrict w, float* __restrict s, const float* __restrict g) {
  const int d = Dim<D>(p);
  float* __restrict m = s;
  float* __restrict v = s + d;
  const float t = s[2 * d] + 1;  // this row's step count
  s[2 * d] = t;
  float c1, c2;
  AdamBias(p, t, &c1, &c2);
  const float lr = p.lr, l2 = p.l2, eps = p.eps, b1 = p.beta1, b2 = p.beta2;
  const float o1 = 1 - b1, o2 = 1 - b2;
  for (int i = 0; i < d; ++i) {
    const float gi = g[i] + l2 * w[i];
    const float mi = b1 * m[i] + o1 * gi;
    const float vi = b2 * v[i] + o2 * gi * gi;
    m[i] = mi;
    v[i] = vi;
    w[i] -= lr * (mi / c1) / (std::sqrt(vi / c2) + eps);
  }
}

// FTRL-Proximal (McMahan et al. 2013), per coordinate; lr plays alpha. The
// branch on |z| <= l1 is a select, so the loop vectorises.
template <int D>
void Ftrl(const Params& p, float* __restrict w, float* __restrict s, const float* __restrict g) {
  const int d = Dim<D>(p);
  float* __restrict z = s;
  float* __restrict n = s + d;
  const float lr = p.lr, l1 = p.l1, l2 = p.l2, beta = p.ftrl_beta;
  for (int i = 0; i < d; ++i) {
    const float gi = g[i];
    const float n_old = n[i], n_new = n_old + gi * gi;
    const float sigma = (std::sqrt(n_new) - std::sqrt(n_old)) / lr;
    const float zi = z[i] + (gi - sigma * w[i]);
    z[i] = zi;
    n[i] = n_new;
    const float sign = zi < 0 ? -1.0f : 1.0f;
    const float wi = -(zi - sign * l1) / ((beta + std::sqrt(n_new)) / lr + l2);
    w[i] = std::fabs(zi) <= l1 ? 0.0f : wi;
  }
}

using Fn = void (*)(const Params&, float*, float*, const float*);

template <int D>
Fn KernelOf(SparseOptKind kind) {
  switch (kind) {
    case SparseOptKind::kSgd: return &Sgd<D>;
    case SparseOptKind::kAdagrad: return &Adagrad<D>;
    case SparseOptKind::kRowwiseAdagrad: return &RowwiseAdagrad<D>;
    case SparseOptKind::kAdam: return &Adam<D>;
    case SparseOptKind::kFtrl: return &Ftrl<D>;
  }
  return &Sgd<D>;
}

Fn KernelOf(SparseOptKind kind, int dim) {
  switch (dim) {
    case 8: return KernelOf<8>(kind);
    case 16: return KernelOf<16>(kind);
    case 32: return KernelOf<32>(kind);
    case 64: return KernelOf<64>(kind);
    default: return KernelOf<0>(kind);
  }
}

// The first step n >= 1 from which beta^t < 2^-28 for every real t >= n, or
// 0 when there is none (beta outside [0, 1)) within `max` steps. There 1 -
// powf(beta, t) rounds to exactly 1.0f: powf is within an ulp, and 1 - x
// for x < 2^-25 rounds to 1.
int SaturationStep(float beta, int max) {
  if (!(beta >= 0.0f && beta < 1.0f)) return 0;
  double x = 1.0;
  for (int n = 1; n <= max; ++n) {
    x *= beta;
    if (x < 0x1p-28) return n;
  }
  return 0;
}

}  // namespace

void ApplySparseUpdate(const SparseOptimizerConfig& cfg, int dim, float* w, float* s, const float* g) {
  KernelOf<0>(cfg.kind)(ParamsOf(cfg, dim), w, s, g);
}

SparseUpdater::SparseUpdater(const SparseOptimizerConfig& cfg, int dim)
    : p_(ParamsOf(cfg, dim)), fn_(KernelOf(cfg.kind, dim)) {
  if (cfg.kind != SparseOptKind::kAdam) return;
  const int n1 = SaturationStep(cfg.beta1, kAdamTableSteps), n2 = SaturationStep(cfg.beta2, kAdamTableSteps);
  const bool saturates = n1 > 0 && n2 > 0;
  const int steps = saturates ? std::max(n1, n2) : kAdamTableSteps;
  auto bias = std::make_shared<std::vector<float>>(2 * (steps + 1));
  for (int t = 1; t <= steps; ++t) {  // as ApplySparseUpdate computes them
    (*bias)[2 * t] = 1.0f - std::pow(cfg.beta1, static_cast<float>(t));
    (*bias)[2 * t + 1] = 1.0f - std::pow(cfg.beta2, static_cast<float>(t));
  }
  p_.bias = bias->data();
  p_.bias_steps = steps;
  p_.bias_saturates = saturates;
  bias_ = std::move(bias);
}

}  // namespace embark
