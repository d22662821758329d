#include "model/family.h"

namespace embark {
namespace {

// A table's optimizer: its own kind and rate, the shared l1/l2 and
// Adagrad settings.
Result<SparseOptimizerConfig> TableOptimizer(const TrainConfig& cfg, const std::string& kind, float lr) {
  SparseOptimizerConfig o;
  EMBARK_ASSIGN_OR_RETURN(o.kind, ParseSparseOpt(kind));
  o.lr = lr;
  o.l2 = cfg.sparse_l2;
  o.l1 = cfg.ftrl_l1;
  o.initial_accumulator = cfg.adagrad_init;
  return o;
}

Result<SparseOptimizerConfig> FirstOrderOptimizer(const TrainConfig& cfg) {
  return TableOptimizer(cfg, cfg.first_order_optimizer, cfg.first_order_lr);
}

Result<SparseOptimizerConfig> EmbeddingOptimizer(const TrainConfig& cfg) {
  return TableOptimizer(cfg, cfg.sparse_optimizer, cfg.sparse_lr);
}

}  // namespace

TableDecl FirstOrderTable(const TrainConfig&) { return {"first_order", 1, 0.0f, FirstOrderOptimizer}; }

TableDecl EmbeddingTable(const TrainConfig& cfg) {
  return {"embeddings", cfg.embedding_dim, cfg.init_scale, EmbeddingOptimizer};
}

}  // namespace embark
