// FM: first-order weights plus the pairwise term of a factorization machine
// over the features' embedding rows and the numeric fields' factors.
#include "model/families/families.h"

namespace embark {

Status BuildFm(FamilyBuilder* b) {
  const TrainConfig& cfg = b->config();
  const DataSpec& spec = b->spec();
  const int first = b->AddTable(FirstOrderTable(cfg));
  b->AddPart(std::make_unique<FirstOrderTerm>(b->params(), first, spec.num_dense));
  const int emb = b->AddTable(EmbeddingTable(cfg));
  b->AddPart(std::make_unique<FmTerm>(b->params(), emb, spec.num_fields, cfg.embedding_dim, spec.num_dense,
                                      cfg.init_scale, cfg.seed));
  return Status::OK();
}

}  // namespace embark
