// CTR models: LR, FM, DeepFM, Wide&Deep, DCN-v2 and DLRM, built from shared
// parts (first-order weights, FM term over features, embedding bags pooled
// per field, MLPs, cross layers, dot interaction).
//
// A Model owns its embedding tables and dense parameters. Forward and
// Backward are const and take a per-thread Workspace, so several threads run
// sub-batches at once against the same model (the trainer combines their
// dense gradients; sparse gradients go straight to the tables).
#pragma once

#include <cmath>
#include <memory>
#include <string>
#include <vector>

#include "data/batch.h"
#include "data/spec.h"
#include "embedding/table.h"
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
  std::vector<float> d_rows, d_w1, dE, dx, dx0, tmp, dtop, dtop_in, dT;
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
  EmbeddingTable* embeddings() const { return emb_.get(); }  // null for LR
  EmbeddingTable* wide() const { return wide_.get(); }       // null without a first-order part

  std::unique_ptr<Workspace> NewWorkspace() const;

  // Exchanges the model's tables with *emb and *wide (distributed training
  // wraps them for a while; see src/dist/session.h).
  void SwapTables(std::unique_ptr<EmbeddingTable>* emb, std::unique_ptr<EmbeddingTable>* wide) {
    emb_.swap(*emb);
    wide_.swap(*wide);
  }

  // Floating-point operations of one training sample in the dense part:
  // 2 per multiply-add of the forward pass (MLPs, cross layers, DLRM's dot
  // products, FM's pairwise term), times 3 for forward plus backward, as the
  // roofline in bench/ counts them.
  double TrainFlopsPerSample() const;

  // Packs the dense weights for inference once (predict, eval, serve). Until
  // then each inference Forward packs them into its workspace; after it the
  // parameters must not change.
  void FreezeForInference();

  // Logits of samples [begin, end) of `batch`. With `train`, unseen keys get
  // new rows; otherwise they read as zeros, the tables stay unchanged and the
  // dense layers run the batch-invariant kernel of nn/gemm.h, so a sample's
  // logit is the same bits whatever batch it is scored in.
  void Forward(const Batch& batch, size_t begin, size_t end, bool train, Workspace* ws, float* logits) const;

  // After Forward(train=true) on the same range: accumulates dense gradients
  // into dense_grad (params().size() floats) and leaves the sparse gradients
  // in the workspace.
  void Backward(const Batch& batch, size_t begin, size_t end, const float* dlogits, Workspace* ws,
                float* dense_grad) const;

  // Applies the workspace's sparse gradients, multiplied by `scale`, to the
  // tables. The trainer passes the batch size: dense layers follow the mean
  // loss of a batch, embedding rows the sum of per-sample losses, so sparse
  // learning rates mean what they mean for per-example Adagrad and FTRL.
  void ApplySparse(Workspace* ws, float scale) const;

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
  std::unique_ptr<EmbeddingTable> emb_, wide_;
  std::unique_ptr<Parts> parts_;
  std::vector<float> frozen_;  // packed inference weights after FreezeForInference
};


}  // namespace embark
