// The parts CTR models are built from. Each part is a term added to the
// logit, with its own dense parameters (in the model's ParamSet), its own
// forward and backward passes, its own packed inference weights and its
// own scratch in each workspace. A family (model/families/) declares which
// parts a model has and the tables they read.
//
// Parts read embedding rows the Model gathered for the sub-batch's unique
// keys (Workspace::tables) and, when they ask for them, the field
// embeddings the Model pooled once for every part (Workspace::E); they add
// row gradients into Workspace::tables[t].grads and pooled gradients into
// Workspace::dE, which the Model scatters back to rows after every part's
// backward pass. One call per part per sub-batch: the loops over samples
// and features are inside.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "model/workspace.h"
#include "nn/layers.h"
#include "nn/params.h"

namespace embark {

// Samples [begin, end) of a batch and their workspace, as parts read them.
struct Pass {
  int F = 0, nd = 0, B = 0;
  const uint32_t* off = nullptr;   // [B * F + 1] offsets into the batch's features
  uint32_t p0 = 0;                 // the first feature of the range
  const float* vals = nullptr;     // feature values from p0
  const float* dense = nullptr;    // [B * nd]
  const uint32_t* fidx = nullptr;  // per feature from p0: the index of its key among the unique keys
  const float* P = nullptr;        // the dense parameters
  Workspace* ws = nullptr;

  // The features of sample b: [begin(b), end(b)), counted from p0.
  uint32_t begin(int b) const { return off[b * F] - p0; }
  uint32_t end(int b) const { return off[(b + 1) * F] - p0; }
  // Rows of table t in the order of the unique keys, and their gradients.
  const float* rows(int t) const { return ws->tables[t].rows.data(); }
  float* grads(int t) const { return ws->tables[t].grads.data(); }
};

class Part {
 public:
  explicit Part(PartKind kind) : kind_(kind) {}
  virtual ~Part() = default;
  Part(const Part&) = delete;
  Part& operator=(const Part&) = delete;

  PartKind kind() const { return kind_; }
  // True when Forward reads the pooled field embeddings (Workspace::E) and
  // Backward adds to their gradient (Workspace::dE).
  virtual bool reads_pooled() const { return false; }
  // This part's scratch for one workspace (made once per workspace).
  virtual std::unique_ptr<PartScratch> NewScratch() const { return std::make_unique<PartScratch>(kind_); }
  // Multiply-adds of one sample's forward pass (for the FLOP count of
  // Model::TrainFlopsPerSample).
  virtual double macs() const { return 0; }

  // Inference weights: packed_size() floats that Pack writes and an
  // inference Forward reads, at packed_offset() of the model's packed
  // weights. The model sets the offset once, when it is built.
  virtual size_t packed_size() const { return 0; }
  virtual void Pack(const float* P, float* out) const {}
  size_t packed_offset() const { return packed_offset_; }
  void set_packed_offset(size_t offset) { packed_offset_ = offset; }

  // Adds this part's term to logits[0, B). `packed` is this part's packed
  // weights for inference (the batch-invariant kernel of nn/gemm.h), or
  // null in training (BLAS on the parameters, keeping what Backward reads).
  virtual void Forward(const Pass& x, const float* packed, PartScratch* s, float* logits) const = 0;
  // After a training Forward of the same pass: adds the gradients of this
  // part's parameters into g, of its rows into Workspace::tables, and of the
  // pooled embeddings into Workspace::dE.
  virtual void Backward(const Pass& x, const float* dlogits, PartScratch* s, float* g) const = 0;

 private:
  const PartKind kind_;
  size_t packed_offset_ = 0;
};

// First-order term: a bias, plus each feature's value times its weight in
// a table of dim 1, plus a weight per numeric field. Parameters
// "first_order.bias" and "first_order.dense" (not stored by name: dense.bin
// holds the values in ParamSet order, the same as when they were "wide.*").
class FirstOrderTerm : public Part {
 public:
  FirstOrderTerm(ParamSet* ps, int table, int num_dense);
  void Forward(const Pass& x, const float* packed, PartScratch* s, float* logits) const override;
  void Backward(const Pass& x, const float* dlogits, PartScratch* s, float* g) const override;

 private:
  int table_;
  size_t bias_, wd_;
};

// FM pairwise term over every feature's row (value times the row of a table
// of dim D) and every numeric field's factor (value times a learned vector
// of D, "fm.dense_factors"): 0.5 * (|sum|^2 - sum of squares).
class FmTerm : public Part {
 public:
  FmTerm(ParamSet* ps, int table, int fields, int dim, int num_dense, float init_scale, uint64_t seed);
  std::unique_ptr<PartScratch> NewScratch() const override;
  double macs() const override;
  void Forward(const Pass& x, const float* packed, PartScratch* s, float* logits) const override;
  void Backward(const Pass& x, const float* dlogits, PartScratch* s, float* g) const override;

 private:
  int table_, F_, D_, nd_;
  size_t vd_;
};

// Deep tower: the pooled fields and the numeric values concatenated
// (F * D + nd floats), through `cross_layers` full-rank cross layers (DCN-v2:
// x_{l+1} = x0 * (W x_l + b) + x_l) and then an MLP with `mlp` hidden sizes
// and an output of 1. Parameters "cross.<l>.*" and "deep.*".
class DeepTower : public Part {
 public:
  DeepTower(ParamSet* ps, int fields, int dim, int num_dense, int cross_layers, const std::vector<int>& mlp,
            uint64_t seed);
  bool reads_pooled() const override { return true; }
  std::unique_ptr<PartScratch> NewScratch() const override;
  double macs() const override;
  size_t packed_size() const override;
  void Pack(const float* P, float* out) const override;
  void Forward(const Pass& x, const float* packed, PartScratch* s, float* logits) const override;
  void Backward(const Pass& x, const float* dlogits, PartScratch* s, float* g) const override;

 private:
  int F_, D_, nd_, d0_;
  std::vector<Linear> cross_;
  Mlp deep_;
};

// DLRM dot interaction: a bottom MLP takes the numeric fields to a vector
// of D (when there are any), the pairwise dot products of it and the pooled
// fields (`vectors()` of them) go, after the bottom vector, into a top MLP
// with an output of 1. Parameters "bottom.*" and "top.*".
class DotInteraction : public Part {
 public:
  // The vectors that interact: one per sparse field, one for the numeric
  // fields when there are any. The family refuses fewer than two.
  static int Vectors(int fields, int num_dense) { return fields + (num_dense > 0 ? 1 : 0); }
  DotInteraction(ParamSet* ps, int fields, int dim, int num_dense, const std::vector<int>& bottom_mlp,
                 const std::vector<int>& top_mlp, uint64_t seed);
  bool reads_pooled() const override { return true; }
  std::unique_ptr<PartScratch> NewScratch() const override;
  double macs() const override;
  size_t packed_size() const override;
  void Pack(const float* P, float* out) const override;
  void Forward(const Pass& x, const float* packed, PartScratch* s, float* logits) const override;
  void Backward(const Pass& x, const float* dlogits, PartScratch* s, float* g) const override;

 private:
  int F_, D_, nd_, vecs_, pairs_;
  Mlp bottom_, top_;
};

// Two towers (retrieval): the user tower reads its own pooled fields and
// numeric values, the item tower its own (TowerFields), each through an MLP
// with `mlp` hidden sizes to a vector of `out`, L2-normalised when
// `normalize`. Writes [u, v] (2 * out floats) per sample: the model's
// outputs, which a whole-batch objective scores against each other.
// Parameters "user.*" and "item.*".
class TwoTowers : public Part {
 public:
  struct Fields {
    std::vector<int> user_fields, item_fields, user_dense, item_dense;
  };
  TwoTowers(ParamSet* ps, const Fields& fields, int dim, const std::vector<int>& mlp, int out, bool normalize,
            uint64_t seed);
  bool reads_pooled() const override { return true; }
  std::unique_ptr<PartScratch> NewScratch() const override;
  double macs() const override;
  size_t packed_size() const override;
  void Pack(const float* P, float* out) const override;
  void Forward(const Pass& x, const float* packed, PartScratch* s, float* logits) const override;
  void Backward(const Pass& x, const float* dlogits, PartScratch* s, float* g) const override;
  int out() const { return T_; }

 private:
  struct Tower {
    std::vector<int> fields, dense;
    int in = 0;
    Mlp mlp;
  };
  Fields fields_;
  int D_, T_;
  bool normalize_;
  Tower towers_[2];  // user, item
};

}  // namespace embark
