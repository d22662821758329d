// Wide&Deep: the wide part (the first-order weights, as LR) plus a deep tower
// over the pooled fields and the numeric values.
#include "model/families/families.h"

namespace embark {

Status BuildWdl(FamilyBuilder* b) {
  const TrainConfig& cfg = b->config();
  const DataSpec& spec = b->spec();
  const int first = b->AddTable(FirstOrderTable(cfg));
  b->AddPart(std::make_unique<FirstOrderTerm>(b->params(), first, spec.num_dense));
  const int emb = b->AddTable(EmbeddingTable(cfg));
  b->PoolFields(emb);
  b->AddPart(std::make_unique<DeepTower>(b->params(), spec.num_fields, cfg.embedding_dim, spec.num_dense,
                                         /*cross_layers=*/0, cfg.mlp, cfg.seed));
  return Status::OK();
}

}  // namespace embark
