// DeepFM: FM (first-order weights and the pairwise term) plus a deep tower
// over the pooled fields and the numeric values, sharing the embedding rows.
#include "model/families/families.h"

namespace embark {

Status BuildDeepFm(FamilyBuilder* b) {
  // FM's tables and parts, then a deep tower over FM's embedding rows.
  EMBARK_RETURN_IF_ERROR(BuildFm(b));
  const TrainConfig& cfg = b->config();
  const DataSpec& spec = b->spec();
  int emb = -1;
  for (size_t t = 0; t < b->tables().size(); ++t)
    if (b->tables()[t].name == "embeddings") emb = static_cast<int>(t);
  b->PoolFields(emb);
  b->AddPart(std::make_unique<DeepTower>(b->params(), spec.num_fields, cfg.embedding_dim, spec.num_dense,
                                         /*cross_layers=*/0, cfg.mlp, cfg.seed));
  return Status::OK();
}

}  // namespace embark
