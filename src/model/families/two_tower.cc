// Two-tower retrieval: a user (query) tower and an item tower, each pooling
// its own fields' embeddings (from one table) and running an MLP to a
// vector of tower_dim; the outputs are both vectors, which the objective
// scores by their dot product (over the whole batch for the in-batch
// softmax). Which fields belong to which tower comes from the CSV schema.
#include "model/families/families.h"

namespace embark {

Status BuildTwoTower(FamilyBuilder* b) {
  const TrainConfig& cfg = b->config();
  EMBARK_ASSIGN_OR_RETURN(TowerFields towers, TowersOf(b->spec()));
  const int emb = b->AddTable(EmbeddingTable(cfg));
  b->PoolFields(emb);
  TwoTowers::Fields f{towers.user_fields, towers.item_fields, towers.user_dense, towers.item_dense};
  b->AddPart(std::make_unique<TwoTowers>(b->params(), f, cfg.embedding_dim, cfg.tower_mlp, cfg.tower_dim,
                                         cfg.tower_normalize, cfg.seed));
  b->SetOutputs(2 * cfg.tower_dim);
  b->SetTwoTower(cfg.tower_dim, towers.item_id_field);
  return Status::OK();
}

}  // namespace embark
