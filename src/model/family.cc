#include "model/family.h"

namespace embark {
namespace {

Result<SparseOptimizerConfig> FirstOrderOptimizer(const TrainConfig& cfg) {
  SparseOptimizerConfig o;
  EMBARK_ASSIGN_OR_RETURN(o.kind, ParseSparseOpt(cfg.first_order_optimizer));
  o.lr = cfg.first_order_lr;
  o.l2 = cfg.sparse_l2;
  o.l1 = cfg.ftrl_l1;
  o.initial_accumulator = cfg.adagrad_init;
  return o;
}

Result<SparseOptimizerConfig> EmbeddingOptimizer(const TrainConfig& cfg) {
  SparseOptimizerConfig o;
  EMBARK_ASSIGN_OR_RETURN(o.kind, ParseSparseOpt(cfg.sparse_optimizer));
  o.lr = cfg.sparse_lr;
  o.l2 = cfg.sparse_l2;
  o.l1 = cfg.ftrl_l1;
  o.initial_accumulator = cfg.adagrad_init;
  return o;
}

}  // namespace

TableDecl FirstOrderTable(const TrainConfig&) { return {"first_order", 1, 0.0f, FirstOrderOptimizer}; }

TableDecl EmbeddingTable(const TrainConfig& cfg) {
  return {"embeddings", cfg.embedding_dim, cfg.init_scale, EmbeddingOptimizer};
}

}  // namespace embark
