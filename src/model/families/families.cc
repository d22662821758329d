#include "model/families/families.h"

namespace embark {
namespace {

constexpr Family kFamilies[] = {
    {"lr", "logistic regression: first-order weights", BuildLr},
    {"fm", "factorization machine: first-order weights and the FM pairwise term", BuildFm},
    {"deepfm", "DeepFM: first-order weights, the FM pairwise term and a deep tower", BuildDeepFm},
    {"wdl", "Wide&Deep: first-order weights and a deep tower", BuildWdl},
    {"dcnv2", "DCN-v2: cross layers then a deep tower", BuildDcnV2},
    {"dlrm", "DLRM: bottom MLP, pairwise dot interaction, top MLP", BuildDlrm},
    {"two_tower", "two towers (retrieval): user and item vectors scored by their dot product", BuildTwoTower},
};

}  // namespace

std::span<const Family> Families() { return kFamilies; }

const Family* FindFamily(std::string_view name) {
  for (const Family& f : kFamilies)
    if (name == f.name) return &f;
  return nullptr;
}

std::string FamilyNames() {
  std::string s;
  for (const Family& f : kFamilies) s += std::string(s.empty() ? "" : ", ") + f.name;
  return s;
}

}  // namespace embark
