// CTR models: LR, FM, DeepFM, Wide&Deep, DCN-v2 and DLRM, built from shared
// parts (first-order weights, FM term over features, embedding bags pooled
// per field, MLPs, cross layers, dot interaction).
//
// A Model owns its named embedding tables (RowStores) and dense parameters.
// Forward and Backward leave the model unchanged and take a per-thread
// Workspace, so several threads run sub-batches at once against the same
// model; rows are reached through a RowAccess (the model's own stores, or a
// distributed step's staged rows), through which training also creates rows
// and sends row gradients. The trainer combines the threads' dense gradients.
#pragma once

#include <cmath>
#include <memory>
#include <string>
#include <vector>

#include "data/batch.h"
#include "data/spec.h"
#include "embedding/row_store.h"
#include "model/row_access.h"
#include "nn/layers.h"
#include "nn/params.h"
#include "train/config.h"
#include "util/status.h"

namespace embark {

// The click probability of a logit; every scoring path (eval, predict,
// serve) uses this one function so their outputs agree bit for bit.
inline float Sigmoid(float z) { return 1.0f / (1.0f + std::exp(-z)); }

// Per-thread scratch of one forward/backward pass; reused across steps so the
// step loop does not allocate once sizes have settled.
struct Workspace {
  // unique keys of the sub-batch and, per feature, the index of its key
  std::vector<uint64_t> ukeys;
  std::vector<uint32_t> fidx;
  std::vector<uint64_t> dedup_keys;
  std::vector<uint32_t> dedup_val, dedup_stamp;
  uint32_t stamp = 0;
  // activations
  std::vector<float> rows, w1, E, fm_sum, x0, T, top_in;
  std::vector<float> packed;  // inference weights of a model not yet frozen
  std::vector<std::vector<float>> xs, us;  // cross layers
  Mlp::State deep, bottom, top;
  // gradients
  std::vector<float> d_rows, d_w1, dE, dx, dx0, du, tmp, dtop, dtop_in, dT;
  // Seconds this workspace spent in each phase, summed over calls: embedding
  // lookups (with key dedup), the dense forward pass (pooling, interaction,
  // MLPs), the backward pass, and the embedding updates.
  struct PhaseSeconds {
    double lookup = 0, forward = 0, backward = 0, update = 0;
  } seconds;
};

class Model {
 public:
  static Result<std::unique_ptr<Model>> Create(const TrainConfig& cfg, const DataSpec& spec);
  ~Model();

  const TrainConfig& config() const { return cfg_; }
  const DataSpec& spec() const { return spec_; }
  ParamSet& params() { return params_; }
  const ParamSet& params() const { return params_; }
  // The embedding tables, each with its own name, dimension and optimizer:
  // "embeddings" (a row of embedding_dim per feature; all models but LR)
  // and "wide" (the first-order weight of each feature; LR, FM, DeepFM,
  // Wide&Deep).
  int num_tables() const { return static_cast<int>(tables_.size()); }
  RowStore* table(int i) const { return tables_[i].get(); }
  // Index of the table named `name`, or -1.
  int table_index(const std::string& name) const;
  // Outputs per sample (Forward writes n * outputs() values): one logit for
  // every CTR model.
  int outputs() const { return 1; }

  // Takes `cfg` as the model's config for a new run of it (resume): the
  // parameters the checkpoint fixes must be equal (CheckFixedParams, naming
  // the first that is not); the rest, the tables' optimizer settings
  // (learning rates, l1/l2, Adagrad's initial accumulator) included, take
  // cfg's values, and a checkpoint written afterwards records them.
  Status Reconfigure(const TrainConfig& cfg);

  // The model's own stores as a RowAccess (single-process training).
  RowAccess* rows() { return &rows_; }

  std::unique_ptr<Workspace> NewWorkspace() const;

  // Floating-point operations of one training sample in the dense part:
  // 2 per multiply-add of the forward pass (MLPs, cross layers, DLRM's dot
  // products, FM's pairwise term), times 3 for forward plus backward, as the
  // roofline in bench/ counts them.
  double TrainFlopsPerSample() const;

  // Packs the dense weights for inference once (predict, eval, serve). Until
  // then each inference Forward packs them into its workspace; after it the
  // parameters must not change.
  void FreezeForInference();

  // Logits of samples [begin, end) of `batch`. With `train`, rows come
  // through `rows` (required), which creates missing ones. Otherwise rows
  // come through `rows` or, when null, the model's own stores read-only:
  // unseen keys read as zeros, nothing changes, and the dense layers run
  // the batch-invariant kernel of nn/gemm.h, so a sample's logit is the same
  // bits whatever batch it is scored in.
  Status Forward(const Batch& batch, size_t begin, size_t end, bool train, RowAccess* rows, Workspace* ws,
                 float* logits) const;

  // After Forward(train=true) on the same range: accumulates dense gradients
  // into dense_grad (params().size() floats) and leaves the sparse gradients
  // in the workspace. Allocates nothing once the workspace has grown to the
  // sub-batch's size.
  void Backward(const Batch& batch, size_t begin, size_t end, const float* dlogits, Workspace* ws,
                float* dense_grad) const;

  // Sends the workspace's sparse gradients, multiplied by `scale`, through
  // `rows`. The trainer passes the batch size: dense layers follow the mean
  // loss of a batch, embedding rows the sum of per-sample losses, so sparse
  // learning rates mean what they mean for per-example Adagrad and FTRL.
  // An error when the workspace holds no Backward of its last Forward.
  Status ApplySparse(Workspace* ws, float scale, RowAccess* rows) const;

  // The sparse gradients of the last Backward (for tests): unique keys and
  // their gradient rows (emb: dim floats per key; wide: 1 float per key).
  struct SparseGrads {
    const std::vector<uint64_t>* keys;
    const std::vector<float>* emb;
    const std::vector<float>* wide;
  };
  SparseGrads LastSparseGrads(const Workspace& ws) const;

 private:
  Model(const TrainConfig& cfg, const DataSpec& spec);
  struct Parts;

  TrainConfig cfg_;
  DataSpec spec_;
  ParamSet params_;
  std::vector<std::unique_ptr<RowStore>> tables_;
  int emb_ = -1, wide_ = -1;  // indexes into tables_, -1 when absent
  StoreAccess rows_{{}};
  std::unique_ptr<Parts> parts_;
  std::vector<float> frozen_;  // packed inference weights after FreezeForInference
};


}  // namespace embark
