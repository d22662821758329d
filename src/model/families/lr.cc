// LR: logistic regression over the features and the numeric fields.
#include "model/families/families.h"

namespace embark {

Status BuildLr(FamilyBuilder* b) {
  const int first = b->AddTable(FirstOrderTable(b->config()));
  b->AddPart(std::make_unique<FirstOrderTerm>(b->params(), first, b->spec().num_dense));
  return Status::OK();
}

}  // namespace embark
