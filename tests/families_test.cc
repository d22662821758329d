// The model families: the registry, what each declares (tables, dense
// parameters in checkpoint order, outputs), and workspaces shared between
// models of different families.
#include <gtest/gtest.h>

#include <cstring>

#include "model/families/families.h"
#include "model/model.h"
#include "train/config.h"

namespace embark {
namespace {

std::vector<std::string> Split(const std::string& list) {
  std::vector<std::string> out;
  size_t at = 0;
  while (at <= list.size()) {
    size_t comma = list.find(", ", at);
    if (comma == std::string::npos) comma = list.size();
    out.push_back(list.substr(at, comma - at));
    at = comma + 2;
  }
  return out;
}

// The `model` parameter's choices (config.cc) are the registry's names, in
// its order; its help names each of them.
TEST(Families, ModelParameterChoicesAreTheRegistry) {
  const ParamDef* p = FindParam("model");
  ASSERT_NE(p, nullptr);
  TrainConfig cfg;
  const Status s = p->set(&cfg, "?");
  const std::string tail = "is not one of: ";
  const size_t at = s.message().find(tail);
  ASSERT_NE(at, std::string::npos) << s.message();
  EXPECT_EQ(s.message().substr(at + tail.size()), FamilyNames());
  std::vector<std::string> names;
  for (const Family& f : Families()) {
    names.push_back(f.name);
    EXPECT_TRUE(p->set(&cfg, f.name).ok()) << f.name;
    EXPECT_NE(std::string(p->help).find(f.name), std::string::npos) << f.name;
    EXPECT_EQ(FindFamily(f.name), &f);
  }
  EXPECT_EQ(Split(FamilyNames()), names);
  EXPECT_EQ(names, (std::vector<std::string>{"lr", "fm", "deepfm", "wdl", "dcnv2", "dlrm", "two_tower"}));
  EXPECT_EQ(FindFamily("gbdt"), nullptr);
}

TEST(Families, UnknownModelNamesTheKnownOnes) {
  TrainConfig cfg;
  cfg.model = "gbdt";
  auto m = Model::Create(cfg, DataSpec::Criteo());
  ASSERT_FALSE(m.ok());
  EXPECT_EQ(m.status().message(), "unknown model 'gbdt' (known: lr, fm, deepfm, wdl, dcnv2, dlrm, two_tower)");
}

TrainConfig Small(const std::string& model) {
  TrainConfig cfg;
  cfg.model = model;
  cfg.embedding_dim = 4;
  cfg.mlp = {8};
  cfg.bottom_mlp = {8};
  cfg.top_mlp = {8};
  cfg.cross_layers = 2;
  return cfg;
}

// The dense parameters' names, in the order the ParamSet (and so a
// checkpoint's dense.bin) holds them.
std::vector<std::string> ParamNames(const Model& m) {
  std::vector<std::string> out;
  for (const auto& e : m.params().entries()) out.push_back(e.name);
  return out;
}

TEST(Families, EachDeclaresItsTablesParametersAndOutputs) {
  struct Want {
    const char* model;
    std::vector<std::string> tables;
    std::vector<std::string> params;
  };
  const std::vector<Want> want = {
      {"lr", {"first_order"}, {"first_order.bias", "first_order.dense"}},
      {"fm", {"first_order", "embeddings"}, {"first_order.bias", "first_order.dense", "fm.dense_factors"}},
      {"deepfm",
       {"first_order", "embeddings"},
       {"first_order.bias", "first_order.dense", "fm.dense_factors", "deep.0.weight", "deep.0.bias", "deep.1.weight", "deep.1.bias"}},
      {"wdl",
       {"first_order", "embeddings"},
       {"first_order.bias", "first_order.dense", "deep.0.weight", "deep.0.bias", "deep.1.weight", "deep.1.bias"}},
      {"dcnv2",
       {"embeddings"},
       {"cross.0.weight", "cross.0.bias", "cross.1.weight", "cross.1.bias", "deep.0.weight", "deep.0.bias",
        "deep.1.weight", "deep.1.bias"}},
      {"dlrm",
       {"embeddings"},
       {"bottom.0.weight", "bottom.0.bias", "bottom.1.weight", "bottom.1.bias", "top.0.weight", "top.0.bias",
        "top.1.weight", "top.1.bias"}},
  };
  ASSERT_EQ(want.size() + 1, Families().size());  // and two_tower, which needs towers: two_tower_test.cc
  const TrainConfig base = Small("lr");
  for (const Want& w : want) {
    SCOPED_TRACE(w.model);
    auto r = Model::Create(Small(w.model), DataSpec::Criteo());
    ASSERT_TRUE(r.ok()) << r.status().message();
    const Model& m = *r.value();
    EXPECT_EQ(m.outputs(), 1);
    std::vector<std::string> tables;
    for (int t = 0; t < m.num_tables(); ++t) {
      tables.push_back(m.table(t)->config().name);
      EXPECT_EQ(m.table(t)->dim(), tables.back() == "embeddings" ? base.embedding_dim : 1);
    }
    EXPECT_EQ(tables, w.tables);
    EXPECT_EQ(ParamNames(m), w.params);
  }
}

// One workspace scores models of every family in turn, as a serving worker
// does across reloads: each score has the bits a fresh workspace gives.
TEST(Families, AWorkspaceServesEveryFamily) {
  InitBlas();
  Batch b;
  const DataSpec spec = DataSpec::Criteo();
  b.Reset(spec.num_dense, spec.num_fields);
  for (int i = 0; i < 5; ++i) {
    b.labels.push_back(i % 2);
    for (int d = 0; d < spec.num_dense; ++d) b.dense.push_back(0.1f * (i + d));
    for (int f = 0; f < spec.num_fields; ++f) {
      b.keys.push_back(1000 * f + i % 3);
      b.values.push_back(1);
      b.offsets.push_back(static_cast<uint32_t>(b.keys.size()));
    }
  }
  Workspace shared;
  for (int round = 0; round < 2; ++round) {
    for (const Family& f : Families()) {
      if (std::string(f.name) == "two_tower") continue;  // needs towers of a CSV schema: two_tower_test.cc
      SCOPED_TRACE(f.name);
      auto r = Model::Create(Small(f.name), spec);
      ASSERT_TRUE(r.ok()) << r.status().message();
      Model& m = *r.value();
      auto own = m.NewWorkspace();
      std::vector<float> z(b.size()), want(b.size());
      ASSERT_TRUE(m.Forward(b, 0, b.size(), true, m.rows(), own.get(), want.data()).ok());  // creates rows
      ASSERT_TRUE(m.Forward(b, 0, b.size(), false, nullptr, own.get(), want.data()).ok());
      ASSERT_TRUE(m.Forward(b, 0, b.size(), false, nullptr, &shared, z.data()).ok());
      EXPECT_EQ(0, std::memcmp(z.data(), want.data(), z.size() * sizeof(float)));
    }
  }
}

}  // namespace
}  // namespace embark
