// Per-thread scratch of a Model's forward and backward passes (model.h).
#pragma once

#include <cstdint>
#include <memory>
#include <vector>

#include "nn/train_gemm.h"

namespace embark {

// The kinds of part a model is built from (model/parts.h).
enum class PartKind { kFirstOrder, kFm, kDeep, kDotInteraction, kTwoTower };

// A part's own scratch in a workspace: the activations its backward pass
// reads and its intermediate gradients. Each part derives its own; buffers
// are sized on use, so a workspace fits any model with parts of the same
// kinds (Model::Forward replaces a scratch of another kind).
struct PartScratch {
  explicit PartScratch(PartKind k) : kind(k) {}
  virtual ~PartScratch() = default;
  const PartKind kind;
};

// Reused across steps, so the step loop does not allocate once sizes have
// settled. A default-constructed Workspace fits any model; one from
// Model::NewWorkspace has the model's part scratch made up front.
struct Workspace {
  // unique keys of the sub-batch and, per feature, the index of its key
  std::vector<uint64_t> ukeys;
  std::vector<uint32_t> fidx;
  std::vector<uint64_t> dedup_keys;
  std::vector<uint32_t> dedup_val, dedup_stamp;
  uint32_t stamp = 0;
  // Per table of the model, in its order: the rows of ukeys (the table's
  // dim floats each) and, after Backward, their gradients (empty until then).
  struct TableRows {
    std::vector<float> rows, grads;
  };
  std::vector<TableRows> tables;
  // Field embeddings pooled per (sample, field), [B, F, dim] (when a part
  // reads them), and their gradient.
  std::vector<float> E, dE;
  std::vector<float> packed;  // inference weights of a model not yet frozen
  std::vector<float> outputs;  // Model::Logits: the outputs of a model with several per sample
  // The dense layers' training products of this workspace's thread, in the
  // precision of the model's dense_precision (set by Model::Forward).
  TrainGemm gemm;
  // One per part of the model, in its order.
  std::vector<std::unique_ptr<PartScratch>> parts;
  // Seconds this workspace spent in each phase, summed over calls: embedding
  // lookups (with key dedup), the dense forward pass (pooling, interaction,
  // MLPs), the backward pass, and the embedding updates.
  struct PhaseSeconds {
    double lookup = 0, forward = 0, backward = 0, update = 0;
  } seconds;
};

}  // namespace embark
