// Optimizers for embedding rows. Each row carries its own optimizer state
// right after its weights ([weights | state]), so a row is updated with one
// cache-friendly pass and moves as one unit (checkpoint, shard, spill).
#pragma once

#include <cstddef>
#include <string>

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

}  // namespace embark
