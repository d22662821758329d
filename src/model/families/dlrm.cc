// DLRM: a bottom MLP over the numeric fields, the pairwise dot products of
// its output and the pooled fields, and a top MLP.
#include "model/families/families.h"

namespace embark {

Status BuildDlrm(FamilyBuilder* b) {
  const TrainConfig& cfg = b->config();
  const DataSpec& spec = b->spec();
  const int F = spec.num_fields, nd = spec.num_dense;
  const int emb = b->AddTable(EmbeddingTable(cfg));
  if (DotInteraction::Vectors(F, nd) < 2)
    return Status::InvalidArgument("dlrm needs at least two interacting vectors (numeric fields count as one); "
                                   "this data has " + std::to_string(F) + " sparse field(s) and " +
                                   std::to_string(nd) + " numeric: use fm or deepfm");
  b->PoolFields(emb);
  b->AddPart(std::make_unique<DotInteraction>(b->params(), F, cfg.embedding_dim, nd, cfg.bottom_mlp, cfg.top_mlp,
                                              cfg.seed));
  return Status::OK();
}

}  // namespace embark
