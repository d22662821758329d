// Two-tower retrieval: the CSV schema's towers (user, item, item_id) and
// TowersOf; the two_tower model's gradients against central finite
// differences (dense parameters and embedding rows, with and without
// normalised vectors); the objectives' gradients, the in-batch softmax's
// logQ correction, accidental-hit removal and saved state; and a tiny
// retrieval task that TrainerImpl learns on the in-batch softmax.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <functional>
#include <random>
#include <string>
#include <vector>

#include "data/spec.h"
#include "model/families/families.h"
#include "model/model.h"
#include "model/objective.h"
#include "nn/layers.h"
#include "train/trainer.h"
#include "util/hash.h"

namespace embark {
namespace {

bool Has(const Status& s, const std::string& part) { return s.message().find(part) != std::string::npos; }

// ---------------------------------------------------------------- schema

constexpr char kBase[] = R"(
label = "y"
numeric = ["price", "age"]
categorical = ["icat", "uid", "iid"]
multi = { zz = "|", hist = ";" }
)";

Result<CsvSchema> Parse(const std::string& towers) { return ParseCsvSchema(std::string(kBase) + towers, "s.toml"); }

TEST(TowerSchema, ValidTowersAndTheirFields) {
  auto r = Parse(R"(
user = ["uid", "hist", "age"]
item = ["zz", "iid", "icat", "price"]
)");
  ASSERT_TRUE(r.ok()) << r.status().message();
  const CsvSchema& s = r.value();
  EXPECT_EQ(s.user, (std::vector<std::string>{"uid", "hist", "age"}));
  EXPECT_EQ(s.item, (std::vector<std::string>{"zz", "iid", "icat", "price"}));
  // Defaults to the item tower's first categorical column (zz is multi).
  EXPECT_EQ(s.item_id, "iid");
  // Fields: categorical in order (icat 0, uid 1, iid 2), then multi by name
  // (hist 3, zz 4); dense: price 0, age 1.
  const DataSpec spec = DataSpec::Csv(s);
  ASSERT_EQ(spec.field_names, (std::vector<std::string>{"icat", "uid", "iid", "hist", "zz"}));
  auto t = TowersOf(spec);
  ASSERT_TRUE(t.ok()) << t.status().message();
  EXPECT_EQ(t->user_fields, (std::vector<int>{1, 3}));
  EXPECT_EQ(t->item_fields, (std::vector<int>{0, 2, 4}));
  EXPECT_EQ(t->user_dense, (std::vector<int>{1}));
  EXPECT_EQ(t->item_dense, (std::vector<int>{0}));
  EXPECT_EQ(t->item_id_field, 2);

  auto named = Parse(R"(
user = ["uid", "hist", "age"]
item = ["zz", "iid", "icat", "price"]
item_id = "icat"
)");
  ASSERT_TRUE(named.ok()) << named.status().message();
  EXPECT_EQ(named->item_id, "icat");
  auto tn = TowersOf(DataSpec::Csv(named.value()));
  ASSERT_TRUE(tn.ok());
  EXPECT_EQ(tn->item_id_field, 0);
}

TEST(TowerSchema, ErrorsNameTheKeyAndColumn) {
  struct Case {
    const char* towers;
    std::vector<std::string> want;
  };
  const std::vector<Case> cases = {
      {"user = [\"uid\", \"hist\", \"age\", \"iid\"]\nitem = [\"zz\", \"iid\", \"icat\", \"price\"]",
       {"key 'item'", "'iid'", "already in 'user'"}},
      {"user = [\"uid\", \"uid\", \"hist\", \"age\"]\nitem = [\"zz\", \"iid\", \"icat\", \"price\"]",
       {"key 'user'", "'uid'", "already in"}},
      {"user = [\"uid\", \"hist\"]\nitem = [\"zz\", \"iid\", \"icat\", \"price\"]", {"'age'", "neither tower"}},
      {"user = [\"uid\", \"hist\", \"age\"]\nitem = [\"zz\", \"iid\", \"price\"]", {"'icat'", "neither tower"}},
      {"user = [\"uid\", \"hist\", \"age\"]\nitem = [\"zz\", \"iid\", \"icat\", \"price\"]\nitem_id = \"price\"",
       {"key 'item_id'", "'price'", "categorical column of the item tower"}},
      {"user = [\"uid\", \"hist\", \"age\"]\nitem = [\"zz\", \"iid\", \"icat\", \"price\"]\nitem_id = \"zz\"",
       {"key 'item_id'", "'zz'", "categorical column of the item tower"}},
      {"user = [\"uid\", \"hist\", \"age\"]\nitem = [\"zz\", \"iid\", \"icat\", \"price\"]\nitem_id = \"uid\"",
       {"key 'item_id'", "'uid'", "categorical column of the item tower"}},
      {"user = [\"uid\", \"hist\", \"age\"]\nitem = [\"zz\", \"iid\", \"icat\", \"price\"]\nitem_id = \"nosuch\"",
       {"key 'item_id'", "'nosuch'"}},
      {"user = [\"uid\", \"hist\", \"age\"]\nitem = [\"zz\", \"iid\", \"icat\", \"price\"]\nitem_id = 3",
       {"key 'item_id'", "expected a string"}},
      {"user = [\"uid\", \"hist\", \"age\", \"y\"]\nitem = [\"zz\", \"iid\", \"icat\", \"price\"]",
       {"key 'user'", "'y'", "not a numeric, categorical or multi column"}},
      {"user = [\"uid\", \"hist\", \"age\"]\nitem = [\"zz\", \"iid\", \"icat\", \"price\", \"y\"]",
       {"key 'item'", "'y'"}},
      {"user = [\"uid\", \"hist\", \"age\"]\nitem = [\"zz\", \"iid\", \"icat\", \"price\", \"nosuch\"]",
       {"key 'item'", "'nosuch'"}},
      {"user = [\"uid\", \"hist\", \"age\", \"zz\", \"iid\", \"icat\", \"price\"]", {"key 'item'", "both towers"}},
      {"item = [\"uid\", \"hist\", \"age\", \"zz\", \"iid\", \"icat\", \"price\"]", {"key 'user'", "both towers"}},
      {"item_id = \"iid\"", {"both towers"}},
      // No categorical column in the item tower to default item_id to.
      {"user = [\"uid\", \"iid\", \"icat\", \"hist\", \"age\"]\nitem = [\"zz\", \"price\"]",
       {"key 'item_id'", "required"}},
      {"user = \"uid\"\nitem = [\"zz\", \"iid\", \"icat\", \"price\", \"hist\", \"age\"]",
       {"key 'user'", "array of strings"}},
  };
  for (const Case& c : cases) {
    SCOPED_TRACE(c.towers);
    auto r = Parse(c.towers);
    ASSERT_FALSE(r.ok());
    EXPECT_TRUE(Has(r.status(), "s.toml")) << r.status().message();
    for (const auto& w : c.want) EXPECT_TRUE(Has(r.status(), w)) << r.status().message() << " lacks " << w;
  }
}

TEST(TowerSchema, DataSpecJsonKeepsTheTowers) {
  auto r = Parse(R"(
user = ["uid", "hist", "age"]
item = ["zz", "iid", "icat", "price"]
item_id = "icat"
)");
  ASSERT_TRUE(r.ok()) << r.status().message();
  const DataSpec spec = DataSpec::Csv(r.value());
  auto back = DataSpec::FromJson(spec.ToJson());
  ASSERT_TRUE(back.ok()) << back.status().message();
  EXPECT_EQ(back->csv.user, spec.csv.user);
  EXPECT_EQ(back->csv.item, spec.csv.item);
  EXPECT_EQ(back->csv.item_id, "icat");
  auto a = TowersOf(spec), b = TowersOf(back.value());
  ASSERT_TRUE(a.ok() && b.ok());
  EXPECT_EQ(a->user_fields, b->user_fields);
  EXPECT_EQ(a->item_fields, b->item_fields);
  EXPECT_EQ(a->user_dense, b->user_dense);
  EXPECT_EQ(a->item_dense, b->item_dense);
  EXPECT_EQ(a->item_id_field, b->item_id_field);
  EXPECT_EQ(back->ToJson(), spec.ToJson());

  // A schema without towers round-trips without them; TowersOf refuses it,
  // and refuses data that is not CSV.
  auto plain = Parse("");
  ASSERT_TRUE(plain.ok()) << plain.status().message();
  const DataSpec ps = DataSpec::Csv(plain.value());
  auto pb = DataSpec::FromJson(ps.ToJson());
  ASSERT_TRUE(pb.ok()) << pb.status().message();
  EXPECT_TRUE(pb->csv.user.empty() && pb->csv.item.empty() && pb->csv.item_id.empty());
  auto no = TowersOf(ps);
  ASSERT_FALSE(no.ok());
  EXPECT_TRUE(Has(no.status(), "user = [...]")) << no.status().message();
  EXPECT_FALSE(TowersOf(DataSpec::Criteo()).ok());
  // Model::Create of two_tower says so too.
  TrainConfig cfg;
  cfg.model = "two_tower";
  auto m = Model::Create(cfg, DataSpec::Criteo());
  ASSERT_FALSE(m.ok());
  EXPECT_TRUE(Has(m.status(), "two-tower")) << m.status().message();
}

// ------------------------------------------------------- model gradients

// Fields: uid 0, iid 1, icat 2 (categorical), hist 3 (multi); dense: age 0,
// price 1. User tower: uid, hist, age; item tower: iid, icat, price.
constexpr char kGradSchema[] = R"(
label = "y"
numeric = ["age", "price"]
categorical = ["uid", "iid", "icat"]
multi = { hist = "|" }
user = ["uid", "hist", "age"]
item = ["iid", "icat", "price"]
item_id = "iid"
)";
constexpr int kBatch = 6, kTowerDim = 4;

DataSpec GradSpec() {
  auto s = ParseCsvSchema(kGradSchema, "grad.toml");
  EXPECT_TRUE(s.ok()) << s.status().message();
  return DataSpec::Csv(s.value());
}

// Keys repeat within the batch; hist shares key 201 with iid (one table:
// the row takes gradients from both towers); sample 5 has no item id and
// some samples no history.
Batch GradBatch() {
  Batch b;
  b.Reset(2, 4);
  const uint64_t iid[kBatch] = {200, 201, 202, 200, 203, 0};
  uint64_t s = 7;
  for (int i = 0; i < kBatch; ++i) {
    b.labels.push_back(i == 2 ? 0.0f : 1.0f);
    b.dense.push_back(0.2f + 0.3f * (i % 3));
    b.dense.push_back(1.1f - 0.25f * (i % 4));
    auto add = [&](uint64_t k, float v) {
      b.keys.push_back(k);
      b.values.push_back(v);
    };
    add(100 + i % 4, 1);  // uid
    b.offsets.push_back(static_cast<uint32_t>(b.keys.size()));
    if (iid[i] != 0) add(iid[i], 1);
    b.offsets.push_back(static_cast<uint32_t>(b.keys.size()));
    add(300 + i % 2, 1);  // icat
    b.offsets.push_back(static_cast<uint32_t>(b.keys.size()));
    const int nh = i % 3;  // 0, 1 or 2 history keys
    for (int k = 0; k < nh; ++k) {
      s = Mix64(s);
      add(k == 1 && i == 5 ? 201 : 400 + s % 3, k == 0 ? 1.0f : 0.5f);
    }
    b.offsets.push_back(static_cast<uint32_t>(b.keys.size()));
  }
  return b;
}

std::unique_ptr<Model> TowerModel(bool normalize) {
  InitBlas();
  TrainConfig cfg;
  cfg.model = "two_tower";
  cfg.embedding_dim = 4;
  cfg.tower_mlp = {8};
  cfg.tower_dim = kTowerDim;
  cfg.tower_normalize = normalize;
  cfg.temperature = 0.5f;
  cfg.init_scale = 0.5f;
  auto mr = Model::Create(cfg, GradSpec());
  EXPECT_TRUE(mr.ok()) << mr.status().message();
  if (!mr.ok()) return nullptr;
  std::unique_ptr<Model> m = std::move(mr).value();
  for (size_t i = 0; i < m->params().size(); ++i)
    if (m->params().data()[i] == 0.0f) m->params().data()[i] = 0.1f * std::sin(3.0f * i);
  return m;
}

std::vector<float> FullRow(RowStore& t, uint64_t key) {
  std::vector<float> row(t.row_width());
  bool found = false;
  EXPECT_TRUE(t.Read(&key, 1, row.data(), nullptr, &found).ok());
  if (!found) row.clear();
  return row;
}

void SetRow(RowStore& t, uint64_t key, const std::vector<float>& row) {
  EXPECT_TRUE(t.Put(&key, 1, row.data(), nullptr).ok());
}

TEST(TwoTowerModel, DeclaresTowersAndOutputs) {
  auto m = TowerModel(true);
  ASSERT_NE(m, nullptr);
  EXPECT_EQ(m->outputs(), 2 * kTowerDim);
  EXPECT_EQ(m->tower_dim(), kTowerDim);
  ASSERT_EQ(m->num_tables(), 1);
  EXPECT_EQ(m->table(0)->config().name, "embeddings");
  std::vector<std::string> names;
  for (const auto& e : m->params().entries()) names.push_back(e.name);
  EXPECT_EQ(names, (std::vector<std::string>{"user.0.weight", "user.0.bias", "user.1.weight", "user.1.bias",
                                             "item.0.weight", "item.0.bias", "item.1.weight", "item.1.bias"}));
  // Each tower: (2 fields * 4 + 1 numeric) -> 8 -> 4.
  EXPECT_EQ(m->params().size(), 2u * (9 * 8 + 8 + 8 * 4 + 4));
  const Batch b = GradBatch();
  std::vector<uint64_t> items(kBatch);
  m->ItemKeys(b, 0, kBatch, items.data());
  EXPECT_EQ(items, (std::vector<uint64_t>{200, 201, 202, 200, 203, 0}));
  m->ItemKeys(b, 3, 5, items.data());
  EXPECT_EQ(items[0], 200u);
  EXPECT_EQ(items[1], 203u);
  // A ranking model has no items and one output.
  TrainConfig cfg;
  cfg.model = "deepfm";
  cfg.mlp = {8};
  auto r = Model::Create(cfg, GradSpec());
  ASSERT_TRUE(r.ok()) << r.status().message();
  EXPECT_EQ(r.value()->tower_dim(), 0);
  EXPECT_EQ(r.value()->outputs(), 1);
  r.value()->ItemKeys(b, 0, kBatch, items.data());
  EXPECT_EQ(items, std::vector<uint64_t>(kBatch, 0));
}

class TwoTowerGrad : public ::testing::TestWithParam<bool> {};

// L = sum_k c_k out_k with fixed random c, so dL/dout = c.
TEST_P(TwoTowerGrad, MatchesFiniteDifferences) {
  const bool normalize = GetParam();
  auto owned = TowerModel(normalize);
  ASSERT_NE(owned, nullptr);
  Model& m = *owned;
  const int K = m.outputs();
  const Batch b = GradBatch();
  std::mt19937 rng(11);
  std::uniform_real_distribution<float> u(-1, 1);
  std::vector<float> c(kBatch * K);
  for (float& x : c) x = u(rng);
  auto ws = m.NewWorkspace();
  std::vector<float> out(kBatch * K), g(m.params().size(), 0.0f);
  ASSERT_TRUE(m.Forward(b, 0, kBatch, true, m.rows(), ws.get(), out.data()).ok());  // creates the rows
  ASSERT_TRUE(m.Forward(b, 0, kBatch, true, m.rows(), ws.get(), out.data()).ok());
  m.Backward(b, 0, kBatch, c.data(), ws.get(), g.data());
  const std::vector<uint64_t> keys = m.sparse_keys(*ws);
  const std::vector<float> grads = m.sparse_grads(*ws, 0);
  ASSERT_EQ(grads.size(), keys.size() * 4);

  auto check_ws = m.NewWorkspace();
  std::vector<float> o(kBatch * K);
  auto loss = [&] {
    EXPECT_TRUE(m.Forward(b, 0, kBatch, false, nullptr, check_ws.get(), o.data()).ok());
    double l = 0;
    for (size_t k = 0; k < o.size(); ++k) l += double{c[k]} * o[k];
    return l;
  };
  const float eps = 1e-3f;
  int checked = 0, kinks = 0;
  auto fd_at = [&](const std::function<void(float)>& set, float keep, float h) {
    set(keep + h);
    const double lp = loss();
    set(keep - h);
    const double lm = loss();
    set(keep);
    return (lp - lm) / (2 * h);
  };
  // A coordinate where two step sizes disagree crosses a ReLU kink: counted, not compared.
  auto compare = [&](const std::function<void(float)>& set, float keep, float analytic, const std::string& what) {
    const double fd = fd_at(set, keep, eps);
    const double tol = 2e-3 + 2e-2 * std::fabs(analytic);
    if (std::fabs(fd - analytic) > tol && std::fabs(fd - fd_at(set, keep, eps / 8)) > tol) {
      ++kinks;
      return;
    }
    EXPECT_NEAR(fd, analytic, tol) << what;
    ++checked;
  };
  int nonzero = 0;
  for (size_t i = 0; i < m.params().size(); ++i) {
    float* p = &m.params().data()[i];
    nonzero += g[i] != 0.0f;
    compare([p](float v) { *p = v; }, *p, g[i], "dense param " + std::to_string(i));
  }
  EXPECT_GT(nonzero, static_cast<int>(m.params().size()) / 2);
  RowStore* t = m.table(0);
  bool saw_shared = false;
  for (size_t k = 0; k < keys.size(); ++k) {
    saw_shared |= keys[k] == 201;
    std::vector<float> row = FullRow(*t, keys[k]);
    ASSERT_FALSE(row.empty()) << keys[k];
    for (int j = 0; j < 4; ++j) {
      auto set = [&, k](float v) {
        row[j] = v;
        SetRow(*t, keys[k], row);
      };
      compare(set, row[j], grads[k * 4 + j], "key " + std::to_string(keys[k]) + " dim " + std::to_string(j));
    }
  }
  EXPECT_TRUE(saw_shared);
  EXPECT_GT(checked, 230);
  EXPECT_LE(kinks * 50, checked) << "too many coordinates skipped as ReLU kinks";
}

// Inference agrees with the training pass; normalised vectors have unit
// norm; Logit is the dot product over the temperature, as Logits says.
TEST_P(TwoTowerGrad, InferenceMatchesTrainingAndNormalises) {
  const bool normalize = GetParam();
  auto owned = TowerModel(normalize);
  ASSERT_NE(owned, nullptr);
  Model& m = *owned;
  const int K = m.outputs(), T = kTowerDim;
  const Batch b = GradBatch();
  auto ws = m.NewWorkspace();
  std::vector<float> trained(kBatch * K), inferred(kBatch * K), logits(kBatch);
  ASSERT_TRUE(m.Forward(b, 0, kBatch, true, m.rows(), ws.get(), trained.data()).ok());
  ASSERT_TRUE(m.Forward(b, 0, kBatch, false, nullptr, ws.get(), inferred.data()).ok());
  for (size_t k = 0; k < trained.size(); ++k) EXPECT_NEAR(inferred[k], trained[k], 1e-5 * (1 + std::fabs(trained[k])));
  ASSERT_TRUE(m.Logits(b, 0, kBatch, nullptr, ws.get(), logits.data()).ok());
  for (int i = 0; i < kBatch; ++i) {
    const float* ui = inferred.data() + i * K;
    double nu = 0, nv = 0, dot = 0;
    for (int d = 0; d < T; ++d) {
      nu += double{ui[d]} * ui[d];
      nv += double{ui[T + d]} * ui[T + d];
      dot += double{ui[d]} * ui[T + d];
    }
    if (normalize) {
      EXPECT_NEAR(std::sqrt(nu), 1.0, 1e-5) << "user " << i;
      EXPECT_NEAR(std::sqrt(nv), 1.0, 1e-5) << "item " << i;
    } else {
      EXPECT_GT(std::fabs(std::sqrt(nu) - 1.0), 1e-3) << "not normalised: user " << i;
    }
    EXPECT_NEAR(logits[i], dot / 0.5, 1e-5 * (1 + std::fabs(dot / 0.5)));
    EXPECT_EQ(logits[i], m.Logit(ui));
  }
  // A sample scored alone has the bits it has in the batch.
  std::vector<float> one(K);
  for (int i = 0; i < kBatch; ++i) {
    ASSERT_TRUE(m.Forward(b, i, i + 1, false, nullptr, ws.get(), one.data()).ok());
    EXPECT_EQ(0, std::memcmp(one.data(), inferred.data() + i * K, K * sizeof(float))) << "sample " << i;
  }
}

INSTANTIATE_TEST_SUITE_P(Normalize, TwoTowerGrad, ::testing::Bool(),
                         [](const ::testing::TestParamInfo<bool>& i) { return i.param ? "normalized" : "raw"; });

// ------------------------------------------------------------ objectives

constexpr int kN = 7, kDim = 4;

struct ObjBatch {
  std::vector<float> out;     // kN * 2 * kDim
  std::vector<float> labels;  // row 3 is a negative
  std::vector<uint64_t> items;  // rows 1 and 5 share item 12
};

ObjBatch RandomBatch(uint32_t seed, float range = 0.7f) {
  std::mt19937 rng(seed);
  std::uniform_real_distribution<float> u(-range, range);
  ObjBatch b;
  b.out.resize(kN * 2 * kDim);
  for (float& x : b.out) x = u(rng);
  b.labels = {1, 1, 1, 0, 1, 1, 1};
  b.items = {11, 12, 13, 14, 15, 12, 16};
  return b;
}

SoftmaxOptions Opts(bool logq, bool remove_hits, float t = 0.5f) {
  SoftmaxOptions o;
  o.dim = kDim;
  o.temperature = t;
  o.logq = logq;
  o.remove_hits = remove_hits;
  return o;
}

// One fresh objective's loss and scale-1 gradient on `b`.
double FreshLoss(const SoftmaxOptions& o, const ObjBatch& b, std::vector<float>* dout = nullptr) {
  auto obj = NewInBatchSoftmax(o);
  std::vector<float> d(b.out.size());
  ObjectiveSums sums;
  obj->Compute(b.out.data(), b.labels.data(), b.items.data(), b.labels.size(), 2 * o.dim, 1.0f, d.data(), &sums);
  if (dout) *dout = d;
  return sums.loss;
}

// The loss by its definition, in double: row i (label > 0) has
// -log softmax_j(u_i.v_j / t - logq_j)_i over j not masked.
double ReferenceLoss(const SoftmaxOptions& o, const ObjBatch& b, const std::vector<double>& logq) {
  const size_t n = b.labels.size();
  const int T = o.dim;
  double loss = 0;
  for (size_t i = 0; i < n; ++i) {
    if (b.labels[i] <= 0) continue;
    std::vector<double> z;
    double zi = 0;
    for (size_t j = 0; j < n; ++j) {
      if (o.remove_hits && j != i && b.items[j] == b.items[i]) continue;
      double dot = 0;
      for (int d = 0; d < T; ++d) dot += double{b.out[i * 2 * T + d]} * b.out[j * 2 * T + T + d];
      z.push_back(dot / o.temperature - logq[j]);
      if (j == i) zi = z.back();
    }
    const double mx = *std::max_element(z.begin(), z.end());
    double s = 0;
    for (double x : z) s += std::exp(x - mx);
    loss += mx + std::log(s) - zi;
  }
  return loss;
}

class Softmax : public ::testing::TestWithParam<std::tuple<bool, bool>> {};

TEST_P(Softmax, GradientMatchesFiniteDifferencesAndLossItsDefinition) {
  const auto [logq, hits] = GetParam();
  const SoftmaxOptions o = Opts(logq, hits);
  ObjBatch b = RandomBatch(3);
  std::vector<float> dout;
  const double loss = FreshLoss(o, b, &dout);
  // A fresh objective's frequencies are the batch's own: item 12 twice in 7.
  std::vector<double> lq(kN, 0.0);
  if (logq)
    for (int j = 0; j < kN; ++j) lq[j] = std::log((b.items[j] == 12 ? 2.0 : 1.0) / kN);
  EXPECT_NEAR(loss, ReferenceLoss(o, b, lq), 1e-4);
  // The logQ term matters: the loss without it differs.
  if (logq) {
    EXPECT_GT(std::fabs(loss - ReferenceLoss(o, b, std::vector<double>(kN, 0.0))), 1e-3);
  }
  const double eps = 1e-2;
  int compared = 0;
  for (size_t k = 0; k < b.out.size(); ++k) {
    const float keep = b.out[k];
    b.out[k] = keep + eps;
    const double lp = FreshLoss(o, b);
    b.out[k] = keep - eps;
    const double lm = FreshLoss(o, b);
    b.out[k] = keep;
    const double fd = (lp - lm) / (2 * eps);
    EXPECT_NEAR(dout[k], fd, 2e-3 + 1e-2 * std::fabs(fd)) << "output " << k;
    ++compared;
  }
  EXPECT_EQ(compared, kN * 2 * kDim);
  // Scale multiplies the gradient only.
  auto obj = NewInBatchSoftmax(o);
  std::vector<float> scaled(b.out.size());
  ObjectiveSums sums;
  obj->Compute(b.out.data(), b.labels.data(), b.items.data(), kN, 2 * kDim, 0.25f, scaled.data(), &sums);
  EXPECT_NEAR(sums.loss, loss, 1e-9 + 1e-6 * loss);
  EXPECT_EQ(sums.labels, 6.0);
  EXPECT_GT(sums.pred, 0.0);
  EXPECT_LT(sums.pred, 6.0);
  for (size_t k = 0; k < scaled.size(); ++k) EXPECT_NEAR(scaled[k], 0.25f * dout[k], 1e-6) << k;
}

INSTANTIATE_TEST_SUITE_P(LogqAndHits, Softmax, ::testing::Combine(::testing::Bool(), ::testing::Bool()),
                         [](const ::testing::TestParamInfo<std::tuple<bool, bool>>& i) {
                           return std::string(std::get<0>(i.param) ? "logq" : "nologq") + "_" +
                                  (std::get<1>(i.param) ? "removehits" : "keephits");
                         });

// By hand, dim 1, t = 1: u = (1, 2, -1), v = (0.5, -1, 2), items A A B.
// Batch 1 of a fresh objective: q = (2/3, 2/3, 1/3). Batch 2 of the same
// objective, items A C C: counts A 3, B 1, C 2 of total 6, q = (1/2, 1/3, 1/3).
TEST(SoftmaxLogq, FrequenciesAreStreamedCounts) {
  SoftmaxOptions o;
  o.dim = 1;
  o.temperature = 1;
  o.logq = true;
  o.remove_hits = false;
  auto obj = NewInBatchSoftmax(o);
  const float out[] = {1, 0.5f, 2, -1, -1, 2};
  const float labels[] = {1, 1, 1};
  auto by_hand = [&](const double q[3]) {
    const double u[3] = {1, 2, -1}, v[3] = {0.5, -1, 2};
    double l = 0;
    for (int i = 0; i < 3; ++i) {
      double s = 0;
      for (int j = 0; j < 3; ++j) s += std::exp(u[i] * v[j] - std::log(q[j]));
      l += std::log(s) - (u[i] * v[i] - std::log(q[i]));
    }
    return l;
  };
  float dout[6];
  ObjectiveSums s1, s2;
  const uint64_t items1[] = {1, 1, 2};
  obj->Compute(out, labels, items1, 3, 2, 1.0f, dout, &s1);
  const double q1[3] = {2.0 / 3, 2.0 / 3, 1.0 / 3};
  EXPECT_NEAR(s1.loss, by_hand(q1), 1e-5);
  const uint64_t items2[] = {1, 3, 3};
  obj->Compute(out, labels, items2, 3, 2, 1.0f, dout, &s2);
  const double q2[3] = {3.0 / 6, 2.0 / 6, 2.0 / 6};
  EXPECT_NEAR(s2.loss, by_hand(q2), 1e-5);
  // Off, the same batch is scored without q.
  o.logq = false;
  ObjectiveSums s3;
  NewInBatchSoftmax(o)->Compute(out, labels, items2, 3, 2, 1.0f, dout, &s3);
  const double ones[3] = {1, 1, 1};
  EXPECT_NEAR(s3.loss, by_hand(ones), 1e-5);
}

// Row 1's item is also row 5's: with remove_hits, row 5 is not among row
// 1's negatives (and, row 1 the only positive, row 5's item vector gets no
// gradient at all); without, it is.
TEST(SoftmaxHits, AMaskedAccidentalHitDropsOut) {
  ObjBatch b = RandomBatch(5);
  b.labels = {0, 1, 0, 0, 0, 0, 0};
  const int T = kDim, K = 2 * kDim;
  std::vector<double> z1(kN);
  for (int j = 0; j < kN; ++j) {
    double dot = 0;
    for (int d = 0; d < T; ++d) dot += double{b.out[1 * K + d]} * b.out[j * K + T + d];
    z1[j] = dot / 0.5;
  }
  double with = 0, without = 0;
  for (int j = 0; j < kN; ++j) {
    with += std::exp(z1[j]);
    if (j != 5) without += std::exp(z1[j]);
  }
  std::vector<float> dmask, dkeep;
  const double masked = FreshLoss(Opts(false, true), b, &dmask);
  const double kept = FreshLoss(Opts(false, false), b, &dkeep);
  EXPECT_NEAR(masked, std::log(without) - z1[1], 1e-5);
  EXPECT_NEAR(kept, std::log(with) - z1[1], 1e-5);
  EXPECT_GT(kept - masked, 1e-3);
  for (int d = 0; d < T; ++d) {
    EXPECT_EQ(dmask[5 * K + T + d], 0.0f) << d;
    EXPECT_NE(dkeep[5 * K + T + d], 0.0f) << d;
    EXPECT_NE(dmask[0 * K + T + d], 0.0f) << d;  // row 0's item is still a negative
  }
  // Rows without an item (0) are never each other's hits.
  b.items = {0, 12, 13, 14, 15, 0, 16};
  b.labels = {1, 1, 1, 0, 1, 1, 1};
  EXPECT_NEAR(FreshLoss(Opts(false, true), b), FreshLoss(Opts(false, false), b), 1e-6);
}

TEST(SoftmaxLabels, ANegativeRowAddsNoLossAndNoUserGradient) {
  const ObjBatch b = RandomBatch(9);  // row 3 has label 0
  for (bool logq : {false, true}) {
    SCOPED_TRACE(logq);
    std::vector<float> dout;
    const double loss = FreshLoss(Opts(logq, true), b, &dout);
    for (int d = 0; d < kDim; ++d) {
      EXPECT_EQ(dout[3 * 2 * kDim + d], 0.0f) << d;
      EXPECT_NE(dout[3 * 2 * kDim + kDim + d], 0.0f) << d;  // its item is a negative of the others
    }
    // Its user vector does not matter at all.
    ObjBatch other = b;
    for (int d = 0; d < kDim; ++d) other.out[3 * 2 * kDim + d] = 5.0f * (d + 1);
    EXPECT_EQ(FreshLoss(Opts(logq, true), other), loss);
  }
  // All negative: nothing to learn.
  ObjBatch none = b;
  std::fill(none.labels.begin(), none.labels.end(), 0.0f);
  std::vector<float> dout;
  EXPECT_EQ(FreshLoss(Opts(true, true), none, &dout), 0.0);
  for (float x : dout) EXPECT_EQ(x, 0.0f);
}

TEST(SoftmaxMargin, SeparatedVectorsHaveNoLossAndStayFinite) {
  // u_i = v_i = e_i: z_ii = 1/t, z_ij = 0.
  for (float t : {0.01f, 1e-4f}) {
    SCOPED_TRACE(t);
    ObjBatch b;
    b.out.assign(4 * 2 * kDim, 0.0f);
    for (int i = 0; i < 4; ++i) b.out[i * 2 * kDim + i] = b.out[i * 2 * kDim + kDim + i] = 1.0f;
    b.labels = {1, 1, 1, 1};
    b.items = {1, 2, 3, 4};
    std::vector<float> dout;
    const double loss = FreshLoss(Opts(true, true, t), b, &dout);
    EXPECT_TRUE(std::isfinite(loss));
    EXPECT_LT(loss, 1e-6);
    EXPECT_GE(loss, 0.0);
    for (float x : dout) EXPECT_TRUE(std::isfinite(x));
    for (float x : dout) EXPECT_LT(std::fabs(x), 1e-6);
    // The reverse, every row scoring another's item: huge loss, still finite.
    for (int i = 0; i < 4; ++i) {
      std::fill(b.out.begin() + i * 2 * kDim, b.out.begin() + i * 2 * kDim + kDim, 0.0f);
      b.out[i * 2 * kDim + (i + 1) % 4] = 1.0f;
    }
    const double bad = FreshLoss(Opts(true, true, t), b, &dout);
    EXPECT_TRUE(std::isfinite(bad));
    EXPECT_NEAR(bad, 4 / t, 1e-3 * 4 / t);
    for (float x : dout) EXPECT_TRUE(std::isfinite(x));
  }
}

TEST(SoftmaxState, SavedFrequenciesRestoreTheSameLoss) {
  const SoftmaxOptions o = Opts(true, true);
  auto a = NewInBatchSoftmax(o);
  EXPECT_EQ(a->SaveState(), "");  // nothing seen yet
  std::vector<float> d(kN * 2 * kDim), d2(d.size());
  ObjectiveSums s;
  const ObjBatch b1 = RandomBatch(1), b2 = RandomBatch(2);
  ObjBatch b3 = RandomBatch(3);
  b3.items = {11, 11, 11, 17, 18, 12, 19};
  a->Compute(b1.out.data(), b1.labels.data(), b1.items.data(), kN, 2 * kDim, 1.0f, d.data(), &s);
  a->Compute(b3.out.data(), b3.labels.data(), b3.items.data(), kN, 2 * kDim, 1.0f, d.data(), &s);
  const std::string state = a->SaveState();
  ASSERT_FALSE(state.empty());
  EXPECT_EQ(state.substr(0, 4), "EMBQ");
  auto restored = NewInBatchSoftmax(o);
  ASSERT_TRUE(restored->LoadState(state).ok());
  EXPECT_EQ(restored->SaveState(), state);
  ObjectiveSums sa, sr, sf;
  a->Compute(b2.out.data(), b2.labels.data(), b2.items.data(), kN, 2 * kDim, 1.0f, d.data(), &sa);
  restored->Compute(b2.out.data(), b2.labels.data(), b2.items.data(), kN, 2 * kDim, 1.0f, d2.data(), &sr);
  EXPECT_EQ(sa.loss, sr.loss);
  EXPECT_EQ(d, d2);
  // Without the state, the next batch scores differently.
  NewInBatchSoftmax(o)->Compute(b2.out.data(), b2.labels.data(), b2.items.data(), kN, 2 * kDim, 1.0f, d2.data(), &sf);
  EXPECT_GT(std::fabs(sf.loss - sa.loss), 1e-4);
  // Empty bytes: a fresh objective.
  auto fresh = NewInBatchSoftmax(o);
  EXPECT_TRUE(fresh->LoadState("").ok());
  // Without logQ there is nothing to keep.
  auto off = NewInBatchSoftmax(Opts(false, true));
  off->Compute(b1.out.data(), b1.labels.data(), b1.items.data(), kN, 2 * kDim, 1.0f, d.data(), &s);
  EXPECT_EQ(off->SaveState(), "");
  // Binary cross-entropy keeps nothing and ignores what the softmax kept.
  auto bce = NewTowerCrossEntropy(kDim, 0.5f);
  EXPECT_EQ(bce->SaveState(), "");
  EXPECT_TRUE(bce->LoadState(state).ok());
}

TEST(SoftmaxState, LoadStateRefusesMalformedBytes) {
  const SoftmaxOptions o = Opts(true, true);
  auto a = NewInBatchSoftmax(o);
  const ObjBatch b = RandomBatch(1);
  std::vector<float> d(kN * 2 * kDim);
  ObjectiveSums s;
  a->Compute(b.out.data(), b.labels.data(), b.items.data(), kN, 2 * kDim, 1.0f, d.data(), &s);
  const std::string good = a->SaveState();
  ASSERT_EQ(good.size(), 4u + 4 + 8 + 8 + 6 * 16);  // six distinct items
  auto put64 = [](std::string* s, size_t at, uint64_t x) {
    for (int k = 0; k < 8; ++k) (*s)[at + k] = static_cast<char>(x >> (8 * k));
  };
  std::vector<std::pair<std::string, std::string>> bad;
  for (size_t cut : {good.size() - 1, good.size() - 16, size_t{30}, size_t{10}, size_t{3}})
    bad.emplace_back("truncated to " + std::to_string(cut), good.substr(0, cut));
  bad.emplace_back("extra byte", good + "x");
  bad.emplace_back("garbage", "this is not a frequency file at all");
  std::string v = good;
  v[4] = 2;
  bad.emplace_back("version 2", v);
  std::string many = good;
  put64(&many, 16, uint64_t{1} << 60);  // item count
  bad.emplace_back("huge item count", many);
  std::string over = good;
  put64(&over, 8, 3);  // total below the counts' sum (7)
  bad.emplace_back("counts above total", over);
  std::string zero = good;
  put64(&zero, 24 + 8, 0);  // first entry's count
  bad.emplace_back("zero count", zero);
  std::string dup = good;
  dup.replace(24 + 16, 8, good.substr(24, 8));  // second entry's item = the first's
  bad.emplace_back("duplicate item", dup);
  for (const auto& [what, bytes] : bad) {
    auto r = NewInBatchSoftmax(o);
    const Status st = r->LoadState(bytes);
    EXPECT_FALSE(st.ok()) << what;
    EXPECT_TRUE(Has(st, "item frequencies")) << what << ": " << st.message();
  }
  // The good bytes load.
  EXPECT_TRUE(NewInBatchSoftmax(o)->LoadState(good).ok());
}

TEST(TowerCrossEntropy, GradientMatchesFiniteDifferences) {
  ObjBatch b = RandomBatch(4);
  b.labels = {1, 0, 1, 0, 0, 1, 1};
  const float t = 0.5f;
  auto obj = NewTowerCrossEntropy(kDim, t);
  EXPECT_TRUE(obj->separable());
  EXPECT_FALSE(obj->needs_items());
  auto eval = [&](std::vector<float>* dout) {
    std::vector<float> d(b.out.size());
    ObjectiveSums s;
    obj->Compute(b.out.data(), b.labels.data(), nullptr, kN, 2 * kDim, 1.0f, d.data(), &s);
    if (dout) *dout = d;
    return s;
  };
  std::vector<float> dout;
  const ObjectiveSums s = eval(&dout);
  double want = 0, pred = 0;
  for (int i = 0; i < kN; ++i) {
    double dot = 0;
    for (int k = 0; k < kDim; ++k) dot += double{b.out[i * 2 * kDim + k]} * b.out[i * 2 * kDim + kDim + k];
    const double p = 1 / (1 + std::exp(-dot / t));
    want -= b.labels[i] > 0 ? std::log(p) : std::log(1 - p);
    pred += p;
  }
  EXPECT_NEAR(s.loss, want, 1e-5);
  EXPECT_NEAR(s.pred, pred, 1e-5);
  EXPECT_EQ(s.labels, 4.0);
  const double eps = 1e-2;
  for (size_t k = 0; k < b.out.size(); ++k) {
    const float keep = b.out[k];
    b.out[k] = keep + eps;
    const double lp = eval(nullptr).loss;
    b.out[k] = keep - eps;
    const double lm = eval(nullptr).loss;
    b.out[k] = keep;
    const double fd = (lp - lm) / (2 * eps);
    EXPECT_NEAR(dout[k], fd, 1e-3 + 1e-2 * std::fabs(fd)) << "output " << k;
  }
}

TEST(NewObjective, PicksAndRefuses) {
  TrainConfig cfg;
  cfg.model = "two_tower";
  auto a = NewObjective(cfg, 4);
  ASSERT_TRUE(a.ok()) << a.status().message();
  EXPECT_STREQ(a.value()->name(), "softmax");
  EXPECT_FALSE(a.value()->separable());
  EXPECT_TRUE(a.value()->needs_items());
  cfg.model = "deepfm";
  auto r = NewObjective(cfg, 0);
  ASSERT_TRUE(r.ok());
  EXPECT_STREQ(r.value()->name(), "bce");
  EXPECT_FALSE(r.value()->needs_items());
  cfg.objective = "softmax";
  auto no = NewObjective(cfg, 0);
  ASSERT_FALSE(no.ok());
  EXPECT_TRUE(Has(no.status(), "two_tower")) << no.status().message();
  cfg.objective = "hinge";
  auto unk = NewObjective(cfg, 4);
  ASSERT_FALSE(unk.ok());
  EXPECT_TRUE(Has(unk.status(), "hinge")) << unk.status().message();
  // bce on a two-tower model scores u.v / temperature per row.
  cfg.objective = "bce";
  cfg.temperature = 0.25f;
  auto tb = NewObjective(cfg, 2);
  ASSERT_TRUE(tb.ok());
  EXPECT_TRUE(tb.value()->separable());
  const float out[] = {1, 2, 0.5f, 0.25f};  // u.v = 1, logit 4
  const float label = 1;
  float dout[4];
  ObjectiveSums s;
  tb.value()->Compute(out, &label, nullptr, 1, 4, 1.0f, dout, &s);
  EXPECT_NEAR(s.loss, std::log1p(std::exp(-4.0)), 1e-6);
  // The config's softmax options reach the objective: without logQ it keeps no state.
  cfg.objective = "auto";
  for (bool logq : {false, true}) {
    cfg.logq_correction = logq;
    auto sm = NewObjective(cfg, 2);
    ASSERT_TRUE(sm.ok());
    const uint64_t item = 5;
    sm.value()->Compute(out, &label, &item, 1, 4, 1.0f, dout, &s);
    EXPECT_EQ(sm.value()->SaveState().empty(), !logq);
  }
  // The config refuses softmax for ranking models too.
  TrainConfig rank;
  rank.model = "deepfm";
  rank.objective = "softmax";
  EXPECT_FALSE(ValidateConfig(rank).ok());
}

// --------------------------------------------------------------- trainer

// 20 users, each always picking item (7u + 3) mod 20: after training on
// the in-batch softmax, each user's nearest item by u.v is its own.
constexpr int kUsers = 20;
int ItemOf(int user) { return (7 * user + 3) % kUsers; }

DataSpec RetrievalSpec() {
  auto s = ParseCsvSchema("label = \"y\"\ncategorical = [\"user\", \"item\"]\nuser = [\"user\"]\nitem = [\"item\"]\n",
                          "retrieval.toml");
  EXPECT_TRUE(s.ok()) << s.status().message();
  return DataSpec::Csv(s.value());
}

Batch Pairs(const std::vector<int>& users, const std::vector<int>& items) {
  Batch b;
  b.Reset(0, 2);
  for (size_t i = 0; i < users.size(); ++i) {
    b.labels.push_back(1);
    b.keys.push_back(1000 + users[i]);
    b.values.push_back(1);
    b.offsets.push_back(static_cast<uint32_t>(b.keys.size()));
    b.keys.push_back(2000 + items[i]);
    b.values.push_back(1);
    b.offsets.push_back(static_cast<uint32_t>(b.keys.size()));
  }
  return b;
}

// How many users' top-1 item by u.v over all 20 items is theirs.
int TopOneHits(const Model& m) {
  std::vector<int> ids(kUsers);
  for (int i = 0; i < kUsers; ++i) ids[i] = i;
  const Batch b = Pairs(ids, ids);  // sample i: user i and item i
  const int K = m.outputs(), T = m.tower_dim();
  std::vector<float> out(kUsers * K);
  Workspace ws;
  EXPECT_TRUE(m.Forward(b, 0, kUsers, false, nullptr, &ws, out.data()).ok());
  int hits = 0;
  for (int u = 0; u < kUsers; ++u) {
    int best = -1;
    float best_score = -1e30f;
    for (int j = 0; j < kUsers; ++j) {
      float s = 0;
      for (int d = 0; d < T; ++d) s += out[u * K + d] * out[j * K + T + d];
      if (s > best_score) best_score = s, best = j;
    }
    hits += best == ItemOf(u);
  }
  return hits;
}

TEST(TwoTowerTrainer, LearnsATinyRetrievalTask) {
  InitBlas();
  TrainConfig cfg;
  cfg.model = "two_tower";
  cfg.embedding_dim = 8;
  cfg.tower_mlp = {16};
  cfg.tower_dim = 8;
  cfg.temperature = 0.1f;
  cfg.sparse_lr = 0.03f;
  cfg.dense_lr = 0.01f;
  cfg.threads = 1;
  cfg.deterministic = true;
  cfg.batch_size = 32;
  auto model = Model::Create(cfg, RetrievalSpec());
  ASSERT_TRUE(model.ok()) << model.status().message();
  auto t = TrainerImpl::Create(cfg, std::move(model).value(), {}, {});
  ASSERT_TRUE(t.ok()) << t.status().message();
  TrainerImpl& tr = *t.value();
  EXPECT_STREQ(tr.objective().name(), "softmax");
  std::mt19937 rng(17);
  std::uniform_int_distribution<int> pick(0, kUsers - 1);
  auto next = [&] {
    std::vector<int> users(32), items(32);
    for (int i = 0; i < 32; ++i) {
      users[i] = pick(rng);
      items[i] = ItemOf(users[i]);
    }
    return Pairs(users, items);
  };
  // Before training (no rows yet) and after one step the towers know nothing.
  EXPECT_LT(TopOneHits(tr.model()), 16);
  double first = 0, last = 0;
  std::vector<float> outputs(32 * tr.model().outputs());
  for (int step = 0; step < 200; ++step) {
    if (step == 1) {
      EXPECT_LT(TopOneHits(tr.model()), 16) << "the task is learnt after one step";
    }
    auto st = tr.Step(next(), outputs.data());
    ASSERT_TRUE(st.ok()) << st.status().message();
    ASSERT_EQ(st->samples, 32u);
    EXPECT_EQ(st->sums.labels, 32.0);
    ASSERT_TRUE(std::isfinite(st->sums.loss));
    if (step < 10) first += st->sums.loss / 32;
    if (step >= 190) last += st->sums.loss / 32;
  }
  first /= 10;
  last /= 10;
  EXPECT_LT(last, 0.5 * first) << "first " << first << " last " << last;
  EXPECT_GE(TopOneHits(tr.model()), 16);
}

}  // namespace
}  // namespace embark
