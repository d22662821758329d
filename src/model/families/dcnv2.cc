// DCN-v2: cross_layers full-rank cross layers, then the deep MLP, over the
// pooled fields and the numeric values.
#include "model/families/families.h"

namespace embark {

Status BuildDcnV2(FamilyBuilder* b) {
  const TrainConfig& cfg = b->config();
  const DataSpec& spec = b->spec();
  const int emb = b->AddTable(EmbeddingTable(cfg));
  b->PoolFields(emb);
  b->AddPart(std::make_unique<DeepTower>(b->params(), spec.num_fields, cfg.embedding_dim, spec.num_dense,
                                         cfg.cross_layers, cfg.mlp, cfg.seed));
  return Status::OK();
}

}  // namespace embark
