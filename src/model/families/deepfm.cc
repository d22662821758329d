// DeepFM: FM (first-order weights and the pairwise term) plus a deep tower
// over the pooled fields and the numeric values, sharing the embedding rows.
#include "model/families/families.h"

namespace embark {

Status BuildDeepFm(FamilyBuilder* b) {
  const TrainConfig& cfg = b->config();
  const DataSpec& spec = b->spec();
  const int first = b->AddTable(FirstOrderTable(cfg));
  b->AddPart(std::make_unique<FirstOrderTerm>(b->params(), first, spec.num_dense));
  const int emb = b->AddTable(EmbeddingTable(cfg));
  b->AddPart(std::make_unique<FmTerm>(b->params(), emb, spec.num_fields, cfg.embedding_dim, spec.num_dense,
                                      cfg.init_scale, cfg.seed));
  b->PoolFields(emb);
  b->AddPart(std::make_unique<DeepTower>(b->params(), spec.num_fields, cfg.embedding_dim, spec.num_dense,
                                         /*cross_layers=*/0, cfg.mlp, cfg.seed));
  return Status::OK();
}

}  // namespace embark
