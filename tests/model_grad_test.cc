// Gradient checks for every model: analytic gradients of the batch logloss
// against central finite differences, for dense parameters and embedding
// rows (including keys repeated within a batch).
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <functional>

#include "model/families/families.h"
#include "model/model.h"
#include "util/hash.h"

namespace embark {
namespace {

constexpr int kFields = 3, kDense = 2, kBatch = 6;

Batch MakeBatch() {
  Batch b;
  b.Reset(kDense, kFields);
  uint64_t s = 1;
  for (int i = 0; i < kBatch; ++i) {
    b.labels.push_back(i % 3 == 0 ? 1.0f : 0.0f);
    for (int d = 0; d < kDense; ++d) b.dense.push_back(0.3f + 0.4f * ((i + d) % 4));
    for (int f = 0; f < kFields; ++f) {
      int n = (f == 2) ? 2 : (i + f) % 3 == 0 ? 0 : 1;  // field 2 multi-valued, some fields empty
      for (int k = 0; k < n; ++k) {
        s = Mix64(s);
        b.keys.push_back(1000 * f + s % 4);  // few ids: repeats within the batch
        b.values.push_back(k == 0 ? 1.0f : 0.5f);
      }
      b.offsets.push_back(static_cast<uint32_t>(b.keys.size()));
    }
  }
  return b;
}

DataSpec Spec() {
  DataSpec s = DataSpec::Libffm(kFields);
  s.num_dense = kDense;
  s.dense_names = {"a", "b"};
  return s;
}

class ModelGrad : public ::testing::TestWithParam<std::string> {};

double Loss(const Model& m, const Batch& b, Workspace* ws) {
  std::vector<float> z(kBatch);
  EXPECT_TRUE(m.Forward(b, 0, kBatch, false, nullptr, ws, z.data()).ok());
  double l = 0;
  for (int i = 0; i < kBatch; ++i) {
    double p = 1 / (1 + std::exp(-static_cast<double>(z[i])));
    l -= b.labels[i] > 0 ? std::log(p) : std::log(1 - p);
  }
  return l / kBatch;
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

// A small model of kind `name` with MLP widths `hidden` (bottom, top, deep
// layers); first-order weights and biases get non-trivial values.
std::unique_ptr<Model> SmallModel(const std::string& name, int hidden) {
  InitBlas();
  TrainConfig cfg;
  cfg.model = name;
  cfg.embedding_dim = 4;
  cfg.bottom_mlp = {hidden - 1};
  cfg.top_mlp = {hidden};
  cfg.mlp = {hidden, 4};
  cfg.cross_layers = 2;
  cfg.init_scale = 0.5f;  // large enough that second-order terms matter
  auto mr = Model::Create(cfg, Spec());
  EXPECT_TRUE(mr.ok()) << mr.status().message();
  if (!mr.ok()) return nullptr;
  std::unique_ptr<Model> m = std::move(mr).value();
  for (size_t i = 0; i < m->params().size(); ++i)
    if (m->params().data()[i] == 0.0f) m->params().data()[i] = 0.1f * std::sin(3.0f * i);
  return m;
}

TEST_P(ModelGrad, MatchesFiniteDifferences) {
  auto owned = SmallModel(GetParam(), 6);
  ASSERT_NE(owned, nullptr);
  Model& m = *owned;
  const TrainConfig& cfg = m.config();
  Batch b = MakeBatch();
  auto ws = m.NewWorkspace();
  std::vector<float> z(kBatch), dl(kBatch), g(m.params().size(), 0.0f);
  ASSERT_TRUE(m.Forward(b, 0, kBatch, true, m.rows(), ws.get(), z.data()).ok());
  const int first = m.table_index("first_order"), emb = m.table_index("embeddings");
  if (first >= 0) {  // non-zero first-order weights
    for (uint64_t k : m.sparse_keys(*ws)) {
      std::vector<float> full = FullRow(*m.table(first), k);
      full[0] = 0.2f * std::sin(float(k));
      SetRow(*m.table(first), k, full);
    }
    ASSERT_TRUE(m.Forward(b, 0, kBatch, true, m.rows(), ws.get(), z.data()).ok());
  }
  for (int i = 0; i < kBatch; ++i) dl[i] = (1 / (1 + std::exp(-z[i])) - b.labels[i]) / kBatch;
  m.Backward(b, 0, kBatch, dl.data(), ws.get(), g.data());
  const std::vector<uint64_t> keys = m.sparse_keys(*ws);
  std::vector<std::vector<float>> grads(m.num_tables());
  for (int t = 0; t < m.num_tables(); ++t) grads[t] = m.sparse_grads(*ws, t);

  auto check_ws = m.NewWorkspace();
  const float eps = 1e-3f;
  int checked = 0, kinks = 0;
  // Central difference of the loss in one coordinate; `set` writes a value.
  auto fd_at = [&](const std::function<void(float)>& set, float keep, float h) {
    set(keep + h);
    double lp = Loss(m, b, check_ws.get());
    set(keep - h);
    double lm = Loss(m, b, check_ws.get());
    set(keep);
    return (lp - lm) / (2 * h);
  };
  // Compares one coordinate. Where the loss is not smooth within eps (a ReLU
  // pre-activation crosses zero), two step sizes disagree; such a coordinate
  // is counted as a kink instead of compared.
  auto compare = [&](const std::function<void(float)>& set, float keep, float analytic, const std::string& what) {
    double fd = fd_at(set, keep, eps);
    const double tol = 1e-3 + 2e-2 * std::fabs(analytic);
    if (std::fabs(fd - analytic) > tol && std::fabs(fd - fd_at(set, keep, eps / 8)) > tol) {
      ++kinks;
      return;
    }
    EXPECT_NEAR(fd, analytic, tol) << cfg.model << " " << what;
    ++checked;
  };
  for (size_t i = 0; i < m.params().size(); ++i) {
    float* p = &m.params().data()[i];
    compare([p](float v) { *p = v; }, *p, g[i], "dense param " + std::to_string(i));
  }
  auto check_table = [&](RowStore* t, const std::vector<float>& grad) {
    const int d = t->dim();
    for (size_t u = 0; u < keys.size(); ++u) {
      std::vector<float> row = FullRow(*t, keys[u]);
      ASSERT_FALSE(row.empty());
      for (int j = 0; j < d; ++j) {
        auto set = [&, u](float v) {
          row[j] = v;
          SetRow(*t, keys[u], row);
        };
        compare(set, row[j], grad[u * d + j], "key " + std::to_string(keys[u]) + " dim " + std::to_string(j));
      }
    }
  };
  for (int t = 0; t < m.num_tables(); ++t) check_table(m.table(t), grads[t]);
  EXPECT_EQ(m.num_tables(), (first >= 0) + (emb >= 0)) << "a table the test does not know";
  EXPECT_GT(checked, 10);
  EXPECT_LE(kinks * 50, checked) << "too many coordinates skipped as ReLU kinks";
}

// Inference scores a sample to the same bits alone, in any batch, frozen or
// not; and agrees with the training forward pass up to rounding.
TEST_P(ModelGrad, InferenceIsBatchInvariant) {
  // Widths past one 16-column panel of the inference kernel.
  auto owned = SmallModel(GetParam(), 19);
  ASSERT_NE(owned, nullptr);
  Model& m = *owned;
  const TrainConfig& cfg = m.config();
  Batch b = MakeBatch();
  auto ws = m.NewWorkspace();
  std::vector<float> trained(kBatch), all(kBatch), one(1);
  ASSERT_TRUE(m.Forward(b, 0, kBatch, true, m.rows(), ws.get(), trained.data()).ok());  // creates the rows
  ASSERT_TRUE(m.Forward(b, 0, kBatch, false, nullptr, ws.get(), all.data()).ok());
  for (int i = 0; i < kBatch; ++i) EXPECT_NEAR(all[i], trained[i], 1e-5 * (1 + std::fabs(trained[i])));
  auto check = [&](const char* what) {
    for (int i = 0; i < kBatch; ++i) {
      ASSERT_TRUE(m.Forward(b, i, i + 1, false, nullptr, ws.get(), one.data()).ok());
      EXPECT_EQ(0, std::memcmp(&one[0], &all[i], sizeof(float))) << cfg.model << " " << what << " sample " << i;
    }
    std::vector<float> tail(kBatch - 2);
    ASSERT_TRUE(m.Forward(b, 2, kBatch, false, nullptr, ws.get(), tail.data()).ok());
    EXPECT_EQ(0, std::memcmp(tail.data(), all.data() + 2, tail.size() * sizeof(float))) << cfg.model << " " << what;
  };
  check("per call");
  m.FreezeForInference();
  check("frozen");
}

// Every family of the registry.
std::vector<std::string> AllFamilies() {
  std::vector<std::string> names;
  for (const Family& f : Families())
    if (std::string(f.name) != "two_tower") names.push_back(f.name);  // needs towers: two_tower_test.cc
  return names;
}

INSTANTIATE_TEST_SUITE_P(AllModels, ModelGrad, ::testing::ValuesIn(AllFamilies()));

// Sparse gradients go out only after a Backward of the last Forward.
TEST(Model, ApplySparseWithoutBackwardIsAnError) {
  auto m = SmallModel("deepfm", 6);
  ASSERT_NE(m, nullptr);
  Batch b = MakeBatch();
  auto ws = m->NewWorkspace();
  std::vector<float> z(kBatch), dl(kBatch, 0.1f), g(m->params().size());
  ASSERT_TRUE(m->Forward(b, 0, kBatch, true, m->rows(), ws.get(), z.data()).ok());
  Status s = m->ApplySparse(ws.get(), 1.0f, m->rows());
  ASSERT_FALSE(s.ok());
  EXPECT_NE(s.message().find("no Backward"), std::string::npos) << s.message();
  m->Backward(b, 0, kBatch, dl.data(), ws.get(), g.data());
  EXPECT_TRUE(m->ApplySparse(ws.get(), 1.0f, m->rows()).ok());
  // Training needs an explicit RowAccess.
  EXPECT_FALSE(m->Forward(b, 0, kBatch, true, nullptr, ws.get(), z.data()).ok());
}

TEST(Model, DlrmNeedsTwoInteractingVectors) {
  TrainConfig cfg;
  cfg.model = "dlrm";
  auto m = Model::Create(cfg, DataSpec::Libsvm());
  ASSERT_FALSE(m.ok());
  EXPECT_NE(m.status().message().find("use fm or deepfm"), std::string::npos);
}

}  // namespace
}  // namespace embark
