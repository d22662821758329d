// What a model family declares: its embedding tables, its parts (model/parts.h)
// in the order they add into the logit, which table's rows are pooled per
// field, and its outputs per sample. Each family is one function in
// model/families/, listed in the registry of model/families/families.cc.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "data/spec.h"
#include "embedding/sparse_optimizer.h"
#include "model/parts.h"
#include "nn/params.h"
#include "train/config.h"
#include "util/status.h"

namespace embark {

// An embedding table of a family: its name (checkpoint files are named after
// it), the floats of a row, the scale rows start at (uniform in
// [-init_scale, init_scale], derived from the key and the run's seed), and
// which of a config's settings its optimizer takes, when the model is built
// and on every Reconfigure.
struct TableDecl {
  std::string name;
  int dim = 1;
  float init_scale = 0;
  Result<SparseOptimizerConfig> (*optimizer)(const TrainConfig&) = nullptr;
};

// The first-order weights, one float per key, starting at zero, under
// first_order_optimizer / first_order_lr: the table "first_order" (named
// "wide" in checkpoints written before the rename, which still load).
TableDecl FirstOrderTable(const TrainConfig& cfg);
// The embedding rows, embedding_dim floats per key, starting within
// init_scale, under sparse_optimizer / sparse_lr: the table "embeddings".
TableDecl EmbeddingTable(const TrainConfig& cfg);

class FamilyBuilder {
 public:
  // Parts add their dense parameters to `params` as they are made.
  FamilyBuilder(const TrainConfig& cfg, const DataSpec& spec, ParamSet* params)
      : cfg_(cfg), spec_(spec), params_(params) {}

  const TrainConfig& config() const { return cfg_; }
  const DataSpec& spec() const { return spec_; }
  ParamSet* params() { return params_; }

  // Declares a table; returns its index among the model's tables.
  int AddTable(TableDecl t) {
    tables_.push_back(std::move(t));
    return static_cast<int>(tables_.size()) - 1;
  }
  // The next part: parts add into the logit in the order they are added.
  void AddPart(std::unique_ptr<Part> p) { parts_.push_back(std::move(p)); }
  // The table whose rows are pooled per (sample, field) for the parts that
  // read pooled embeddings (Part::reads_pooled).
  void PoolFields(int table) { pooled_ = table; }
  // Outputs per sample (1 unless set).
  void SetOutputs(int n) { outputs_ = n; }
  // A two-tower model: its outputs are a user vector then an item vector of
  // `dim` each, and `item_id_field` names a sample's item.
  void SetTwoTower(int dim, int item_id_field) {
    tower_dim_ = dim;
    item_id_field_ = item_id_field;
  }

  // What the model takes once the family has declared itself.
  std::vector<TableDecl>& tables() { return tables_; }
  std::vector<std::unique_ptr<Part>>& parts() { return parts_; }
  int pooled() const { return pooled_; }
  int outputs() const { return outputs_; }
  int tower_dim() const { return tower_dim_; }
  int item_id_field() const { return item_id_field_; }

 private:
  const TrainConfig& cfg_;
  const DataSpec& spec_;
  ParamSet* params_;
  std::vector<TableDecl> tables_;
  std::vector<std::unique_ptr<Part>> parts_;
  int pooled_ = -1;
  int outputs_ = 1;
  int tower_dim_ = 0;
  int item_id_field_ = -1;
};

}  // namespace embark
