// CTR models: LR, FM, DeepFM, Wide&Deep, DCN-v2 and DLRM. Each is a family
// (model/families/, listed in families.cc) that declares its embedding
// tables and the parts (model/parts.h) whose terms add up to the logit:
// first-order weights, the FM pairwise term, a deep tower (with DCN-v2's
// cross layers), DLRM's dot interaction.
//
// A Model holds its named embedding tables (RowStores, which models made by
// ShareTables share) and owns its dense parameters.
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
#include "metrics/platt.h"
#include "model/row_access.h"
#include "model/workspace.h"
#include "nn/layers.h"
#include "nn/params.h"
#include "train/config.h"
#include "util/status.h"

namespace embark {

class Part;
class FamilyBuilder;

// The click probability of a logit; every scoring path (eval, predict,
// serve) uses this one function so their outputs agree bit for bit.
inline float Sigmoid(float z) { return 1.0f / (1.0f + std::exp(-z)); }

// The row precision a config asks for (row_precision).
RowPrecision PrecisionOf(const TrainConfig& cfg);

// Where and how a model keeps its embedding rows: settings of a run, not of
// the model (a checkpoint loads into any storage).
struct StorageOptions {
  // 0: every row in RAM (the in-memory store). Otherwise the RAM of all
  // tables together, split by row size, each a cache over a disk tier
  // under dir/<table name>.
  int64_t memory_budget = 0;
  std::string dir;
  RowPolicy policy;
  RowPrecision precision = RowPrecision::kFp32;
  // A training run's storage: its storage parameters, and under MPI
  // dir/rank-<rank>.
  static StorageOptions FromConfig(const TrainConfig& cfg, int rank = 0, int ranks = 1);
};

class Model {
 public:
  // Without `storage`, StorageOptions::FromConfig(cfg).
  static Result<std::unique_ptr<Model>> Create(const TrainConfig& cfg, const DataSpec& spec,
                                               const StorageOptions* storage = nullptr);
  ~Model();

  // A model of the same config and spec holding the same tables (not
  // copies: a row put into a table after this call is seen by both models)
  // with a copy of this model's dense parameters and calibration, not yet
  // frozen. Serving applies a delta checkpoint with it: rows go into the
  // shared tables, the delta's dense weights into the new model, which is
  // frozen and swapped in while requests in flight finish on this one.
  Result<std::unique_ptr<Model>> ShareTables() const;

  const TrainConfig& config() const { return cfg_; }
  const DataSpec& spec() const { return spec_; }
  ParamSet& params() { return params_; }
  const ParamSet& params() const { return params_; }
  // The embedding tables, as the family declared them, each with its own
  // name, dimension and optimizer: "embeddings" (a row of embedding_dim per
  // feature; all models but LR) and "first_order" (the first-order weight of
  // each feature; LR, FM, DeepFM, Wide&Deep).
  int num_tables() const { return static_cast<int>(tables_.size()); }
  RowStore* table(int i) const { return tables_[i].get(); }
  // True when rows may live on disk (prefetching them pays off).
  bool tiered() const { return tiered_; }
  // Index of the table named `name`, or -1.
  int table_index(const std::string& name) const;
  // Outputs per sample (Forward writes n * outputs() values), as the family
  // declared it: one logit for every CTR model.
  int outputs() const { return outputs_; }
  // A two-tower model (retrieval): outputs are the user vector then the
  // item vector, tower_dim() floats each; 0 for ranking models.
  int tower_dim() const { return tower_dim_; }
  // A sample's logit from its outputs (outputs() floats): a ranking model's
  // one output; for two towers, the vectors' dot product / temperature.
  float Logit(const float* out) const {
    if (tower_dim_ == 0) return out[0];
    float dot = 0;
    for (int k = 0; k < tower_dim_; ++k) dot += out[k] * out[tower_dim_ + k];
    return TowerLogit(dot);
  }
  // Two towers: the logit of a user and item vector's dot product (an
  // index's score, as retrieve and serve answer it).
  float TowerLogit(float dot) const { return dot / cfg_.temperature; }
  // Inference logits of samples [begin, end), one per sample (Forward with
  // train = false, then Logit), into logits[0, end - begin).
  Status Logits(const Batch& batch, size_t begin, size_t end, RowAccess* rows, Workspace* ws, float* logits) const;
  // Two-tower models: each sample's item, the key of its item_id feature
  // (0 when the sample has none), into keys[0, end - begin).
  void ItemKeys(const Batch& batch, size_t begin, size_t end, uint64_t* keys) const;

  // The click probability of a logit: sigmoid(a * logit + b) with the
  // model's Platt scaling (metrics/platt.h), fitted on validation data
  // after training; plain sigmoid until then. Every path that turns logits
  // into probabilities (evaluation, predict, serve) goes through it.
  float Probability(float logit) const {
    return calibration_.fitted() ? Sigmoid(static_cast<float>(calibration_.a * logit + calibration_.b)) : Sigmoid(logit);
  }
  const PlattScaling& calibration() const { return calibration_; }
  void set_calibration(const PlattScaling& c) { calibration_ = c; }

  // Takes `cfg` as the model's config for a new run of it (resume): the
  // parameters the checkpoint fixes must be equal (CheckFixedParams, naming
  // the first that is not); the rest, the tables' optimizer settings
  // (learning rates, l1/l2, Adagrad's initial accumulator) included, take
  // cfg's values, and a checkpoint written afterwards records them.
  Status Reconfigure(const TrainConfig& cfg);

  // The model's own stores as a RowAccess (single-process training).
  RowAccess* rows() { return &rows_; }

  // A workspace with this model's part scratch made up front. (A default-
  // constructed Workspace works too: Forward makes what it lacks.)
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

  // The same for a step whose batch was split over several workspaces (one
  // per thread's share, each after its Backward): sums their gradients by
  // key and sends each key's sum once, so a row gets one optimizer update
  // per step however the batch was split, as it does across ranks. Called
  // from `parts` threads at once with part = 0 .. parts-1, each sending the
  // keys that hash to it (rows of disjoint store shards) and using its own
  // `merge` workspace as scratch; `ws` is only read.
  Status ApplySparseMerged(const std::vector<const Workspace*>& ws, size_t part, size_t parts, float scale,
                           RowAccess* rows, Workspace* merge) const;

  // The sparse gradients of the last Backward (for tests): the unique keys
  // of its sub-batch and, for table `table`, their gradient rows (the
  // table's dim floats per key, in the order of the keys).
  const std::vector<uint64_t>& sparse_keys(const Workspace& ws) const { return ws.ukeys; }
  const std::vector<float>& sparse_grads(const Workspace& ws, int table) const { return ws.tables[table].grads; }

 private:
  Model(const TrainConfig& cfg, const DataSpec& spec);
  // Takes the parts the family built (after the tables are in place).
  Status AdoptParts(FamilyBuilder* b);
  // Gives `ws` a scratch of each part's kind and a buffer per table.
  void Prepare(Workspace* ws) const;
  // Whether `ws` holds the sparse gradients of a Backward (for every table,
  // one row per unique key of its last Forward).
  bool HoldsBackward(const Workspace& ws) const;
  // Multiplies the gradients of ws's unique keys by `scale` and sends them
  // through `rows`, table by table.
  Status SendSparse(Workspace* ws, float scale, RowAccess* rows) const;

  TrainConfig cfg_;
  DataSpec spec_;
  ParamSet params_;
  std::vector<std::shared_ptr<RowStore>> tables_;  // shared with ShareTables' models
  bool tiered_ = false;
  // Per table: which of a config's settings its optimizer takes.
  std::vector<Result<SparseOptimizerConfig> (*)(const TrainConfig&)> table_optimizers_;
  StoreAccess rows_{{}};
  std::vector<std::unique_ptr<Part>> parts_;  // in the order they add into the logit
  int pooled_ = -1;  // the table pooled per field when a part reads pooled embeddings, else -1
  int outputs_ = 1;
  int tower_dim_ = 0;
  int item_id_field_ = -1;
  size_t packed_size_ = 0;     // floats of every part's packed inference weights
  std::vector<float> frozen_;  // packed inference weights after FreezeForInference
  PlattScaling calibration_;
};


}  // namespace embark
