// Optimizers for embedding rows. Each row carries its own optimizer state
// right after its weights ([weights | state]), so a row is updated with one
// cache-friendly pass and moves as one unit (checkpoint, shard, spill).
#pragma once

#include <cstddef>
#include <memory>
#include <string>
#include <vector>

#include "util/status.h"

namespace embark {

enum class SparseOptKind { kSgd, kAdagrad, kRowwiseAdagrad, kAdam, kFtrl };

struct SparseOptimizerConfig {
  SparseOptKind kind = SparseOptKind::kAdagrad;
  float lr = 0.05f;
  float eps = 1e-8f;
  float beta1 = 0.9f, beta2 = 0.999f;  // Adam
  float initial_accumulator = 0.0f;    // Adagrad
  float l1 = 0.0f, l2 = 0.0f;          // FTRL (l2 also acts as weight decay for others)
  float ftrl_beta = 1.0f;              // FTRL
};

Result<SparseOptKind> ParseSparseOpt(const std::string& name);
const char* SparseOptName(SparseOptKind k);

// Floats of optimizer state per row of `dim` weights.
int SparseStateSize(SparseOptKind kind, int dim);

// Initialises the state part of a freshly created row.
void InitSparseState(const SparseOptimizerConfig& cfg, int dim, float* state);

// Applies one update to `w` (dim floats) and its state from gradient `g`.
void ApplySparseUpdate(const SparseOptimizerConfig& cfg, int dim, float* w, float* state, const float* g);

// ApplySparseUpdate made ready once for one configuration and row width, for
// a store's per-row loop: the settings are plain constants, the loop is
// specialised for the common widths (8, 16, 32, 64), so the compiler
// vectorises it whole, and Adam's bias corrections 1 - beta^t come from a
// table by step count instead of two powf calls per row. The table holds
// exactly the values ApplySparseUpdate computes, so the results are the
// same, float for float. Cheap to copy (the table is shared).
class SparseUpdater {
 public:
  SparseUpdater(const SparseOptimizerConfig& cfg, int dim);
  void Apply(float* w, float* state, const float* g) const { fn_(p_, w, state, g); }

  // Steps tabled for Adam: 1 - beta^t for t <= this (256 KiB). Past it,
  // when beta1^t and beta2^t have fallen below 2^-28 the corrections are
  // exactly 1.0f; otherwise (beta2 above ~0.9994) powf is called as before.
  static constexpr int kAdamTableSteps = 1 << 15;

  // What the per-width loops read; an implementation detail.
  struct Params {
    float lr, eps, l1, l2, beta1, beta2, ftrl_beta, initial_accumulator;
    int dim;
    const float* bias = nullptr;  // Adam: (1 - beta1^t, 1 - beta2^t) at [2t], [2t + 1], t = 1..bias_steps
    int bias_steps = 0;
    bool bias_saturates = false;  // Adam: both corrections are 1.0f for every step past bias_steps
  };

 private:
  using Fn = void (*)(const Params&, float*, float*, const float*);
  Params p_;
  Fn fn_;
  std::shared_ptr<const std::vector<float>> bias_;
};

}  // namespace embark
